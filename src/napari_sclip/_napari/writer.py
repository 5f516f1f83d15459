"""Writing results into a labels layer: only the pixels whose value changes, in row bands short
enough for the event loop, as ONE undo step, keeping the user's edits. No Qt: the widget drives
:func:`write_steps` one yield per event-loop turn."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping

import numpy as np

from .edits import EditMemory
from .source import Plane

#: Pixels examined per band: one event-loop turn of a few tens of ms (then napari repaints).
BAND_PIXELS = 1 << 20

Region = tuple  # plane indices followed by a row slice: ``(t, slice(r0, r1))``


def bands(planes, height: int, width: int, pixels: int = BAND_PIXELS) -> Iterator[Region]:
    """Whole planes cut into row bands of about ``pixels`` pixels."""
    rows = max(1, int(pixels) // max(int(width), 1))
    for plane in planes:
        for r0 in range(0, height, rows):
            yield (*plane, slice(r0, min(r0 + rows, height)))


def write_band(layer, memory: EditMemory, region: Region, labels: np.ndarray) -> int:
    """Write the plugin's ``labels`` (layer numbering) into ``region`` through ``data_setitem``
    (undoable), keeping the user's pixels; returns how many pixels changed. ``memory.written``
    takes the plugin's labels (its decision), so later writes tell user pixels apart."""
    current = np.asarray(layer.data[region])
    keep = memory.user_pixels(layer.data, region)
    target = np.where(keep, current, labels) if keep.any() else labels
    changed = target != current
    coords = np.nonzero(changed)
    n = int(coords[0].size)
    if n:
        lead = [np.full(n, p, np.intp) for p in region[:-1]]
        indices = (*lead, coords[0] + region[-1].start, *coords[1:])
        layer.data_setitem(indices, target[changed])
    memory.written[region] = labels
    return n


def write_steps(layer, memory: EditMemory, planes: Mapping[Plane, np.ndarray]) -> Generator[None, None, int]:
    """Write result planes (plane -> (H, W) labels in the layer's numbering) as one undo step,
    yielding between turns; returns how many pixels changed. While it runs ``memory.writing`` is
    set (its paint events are not user edits) and, over several turns, the layer is in pan/zoom
    mode so that no brush stroke mixes into the update."""
    height, width = memory.written.shape[-2:]
    several = sum(p.size for p in planes.values()) > BAND_PIXELS
    mode = layer.mode
    if several:
        layer.mode = "pan_zoom"
    memory.writing = True
    total = 0
    try:
        with layer.block_history():
            for region in bands(planes, height, width):
                n = write_band(layer, memory, region, planes[region[:-1]][region[-1]])
                total += n
                if several and n:  # a band that changed nothing needs no turn of its own
                    yield
    finally:
        memory.writing = False
        if several and layer.mode == "pan_zoom":
            layer.mode = mode
    return total


def drain(steps: Generator[None, None, int]) -> int:
    """Run a write to its end at once (when the widget closes mid-write)."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return int(stop.value or 0)
