"""What the Results section does with the selected image's result: show a class's score map,
forget the user's edits, export (through the one writer; a large result's from a snapshot)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .._napari import layers as result_layers
from .._napari.files import export, export_steps
from .._napari.session import Session
from ..steps import drain
from . import dialogs
from .regions import waited


class ResultActions:
    """Acts on ``current()`` (the selected image's session); ``say`` and ``notify`` report."""

    def __init__(self, viewer, current: Callable[[], Session | None], say: Callable[[str], None],
                 notify: Callable[[str, str], None], workers=None, regions=None,
                 busy: Callable[[], bool] = lambda: False) -> None:  # fmt: skip
        self.viewer, self.current, self.say, self.notify = viewer, current, say, notify
        self.workers, self.regions, self.busy = workers, regions, busy

    def _alive(self) -> Session | None:
        session = self.current()
        return session if session is not None and session.labels_alive(self.viewer.layers) else None

    def show_scores(self, name: str) -> None:
        """The score map of class ``name``, visible, just above the labels (readable over them);
        the layer is made the first time a map is asked for."""
        session = self.current()
        if session is None or not session.cache:
            return
        if session.scores is None or session.scores not in self.viewer.layers:
            session.scores = result_layers.make_scores(session)
            self.viewer.add_layer(session.scores)
        result_layers.show_scores(session.scores, session, name)
        session.scores.visible = True
        layers = self.viewer.layers
        if session.labels in layers and layers.index(session.scores) < layers.index(session.labels):
            layers.move(layers.index(session.scores), layers.index(session.labels) + 1)

    def paint_with(self, label: int) -> None:
        """A legend row was double-clicked: paint with that class and show its score map."""
        session = self._alive()
        if session is not None:
            session.labels.selected_label = label
            self.show_scores(session.memory.names[label - 1])

    def forget_edits(self) -> None:
        """Forget the user's edits of the current result; not while a job or a store write runs
        (they read the edit flags)."""
        session = self._alive()
        if session is None:
            return
        if self.busy():
            self.say("edits not forgotten: wait until the running job or store write is done")
            return
        session.memory.forget(session.labels.data)
        self.say("edits forgotten: the next update may overwrite them")

    def export(self, path: str | Path, probabilities: bool = False) -> list[Path]:
        """Write the files now. A large result: its open region applied and the pending store
        writes done first, then a snapshot of its labels exported (later edits do not mix in)."""
        session = self._alive()
        if session is None or not session.cache:
            raise ValueError("Nothing to export yet: run a segmentation first.")
        if session.store is None:
            return export(session, path, probabilities)
        self.regions.apply(session, wait=True)
        snap: list = []
        error = waited(lambda done: self.regions.snapshot(session, lambda s: (snap.append(s), done()), done))
        if error is not None:
            raise RuntimeError(f"The result could not be exported: {error}")
        store = session.store
        try:
            return drain(export_steps(session, path, snap[0]))
        finally:
            store.release(snap[0][0])

    def export_dialog(self, parent, probabilities: bool) -> None:
        session = self.current()
        large = session is not None and session.store is not None
        default = f"{session.name}_labels.tif" if session is not None else "labels.tif"
        if large:
            default = f"{session.name}.zarr"
        path = dialogs.save_path(parent, "Export labels", default, "OME-Zarr (*.zarr)" if large else "TIFF (*.tif *.tiff)")
        if not path:
            return
        if large:
            self._export_later(session, path)
            return
        try:
            written = self.export(path, probabilities)
        except (ValueError, OSError) as exc:
            self.notify("error", f"napari-sclip export: {exc}")
            return
        self.notify("info", "napari-sclip wrote " + ", ".join(Path(p).name for p in written))

    def _export_later(self, session: Session, path: str) -> None:
        """A large result's OME-Zarr: the open region applied, then (after the pending writes) a
        snapshot, exported chunk by chunk in a worker thread, progress on the status line."""
        failed = lambda exc: self.notify("error", f"napari-sclip export: {exc}")  # noqa: E731
        start = lambda snap: self._export_in_worker(session, path, snap)  # noqa: E731
        self.regions.apply(session, then=lambda: self.regions.snapshot(session, start, failed), failed=failed)

    def _export_in_worker(self, session: Session, path: str, snap: tuple[int, str]) -> None:
        store = session.store
        try:
            steps = export_steps(session, path, snap)
        except ValueError as exc:
            store.release(snap[0])
            self.notify("error", f"napari-sclip export: {exc}")
            return

        def run():
            try:
                return (yield from steps)
            finally:
                store.release(snap[0])

        self.workers.start(
            run, yielded=lambda p: self.say(f"exporting {Path(path).name}: {p.done} of {p.total}"),
            returned=lambda written: self.notify("info", "napari-sclip wrote " + ", ".join(Path(p).name for p in written)),
            errored=lambda exc: self.notify("error", f"napari-sclip export: {exc}"),
        )  # fmt: skip
