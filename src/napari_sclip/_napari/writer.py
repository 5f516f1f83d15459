"""Writing results into a labels layer: only the pixels whose value changes, in row bands short
enough for the event loop, as ONE undo step, keeping the user's edits, drawn once at the end (one
texture upload and one repaint, not one per band). The first result into a layer made for it is
written at once (there is nothing to undo to). No Qt: the widget drives :func:`write_steps` one
yield per event-loop turn."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping

import numpy as np

from .edits import EditMemory
from .source import Plane

#: Pixels examined per band: when most of them change, ~20 ms of napari's ``data_setitem``.
BAND_PIXELS = 1 << 18

Region = tuple  # plane indices followed by a row slice: ``(t, slice(r0, r1))``


def bands(planes, height: int, width: int, pixels: int = BAND_PIXELS) -> Iterator[Region]:
    """Whole planes cut into row bands of about ``pixels`` pixels."""
    rows = max(1, int(pixels) // max(int(width), 1))
    for plane in planes:
        for r0 in range(0, height, rows):
            yield (*plane, slice(r0, min(r0 + rows, height)))


def band_changes(layer, memory: EditMemory, region: Region, labels: np.ndarray) -> tuple | None:
    """The pixels of ``region`` to write for the plugin's ``labels`` (layer numbering), keeping the
    user's: ``(indices, values)``, or None when nothing changes. ``memory.written`` takes the
    plugin's labels (its decision), so later writes tell user pixels apart."""
    current = np.asarray(layer.data[region])
    keep = memory.user_pixels(layer.data, region)
    target = np.where(keep, current, labels) if keep.any() else labels
    changed = target != current
    memory.written[region] = labels
    coords = np.nonzero(changed)
    n = int(coords[0].size)
    if not n:
        return None
    lead = [np.full(n, p, np.intp) for p in region[:-1]]
    return (*lead, coords[0] + region[-1].start, *coords[1:]), target[changed]


def write_steps(layer, memory: EditMemory, planes: Mapping[Plane, np.ndarray], fresh: bool = False
                ) -> Generator[None, None, int]:  # fmt: skip
    """Write result planes (plane -> (H, W) labels in the layer's numbering) as one undo step,
    yielding between turns; returns how many pixels changed through the undo history. While it
    runs ``memory.writing`` is set (its paint events are not user edits) and, over several turns,
    the layer is in pan/zoom mode so that no brush stroke mixes into the update. ``fresh``: the
    layer was made empty for this result; if it is still empty, the planes are simply put in."""
    if fresh and not np.asarray(layer.data).any():
        for plane, labels in planes.items():
            layer.data[plane] = labels
            memory.written[plane] = labels
        yield
        layer.refresh()
        return 0
    height, width = memory.written.shape[-2:]
    several = sum(p.size for p in planes.values()) > BAND_PIXELS
    mode = layer.mode
    if several:
        layer.mode = "pan_zoom"
    memory.writing = True
    total, held = 0, None
    try:
        with layer.block_history():
            for region in bands(planes, height, width):
                change = band_changes(layer, memory, region, planes[region[:-1]][region[-1]])
                if change is None:
                    continue
                if held is not None:  # written, not drawn: the last write draws them all
                    layer.data_setitem(*held, refresh=False)
                held, total = change, total + change[1].size
                if several:
                    yield
            if held is not None:
                layer.data_setitem(*held)
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
