"""The engine calls a widget job is made of, as step generators for :func:`.jobs.drive` (worker
thread; no Qt here). Each yields progress between batches and returns its result; the keys and
label maps they need are computed on the UI thread before the job starts."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ..geometry import axis_starts, inference_size
from ..options import ModelChoice, RunOptions
from .compat import block_triton_if_llvm_loaded
from .jobs import PlaneOutcome, StepGen, Tick, call
from .session import Decision, PlaneResult, Request
from .source import Plane


def window_count(height: int, width: int, short_side: int | None, window: int, stride: int,
                 long_side: int | None = None) -> int:  # fmt: skip
    """How many sliding windows the engine runs on an image (torch-free: the hint uses it too)."""
    size = inference_size(height, width, short_side or None, long_side or None)
    return len(axis_starts(size[0], window, stride)) * len(axis_starts(size[1], window, stride))


def model_key(model) -> str | None:
    """What cached image features depend on: the weights and the precision."""
    return None if model is None else f"{model.identity}|{model.dtype}"


@dataclass
class ModelSlot:
    """The widget's model: loaded from the Model fields (``choice``), or given by a script."""

    model: Any = None  # SclipModel
    choice: ModelChoice | None = None
    given: bool = False

    def ready(self, choice: ModelChoice) -> bool:
        """Whether the model answers to these fields (else a run loads one)."""
        return self.model is not None and self.choice == choice

    @property
    def key(self) -> str | None:
        return model_key(self.model)

    @property
    def window(self) -> int:
        """The window a run uses by default (the model's input size; ViT-B/16's before loading)."""
        return int(self.model.window) if self.model is not None else 224


@dataclass
class ModelRef:
    """The model the steps of one job use (set by its load step in the worker thread)."""

    model: Any = None


#: What building, showing and writing result layers imports: paid when the widget opens, in a
#: worker thread, rather than when Run is pressed (napari's labels controls and visuals included).
WARM_MODULES = (
    "pandas", "dask.array", "zarr", "skimage.color", "skimage.draw", "skimage.morphology", "tifffile",
    "napari._qt.layer_controls.qt_labels_controls", "napari._vispy.layers.labels",
    "napari._vispy.overlays.labels_polygon", "napari._vispy.overlays.labels_brush_stroke",
)  # fmt: skip


def warm_up_layers() -> None:
    """Import :data:`WARM_MODULES` (those that moved in another napari version are skipped)."""
    from importlib import import_module

    for name in WARM_MODULES:
        try:
            import_module(name)
        except ImportError:
            pass


def warm_up() -> None:
    """At the start of a job, in the worker thread: torch and open_clip."""
    block_triton_if_llvm_loaded()
    warm_up_layers()
    from .. import segment  # noqa: F401


def load_step(choice: ModelChoice, ref: ModelRef):
    """Step generator: load the model the fields describe."""

    def load():
        ref.model = choice.load()
        return ref.model

    return lambda: call(load)


def run_step(request: Request, plane: Plane, ref: ModelRef, decision: Decision, lut: np.ndarray, large: bool = False):
    """Step generator: read the plane and segment it; progress counts the windows the hint counts.
    ``large``: a lazy result (its labels go to a store, not to the outcome)."""

    def start():
        from ..segment import segment_steps

        model = ref.model
        keys = (request.features_key(plane, model_key(model)), request.score_key())  # what is read now
        image, limits = request.source.read(plane)
        options = RunOptions.build(request.options, contrast_limits=limits)
        queries = len(model.uncached(request.vocabulary.queries))
        window, stride = options.resolve(model.window, model.patch_size)
        height, width = (image[0] if isinstance(image, list) else image).shape[:2]
        windows = window_count(height, width, options.short_side, window, stride, options.long_side)
        steps = segment_steps(image, request.vocabulary, model=model, options=options, lazy=large)
        seg = yield from _in_words(steps, queries, windows)
        return _outcome(seg, decision, lut, keys, large)

    return start


def rescore_step(result: PlaneResult, request: Request, decision: Decision, lut: np.ndarray, large: bool = False):
    """Step generator: the new vocabulary from the cached image features."""

    def start():
        score = {f.name: getattr(request.options, f.name) for f in fields(RunOptions)
                 if f.metadata["spec"].stage == "score"}  # fmt: skip
        steps = result.seg.rescore_steps(request.vocabulary, **score)
        seg = yield from _in_words(steps, len(result.seg.model.uncached(request.vocabulary.queries)), 0)
        return _outcome(seg, decision, lut, (result.features_key, request.score_key()), large)

    return start


def relabel_step(result: PlaneResult, decision: Decision, lut: np.ndarray, large: bool = False):
    """Step generator: new labels from the cached probabilities."""
    return lambda: call(lambda: _outcome(result.seg, decision, lut, (result.features_key, result.score_key), large))


def _outcome(seg, decision: Decision, lut: np.ndarray, keys: tuple, large: bool = False) -> PlaneOutcome:
    hidden = frozenset(decision.suppressed(seg.class_names))
    if (seg.threshold, seg.area_threshold, seg.suppressed) != (decision.threshold, decision.area_threshold, hidden):
        seg = seg.relabel(decision.threshold, decision.area_threshold, hidden)
    return PlaneOutcome(PlaneResult(seg, *keys), None, lut) if large else PlaneOutcome(PlaneResult(seg, *keys), lut[seg.labels])


def _in_words(steps: Generator, queries: int, windows: int) -> StepGen:
    """Re-yield engine progress as :class:`Tick` with words: phrases, windows, merge strips."""
    while True:
        try:
            p = next(steps)
        except StopIteration as stop:
            return stop.value
        if p.stage == "text":
            detail = f"text {p.done} of {queries}"
        elif p.stage == "image" and windows:
            detail = f"window {p.done - queries} of {windows}"
        else:
            detail = "merging"
        yield Tick(p.done, p.total, detail)
