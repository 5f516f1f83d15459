"""Long work as generators: they yield :class:`Progress` between batches and return their result.

The API, the CLI and the widget's worker thread drive the same generators; :func:`drain` is the
one loop that does it with plain ``progress`` / ``cancel`` callbacks.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import NamedTuple, TypeVar

from .errors import Cancelled

T = TypeVar("T")
ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


class Progress(NamedTuple):
    """How far a run is: ``done`` of ``total`` units (text phrases + windows); ``stage`` names the step."""

    done: int
    total: int
    stage: str


Steps = Generator[Progress, None, T]


def drain(steps: Generator[Progress, None, T], progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> T:
    """Run a step generator to its end, reporting progress and honouring ``cancel`` between steps.

    ``cancel()`` returning True closes the generator and raises :class:`~napari_sclip.errors.Cancelled`.
    """
    if cancel is not None and cancel():
        steps.close()
        raise Cancelled("Cancelled before the run started.")
    while True:
        try:
            step = next(steps)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(step.done, step.total)
        if cancel is not None and cancel():
            steps.close()
            raise Cancelled(f"Cancelled after {step.done} of {step.total} steps ({step.stage}).")


def relay(steps: Steps[T], extra: int = 0) -> Steps[T]:
    """Re-yield a step generator's progress with ``extra`` units of later work added to its total,
    so that a run made of several generators reports one fraction."""
    while True:
        try:
            p = next(steps)
        except StopIteration as stop:
            return stop.value
        yield Progress(p.done, p.total + extra, p.stage)
