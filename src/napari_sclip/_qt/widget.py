"""The napari dock widget: a thin controller that builds the panels (:mod:`.layout`), keeps the
state objects (sessions, model slot, workers) and wires small parts together: :class:`~.runs.Runs`
(jobs), :class:`~.layer_writer.LayerWriter`, :class:`~.edit_tracker.EditTracker` (strokes, undo),
:class:`~.legend_presenter.LegendPresenter`, :class:`~.probe.Probe` and the viewer hooks
(their signals are connected in :mod:`.wiring`).
Its public methods are the documented scripting surface."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import QWidget

from .._napari import layers as result_layers
from .._napari import unwrap
from .._napari.compat import block_triton_if_llvm_loaded
from .._napari.history import PluginUpdate
from .._napari.session import Session, Sessions
from .._napari.steps import ModelSlot, warm_up_layers
from ..vocabulary import load_preset
from . import dialogs, layout, wiring
from .dialogs import notify
from .edit_tracker import EditTracker
from .inputs import Inputs
from .layer_writer import LayerWriter
from .legend_presenter import LegendPresenter
from .probe import Probe
from .regions import RegionEditor
from .result_actions import ResultActions
from .runs import Runs
from .viewer_hooks import ReleasedOnClose, ViewerHooks, release_all
from .workers import Workers

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..model import SclipModel


class SclipWidget(ReleasedOnClose, QWidget):
    """Open-vocabulary segmentation of an image layer with SCLIP. ``model``: an already-built
    :class:`~napari_sclip.SclipModel` to use instead of loading one from the Model fields."""

    #: A job ended: "done", "cancelled" or "error" (once the layers are updated).
    job_finished = Signal(str)
    #: Progress of the running job (a ``JobProgress``).
    progressed = Signal(object)
    #: The legend was refreshed.
    legend_updated = Signal()

    def __init__(self, napari_viewer: napari.viewer.Viewer, model: SclipModel | None = None) -> None:
        super().__init__()
        block_triton_if_llvm_loaded()  # before torch loads: see _napari.compat
        self.viewer = unwrap(napari_viewer)
        self.panels = p = layout.build(self)
        self.sessions, self.slot, self.workers = Sessions(), ModelSlot(), Workers()
        self.inputs = Inputs(self.viewer, p.image, p.vocabulary, p.model, p.scale, p.refine, p.results)
        self.tracker = EditTracker()
        self.writer = LayerWriter(self.viewer, self.tracker.watch)
        self.legend = LegendPresenter(p.results.legend, self.workers, lambda: self.session, self.viewer.layers)
        self.probe = Probe(self.viewer, self.workers, self._current)
        self.runs = Runs(self.viewer, self.sessions, self.slot, self.inputs, self.workers, self.writer, p.run_bar,
                         lambda: self.session, lambda: dialogs.ask_edit_policy(self), notify)  # fmt: skip
        self.regions = RegionEditor(self.viewer, self.workers, self.tracker, p.run_bar.say, lambda: self.busy)
        self.actions = ResultActions(self.viewer, lambda: self.session, p.run_bar.say, notify, self.workers,
                                     self.regions, lambda: self.busy or self.regions.writing)  # fmt: skip
        self.runs.hold = self.regions.hold
        self.tracker.store_busy = lambda: self.regions.writing  # no plugin undo under a store write
        self._refine_timer = QTimer(self, singleShot=True, interval=60)
        wiring.connect(self)
        self.hooks = ViewerHooks(self.viewer, self._on_images, self._on_removed, self._on_active, self._on_data)
        parts = (self.workers, self.writer, self.hooks, self.probe, self.tracker, self.sessions)
        self._on_destroyed = lambda *_: release_all(*parts)  # the viewer closed with the widget in it
        self.destroyed.connect(self._on_destroyed)
        self._on_images()
        self.workers.start(warm_up_layers)  # imports paid now, in a thread, not at the first result
        if model is not None:
            self.set_model(model)
        self._on_inputs()

    # ------------------------------------------------------------------ state
    @property
    def session(self) -> Session | None:
        """The state of the selected image under the chosen colour mapping, if it was segmented."""
        return self.sessions.get(self.panels.image.geometry())

    def _current(self):
        try:
            source = self.panels.image.source()
        except ValueError:
            return None, self.session
        return source, self.sessions.get(source.geometry)

    @property
    def labels_layer(self):
        """The labels layer the widget wrote for the selected image, if any."""
        return None if self.session is None else self.session.labels

    @property
    def scores_layer(self):
        """The score-map layer (one class at a time) of the selected image, if any."""
        return None if self.session is None else self.session.scores

    @property
    def model(self):
        """The loaded (or given) model, or None."""
        return self.slot.model

    @property
    def busy(self) -> bool:
        """Whether a job is running or its results are being written."""
        return self.runs.busy

    @property
    def last_timings(self) -> dict[str, float]:
        """perf_counter stamps of the last job: start, write_start, end (benchmarks)."""
        return self.runs.last_timings

    # ------------------------------------------------------------ scripting
    def set_model(self, model: SclipModel) -> None:
        """Use an already-built model; the Model fields show it until they are changed."""
        self.panels.model.show_given(model)
        self.slot.model, self.slot.choice, self.slot.given = model, self.panels.model.choice(), True
        self._on_inputs()

    def set_image(self, layer, planes: str = "current", colour_from: str = "layer", channels=None, *, rgb=None,
                  region=None) -> None:  # fmt: skip
        """Choose what to segment (the README's widget section says it all). ``colour_from``:
        "layer", "channel_axis" (``channels``: the axis, ``rgb``: the channel indices for R, G, B)
        or "layers" (``channels``: the R, G, B layers); ``planes``: "current" or "all"; ``region``:
        None (whole image), "visible" (the part in view at Run) or a box ``(y0, y1, x0, x1)``."""
        self.panels.image.select(unwrap(layer), planes, colour_from, channels, rgb, region)

    def set_vocabulary(self, classes, background: str = "") -> None:
        """Fill the vocabulary: text in the file format (kept as typed), or a list of class names /
        synonym lists; ``background`` words (comma-separated)."""
        self.panels.vocabulary.set_classes(classes, background)

    def set_threshold(self, value: float) -> None:
        """Set the probability threshold (0..1); relabels from the cache shortly after."""
        self.set_options(threshold=value)

    def set_options(self, **values: Any) -> None:
        """Set run options shown in the form (``short_side=64``, ``attention="vanilla"``...)."""
        self.inputs.set_options(**values)

    def run(self, wait: bool = True) -> str | None:
        """Segment with the cheapest correct path per plane (relabel < re-score < full run). With
        ``wait``, return "done", "cancelled" or "error" once the layers are updated."""
        return self.runs.run_and_wait() if wait else self.runs.run()

    def refine(self) -> None:
        """Relabel the cached planes now with the threshold, area rule and hidden classes."""
        self._refine_timer.stop()
        self.runs.refine()

    def cancel(self) -> None:
        """Stop the running job at its next window batch; the layers stay as they were."""
        self.runs.cancel()

    def set_class_visible(self, name: str, visible: bool) -> None:
        """Show or hide a class of the selected image: its pixels fall to the next best class."""
        session = self.session
        if session is not None:
            (session.hidden.discard if visible else session.hidden.add)(name)
            self._refine_timer.start()

    def show_scores(self, name: str) -> None:
        """Show the score map of class ``name``, above the labels."""
        self.actions.show_scores(name)

    def forget_edits(self) -> None:
        """Forget the remembered edits of the selected image: the next update may overwrite them."""
        self.actions.forget_edits()

    def edit_region(self):
        """Open the part of the selected image's large result in view (the plane on screen, at most
        2048 px a side) as a labels layer to paint in; returns that layer."""
        return self.regions.open_current(self.session)

    def apply_edits(self, wait: bool = True) -> None:
        """Write the open edit region's changes into the large result (``wait``: until written)."""
        self.regions.apply(self.session, wait=wait)

    def update_legend(self, wait: bool = False) -> None:
        """Recount the legend (in a worker thread unless ``wait``)."""
        self.legend.refresh(wait)

    def export(self, path: str | Path, probabilities: bool = False) -> list[Path]:
        """Write the labels TIFF, its class table CSV and optionally the probabilities TIFF."""
        return self.actions.export(path, probabilities)

    def probe_attention(self, y: float, x: float, plane=None):
        """Show the last-block attention of the patch at image pixel (y, x) (SCLIP Fig. 4);
        returns the worker, or None without a cached result there."""
        return self.probe.probe(y, x, plane)

    def apply_preset(self, name: str) -> None:
        self.panels.vocabulary.set_vocabulary(load_preset(name))

    def load_vocabulary(self, path: str | Path) -> None:
        self.panels.vocabulary.load(path)

    def save_vocabulary(self, path: str | Path) -> Path:
        return self.panels.vocabulary.save(path)

    # ---------------------------------------------------------- reactions
    def _on_inputs(self, *_: Any) -> None:
        """Any field changed: hint, model line, result actions and legend follow."""
        p = self.panels
        p.model.show(self.slot)
        p.sections["model"].set_note(p.model.describe(self.slot).split(" (")[0])
        p.hint.setText(self.inputs.hint(self.slot))
        session = self.session
        has = session is not None and bool(session.cache) and session.labels_alive(self.viewer.layers)
        p.results.set_has_result(has, has and session.large, self.regions.region_of(session) is not None,
                                 self.busy or self.regions.writing)  # fmt: skip
        if session is not self.legend.shown:  # another image or mapping: its legend
            self.legend.refresh()

    def _on_finished(self, outcome: str) -> None:
        self._on_inputs()
        self.legend.refresh()
        self.job_finished.emit(outcome)

    def _on_written(self, job) -> None:
        if job.counts.get("run"):
            self.probe.clear(job.session)  # the features changed: old probes no longer apply

    def _on_restored(self, session: Session, entry, undone: bool) -> None:
        """Undo / redo replayed one of the plugin's updates: its decision and score map follow."""
        if isinstance(entry, PluginUpdate) and entry.before is not None and session is self.session:
            if session.decision is not None:
                self.inputs.show_decision(session.decision)
            if session.scores in self.viewer.layers:
                result_layers.show_scores(session.scores, session, None)
        self.legend.refresh()

    def _on_images(self) -> None:
        active = self.viewer.layers.selection.active
        self.panels.image.reset(self.hooks.images(), prefer=active)

    def _on_active(self, layer) -> None:
        if layer is not None and not self.busy and layer in self.hooks.images():
            self.panels.image.image.value = layer

    def _on_removed(self, layer) -> None:
        """A layer left the viewer: stop a job that reads it, drop state that depends on it."""
        job = self.runs.job
        if job is not None and job.request is not None and any(layer is lay for lay in job.request.source.inputs()):
            self.runs.stop(f"{layer.name!r} was removed")
        self.tracker.unwatch(layer)
        self.regions.layer_removed(layer)
        for session in self.sessions.layer_removed(layer):
            self.probe.clear(session)
        self._on_inputs()
        self.legend.refresh()  # a removed labels layer takes its rows with it

    def _on_data(self, layer) -> None:
        """An image's data was replaced: its cached features no longer apply."""
        for session in self.sessions.of_layer(layer):
            session.cache.clear()

    def _on_said(self, text: str, level: str) -> None:
        if level == "status":
            self.panels.run_bar.say(text)
        else:
            notify(level, f"napari-sclip: {text}")

    # ---------------------------------------------------------------- closing
    def release(self) -> None:
        """Stop every worker and unhook from the viewer: nothing of this widget runs afterwards."""
        if self._released:
            return
        self._released = True
        with contextlib.suppress(RuntimeError, TypeError):  # Qt holds this slot: it would keep us alive
            self.destroyed.disconnect(self._on_destroyed)
        with contextlib.suppress(RuntimeError):  # parts of the Qt side may be gone already
            self._refine_timer.stop()
            self.legend.timer.stop()
            self.runs.stop("the widget was closed")
            self.regions.finish_now()  # queued store writes done, open regions applied
        release_all(self.workers, self.writer, self.hooks, self.probe, self.tracker, self.sessions)
