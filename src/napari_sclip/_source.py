"""What the widget segments: a napari image layer's planes, and which channels become R, G, B.

Pure functions on napari layers and numpy (no Qt), so the widget stays thin and tests are direct.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np

Plane = tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Source:
    """An image layer (the reference for names, shape and transforms) and its colour mapping.

    * ``channel_axis`` is an axis of ``layer.data`` that holds channels; ``channels`` then picks the
      channel index (or ``None``) for R, G and B.
    * ``rgb_layers`` are separate single-channel layers (e.g. from a ``channel_axis`` split) for
      R, G and B; they must have the reference layer's shape.
    Without either, the layer is used as it is (grayscale or RGB).
    """

    layer: object
    channel_axis: int | None = None
    channels: tuple[int | None, int | None, int | None] | None = None
    rgb_layers: tuple[object | None, object | None, object | None] | None = None

    def __post_init__(self) -> None:
        data = full_resolution(self.layer)
        if self.rgb_layers is not None:
            chosen = [lay for lay in self.rgb_layers if lay is not None]
            if not chosen:
                raise ValueError("Choose at least one layer for R, G or B.")
            for lay in chosen:
                if getattr(lay, "rgb", False) or tuple(full_resolution(lay).shape) != tuple(data.shape):
                    raise ValueError(
                        f"Layer {lay.name!r} ({tuple(full_resolution(lay).shape)}) cannot be a channel of "
                        f"{self.layer.name!r} ({tuple(data.shape)}): the channel layers must be "
                        "single-channel with the same shape."
                    )
        if self.channel_axis is not None:
            if getattr(self.layer, "rgb", False):
                raise ValueError("An RGB layer has no channel axis to choose from.")
            ndim = len(data.shape)
            if not -ndim <= self.channel_axis < ndim:
                raise ValueError(f"Channel axis {self.channel_axis} is not an axis of {data.shape}.")
            axis = self.channel_axis % ndim
            if axis >= ndim - 2:
                raise ValueError("The channel axis cannot be one of the last two (spatial) axes.")
            n = data.shape[axis]
            for c in self.channels or (0, None, None):
                if c is not None and not 0 <= c < n:
                    raise ValueError(f"Channel {c} does not exist (the axis has {n} channels).")

    @property
    def name(self) -> str:
        """Name of the reference layer (result layers are named after it)."""
        return str(self.layer.name)

    @property
    def axis(self) -> int | None:
        """The channel axis of the reference layer's data, non-negative, or None."""
        if self.channel_axis is None:
            return None
        return self.channel_axis % len(full_resolution(self.layer).shape)

    @property
    def rgb(self) -> bool:
        """Whether the reference layer is an RGB(A) layer used as it is."""
        return bool(getattr(self.layer, "rgb", False)) and self.rgb_layers is None

    def dropped_axes(self) -> tuple[int, ...]:
        """Layer axes (of ``layer.ndim``) that the result layers do not have."""
        return () if self.axis is None else (self.axis,)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the labels layer: plane axes then (H, W)."""
        shape = tuple(int(s) for s in full_resolution(self.layer).shape)
        if self.rgb:
            shape = shape[:-1]
        if self.axis is not None:
            shape = shape[: self.axis] + shape[self.axis + 1 :]
        return shape

    @property
    def plane_shape(self) -> tuple[int, ...]:
        """Shape of the non-spatial (stack / time) axes."""
        return self.shape[:-2]

    def planes(self) -> list[Plane]:
        """Every plane index, in order."""
        return [tuple(p) for p in product(*(range(n) for n in self.plane_shape))]

    def current_plane(self, world_point: Sequence[float]) -> Plane:
        """The plane the viewer shows at ``world_point`` (``viewer.dims.point``)."""
        if not self.plane_shape:
            return ()
        coords = list(np.asarray(self.layer.world_to_data(world_point), dtype=float))
        if self.axis is not None:
            del coords[self.axis]
        lead = coords[: len(self.plane_shape)]
        return tuple(int(np.clip(round(c), 0, n - 1)) for c, n in zip(lead, self.plane_shape))

    def _layer_index(self, plane: Plane) -> tuple:
        """Index into the reference layer's data for ``plane`` (channel axis kept whole)."""
        index: list = list(plane)
        if self.axis is not None and self.axis < len(index):
            index.insert(self.axis, slice(None))
        return tuple(index)

    def read(self, plane: Plane) -> tuple[np.ndarray, tuple[float, float]]:
        """(image, contrast_limits) for ``segment``: (H, W), (H, W, 3) raw, or composed 0..1 RGB."""
        if len(plane) != len(self.plane_shape):
            raise ValueError(f"Plane {plane} does not index the stack of shape {self.plane_shape}.")
        if self.rgb_layers is not None:
            arrays = [None if lay is None else np.asarray(full_resolution(lay)[plane]) for lay in self.rgb_layers]
            limits = [None if lay is None else lay.contrast_limits for lay in self.rgb_layers]
            return compose_rgb(arrays, limits), (0.0, 1.0)
        data = np.asarray(full_resolution(self.layer)[self._layer_index(plane)])
        limits = tuple(float(v) for v in self.layer.contrast_limits)
        if self.axis is None:
            return data, limits
        channel_axis = self.axis - len(plane) if self.axis >= len(plane) else 0
        picks = self.channels or (0, None, None)
        arrays = [None if c is None else np.take(data, c, axis=channel_axis) for c in picks]
        return compose_rgb(arrays, [limits] * 3), (0.0, 1.0)

    def key(self, plane: Plane) -> tuple:
        """What the cached image features depend on for this plane (besides model and scale)."""
        layers = (self.layer,) if self.rgb_layers is None else self.rgb_layers
        parts = []
        for lay in layers:
            if lay is None:
                parts.append(None)
            else:
                parts.append((id(full_resolution(lay)), tuple(float(v) for v in lay.contrast_limits)))
        return (id(self.layer), tuple(parts), self.axis, self.channels, plane)


def full_resolution(layer):
    """The layer's array, or level 0 of a multiscale layer (results align with full resolution)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def compose_rgb(
    arrays: Sequence[np.ndarray | None], contrast_limits: Sequence[Sequence[float] | None]
) -> np.ndarray:
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
