"""Following the user's hand on the plugin's labels layers: paint events (what a stroke changed),
the brush footprint of a drag (what it painted over with the same label), and undo / redo through
the layer's :class:`~.._napari.history.History` mirror."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from qtpy.QtCore import QObject, Signal

from .._napari.edits import EditMark, stroke_footprint
from .._napari.history import Entry, History, PluginUpdate, UserEdit
from .._napari.session import Session


class EditTracker(QObject):
    """Watches the labels layer of each session; ``edited`` after a user change or an undo /
    redo, ``restored(session, entry, undone)`` after an undo / redo."""

    edited = Signal()
    restored = Signal(object, object, bool)

    def __init__(self) -> None:
        super().__init__()
        self._bound: dict[int, tuple] = {}  # id(layer) -> (layer, paint callback, drag callback)
        self._pending: list[EditMark] = []  # brush footprints not yet tied to a history item
        self.store_busy: Callable[[], bool] = lambda: False  # whether store writes are pending

    def watch(self, session: Session) -> None:
        """Start following ``session.labels`` (a layer the plugin just made)."""
        layer = session.labels
        self.unwatch(layer)

        def on_step(entry: Entry, undone: bool) -> None:
            if isinstance(entry, UserEdit):
                for mark in entry.marks:
                    session.memory.apply(mark, not undone)
            elif isinstance(entry, PluginUpdate) and entry.before is None:
                session.settle(entry.planes)
            elif isinstance(entry, PluginUpdate):
                session.restore(entry.before if undone else entry.after)
            # a RegionCommit (large results) is written back by whoever hears ``restored``
            self.restored.emit(session, entry, undone)
            self.edited.emit()

        if session.history is None or session.history.layer is not layer:  # else: a region open again
            blocked = lambda: session.memory is not None and session.memory.writing  # noqa: E731
            session.history = History(layer, on_step, blocked, lambda entry: self._held(session, entry))
        session.history.attach()
        if getattr(session, "store", None) is not None:  # a large result's multiscale: edited through regions
            return
        paint = lambda event: self._on_paint(session, layer)  # noqa: E731
        drag = self._stroke_callback(session)
        layer.events.paint.connect(paint)
        layer.mouse_drag_callbacks.append(drag)
        self._bound[id(layer)] = (layer, paint, drag)

    def _held(self, session: Session, entry: Entry) -> bool:
        """A plugin update of a large result waits while edits are being written into its store
        (its undo swaps the store's generation)."""
        return isinstance(entry, PluginUpdate) and getattr(session, "store", None) is not None and self.store_busy()

    def unwatch(self, layer) -> None:
        bound = self._bound.pop(id(layer), None)
        if bound is None:
            return
        layer, paint, drag = bound
        layer.events.paint.disconnect(paint)
        if drag in layer.mouse_drag_callbacks:
            layer.mouse_drag_callbacks.remove(drag)

    def release(self, sessions) -> None:
        """The widget closes: every hook off every layer, every layer its own undo back."""
        for layer, _paint, _drag in list(self._bound.values()):
            self.unwatch(layer)
        for session in sessions:
            if session.history is not None:
                session.history.detach()

    def _on_paint(self, session: Session, layer) -> None:
        """A new item in the layer's undo stack: the plugin's own write (the writer records it)
        or a user change, remembered with the pixels it flagged."""
        memory = session.memory
        if memory is None or memory.writing or session.labels is not layer:
            return
        if tuple(layer.data.shape) != memory.shape:
            return
        mark = memory.record_change(layer.data, layer.brush_size)  # a dab spans one diameter
        edit = UserEdit([m for m in (*self._pending, mark) if m is not None])
        self._pending.clear()
        session.history.push(edit)
        self.edited.emit()

    def _stroke_callback(self, session: Session) -> Callable:
        def track(layer, event):
            """Follow a paint / erase drag and claim the brush's whole footprint as the user's
            (napari reports only the pixels whose value the stroke changed)."""
            if layer.mode not in ("paint", "erase") or event.type != "mouse_press":
                return
            value = 0 if layer.mode == "erase" else int(layer.selected_label)
            self._pending.clear()  # a footprint of an earlier stroke that changed nothing
            coords = [np.asarray(layer.world_to_data(event.position), float)]
            top = session.history.top if session.history is not None else None
            yield
            while event.type == "mouse_move":
                coords.append(np.asarray(layer.world_to_data(event.position), float))
                yield
            memory = session.memory
            if memory is None or tuple(layer.data.shape) != memory.shape:
                return
            shape = layer.data.shape
            plane = tuple(int(np.clip(round(c), 0, n - 1)) for c, n in zip(coords[0][:-2], shape[:-2]))
            footprint = stroke_footprint([c[-2:] for c in coords], layer.brush_size / 2, shape[-2:])
            mark = memory.claim(layer.data, plane, footprint, value)
            if mark is None:
                return
            newest = session.history.top if session.history is not None else None
            if isinstance(newest, UserEdit) and newest is not top:  # napari committed the stroke first
                newest.marks.append(mark)
            else:
                self._pending.append(mark)

        return track
