"""Run and refine jobs: read the fields, plan the cheapest path per plane (relabel < re-score from
cached features < full run), run the engine steps in a worker thread with progress and cancel, and
hand the results to the :class:`~.layer_writer.LayerWriter`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from qtpy.QtCore import QEventLoop, QObject, QTimer, Signal

from .._napari.jobs import STEP_WORDS, Job, JobProgress, Step, StepDone, call, drive
from .._napari.large import StoreJob
from .._napari.session import Session, Sessions
from .._napari.steps import (
    ModelRef,
    ModelSlot,
    load_step,
    relabel_step,
    rescore_step,
    run_step,
    warm_up,
)
from ..errors import Cancelled, SclipError
from .inputs import Inputs
from .layer_writer import LayerWriter
from .run_bar import RunBar
from .workers import Workers

WEIGHTS = {"run": 1.0, "rescore": 0.3, "relabel": 0.02, "store": 0.5}
#: The worker starts this long after a new labels layer is added: napari's first draw of a layer
#: is slow, and much slower when the worker already keeps the CPU busy.
FIRST_PAINT_MS = 120
VERBS = {"run": "segmenting", "rescore": "re-scoring from cached features", "relabel": "relabelling"}


class Runs(QObject):
    """The widget's jobs. ``started`` when one starts; ``finished(outcome)``: "done", "cancelled" or
    "error", once the layers are updated; ``written(job)`` just before a "done"; ``model_loaded`` after a load."""

    started = Signal()
    finished = Signal(str)
    progressed = Signal(object)
    written = Signal(object)
    model_loaded = Signal()

    def __init__(self, viewer, sessions: Sessions, slot: ModelSlot, inputs: Inputs, workers: Workers,
                 writer: LayerWriter, bar: RunBar, current: Callable[[], Session | None],
                 ask: Callable[[], str | None], notify: Callable[[str, str], None]) -> None:  # fmt: skip
        super().__init__()
        self.viewer, self.sessions, self.slot, self.inputs = viewer, sessions, slot, inputs
        self.workers, self.writer, self.bar = workers, writer, bar
        self.current, self.ask, self.notify = current, ask, notify
        self.job: Job | None = None
        self._worker = None
        self._refine_pending = False
        self.last_timings: dict[str, float] = {}
        #: ``hold(session, again, failed)``: True when something must finish first (then it calls
        #: ``again``, or ``failed(error)``)
        self.hold: Callable[..., bool] = lambda session, again, failed: False

    @property
    def busy(self) -> bool:
        return self.job is not None

    def run(self) -> None:
        """Start a run from the fields (the Run button)."""
        if self.busy:
            self.notify("warning", "napari-sclip is busy; cancel the running job first.")
            return
        try:
            request = self.inputs.request(self.slot)
            choice = self.inputs.model_choice()
        except (ValueError, SclipError) as exc:
            self._fail(exc)
            return
        session = self.sessions.for_source(request.source)
        if self.hold(session, self.run, self._fail):
            return
        plan = session.plan(request)
        policy = "keep"
        if "run" in plan.values() and session.has_edits(self.viewer.layers):
            policy = self.inputs.policy()
            policy = self.ask() if policy == "ask" else policy
            if policy is None:
                self._end("cancelled", "not run: you cancelled, nothing was changed")
                return
        counts = {k: list(plan.values()).count(k) for k in STEP_WORDS}
        job = Job("run", session, request, request.decision(frozenset(session.hidden)), policy, counts)
        job.model_choice = choice
        ref = ModelRef(self.slot.model if self.slot.ready(choice) else None)
        steps = [Step("prepare", "starting", lambda: call(warm_up), weight=0.0)]
        if ref.model is None and "run" in plan.values():
            steps.append(Step("load", f"loading {choice.describe()}", load_step(choice, ref), weight=0.3))
        made = self.writer.prepare(job)  # the labels layer exists before the first result arrives
        steps += self._stored(job, self._plane_steps(job, plan, ref))
        if made:  # napari draws a new layer once, slowly: let it, before the worker takes the CPU
            self.job = job
            self.bar.set_state("running")
            self.started.emit()
            QTimer.singleShot(FIRST_PAINT_MS, lambda: self._start(job, steps) if job is self.job and not job.aborted else None)
        else:
            self._start(job, steps)

    def run_and_wait(self) -> str:
        """:meth:`run`, then wait (the event loop turning) until the layers are updated; returns
        "done", "cancelled" or "error"."""
        outcome: list[str] = []
        loop = QEventLoop()

        def done(result: str) -> None:
            outcome.append(result)
            loop.quit()

        self.finished.connect(done)
        try:
            self.run()
            if not outcome:
                loop.exec()
        finally:
            self.finished.disconnect(done)
        return outcome[0]

    def _plane_steps(self, job: Job, plan: dict, ref: ModelRef) -> list[Step]:
        session, request, memory = job.session, job.request, job.session.memory
        lut, large = memory.lut(request.vocabulary.names), session.large
        steps = []
        for i, (plane, action) in enumerate(plan.items()):
            cached = session.cache.get(plane)
            if action == "run":
                start = run_step(request, plane, ref, job.decision, lut, large)
            elif action == "rescore":
                start = rescore_step(cached, request, job.decision, lut, large)
            else:
                start = relabel_step(cached, job.decision, memory.lut(cached.seg.class_names), large)
            where = f" plane {i + 1} of {len(plan)}" if plane else ""
            steps.append(Step(action, VERBS[action] + where, start, plane, WEIGHTS[action]))
        return steps

    def refine(self) -> None:
        """Relabel every cached plane of the current image with the decision fields and hidden
        classes (no model run); after the running job if there is one."""
        if self.busy:
            self._refine_pending = True
            return
        session = self.current()
        if session is None or not session.cache or not session.labels_alive(self.viewer.layers):
            return
        if self.hold(session, self.refine, lambda exc: None):  # the status line says why
            return
        decision = self.inputs.decision(session)
        job = Job("refine", session, None, decision, counts={"relabel": len(session.cache)})
        steps = [Step("relabel", "relabelling", relabel_step(r, decision, session.memory.lut(r.seg.class_names), session.large),
                      plane, WEIGHTS["relabel"]) for plane, r in session.cache.items()]  # fmt: skip
        self._start(job, self._stored(job, steps))

    @staticmethod
    def _stored(job: Job, steps: list[Step]) -> list[Step]:
        """A large result's steps: a new store generation first, each plane's labels written into
        it right after the plane is computed (plane by plane: never every plane in memory)."""
        if not job.session.large:
            return steps
        store_job = job.store_job = StoreJob(job.session.store, ignore_edits=job.policy == "overwrite")
        out = [Step("store", "preparing the store", store_job.begin_step(), weight=0.0)]
        for step in steps:
            if step.kind not in STEP_WORDS:
                out.append(step)
                continue
            out.append(replace(step, start=store_job.recorded(step.start, step.plane)))
            where = f" of plane {step.plane}" if step.plane else ""
            out.append(Step("store", f"writing the labels{where} into the store", store_job.write_step(step.plane),
                            step.plane, WEIGHTS["store"]))  # fmt: skip
        return out

    def _start(self, job: Job, steps: list[Step]) -> None:
        self.job = job
        if job.store_job is not None:  # no undo / redo into a store a job is writing
            job.session.memory.writing = True
        self.bar.set_state("running")
        self.started.emit()
        self.bar.bar.setValue(0)
        self.bar.say(steps[-1].label + "…")
        self._worker = self.workers.start(
            drive, steps, yielded=lambda event: self._on_event(job, event),
            errored=lambda exc: setattr(job, "error", exc), finished=lambda: self._on_finished(job),
        )  # fmt: skip

    def _on_event(self, job: Job, event: JobProgress | StepDone) -> None:
        if job is not self.job:
            return
        if isinstance(event, JobProgress):
            self.bar.show_progress(event, job.timer)
            self.progressed.emit(event)
        elif event.step.kind == "load":
            self.slot.model, self.slot.choice, self.slot.given = event.result, job.model_choice, False
            self.model_loaded.emit()
        elif event.step.kind in STEP_WORDS:
            job.outcomes[event.step.plane] = event.result

    def _on_finished(self, job: Job) -> None:
        if job is not self.job:  # stopped meanwhile (widget closed, image removed)
            return
        if job.aborted or isinstance(job.error, Cancelled):
            self.writer.discard(job)
            self.notify("info", "napari-sclip: cancelled; the layers were left as they were.")
            self._end("cancelled", "cancelled: nothing was changed")
        elif job.error is not None:
            self.writer.discard(job)
            self._fail(job.error)
        elif job.outcomes:
            job.writing, job.write_start = True, time.perf_counter()
            self.bar.set_state("writing")
            self.bar.say("updating layers…")
            self.writer.write(job, then=lambda: self._written(job))
        else:
            self._end("done")

    def _written(self, job: Job) -> None:
        if job is not self.job:
            return
        end = time.perf_counter()
        self.last_timings = {"start": job.timer.start, "write_start": job.write_start, "end": end}
        self.written.emit(job)
        self._end("done", f"done in {end - job.timer.start:.1f} s: {job.summary()}",
                  f"layers updated in {1000 * (end - job.write_start):.0f} ms")  # fmt: skip

    def cancel(self) -> None:
        """Stop the running job at its next window batch; the layers stay as they were."""
        job = self.job
        if job is None or job.writing:
            return
        job.aborted = True
        if self._worker is None:  # not started yet
            self.writer.discard(job)
            self._end("cancelled", "cancelled: nothing was changed")
        else:
            self.bar.say("cancelling…")
            self._worker.quit()

    def stop(self, why: str) -> None:
        """Stop now (the widget closes, or the image went away): no layer appears afterwards."""
        job = self.job
        if job is None:
            return
        job.aborted = True
        if self._worker is not None:
            self._worker.quit()
        if job.writing:
            self.writer.finish_now()
        else:
            self.writer.discard(job)
        self._refine_pending = False
        self._end("cancelled", f"stopped: {why}")

    def _fail(self, exc: BaseException) -> None:
        text = str(exc) if isinstance(exc, SclipError | ValueError) else f"{type(exc).__name__}: {exc}"
        self.notify("error", f"napari-sclip: {text}")
        self._end("error", "error: " + text)

    def _end(self, outcome: str, status: str | None = None, tooltip: str = "") -> None:
        job = self.job
        if job is not None and job.store_job is not None and job.session.memory is not None:
            job.session.memory.writing = False
        self.job, self._worker = None, None
        self.bar.bar.setValue(1000 if outcome == "done" else 0)
        self.bar.set_state("idle")
        if status is not None:
            self.bar.say(status, tooltip)
        self.finished.emit(outcome)
        if self._refine_pending:
            self._refine_pending = False
            self.refine()
