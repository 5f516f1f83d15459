"""Edit regions of large results (see :mod:`.._napari.region`): open the area in view as an
editable layer, apply its changes into the store, and replay applied changes on undo / redo.
Store writes run in a worker thread, one at a time, in the order they were asked for; the
multiscale labels layer is refreshed after each."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
from qtpy.QtCore import QEventLoop, QObject, Signal

from .._napari.history import RegionCommit
from .._napari.region import EditRegion, capped, replay, visible_box
from .._napari.session import Session
from .edit_tracker import EditTracker
from .workers import Workers


class RegionEditor(QObject):
    """One open edit region per large session; ``changed`` when one opens or closes."""

    changed = Signal()

    def __init__(self, viewer, workers: Workers, tracker: EditTracker, say: Callable[[str], None]) -> None:
        super().__init__()
        self.viewer, self.workers, self.tracker, self.say = viewer, workers, tracker, say
        self.open: dict[int, EditRegion] = {}  # id(session) -> its open region
        self._layers: dict[int, object] = {}  # id(session) -> its edit layer (made once, reused)
        self._queue: deque = deque()
        self._busy = False

    def region_of(self, session: Session | None) -> EditRegion | None:
        return None if session is None else self.open.get(id(session))

    @property
    def writing(self) -> bool:
        return self._busy or bool(self._queue)

    def open_current(self, session: Session | None, busy: bool):
        """The widget's Edit region: the plane on screen; returns the edit layer."""
        if session is None or busy:
            raise ValueError("Run a segmentation first, and wait until it is done." if session is None else
                             "napari-sclip is busy: wait until the job is done.")  # fmt: skip
        return self.open_in_view(session, plane_in_view(session, self.viewer)).labels

    def open_clicked(self, session: Session | None, busy: bool) -> None:
        try:
            self.open_current(session, busy)
        except ValueError as exc:
            from .dialogs import notify

            notify("warning", f"napari-sclip: {exc}")

    def hold(self, session: Session, again: Callable[[], None]) -> bool:
        """Before a job: the session's open region is applied, and pending writes finish, first
        (then ``again``); False when nothing is pending."""
        if self.region_of(session) is not None:
            self.apply(session, then=again)
        elif self.writing:
            self.after_writes(again)
        else:
            return False
        return True

    def open_in_view(self, session: Session, plane: tuple) -> EditRegion:
        """Open the part of ``session``'s labels in view (its centre, at most EDIT_SIDE a side) on
        ``plane`` for editing; the multiscale layer is hidden meanwhile (erasing shows)."""
        if session.store is None or not session.labels_alive(self.viewer.layers):
            raise ValueError("Edit regions are for large results: run a segmentation of a large image first.")
        if self.region_of(session) is not None:
            self.apply(session)
        box = capped(visible_box(self.viewer, session.labels, session.geometry.shape[-2:]))
        loaded = session.store.read_region(plane, slice(box[0], box[1]), slice(box[2], box[3]))
        region = EditRegion(session, plane, box, loaded)
        region.start_memory()
        layer = self._layers.get(id(session))
        if layer is None or layer not in self.viewer.layers:
            from napari.layers import Labels

            layer = self._layers[id(session)] = Labels(region.data(), **region.layer_kwargs())
            self.viewer.add_layer(layer)
        else:
            for key, value in region.layer_kwargs().items():
                if key in ("name", "translate", "features", "colormap"):
                    setattr(layer, key, value)
            layer.data = region.data()
            layer.visible = True
        region.labels = layer
        self.tracker.watch(region)
        self.open[id(session)] = region
        session.labels.visible = False
        self.viewer.layers.selection.active = layer
        layer.mode = "paint"
        self.say(f"editing rows {box[0]}-{box[1]}, columns {box[2]}-{box[3]}: paint, then Apply edits")
        self.changed.emit()
        return region

    def apply(self, session: Session | None, then: Callable[[], None] | None = None, wait: bool = False) -> None:
        """Write the open region's changes into the store (one undo step of the labels layer), then
        close it and call ``then``; ``wait``: return once written (the event loop turning)."""
        if wait:
            loop = QEventLoop()
            self.apply(session, then=lambda: (then and then(), loop.quit()))
            if self.writing:
                loop.exec()
            return
        region = self.open.pop(id(session), None)
        if region is None:
            if then is not None:
                then()
            return
        self.tracker.unwatch(region.labels)
        if region.history is not None:
            region.history.detach()
        region.labels.mode = "pan_zoom"
        commit = region.commit()
        if commit is not None and session.history is not None:
            session.history.push(commit)
        self.changed.emit()
        if commit is None:
            self._close(region)
            if then is not None:
                then()
            return
        self.say("applying your edits…")
        self._write(session, lambda: replay(session.store, commit, undone=False), lambda: self._applied(region, then))

    def _applied(self, region: EditRegion, then) -> None:
        self._close(region)
        self.say("edits applied (Ctrl+Z on the labels layer undoes them)")
        if then is not None:
            then()

    def _close(self, region: EditRegion) -> None:
        session = region.session
        if region.labels in self.viewer.layers:
            region.labels.visible = False
        if session.labels is not None and self.region_of(session) is None:
            session.labels.visible = True

    def on_restored(self, session: Session, entry, undone: bool) -> None:
        """Undo or redo of an applied region: its pixels go back into the store."""
        if isinstance(entry, RegionCommit) and session.store is not None:
            self._write(session, lambda: replay(session.store, entry, undone))

    def layer_removed(self, layer) -> None:
        """The user deleted an edit layer: its unapplied changes are dropped."""
        for key, region in list(self.open.items()):
            if region.labels is layer:
                self.tracker.unwatch(layer)
                del self.open[key]
                if region.session.labels is not None:
                    region.session.labels.visible = True
        for key, lay in list(self._layers.items()):
            if lay is layer:
                del self._layers[key]
        self.changed.emit()

    def apply_all_now(self) -> None:
        """The widget closes: apply every open region at once (no edit is lost)."""
        for region in list(self.open.values()):
            self.open.pop(id(region.session))
            self.tracker.unwatch(region.labels)
            commit = region.commit()
            if commit is not None and region.session.store is not None:
                replay(region.session.store, commit, undone=False)
                if region.session.history is not None:
                    region.session.history.push(commit)
            self._close(region)

    def after_writes(self, then: Callable[[], None]) -> None:
        """Call ``then`` once the store writes asked for so far are done."""
        self._write(None, lambda: None, then)

    # ------------------------------------------------------------------ store writes, in order
    def _write(self, session: Session | None, fn: Callable[[], None], then: Callable[[], None] | None = None) -> None:
        self._queue.append((session, fn, then))
        self._pump()

    def _pump(self) -> None:
        if self._busy or not self._queue:
            return
        self._busy = True
        session, fn, then = self._queue.popleft()
        self.workers.start(fn, returned=lambda _: self._done(session, then),
                           errored=lambda exc: self._failed(exc))  # fmt: skip

    def _done(self, session: Session, then) -> None:
        self._busy = False
        if session is not None and session.labels is not None and session.labels in self.viewer.layers:
            session.labels.refresh()
        if then is not None:
            then()
        self._pump()

    def _failed(self, exc: BaseException) -> None:
        self._busy = False
        self.say(f"writing into the store failed: {exc}")
        self._pump()


def plane_in_view(session: Session, viewer) -> tuple:
    """The plane of ``session``'s result the viewer shows."""
    if not session.geometry.plane_shape:
        return ()
    coords = list(np.asarray(session.labels.world_to_data(viewer.dims.point), float))
    return tuple(int(np.clip(round(c), 0, n - 1)) for c, n in zip(coords, session.geometry.plane_shape))
