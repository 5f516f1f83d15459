"""The napari dock widget: type a vocabulary, get editable labels and score maps, refine instantly.

The widget gathers settings (``_form``), plans the cheapest path per plane (``_session``), runs the
engine in a ``thread_worker`` generator (``_jobs``), and writes results into layers on the UI
thread (``_results``, ``_layers``). The engine itself never sees napari or Qt.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import QFileDialog, QMessageBox

from . import _layers, _results, _vocab_files
from ._compat import block_triton_if_llvm_loaded
from ._form import SclipForm, window_count
from ._jobs import Progress, Step, StepDone, Timer, call, drive, format_seconds
from ._results import RESULT_TAG
from ._session import Cached, RunSettings, Session
from ._source import Plane, Source, full_resolution
from ._steps import load_model_step, relabel_step, rescore_step, run_step, warm_up
from .errors import Cancelled, SclipError

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from .model import SclipModel

STEP_WORDS = {"run": "segmented", "rescore": "re-scored from cache", "relabel": "relabelled"}


class SclipWidget(SclipForm):
    """Open-vocabulary segmentation of the selected image layer with SCLIP.

    ``model``: an already-built :class:`~napari_sclip.SclipModel` to use instead of loading one
    from the name / pretrained / checkpoint fields (scripts, tests).
    """

    #: A job ended: "done", "cancelled" or "error".
    job_finished = Signal(str)
    #: The legend was refreshed.
    legend_updated = Signal()

    def __init__(self, napari_viewer: napari.viewer.Viewer, model: SclipModel | None = None) -> None:
        super().__init__()
        block_triton_if_llvm_loaded()  # before torch loads: see _compat
        self.viewer = napari_viewer
        self._model: Any = None
        self._model_spec: tuple | None = None
        self._sessions: dict[int, Session] = {}
        self._hidden: set[str] = set()
        self._worker = None
        self._job: dict[str, Any] = {}
        self._refine_pending = False
        self._keep: list = []  # objects alive during a chunked write
        self._legend_worker = None
        self._legend_generation = 0
        self.last_timings: dict[str, float] = {}
        self._connect_ui()
        self._connect_viewer()
        self._refresh_images()
        if model is not None:
            self.set_model(model)
        self._update_hint()
        self._set_busy(False)
        QTimer.singleShot(0, _results.warm_up_layers)

    def _connect_ui(self) -> None:
        self.image_combo.currentIndexChanged.connect(self._on_image_changed)
        self.rgb_mode.currentIndexChanged.connect(self._update_channel_ui)
        self.channel_axis.valueChanged.connect(self._update_channel_ui)
        self.preset_combo.activated.connect(self._on_preset)
        self.load_vocab_button.clicked.connect(self._load_vocab_dialog)
        self.save_vocab_button.clicked.connect(self._save_vocab_dialog)
        self.checkpoint_button.clicked.connect(self._checkpoint_dialog)
        for w in (self.short_side, self.window_spin, self.stride_spin):
            w.valueChanged.connect(self._update_hint)
        self.planes_combo.currentIndexChanged.connect(self._update_hint)
        self._refine_timer = QTimer(self, singleShot=True, interval=60)
        self._refine_timer.timeout.connect(self.refine)
        self.threshold_slider.valueChanged.connect(self._on_threshold)
        self.area_spin.valueChanged.connect(lambda _v: self._refine_timer.start())
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.legend.visibility_changed.connect(self.set_class_visible)
        self.legend.activated.connect(self._on_legend_activated)
        self.forget_button.clicked.connect(self.forget_edits)
        self.probe_check.toggled.connect(self._set_probe)
        self.export_button.clicked.connect(self._export_dialog)
        self._legend_timer = QTimer(self, singleShot=True, interval=300)
        self._legend_timer.timeout.connect(self.update_legend)

    # ------------------------------------------------------------ viewer glue
    def _connect_viewer(self) -> None:
        events = self.viewer.layers.events
        hooks = [
            (events.inserted, self._on_layers_changed),
            (events.removed, self._on_layers_changed),
            (events.reordered, self._refresh_images),
            (self.viewer.layers.selection.events.active, self._on_active_layer),
        ]
        for emitter, callback in hooks:
            emitter.connect(callback)
        jobs = self._running_workers
        self.destroyed.connect(lambda *_: _on_widget_destroyed(hooks, jobs))

    @property
    def _running_workers(self) -> list:
        """Workers to stop if the widget is closed (a live list)."""
        if not hasattr(self, "_workers_list"):
            self._workers_list: list = []
        return self._workers_list

    def _image_layers(self) -> list:
        from napari.layers import Image

        return [
            lay for lay in self.viewer.layers
            if isinstance(lay, Image) and RESULT_TAG not in lay.metadata  # not our own outputs
        ]  # fmt: skip

    def _refresh_images(self, *_: Any) -> None:
        """Re-fill the image pickers, keeping the current choice when it still exists."""
        current = self.image_combo.currentData()
        images = self._image_layers()
        active = next((lay for lay in images if lay == self.viewer.layers.selection.active), None)
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        for lay in images:
            self.image_combo.addItem(lay.name, lay)
            lay.events.name.connect(self._refresh_images)  # napari ignores duplicate connections
        choice = current if current in images else (active if active in images else None)
        if choice is None and images:
            choice = images[-1]
        if choice is not None:
            self.image_combo.setCurrentIndex(images.index(choice))
        self.image_combo.blockSignals(False)
        for box in self.layer_picks:
            keep = box.currentData()
            box.blockSignals(True)
            box.clear()
            box.addItem("—", None)
            for lay in images:
                if not lay.rgb:
                    box.addItem(lay.name, lay)
            box.setCurrentIndex(max(box.findData(keep) if keep is not None else 0, 0))
            box.blockSignals(False)
        if choice is not current:
            self._on_image_changed()
        else:
            self._update_channel_ui()

    def _on_layers_changed(self, event: Any = None) -> None:
        if getattr(event, "type", "") == "removed":
            gone = event.value
            for key, session in list(self._sessions.items()):
                if session.source.layer is gone:
                    del self._sessions[key]
                elif session.labels_layer is gone:
                    session.labels_layer, session.memory = None, None
                elif session.scores_layer is gone:
                    session.scores_layer, session.scores_classes = None, ()
        self._refresh_images()

    def _on_active_layer(self, event: Any = None) -> None:
        from napari.layers import Image

        active = self.viewer.layers.selection.active  # may be a proxy: match by equality
        if isinstance(active, Image) and RESULT_TAG not in active.metadata and not self.busy:
            images = self._image_layers()
            idx = next((i for i, lay in enumerate(images) if lay == active), -1)
            if idx >= 0 and idx != self.image_combo.currentIndex():
                self.image_combo.setCurrentIndex(idx)

    def _on_image_changed(self, *_: Any) -> None:
        layer = self.image_combo.currentData()
        if layer is not None:
            layer.events.data.connect(self._on_image_data)
        self._update_channel_ui()
        self.update_legend()

    def _on_image_data(self, event: Any = None) -> None:
        """The image's data changed: its cached features no longer apply."""
        for session in self._sessions.values():
            if session.source.layer is getattr(event, "source", None):
                session.cache.clear()

    def _update_channel_ui(self, *_: Any) -> None:
        layer = self.image_combo.currentData()
        mode = self.rgb_mode.currentData()
        ndim = len(full_resolution(layer).shape) if layer is not None else 2
        is_rgb = bool(layer is not None and layer.rgb)
        self.channel_axis.setEnabled(mode == "axis" and not is_rgb)
        self.channel_axis.setMaximum(max(0, ndim - 3))
        n = 0
        if layer is not None and mode == "axis" and not is_rgb and ndim >= 3:
            n = int(full_resolution(layer).shape[min(self.channel_axis.value(), ndim - 3)])
        for i, box in enumerate(self.channel_picks):
            keep = box.currentData()
            box.blockSignals(True)
            box.clear()
            box.addItem("—", None)
            for c in range(n):
                box.addItem(str(c), c)
            wanted = keep if keep is not None and keep < n else (i if i < n else None)
            box.setCurrentIndex(max(box.findData(wanted), 0))
            box.blockSignals(False)
            box.setVisible(mode == "axis")
            self.layer_picks[i].setVisible(mode == "layers")
        for field, show in ((self.channel_axis, mode == "axis"), (self._picks_row, mode != "as_is")):
            field.setVisible(show)  # only the rows that apply
            self._image_form.labelForField(field).setVisible(show)
        try:
            stack = bool(self.source().plane_shape)
        except (ValueError, AttributeError):
            stack = False
        self.planes_combo.setEnabled(stack)
        self._update_hint()

    # ---------------------------------------------------------------- public
    @property
    def busy(self) -> bool:
        """Whether a job (run, re-score, relabel) is running or its results are being written."""
        return self._worker is not None

    @property
    def session(self) -> Session | None:
        """State of the selected image (result layers, cache, edits), if it was segmented."""
        try:
            return self._sessions.get(id(self.source().layer))
        except (ValueError, AttributeError):
            return None

    @property
    def labels_layer(self):
        """The labels layer of the selected image, if any."""
        return None if self.session is None else self.session.labels_layer

    @property
    def scores_layer(self):
        """The score-map layer of the selected image, if any."""
        return None if self.session is None else self.session.scores_layer

    @property
    def model(self):
        """The loaded (or given) model, or None."""
        return self._model

    def set_model(self, model: SclipModel) -> None:
        """Use an already-built model (kept until the model fields change)."""
        self._model = model
        self._model_spec = self.model_spec()
        self.model_label.setText(f"given model: {model.name} ({model.device}, {model.precision})")
        self._update_hint()

    def set_image(self, layer) -> None:
        """Select the image layer to segment."""
        idx = self.image_combo.findData(layer)
        if idx < 0:
            raise ValueError(f"{getattr(layer, 'name', layer)!r} is not an image layer of this viewer.")
        self.image_combo.setCurrentIndex(idx)

    def set_vocabulary(self, classes: str, background: str | None = None) -> None:
        """Fill the vocabulary box (and the background words when given)."""
        self.classes_edit.setPlainText(classes)
        if background is not None:
            self.background_edit.setText(background)

    def apply_preset(self, name: str) -> None:
        """Fill the vocabulary from a bundled preset (``_vocab_files.preset_names()``)."""
        self.set_vocabulary(*_vocab_files.load_preset(name))

    def load_vocabulary(self, path: str | Path) -> None:
        """Read a vocabulary file into the widget."""
        self.set_vocabulary(*_vocab_files.read_vocabulary_file(path))

    def save_vocabulary(self, path: str | Path) -> Path:
        """Write the widget's vocabulary to a file."""
        return _vocab_files.write_vocabulary_file(path, self.classes_edit.toPlainText(), self.background_edit.text())

    def source(self) -> Source:
        """What will be segmented, from the image and channel fields."""
        layer = self.image_combo.currentData()
        if layer is None:
            raise ValueError("Open an image first: there is no image layer to segment.")
        mode = self.rgb_mode.currentData()
        if mode == "axis":
            picks = tuple(b.currentData() for b in self.channel_picks)
            return Source(layer, channel_axis=self.channel_axis.value(), channels=picks)
        if mode == "layers":
            return Source(layer, rgb_layers=tuple(b.currentData() for b in self.layer_picks))
        return Source(layer)

    def set_threshold(self, value: float) -> None:
        """Set the probability threshold (0..1); relabels from the cache shortly after."""
        self.threshold_slider.setValue(round(value * 100))

    def set_class_visible(self, name: str, visible: bool) -> None:
        """Show or hide a class: a hidden class's pixels fall to the next best class."""
        (self._hidden.discard if visible else self._hidden.add)(name)
        self._refine_timer.start()

    def forget_edits(self) -> None:
        """Forget the remembered edits of the selected image's labels layer."""
        s = self.session
        if s is not None and s.labels_alive(self.viewer.layers):
            s.memory.written[...] = np.asarray(s.labels_layer.data)
            s.memory.forget()
            self.status_label.setText("edits forgotten: the next update may overwrite them")

    # ------------------------------------------------------------------ run
    def _model_ready(self) -> bool:
        return self._model is not None and self._model_spec == self.model_spec()

    def _model_identity(self) -> str | None:
        return f"{self._model.identity}|{self._model.dtype}" if self._model_ready() else None

    def _planes(self, source: Source) -> list[Plane]:
        if not source.plane_shape:
            return [()]
        if self.planes_combo.currentData() == "all":
            return source.planes()
        return [source.current_plane(self.viewer.dims.point)]

    def run(self):
        """Segment the selected image, taking the cheapest correct path per plane (relabel <
        re-score from cached features < full run). Returns the worker, or None."""
        if self.busy:
            self._notify("warning", "napari-sclip is busy; cancel the running job first.")
            return None
        try:
            source = self.source()
            settings = self.settings()
        except ValueError as exc:
            self._notify("error", f"napari-sclip: {exc}")
            return None
        session = self._sessions.setdefault(id(source.layer), Session(source))
        session.source = source  # another channel choice changes the features key: a full run
        plan = session.plan(self._planes(source), settings, self._model_identity())
        policy = "keep"
        if "run" in plan.values() and session.has_edits(self.viewer.layers):
            policy = self.edit_policy.currentData()
            if policy == "ask":
                policy = self._ask_edit_policy()
                if policy is None:
                    return None
        return self._start(self._steps(session, settings, plan), session, "run", settings, policy)

    def _ask_edit_policy(self) -> str | None:
        box = QMessageBox(self)
        box.setWindowTitle("napari-sclip")
        box.setText("You painted or erased pixels in the labels layer.\nWhat should this run do with them?")
        keep = box.addButton("Keep my edits", QMessageBox.ButtonRole.AcceptRole)
        new = box.addButton("New layer", QMessageBox.ButtonRole.ActionRole)
        over = box.addButton("Overwrite", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return {keep: "keep", new: "new", over: "overwrite"}.get(box.clickedButton())

    def _steps(self, session: Session, settings: RunSettings, plan: dict[Plane, str]) -> list[Step]:
        steps = [Step("prepare", "starting", lambda: call(warm_up), weight=0.0)]
        ctx: dict[str, Any] = {"model": self._model if self._model_ready() else None}
        if ctx["model"] is None and "run" in plan.values():
            spec = self.model_spec()
            steps.append(Step("load", f"loading {spec[0] or Path(spec[2]).name}", lambda: call(lambda: load_model_step(spec, ctx)), weight=0.3))
        source, n = session.source, len(plan)
        for i, (plane, action) in enumerate(plan.items()):
            where = f"plane {i + 1}/{n}" if plane else "image"
            if action == "run":
                start = run_step(source, plane, settings, ctx, self._suppressed_for)
                steps.append(Step("run", f"segmenting {where}", start, plane, weight=1.0))
            elif action == "rescore":
                start = rescore_step(session.cache[plane].seg, settings, self._suppressed_for)
                steps.append(Step("rescore", f"re-scoring {where} from cached features", start, plane, weight=0.3))
            else:
                start = relabel_step(session.cache[plane].seg, settings, self._suppressed_for)
                steps.append(Step("relabel", f"relabelling {where}", start, plane, weight=0.02))
        return steps

    def _suppressed_for(self, class_names) -> list[int]:
        """Engine labels (1..K) of the hidden classes in a result's vocabulary."""
        return [k for k, name in enumerate(class_names, start=1) if name in self._hidden]

    def _start(self, steps: list[Step], session: Session, kind: str, settings: RunSettings, policy: str = "keep"):
        from napari.qt.threading import thread_worker

        self._job = {
            "session": session, "kind": kind, "policy": policy, "settings": settings,
            "model_identity": self._model_identity(), "spec": self.model_spec(), "pending": {},
            "error": None, "aborted": False, "timer": Timer(),
            "counts": {k: sum(s.kind == k for s in steps) for k in STEP_WORDS},
        }  # fmt: skip
        worker = thread_worker(drive, start_thread=False, ignore_errors=True)(steps)
        worker.yielded.connect(self._on_event)
        worker.errored.connect(lambda exc: self._job.update(error=exc))
        worker.aborted.connect(lambda: self._job.update(aborted=True))
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._running_workers[:] = [worker]
        self._set_busy(True)
        self.progress_bar.setValue(0)
        self.status_label.setText(steps[-1].label + "…")
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the running job at its next window batch; the layers stay as they were."""
        if self._worker is not None and not self._job.get("writing"):
            self.status_label.setText("cancelling…")
            self._worker.quit()

    def _on_event(self, event: Progress | StepDone) -> None:
        job = self._job
        if isinstance(event, Progress):
            self.progress_bar.setValue(int(1000 * event.fraction))
            detail = f" {event.done}/{event.total}" if event.total else ""
            left = format_seconds(job["timer"].left(event.fraction))
            self.status_label.setText(f"{event.label}{detail}" + (f" · {left}" if left else ""))
        elif event.step.kind == "load":
            model = event.result
            self._model, self._model_spec = model, job["spec"]
            self.model_label.setText(f"{model.name} on {model.device} ({model.precision})")
            job["model_identity"] = f"{model.identity}|{model.dtype}"
        elif event.step.kind in STEP_WORDS:
            plane, session, settings = event.step.plane, job["session"], job["settings"]
            key = session.features_key(plane, settings, job["model_identity"])
            job["pending"][plane] = Cached(event.result, key, settings.vocabulary_key())

    def _on_finished(self) -> None:
        job = self._job
        if job["aborted"] or isinstance(job["error"], Cancelled):
            self.status_label.setText("cancelled: nothing was changed")
            self._notify("info", "napari-sclip: cancelled; the layers were left as they were.")
            self._end_job("cancelled")
        elif job["error"] is not None:
            self._fail(job["error"])
        elif job["pending"]:
            job["writing"] = True
            job["write_start"] = time.perf_counter()
            self.status_label.setText("updating layers…")
            self._apply(job["session"], job["pending"], job["policy"], scores=job["kind"] == "run")
        else:
            self._end_job("done")

    def _fail(self, exc: BaseException) -> None:
        text = str(exc) if isinstance(exc, SclipError | ValueError) else f"{type(exc).__name__}: {exc}"
        self.status_label.setText("error: " + text)
        self._notify("error", f"napari-sclip: {text}")
        self._end_job("error")

    def _end_job(self, outcome: str) -> None:
        job = self._job
        if outcome == "done" and "write_start" in job:
            total = time.perf_counter() - job["timer"].start
            layers = time.perf_counter() - job["write_start"]
            self.last_timings = {  # perf_counter stamps, for benchmarks
                "start": job["timer"].start, "write_start": job["write_start"], "end": time.perf_counter(),
            }  # fmt: skip
            done = ", ".join(f"{n} {STEP_WORDS[k]}" for k, n in job["counts"].items() if n)
            self.status_label.setText(f"done in {total:.1f} s: {done}")
            self.status_label.setToolTip(f"layers updated in {1000 * layers:.0f} ms")
        self.progress_bar.setValue(1000 if outcome == "done" else 0)
        self._worker = None
        self._keep.clear()
        self._set_busy(False)
        if outcome == "done":
            self.update_legend()
        self.job_finished.emit(outcome)
        if self._refine_pending:
            self._refine_pending = False
            self.refine()

    # ----------------------------------------------------------- refinement
    def _on_threshold(self, value: int) -> None:
        self.threshold_label.setText(f"{value / 100:.2f}")
        self._refine_timer.start()

    def refine(self):
        """Relabel every cached plane of the selected image with the current threshold, area
        rule and hidden classes (no model run). Returns the worker, or None if nothing to do."""
        self._refine_timer.stop()
        if self.busy:
            self._refine_pending = True
            return None
        session = self.session
        if session is None or not session.cache or not session.labels_alive(self.viewer.layers):
            return None
        settings = self.settings()
        steps = [
            Step("relabel", "relabelling", relabel_step(c.seg, settings, self._suppressed_for), plane)
            for plane, c in session.cache.items()
        ]
        return self._start(steps, session, "refine", settings)

    # -------------------------------------------------------- layer writing
    def _apply(self, session: Session, results: dict[Plane, Cached], policy: str, scores: bool) -> None:
        """Write finished results into the layers (UI thread), over a few event-loop turns."""
        for plane, c in results.items():
            old = session.cache.get(plane)
            if self._job["kind"] == "refine" and old is not None:  # a relabel keeps its keys
                c.features_key, c.vocabulary_key = old.features_key, old.vocabulary_key
        session.cache.update(results)
        if policy == "new" or not session.labels_alive(self.viewer.layers):
            session.labels_layer, session.memory = None, _layers.EditMemory(session.source.shape)
        elif policy == "overwrite":
            session.memory.written[...] = np.asarray(session.labels_layer.data)
            session.memory.forget()
        memory = session.memory
        planes = {p: memory.lut(c.seg.class_names)[c.seg.labels] for p, c in results.items()}
        turns = [_results.scores_turn(self.viewer, session, results)] if scores else []
        turns.append(_results.write_labels_turn(self.viewer, session, planes, self._keep, self._fail))
        turns.append(_results.sync(lambda: self._watch_labels(session)))
        _results.run_in_turns(turns, lambda: self._end_job("done"), self._fail)

    def _watch_labels(self, session: Session) -> None:
        layer = session.labels_layer
        if layer is not None:
            layer.events.paint.connect(self._on_paint)
            if self._track_stroke not in layer.mouse_drag_callbacks:
                layer.mouse_drag_callbacks.append(self._track_stroke)

    def _track_stroke(self, layer, event):
        """Follow a paint / erase drag on our labels layer, and claim the brush's whole footprint
        as the user's (napari reports only the pixels whose value the stroke changed)."""
        if layer.mode not in ("paint", "erase") or event.type != "mouse_press":
            return
        value = 0 if layer.mode == "erase" else int(layer.selected_label)
        coords = [np.asarray(layer.world_to_data(event.position), float)]
        yield
        while event.type == "mouse_move":
            coords.append(np.asarray(layer.world_to_data(event.position), float))
            yield
        session = next((s for s in self._sessions.values() if s.labels_layer is layer), None)
        memory = None if session is None else session.memory
        if memory is None or tuple(layer.data.shape) != memory.written.shape:
            return
        shape = layer.data.shape
        plane = tuple(int(np.clip(round(c), 0, n - 1)) for c, n in zip(coords[0][:-2], shape[:-2]))
        footprint = _layers.stroke_footprint([c[-2:] for c in coords], layer.brush_size / 2, shape[-2:])
        memory.claim(layer.data, plane, footprint, value)

    def _on_paint(self, event: Any = None) -> None:
        """A user stroke (or fill, erase...): remember it, refresh the legend soon."""
        layer = getattr(event, "source", None)
        for session in self._sessions.values():
            memory = session.memory
            if session.labels_layer is layer and memory is not None and not memory.writing:
                if tuple(layer.data.shape) == memory.written.shape:
                    memory.record_stroke(layer.data, layer.brush_size)  # a dab spans one diameter
        self._legend_timer.start()

    def update_legend(self, wait: bool = False) -> None:
        """Refresh the legend (area, mean confidence) from the labels layer, user edits
        included. The counting runs in a worker thread unless ``wait``."""
        from napari.qt.threading import thread_worker

        session = self.session
        if session is None or not session.labels_alive(self.viewer.layers) or not session.cache:
            self.legend.set_rows([])
            self.legend_updated.emit()
            return
        inputs = _results.legend_inputs(session)
        names, hidden = list(session.memory.names), set(self._hidden)
        self._legend_generation += 1
        generation = self._legend_generation

        def show(rows) -> None:
            try:
                if generation == self._legend_generation:
                    self.legend.set_rows(rows)
                    self.legend_updated.emit()
            except RuntimeError:  # the widget was closed meanwhile
                pass

        if wait:
            show(_results.legend_rows(names, inputs, hidden))
            return
        worker = thread_worker(_results.legend_rows, start_thread=False, ignore_errors=True)(names, inputs, hidden)
        worker.returned.connect(show)
        self._legend_worker = worker
        worker.start()

    def _on_legend_activated(self, label: int) -> None:
        """Paint with this class, and show its score map."""
        s = self.session
        if s is None or s.labels_layer is None:
            return
        s.labels_layer.selected_label = label
        name = s.memory.names[label - 1]
        if s.scores_layer is not None and name in s.scores_classes:
            s.scores_layer.visible = True
            step = list(self.viewer.dims.current_step)
            step[self.viewer.dims.ndim - s.scores_layer.ndim] = s.scores_classes.index(name)
            self.viewer.dims.current_step = tuple(step)

    # ---------------------------------------------------------------- export
    def export(self, path: str | Path, probabilities: bool = False) -> list[str]:
        """Write the labels TIFF, the class table CSV and (optionally) the probabilities TIFF."""
        from ._export import export_result

        s = self.session
        if s is None or not s.labels_alive(self.viewer.layers):
            raise ValueError("Nothing to export yet: run a segmentation first.")
        data = np.asarray(s.labels_layer.data)
        n = len(s.memory.names) + 1
        sums = np.zeros(n)
        for labels, probs, lut, _names in _results.legend_inputs(s):
            _cnt, sm = _layers.class_statistics(labels, probs, lut)
            sums[: min(n, len(sm))] += sm[:n]
        probs = np.asarray(s.scores_layer.data) if probabilities and s.scores_layer is not None else None
        return export_result(
            path, data, s.memory.names, probabilities=probs, probability_sums=sums,
            class_axis_names=list(s.scores_classes),
        )  # fmt: skip

    # ---------------------------------------------------------------- probe
    def _set_probe(self, on: bool) -> None:
        callbacks = self.viewer.mouse_drag_callbacks
        if on and self._probe_click not in callbacks:
            callbacks.append(self._probe_click)
        elif not on and self._probe_click in callbacks:
            callbacks.remove(self._probe_click)

    def _probe_click(self, viewer, event) -> None:
        if event.type != "mouse_press":
            return
        try:
            source = self.source()
        except ValueError:
            return
        coords = list(np.asarray(source.layer.world_to_data(event.position), dtype=float))
        for axis in source.dropped_axes():
            del coords[axis]
        self.probe_attention(coords[-2], coords[-1], tuple(int(round(c)) for c in coords[:-2]))

    def probe_attention(self, y: float, x: float, plane: Plane | None = None):
        """Show the last-block attention of the patch at image pixel (y, x): SCLIP next to
        vanilla CLIP (SCLIP Fig. 4). Returns the worker, or None without a cached result."""
        from napari.qt.threading import thread_worker

        session = self.session
        cached = None if session is None else session.cache.get(tuple(plane or ()))
        if cached is None:
            self._notify("info", "napari-sclip: run a segmentation of this plane first, then click to probe.")
            return None
        seg = cached.seg
        if not (0 <= y < seg.image_shape[0] and 0 <= x < seg.image_shape[1]):
            return None

        def compute():
            return seg.attention_map(y, x, "sclip"), seg.attention_map(y, x, "vanilla")

        worker = thread_worker(compute, start_thread=False, ignore_errors=True)()
        worker.returned.connect(lambda maps: self._show_probe(session, (y, x), maps))
        worker.errored.connect(lambda exc: self._notify("error", f"napari-sclip probe: {exc}"))
        self._probe_worker = worker
        worker.start()
        return worker

    def _show_probe(self, session: Session, point, maps) -> None:
        _results.show_probe(self.viewer, session, point, maps)
        self.status_label.setText(
            f"attention of the patch at (y={point[0]:.0f}, x={point[1]:.0f}): SCLIP (middle) next to vanilla CLIP (right)"
        )

    # ---------------------------------------------------------------- misc UI
    def _set_busy(self, busy: bool) -> None:
        self.run_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.export_button.setEnabled(not busy)

    def _update_hint(self, *_: Any) -> None:
        try:
            source = self.source()
        except (ValueError, AttributeError):
            self.hint_label.setText("")
            return
        window = self.window_spin.value() or (self._model.window if self._model is not None else 224)
        stride = self.stride_spin.value() or max(1, window // 2)
        h, w = source.shape[-2:]
        n = window_count(h, w, self.short_side.value() or None, window, stride)
        planes = len(self._planes(source))
        self.hint_label.setText(f"{n} windows of {window} px" + (f" × {planes} planes" if planes > 1 else ""))

    def _notify(self, level: str, message: str) -> None:
        from napari.utils import notifications

        {"info": notifications.show_info, "warning": notifications.show_warning,
         "error": notifications.show_error}[level](message)  # fmt: skip

    def _on_preset(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        if name:
            self.apply_preset(name)
        self.preset_combo.setCurrentIndex(0)

    def _load_vocab_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load vocabulary", "", "Text (*.txt);;All files (*)")
        if path:
            self.load_vocabulary(path)

    def _save_vocab_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save vocabulary", "vocabulary.txt", "Text (*.txt)")
        if path:
            self.save_vocabulary(path)

    def _checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "CLIP checkpoint", "", "Checkpoints (*.safetensors *.pt *.pth *.bin);;All files (*)"
        )
        if path:
            self.checkpoint.setText(path)

    def _export_dialog(self) -> None:
        s = self.session
        default = f"{s.source.name} labels.tif" if s is not None else "labels.tif"
        path, _ = QFileDialog.getSaveFileName(self, "Export labels", default, "TIFF (*.tif *.tiff)")
        if not path:
            return
        try:
            written = self.export(path, probabilities=self.export_probs.isChecked())
        except (ValueError, OSError) as exc:
            self._notify("error", f"napari-sclip export: {exc}")
            return
        self._notify("info", "napari-sclip wrote " + ", ".join(Path(p).name for p in written))


def _on_widget_destroyed(hooks, workers) -> None:
    """Disconnect from the viewer and stop a running job when the dock widget goes away."""
    for emitter, callback in hooks:
        emitter.disconnect(callback)
    for worker in workers:
        try:
            worker.quit()
        except RuntimeError:
            pass
