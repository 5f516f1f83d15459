"""The attention probe: a click on the image (not a drag, not a brush stroke) shows the last-block
attention of the patch under it, computed in a worker thread (see :mod:`.._napari.probe`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from qtpy.QtCore import QObject, Signal

from .._napari import probe as probe_layers
from .._napari.probe import ProbePoint
from .._napari.session import Session
from .._napari.source import ImageSource
from .workers import Workers

PASSIVE_MODES = ("pan_zoom",)  # the active layer's modes in which a click may probe


class Probe(QObject):
    """Clicks to probes; ``said(text, level)`` for the status line."""

    said = Signal(str, str)

    def __init__(self, viewer, workers: Workers, current: Callable[[], tuple[ImageSource | None, Session | None]]) -> None:
        super().__init__()
        self.viewer = viewer
        self.workers = workers
        self.current = current

    @property
    def enabled(self) -> bool:
        return self._on_drag in self.viewer.mouse_drag_callbacks

    def set_enabled(self, on: bool) -> None:
        callbacks = self.viewer.mouse_drag_callbacks
        if on and self._on_drag not in callbacks:
            callbacks.append(self._on_drag)
        elif not on and self._on_drag in callbacks:
            callbacks.remove(self._on_drag)

    def _on_drag(self, viewer, event):
        """A click (press and release without moving) probes; drags pan, strokes paint."""
        active = viewer.layers.selection.active
        if event.type != "mouse_press" or str(getattr(active, "mode", "pan_zoom")) not in PASSIVE_MODES:
            return
        position = event.position
        yield
        moved = False
        while event.type == "mouse_move":
            moved = True
            yield
        if not moved:
            self.probe_world(position)

    def probe_world(self, position) -> None:
        source, _session = self.current()
        if source is None:
            return
        coords = list(np.asarray(source.layer.world_to_data(position), dtype=float))
        for axis in source.dropped_axes():
            del coords[axis]
        plane = tuple(int(round(c)) for c in coords[:-2])
        self.probe(coords[-2], coords[-1], plane)

    def probe(self, y: float, x: float, plane=None):
        """Probe the patch at image pixel (y, x) of ``plane``; returns the worker, or None."""
        _source, session = self.current()
        result = None if session is None else session.cache.get(tuple(plane or ()))
        if result is None:
            self.said.emit("run a segmentation of this plane first, then click to probe", "info")
            return None
        seg = result.seg
        if not (0 <= y < seg.image_shape[0] and 0 <= x < seg.image_shape[1]):
            return None
        point = ProbePoint(tuple(plane or ()), float(y), float(x))

        def compute():
            return {mode: seg.attention_map(y, x, mode) for mode in probe_layers.MODES}

        return self.workers.start(
            compute, returned=lambda maps: self._show(session, point, maps),
            errored=lambda exc: self.said.emit(f"probe failed: {exc}", "error"),
        )  # fmt: skip

    def _show(self, session: Session, point: ProbePoint, maps) -> None:
        if session.reference not in self.viewer.layers:
            return
        probe_layers.show(self.viewer, session, point, maps)
        self.said.emit(f"attention of the patch at (y={point.y:.0f}, x={point.x:.0f}): SCLIP over the image, "
                       "framed; tick the vanilla CLIP layer to compare", "status")  # fmt: skip

    def clear(self, session: Session) -> None:
        probe_layers.clear(self.viewer, session)
