"""The engine calls a widget job is made of, as step generators for ``_jobs.drive`` (worker
thread; no Qt here). Each yields the engine's progress between batches and returns its result."""

from __future__ import annotations

from typing import Any

from ._compat import block_triton_if_llvm_loaded
from ._jobs import call
from ._session import RunSettings
from ._source import Plane, Source


def warm_up() -> None:
    """Import heavy modules in the worker thread, not on the UI thread when results arrive."""
    block_triton_if_llvm_loaded()
    import pandas  # noqa: F401  (napari's features tables)

    from . import segment  # noqa: F401  (torch, open_clip)


def load_model_step(spec: tuple, ctx: dict) -> Any:
    """Load the model the fields describe (worker thread); keep it in ``ctx`` for later steps."""
    from . import load_model

    name, pretrained, checkpoint, device, precision = spec
    if checkpoint:
        model = load_model(name=name or None, pretrained=checkpoint, device=device, precision=precision)
    else:
        model = load_model(name=name or "ViT-B-16", pretrained=pretrained or None, device=device, precision=precision)
    ctx["model"] = model
    return model


def run_step(source: Source, plane: Plane, settings: RunSettings, ctx: dict, suppressed_for):
    """Step generator: read the plane and segment it (window-batch progress)."""

    def start():
        from .segment import segment_steps

        image, limits = source.read(plane)
        seg = yield from segment_steps(
            image, settings.classes, background=settings.background or None, model=ctx["model"],
            attention=settings.attention, short_side=settings.short_side, window=settings.window,
            stride=settings.stride, logit_scale=settings.logit_scale, threshold=settings.threshold,
            area_threshold=settings.area_threshold, contrast_limits=limits,
        )  # fmt: skip
        hidden = suppressed_for(seg.class_names)
        return seg.relabel(suppressed=hidden) if hidden else seg

    return start


def rescore_step(seg, settings: RunSettings, suppressed_for):
    """Step generator: a new vocabulary from the cached image features."""

    def start():
        new = yield from seg.rescore_steps(settings.classes, settings.background or None, logit_scale=settings.logit_scale)
        return new.relabel(settings.threshold, settings.area_threshold, suppressed_for(new.class_names))

    return start


def relabel_step(seg, settings: RunSettings, suppressed_for):
    """Step generator: new labels from the cached probabilities."""

    def start():
        return call(lambda: seg.relabel(settings.threshold, settings.area_threshold, suppressed_for(seg.class_names)))

    return start
