"""A job = engine steps chained into one generator that yields progress between window batches.

No Qt here: the widget runs :func:`drive` inside ``napari.qt.threading.thread_worker``; each engine
step is itself a generator (``segment_steps``, ``Segmentation.rescore_steps``...), so the worker
can be cancelled (``quit()``) at any batch boundary and the UI hears about every batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

StepGen = Generator[Any, None, Any]


@dataclass(frozen=True)
class Step:
    """One unit of work: ``start()`` returns a generator yielding engine progress (objects with
    ``done`` / ``total``) and returning the result. ``kind`` says what it is, ``plane`` where."""

    kind: str
    label: str
    start: Callable[[], StepGen]
    plane: tuple[int, ...] = ()
    weight: float = 1.0


@dataclass(frozen=True)
class Progress:
    """Between two batches of step ``index`` (of ``n_steps``); ``done`` of ``total`` units."""

    index: int
    n_steps: int
    label: str
    done: int
    total: int
    fraction: float  # of the whole job, steps weighted by ``Step.weight``


@dataclass(frozen=True)
class StepDone:
    """Step ``step`` (number ``index`` of ``n_steps``) finished with ``result``."""

    step: Step
    result: Any
    index: int
    n_steps: int


def call(fn: Callable[[], Any]) -> StepGen:
    """A step generator for a plain function (no progress inside, e.g. loading a model)."""
    return fn()
    yield  # pragma: no cover - makes this a generator


def drive(steps: Sequence[Step]) -> Iterator[Progress | StepDone]:
    """Run ``steps`` in order, yielding :class:`Progress` at every engine yield and
    :class:`StepDone` after each step. Closing this generator closes the running step."""
    weights = [max(s.weight, 0.0) for s in steps]
    whole = sum(weights) or 1.0

    def fraction(index: int, done: int, total: int) -> float:
        within = min(done / total, 1.0) if total else 0.0
        return min(1.0, (sum(weights[:index]) + weights[index] * within) / whole)

    for index, step in enumerate(steps):
        gen = step.start()
        yield Progress(index, len(steps), step.label, 0, 0, fraction(index, 0, 0))
        try:
            while True:
                try:
                    p = next(gen)
                except StopIteration as stop:
                    result = stop.value
                    break
                done, total = int(p.done), int(p.total)
                yield Progress(index, len(steps), step.label, done, total, fraction(index, done, total))
        finally:
            gen.close()
        yield StepDone(step, result, index, len(steps))


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
