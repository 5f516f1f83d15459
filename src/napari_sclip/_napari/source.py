"""What the widget segments: an image layer's planes, and which channels CLIP sees as R, G and B.

An :class:`ImageSource` is a reference layer plus a :class:`Mapping` (how its data, or other
layers, become R, G, B). Its :class:`Geometry` (the shape of the result: plane axes, then rows and
columns) depends only on the reference layer, the colour mode and the channel axis, so planes and
the window hint are known before any channel is picked; it is also the key of the per-image
session, so a new mapping gets a new session instead of a patched one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np

from .pixels import Box, as_engine_input, lazy_rgb, plane_levels

Plane = tuple[int, ...]
#: How the colours CLIP sees are made: the layer as it is (grayscale or RGB), channels of one of
#: its axes, or separate single-channel layers.
COLOUR_FROM = ("layer", "channel_axis", "layers")
Picks = tuple[Any, Any, Any]


def full_resolution(layer):
    """The layer's array, or level 0 of a multiscale layer (results align with full resolution)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def data_shape(layer) -> tuple[int, ...]:
    return tuple(int(s) for s in full_resolution(layer).shape)


@dataclass(frozen=True)
class Geometry:
    """The shape of a result (plane axes, then H, W) and what it was derived from; ``box``: the
    region of the image it covers, ``(y0, y1, x0, x1)`` in level-0 pixels (None: all of it)."""

    layer_id: int
    colour_from: str
    axis: int | None
    shape: tuple[int, ...]
    box: Box | None = None

    @property
    def plane_shape(self) -> tuple[int, ...]:
        """Shape of the non-spatial (stack / time) axes."""
        return self.shape[:-2]

    @property
    def pixels(self) -> int:
        """Pixels of the whole result (every plane)."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def corner(self) -> tuple[int, int]:
        """Level-0 pixel of the image at the result's (0, 0)."""
        return (0, 0) if self.box is None else (self.box[0], self.box[2])

    def planes(self) -> list[Plane]:
        """Every plane index, in order."""
        return [tuple(p) for p in product(*(range(n) for n in self.plane_shape))]


def geometry_of(layer, colour_from: str = "layer", axis: int | None = None, box: Box | None = None) -> Geometry:
    """The result geometry of ``layer`` under a colour mode (and within ``box``); raises ValueError
    with a message."""
    geo = _whole_geometry(layer, colour_from, axis)
    if box is None:
        return geo
    H, W = geo.shape[-2:]
    y0, y1, x0, x1 = (int(v) for v in box)
    y0, x0, y1, x1 = max(y0, 0), max(x0, 0), min(y1, H), min(x1, W)
    if y1 - y0 < 1 or x1 - x0 < 1:
        raise ValueError("The region to segment lies outside the image: pan the image into view first.")
    return Geometry(geo.layer_id, colour_from, geo.axis, geo.plane_shape + (y1 - y0, x1 - x0), (y0, y1, x0, x1))


def _whole_geometry(layer, colour_from: str, axis: int | None) -> Geometry:
    if colour_from not in COLOUR_FROM:
        raise ValueError(f"Colour from {colour_from!r}: choose one of {', '.join(COLOUR_FROM)}.")
    shape = data_shape(layer)
    rgb = bool(getattr(layer, "rgb", False))
    if colour_from != "channel_axis":
        if rgb and colour_from == "layers":
            raise ValueError(f"{layer.name!r} is an RGB layer: it cannot be the reference of separate channel layers.")
        return Geometry(id(layer), colour_from, None, shape[:-1] if rgb else shape)
    if rgb:
        raise ValueError("An RGB layer has no channel axis to choose from: use 'layer as it is'.")
    if axis is None:
        raise ValueError("Choose the axis that holds the channels (its entries become R, G and B).")
    ndim = len(shape)
    if not -ndim <= axis < ndim or axis % ndim >= ndim - 2:
        raise ValueError(f"Axis {axis} of a {ndim}D layer cannot hold channels: the last two axes are the image's rows and columns.")
    axis %= ndim
    return Geometry(id(layer), colour_from, axis, shape[:axis] + shape[axis + 1 :])


@dataclass(frozen=True, eq=False)
class Mapping:
    """Which colours CLIP sees: ``colour_from`` (see :data:`COLOUR_FROM`); for ``channel_axis``
    the ``axis`` and the channel index (or None: black) for R, G, B; for ``layers`` the layers
    (or None) for R, G, B. ``box``: only that region of the image (level-0 pixels)."""

    colour_from: str = "layer"
    axis: int | None = None
    channels: Picks = (0, 1, 2)
    layers: Picks = (None, None, None)
    box: Box | None = None


@dataclass(frozen=True, eq=False)
class ImageSource:
    """A reference layer (names, shape, transforms) and its colour mapping, checked."""

    layer: Any
    mapping: Mapping = Mapping()
    geometry: Geometry = field(init=False)

    def __post_init__(self) -> None:
        geo = geometry_of(self.layer, self.mapping.colour_from, self.mapping.axis, self.mapping.box)
        object.__setattr__(self, "geometry", geo)
        if geo.colour_from == "layers":
            _check_layers(self.layer, self.mapping.layers)
        elif geo.colour_from == "channel_axis":
            n = data_shape(self.layer)[geo.axis]
            picks = self.mapping.channels
            if all(c is None for c in picks):
                raise ValueError("Choose at least one channel for R, G or B.")
            for c in picks:
                if c is not None and not 0 <= c < n:
                    raise ValueError(f"Channel {c} does not exist (axis {geo.axis} has {n} entries).")

    @property
    def name(self) -> str:
        return str(self.layer.name)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.geometry.shape

    @property
    def plane_shape(self) -> tuple[int, ...]:
        return self.geometry.plane_shape

    def planes(self) -> list[Plane]:
        return self.geometry.planes()

    def inputs(self) -> list:
        """Every layer whose data this source reads."""
        if self.geometry.colour_from == "layers":
            return [self.layer, *(lay for lay in self.mapping.layers if lay is not None)]
        return [self.layer]

    def dropped_axes(self) -> tuple[int, ...]:
        """Axes of ``layer.data`` (RGB axis aside) that the result layers do not have."""
        return () if self.geometry.axis is None else (self.geometry.axis,)

    def current_plane(self, world_point: Sequence[float]) -> Plane:
        """The plane the viewer shows at ``world_point`` (``viewer.dims.point``)."""
        if not self.plane_shape:
            return ()
        coords = list(np.asarray(self.layer.world_to_data(world_point), dtype=float))
        for axis in self.dropped_axes():
            del coords[axis]
        lead = coords[: len(self.plane_shape)]
        return tuple(int(np.clip(round(c), 0, n - 1)) for c, n in zip(lead, self.plane_shape))

    def read(self, plane: Plane) -> tuple[Any, tuple[float, float]]:
        """(image, contrast_limits) for the engine: (H, W), (H, W, 3) raw, or composed 0..1 RGB; a
        multiscale layer gives its pyramid (a list, largest first); data not in memory stay lazy."""
        if len(plane) != len(self.plane_shape):
            raise ValueError(f"Plane {plane} does not index the stack of shape {self.plane_shape}.")
        geo, mapping = self.geometry, self.mapping
        if geo.colour_from == "layers":
            channels = [None if lay is None else plane_levels(lay, tuple(plane), geo.box) for lay in mapping.layers]
            limits = [None if lay is None else lay.contrast_limits for lay in mapping.layers]
            return _composed(channels, limits), (0.0, 1.0)
        limits = tuple(float(v) for v in self.layer.contrast_limits)
        if geo.axis is None:
            return as_engine_input(plane_levels(self.layer, tuple(plane), geo.box)), limits
        index: list = list(plane)
        index.insert(geo.axis, slice(None))  # the channel axis, whole: data is (C, H, W)
        levels = plane_levels(self.layer, tuple(index), geo.box)
        channels = [None if c is None else [level[c] for level in levels] for c in mapping.channels]
        return _composed(channels, [limits] * 3), (0.0, 1.0)

    def plane_key(self, plane: Plane) -> tuple:
        """What a plane's image features depend on (besides scale and model): the data read, its
        contrast limits, the channel choice and the plane."""
        parts = []
        for lay in self.inputs():
            parts.append((id(full_resolution(lay)), tuple(float(v) for v in lay.contrast_limits)))
        picks = tuple(id(lay) if lay is not None else None for lay in self.mapping.layers)
        return (self.geometry, tuple(parts), self.mapping.channels, picks, plane)


def _check_layers(reference, layers: Picks) -> None:
    chosen = [lay for lay in layers if lay is not None]
    if not chosen:
        raise ValueError("Choose at least one layer for R, G or B.")
    want = data_shape(reference)
    for lay in chosen:
        if getattr(lay, "rgb", False) or data_shape(lay) != want:
            raise ValueError(
                f"Layer {lay.name!r} {data_shape(lay)} cannot be a channel of {reference.name!r} {want}: "
                "the channel layers must be single-channel with the same shape."
            )


def _composed(channels: Sequence[list | None], limits: Sequence):
    """R, G, B composed level by level (levels every channel has): numpy for one level in memory,
    else dask (a pyramid's levels are composed only where the engine reads, never all of them)."""
    n = min(len(c) for c in channels if c is not None)
    levels = [[None if c is None else c[i] for c in channels] for i in range(n)]
    in_memory = n == 1 and all(a is None or isinstance(a, np.ndarray) for a in levels[0])
    return as_engine_input([compose_rgb(a, limits) if in_memory else lazy_rgb(a, limits) for a in levels])


def compose_rgb(arrays: Sequence[np.ndarray | None], contrast_limits: Sequence[Sequence[float] | None]) -> np.ndarray:
    """Stack up to three 2D channels as float32 (H, W, 3) in 0..1, each through its contrast limits.

    A missing channel (None) is black. This is how several fluorescence channels reach CLIP.
    """
    shapes = {a.shape for a in arrays if a is not None}
    if len(shapes) != 1:
        raise ValueError(f"Channels must be 2D arrays of one shape, got {sorted(shapes)}.")
    (shape,) = shapes
    if len(shape) != 2:
        raise ValueError(f"Each channel must be a 2D plane, got shape {shape}.")
    out = np.zeros(shape + (3,), np.float32)
    for i, (a, lim) in enumerate(zip(arrays, contrast_limits)):
        if a is None:
            continue
        a = a.astype(np.float32, copy=False)
        lo, hi = (float(a.min()), float(a.max())) if lim is None else (float(lim[0]), float(lim[1]))
        scale = 1.0 / (hi - lo) if hi > lo else 0.0
        np.clip((a - lo) * scale, 0.0, 1.0, out=out[..., i])
    np.nan_to_num(out, copy=False)
    return out
