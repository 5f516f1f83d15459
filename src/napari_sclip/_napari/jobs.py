"""A job = engine steps chained into one generator that yields progress between window batches,
and the typed state of the job the widget is running.

No Qt here: the widget runs :func:`drive` inside ``napari.qt.threading.thread_worker``; each engine
step is itself a generator (``segment_steps``, ``Segmentation.rescore_steps``...), so the worker
can be cancelled (``quit()``) at any batch boundary and the UI hears about every batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .session import Decision, PlaneResult, Request, Session
from .source import Plane

StepGen = Generator[Any, None, Any]
STEP_WORDS = {"run": "segmented", "rescore": "re-scored from cache", "relabel": "relabelled"}


@dataclass(frozen=True)
class Step:
    """One unit of work: ``start()`` returns a generator yielding engine progress (objects with
    ``done`` / ``total``, optionally ``detail``) and returning the result."""

    kind: str  # "prepare", "load", or one of STEP_WORDS
    label: str
    start: Callable[[], StepGen]
    plane: Plane = ()
    weight: float = 1.0


@dataclass(frozen=True)
class Tick:
    """Progress inside a step, in words the user can check (``"window 40 of 961"``)."""

    done: int
    total: int
    detail: str = ""


@dataclass(frozen=True)
class JobProgress:
    """Between two batches of step ``index`` (of ``n_steps``); ``fraction`` of the whole job."""

    index: int
    n_steps: int
    label: str
    detail: str
    fraction: float


@dataclass(frozen=True)
class StepDone:
    """Step ``step`` finished with ``result``."""

    step: Step
    result: Any


@dataclass(frozen=True)
class PlaneOutcome:
    """A finished plane: its result to cache, and its labels in the layer's numbering (None for a
    large result: its labels went to the store)."""

    result: PlaneResult
    labels: np.ndarray | None
    lut: np.ndarray | None = None  # result labels -> layer labels (what a store write maps with)


def call(fn: Callable[[], Any]) -> StepGen:
    """A step generator for a plain function (no progress inside, e.g. loading a model)."""
    return fn()
    yield  # pragma: no cover - makes this a generator


def drive(steps: Sequence[Step]) -> Iterator[JobProgress | StepDone]:
    """Run ``steps`` in order, yielding :class:`JobProgress` at every engine yield and
    :class:`StepDone` after each step. Closing this generator closes the running step."""
    weights = [max(s.weight, 0.0) for s in steps]
    whole = sum(weights) or 1.0

    def progress(index: int, done: int, total: int, detail: str) -> JobProgress:
        within = min(done / total, 1.0) if total else 0.0
        fraction = min(1.0, (sum(weights[:index]) + weights[index] * within) / whole)
        return JobProgress(index, len(steps), steps[index].label, detail, fraction)

    for index, step in enumerate(steps):
        gen = step.start()
        yield progress(index, 0, 0, "")
        try:
            while True:
                try:
                    p = next(gen)
                except StopIteration as stop:
                    result = stop.value
                    break
                yield progress(index, int(p.done), int(p.total), getattr(p, "detail", ""))
        finally:
            gen.close()
        yield StepDone(step, result)


@dataclass
class Timer:
    """Estimates the time left from the fraction of work done."""

    start: float = field(default_factory=time.perf_counter)

    def left(self, fraction: float) -> float | None:
        """Seconds left, or None while too little is done to say."""
        elapsed = time.perf_counter() - self.start
        if fraction <= 0.02 or elapsed < 0.5:
            return None
        return elapsed * (1.0 - fraction) / fraction


def format_seconds(seconds: float | None) -> str:
    """``"~12 s left"``, ``"~3 min left"``, or ``""`` when unknown."""
    if seconds is None:
        return ""
    if seconds < 90:
        return f"~{max(1, round(seconds))} s left"
    return f"~{round(seconds / 60)} min left"


@dataclass
class Job:
    """The job the widget runs: what, on which session, and how far it got."""

    kind: str  # "run" (Run button) or "refine" (threshold, area, hidden classes)
    session: Session
    request: Request | None
    decision: Decision
    policy: str = "keep"  # what a run does with the user's edits: keep, new, overwrite
    counts: dict[str, int] = field(default_factory=dict)
    created: list = field(default_factory=list)  # layers made for this job (removed if it fails)
    replaced: tuple | None = None  # (labels, memory, history) a "new layer" run set aside
    model_choice: Any = None  # the Model fields when the run started (what a load loads)
    outcomes: dict[Plane, PlaneOutcome] = field(default_factory=dict)
    store_job: Any = None  # .large.StoreJob of a large result
    timer: Timer = field(default_factory=Timer)
    error: BaseException | None = None
    aborted: bool = False
    writing: bool = False
    write_start: float | None = None

    def summary(self) -> str:
        """``"2 segmented, 1 relabelled"``."""
        return ", ".join(f"{n} {STEP_WORDS[k]}" for k, n in self.counts.items() if n)
