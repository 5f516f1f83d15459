"""Edit regions of large results (see :mod:`.._napari.region`): open the area in view as an
editable layer (a fresh one each time: napari's undo of a layer never reaches an older region),
apply its changes into the store, and replay applied changes on undo / redo. Store writes go
through :class:`~.store_writes.StoreWrites` (a worker thread, one at a time, in order); a region
opens only once the writes asked for before it have landed, and each write goes into the store
generation that was current when it was asked for."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from qtpy.QtCore import QEventLoop, QObject, Signal

from .._napari.history import RegionCommit
from .._napari.region import EditRegion, capped, replay, visible_box
from .._napari.session import Session
from .dialogs import notify
from .edit_tracker import EditTracker
from .store_writes import StoreWrites, Write
from .workers import Workers

Done = Callable[..., None]  # done(error=None)


def waited(start: Callable[[Done], None]) -> BaseException | None:
    """``start(done)``, then the event loop turning until ``done(error=None)`` is called (at once
    if it already was); returns the error."""
    outcome: list = []
    loop = QEventLoop()

    def done(error: BaseException | None = None) -> None:
        outcome.append(error)
        loop.quit()

    start(done)
    if not outcome:
        loop.exec()
    return outcome[0]


class RegionEditor(QObject):
    """One open edit region per large session; ``changed`` when one opens or closes, and when the
    store writes start or stop."""

    changed = Signal()

    def __init__(self, viewer, workers: Workers, tracker: EditTracker, say: Callable[[str], None],
                 busy: Callable[[], bool] = lambda: False) -> None:  # fmt: skip
        super().__init__()
        self.viewer, self.tracker, self.say, self.busy = viewer, tracker, say, busy
        self.open: dict[int, EditRegion] = {}  # id(session) -> its open region
        self._layers: dict[int, object] = {}  # id(session) -> its newest edit layer
        self.writes = StoreWrites(workers, say, self.changed.emit)

    def region_of(self, session: Session | None) -> EditRegion | None:
        return None if session is None else self.open.get(id(session))

    @property
    def writing(self) -> bool:
        return self.writes.pending

    # ------------------------------------------------------------------ opening
    def _target(self, session: Session | None) -> tuple[tuple, tuple]:
        """The plane and box a region would open on now; ValueError when none can."""
        if session is None or self.busy():
            raise ValueError("Run a segmentation first, and wait until it is done." if session is None else
                             "napari-sclip is busy: wait until the job is done.")  # fmt: skip
        if session.store is None or not session.labels_alive(self.viewer.layers):
            raise ValueError("Edit regions are for large results: run a segmentation of a large image first.")
        return plane_in_view(session, self.viewer), capped(visible_box(self.viewer, session.labels, session.geometry.shape[-2:]))

    def open_current(self, session: Session | None):
        """The widget's ``edit_region()``: the area in view on the plane on screen, once the open
        region is applied and every pending write has landed; returns the edit layer."""
        target = self._target(session)
        if self.region_of(session) is not None:
            self.apply(session, wait=True)
        if self.writing:
            waited(self.after_writes)
        self._target(session)  # still possible after the wait
        return self.open_in_view(session, *target).labels

    def open_clicked(self, session: Session | None) -> None:
        """Edit region in view: opens now, or once the pending writes have landed."""
        try:
            target = self._target(session)
        except ValueError as exc:
            notify("warning", f"napari-sclip: {exc}")
            return
        self._open_when_written(session, target)

    def _open_when_written(self, session: Session, target: tuple) -> None:
        if self.region_of(session) is not None or self.writing:
            self.apply(session, then=lambda: self.after_writes(lambda: self._open_when_written(session, target)))
            return
        try:
            self._target(session)
            self.open_in_view(session, *target)
        except ValueError as exc:
            notify("warning", f"napari-sclip: {exc}")

    def open_in_view(self, session: Session, plane: tuple, box=None) -> EditRegion:
        """Open ``box`` (default: the labels in view, at most EDIT_SIDE a side) of ``session``'s
        labels on ``plane`` as a new edit layer (the previous one is removed); the multiscale
        layer is hidden meanwhile (erasing shows). The caller makes sure no region is open and
        no write is pending."""
        if session.store is None or not session.labels_alive(self.viewer.layers):
            raise ValueError("Edit regions are for large results: run a segmentation of a large image first.")
        if box is None:
            box = capped(visible_box(self.viewer, session.labels, session.geometry.shape[-2:]))
        loaded = session.store.read_region(plane, slice(box[0], box[1]), slice(box[2], box[3]))
        region = EditRegion(session, plane, box, loaded)
        region.start_memory()
        old = self._layers.pop(id(session), None)
        if old is not None and old in self.viewer.layers:
            self.viewer.layers.remove(old)
        from napari.layers import Labels

        layer = region.labels = self._layers[id(session)] = Labels(region.data(), **region.layer_kwargs())
        self.viewer.add_layer(layer)
        self.tracker.watch(region)
        self.open[id(session)] = region
        session.labels.visible = False
        self.viewer.layers.selection.active = layer
        layer.mode = "paint"
        self.say(f"editing rows {box[0]}-{box[1]}, columns {box[2]}-{box[3]}: paint, then Apply edits")
        self.changed.emit()
        return region

    # ------------------------------------------------------------------ applying
    def hold(self, session: Session, again: Callable[[], None], failed: Callable[[BaseException], None]) -> bool:
        """Before a job: the session's open region is applied, and pending writes finish, first
        (then ``again``, or ``failed(error)`` when the region could not be written); False when
        nothing is pending."""
        if self.region_of(session) is not None:
            self.apply(session, then=again, failed=failed)
        elif self.writing:
            self.after_writes(again)
        else:
            return False
        return True

    def apply(self, session: Session | None, then: Callable[[], None] | None = None,
              failed: Callable[[BaseException], None] | None = None, wait: bool = False) -> None:  # fmt: skip
        """Write the open region's changes into the store (one undo step of the labels layer), then
        close it and call ``then``; if the write fails, the region opens again and ``failed(error)``
        is called. ``wait``: return once written (the event loop turning); RuntimeError if it failed."""
        if wait:
            error = waited(lambda done: self.apply(session, then=lambda: (then and then(), done()),
                                                   failed=lambda exc: (failed and failed(exc), done(exc))))  # fmt: skip
            if error is not None:
                raise RuntimeError(f"Your edits could not be written into the result ({error}); the region is open again.")
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
        commit = region.commit() if session.store is not None else None  # no store: the labels layer is gone
        if commit is not None and session.history is not None:
            session.history.push(commit)
        self.changed.emit()
        if commit is None:
            self._close(region)
            if then is not None:
                then()
            return
        self.say("applying your edits…")
        store, generation = session.store, session.store.generation  # the generation of now, not of the write
        self.writes.add(Write(lambda: replay(store, commit, False, generation), then=lambda: self._applied(region, then),
                              failed=lambda exc: self._reopen(region, commit, exc, failed),
                              closing=lambda ok: self._closing(region, ok), refresh=lambda: self._refresh(session)))  # fmt: skip

    def _refresh(self, session: Session) -> None:
        if session.labels is not None and session.labels in self.viewer.layers:
            session.labels.refresh()

    def _applied(self, region: EditRegion, then) -> None:
        self._close(region)
        self.say("edits applied (Ctrl+Z on the labels layer undoes them)")
        if then is not None:
            then()

    def _reopen(self, region: EditRegion, commit: RegionCommit, exc: BaseException, failed) -> None:
        """The region's write failed: its commit is no undo step, and the region is open again
        with the user's strokes (and their undo) as they were."""
        session = region.session
        if session.history is not None:
            session.history.discard(commit)
        if region.labels in self.viewer.layers and session.labels_alive(self.viewer.layers) and self.region_of(session) is None:
            self.open[id(session)] = region
            self.tracker.watch(region)
            region.labels.visible, session.labels.visible = True, False
            self.viewer.layers.selection.active = region.labels
            region.labels.mode = "paint"
        self.say(f"your edits could not be written ({exc}): the region is open again, Apply edits to retry")
        self.changed.emit()
        if failed is not None:
            failed(exc)

    def _close(self, region: EditRegion) -> None:
        session = region.session
        if region.labels in self.viewer.layers:
            region.labels.visible = False
        if session.labels is not None and self.region_of(session) is None:
            session.labels.visible = True

    def _closing(self, region: EditRegion, ok: bool) -> None:
        """The widget closes with this region's write done (``ok``) or failed (its layer stays)."""
        if ok:
            self._close(region)
        elif region.labels in self.viewer.layers:
            region.labels.visible = True
            notify("warning", f"napari-sclip: your edits could not be written; {region.labels.name!r} keeps them.")

    def on_restored(self, session: Session, entry, undone: bool) -> None:
        """Undo or redo of an applied region: its pixels go back into the store (the generation
        current now)."""
        if isinstance(entry, RegionCommit) and session.store is not None:
            store, generation = session.store, session.store.generation
            self.writes.add(Write(lambda: replay(store, entry, undone, generation), refresh=lambda: self._refresh(session)))

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

    def finish_now(self) -> None:
        """The widget closes: the running write is waited for, the queued ones are done, then every
        open region is applied at once (no edit is lost)."""
        self.writes.finish_now()
        for region in list(self.open.values()):
            session = self.open.pop(id(region.session)).session
            self.tracker.unwatch(region.labels)
            commit, ok = region.commit(), True
            if commit is not None and session.store is not None:
                try:
                    replay(session.store, commit, undone=False)
                except Exception:  # noqa: BLE001 - the edit layer keeps the strokes (and says so)
                    ok = False
                if ok and session.history is not None:
                    session.history.push(commit)
            self._closing(region, ok)

    def snapshot(self, session: Session, then: Callable[[tuple], None], failed: Callable[[BaseException], None]) -> None:
        """A pinned copy of ``session``'s labels (:meth:`~.store.ResultStore.snapshot`) made in
        turn with the store writes, after those asked for so far: ``then(snapshot)``."""
        store, out = session.store, []
        self.writes.add(Write(lambda: out.append(store.snapshot()), then=lambda: then(out[0]), failed=failed,
                              closing=lambda ok: out and store.release(out[0][0])))  # fmt: skip

    def after_writes(self, then: Callable[[], None]) -> None:
        """Call ``then`` once the store writes asked for so far are done."""
        self.writes.add(Write(lambda: None, then=then))


def plane_in_view(session: Session, viewer) -> tuple:
    """The plane of ``session``'s result the viewer shows."""
    if not session.geometry.plane_shape:
        return ()
    coords = list(np.asarray(session.labels.world_to_data(viewer.dims.point), float))
    return tuple(int(np.clip(round(c), 0, n - 1)) for c, n in zip(coords, session.geometry.plane_shape))
