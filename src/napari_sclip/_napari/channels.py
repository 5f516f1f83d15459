"""Choosing channels: which axes could hold them, sensible R, G, B layers, and a plain-words
summary of what CLIP will see (so a time axis is never taken for channels silently)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .source import Geometry, Picks, data_shape, geometry_of

CHANNEL_WORDS = {"c", "ch", "channel", "channels", "colour", "color", "wavelength"}
STACK_WORDS = {"t", "time", "frame", "frames", "z", "depth", "slice", "slices", "plane", "planes"}
COLOURS = ("red", "green", "blue")


@dataclass(frozen=True)
class AxisChoice:
    """A non-spatial axis of a layer that could hold channels."""

    axis: int
    size: int
    label: str

    @property
    def text(self) -> str:
        named = "" if self.label.lstrip("-").isdigit() else f" '{self.label}'"
        return f"axis {self.axis}{named}: {self.size} entries"


def axis_choices(layer) -> list[AxisChoice]:
    """The axes of ``layer`` that are not its rows, columns or RGB colours."""
    if layer is None or getattr(layer, "rgb", False):
        return []
    shape = data_shape(layer)
    labels = [str(a) for a in getattr(layer, "axis_labels", ())] or [str(i) for i in range(len(shape))]
    return [AxisChoice(i, shape[i], labels[i].strip()) for i in range(len(shape) - 2)]


def labelled_channel_axis(layer) -> int | None:
    """The axis whose label names channels ('c', 'channel'...), if exactly one does."""
    named = [c.axis for c in axis_choices(layer) if c.label.lower() in CHANNEL_WORDS]
    return named[0] if len(named) == 1 else None


def default_layer_picks(reference, candidates: Sequence) -> Picks:
    """R, G, B layers for 'separate layers': layers coloured red, green or blue go to that colour
    (as napari's ``channel_axis`` split colours them); without any, the reference as grey."""
    picks = []
    for colour in COLOURS:
        match = [lay for lay in candidates if _colormap_name(lay) == colour]
        picks.append(match[0] if match else None)
    if all(p is None for p in picks):
        return (reference, reference, reference)
    return tuple(picks)


def compatible_layers(reference, layers: Sequence) -> list:
    """Single-channel image layers with the reference's shape (possible R, G, B sources)."""
    if reference is None:
        return []
    want = data_shape(reference)
    return [lay for lay in layers if not getattr(lay, "rgb", False) and data_shape(lay) == want]


def _colormap_name(layer) -> str:
    return str(getattr(getattr(layer, "colormap", None), "name", "")).lower()


def describe(layer, colour_from: str, axis: int | None) -> str:
    """One or two sentences on what CLIP sees and what the result's shape will be."""
    if layer is None:
        return ""
    try:
        geo = geometry_of(layer, colour_from, axis)
    except ValueError as exc:
        return str(exc)
    shape = _shape_words(geo)
    if colour_from == "layer":
        kind = "RGB" if getattr(layer, "rgb", False) else "grey"
        return f"CLIP sees the layer as {kind}; result: {shape}."
    if colour_from == "layers":
        return f"R, G, B from single-channel layers shaped like {layer.name!r}; result: {shape}."
    choice = next(c for c in axis_choices(layer) if c.axis == geo.axis)
    text = f"The {choice.size} entries of axis {geo.axis} are the channels R, G, B can take; result: {shape}."
    if choice.label.lower() in STACK_WORDS:
        text += f" Axis {geo.axis} is labelled {choice.label!r}: if it is time or depth, use 'layer as it is'."
    elif choice.size > 4:
        text += f" {choice.size} entries is many for channels: is axis {geo.axis} time or depth?"
    return text


def _shape_words(geo: Geometry) -> str:
    h, w = geo.shape[-2:]
    if not geo.plane_shape:
        return f"one {h} × {w} image (no planes)"
    planes = " × ".join(str(n) for n in geo.plane_shape)
    return f"{planes} planes of {h} × {w}"
