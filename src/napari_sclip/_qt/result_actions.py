"""What the Results section does with the selected image's result: show a class's score map,
forget the user's edits, export (through the one writer)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .._napari import layers as result_layers
from .._napari.files import export
from .._napari.session import Session
from . import dialogs


class ResultActions:
    """Acts on ``current()`` (the selected image's session); ``say`` and ``notify`` report."""

    def __init__(self, viewer, current: Callable[[], Session | None], say: Callable[[str], None],
                 notify: Callable[[str, str], None], workers=None) -> None:  # fmt: skip
        self.viewer, self.current, self.say, self.notify = viewer, current, say, notify
        self.workers = workers

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
        session = self._alive()
        if session is not None:
            session.memory.forget(session.labels.data)
            self.say("edits forgotten: the next update may overwrite them")

    def export(self, path: str | Path, probabilities: bool = False) -> list[Path]:
        session = self._alive()
        if session is None or not session.cache:
            raise ValueError("Nothing to export yet: run a segmentation first.")
        return export(session, path, probabilities)

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
            self._export_in_worker(session, path)
            return
        try:
            written = self.export(path, probabilities)
        except (ValueError, OSError) as exc:
            self.notify("error", f"napari-sclip export: {exc}")
            return
        self.notify("info", "napari-sclip wrote " + ", ".join(Path(p).name for p in written))

    def _export_in_worker(self, session: Session, path: str) -> None:
        """A large result's OME-Zarr, chunk by chunk in a worker thread, progress on the status line."""
        from .._napari.files import export_steps

        def steps():
            return (yield from export_steps(session, path))

        self.workers.start(
            steps, yielded=lambda p: self.say(f"exporting {Path(path).name}: {p.done} of {p.total}"),
            returned=lambda written: self.notify("info", "napari-sclip wrote " + ", ".join(Path(p).name for p in written)),
            errored=lambda exc: self.notify("error", f"napari-sclip export: {exc}"),
        )  # fmt: skip
