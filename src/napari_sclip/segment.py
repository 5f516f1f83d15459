"""The pipeline: prepare -> windows -> encode -> vocabulary -> merge -> decide.

Written once as a generator that yields :class:`~napari_sclip.steps.Progress` between batches;
:func:`segment` drives it with ``progress`` / ``cancel`` callbacks, a napari ``thread_worker`` can
``yield from`` it, and both share every line of the computation.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import numpy as np
import torch

from .budget import check_fits, run_bytes
from .decide import decide_labels
from .errors import InputImageError
from .model import SclipModel
from .options import ModelChoice, RunOptions
from .prepare import inference_size, to_model_input, to_unit_range
from .result import Segmentation
from .score import probability_steps, strip_count
from .steps import CancelFn, Progress, ProgressFn, Steps, drain, relay
from .tiling import axis_starts, crop_batches, window_grid
from .vocabulary import ClassSpec, Vocabulary

_default_model: SclipModel | None = None


def default_model() -> SclipModel:
    """``load_model()`` once per process (ViT-B/16, OpenAI weights)."""
    global _default_model
    if _default_model is None:
        _default_model = ModelChoice().load()
    return _default_model


def _model(model: SclipModel | ModelChoice | None) -> SclipModel:
    if isinstance(model, ModelChoice):
        return model.load()
    return model or default_model()


def segment_steps(
    image: np.ndarray,
    classes: str | Sequence[ClassSpec] | Vocabulary,
    *,
    background: str | Sequence[str] | None = None,
    model: SclipModel | ModelChoice | None = None,
    options: RunOptions | None = None,
    **settings: Any,
) -> Steps[Segmentation]:
    """Generator form of :func:`segment`: yields :class:`Progress`, returns the Segmentation."""
    vocab = Vocabulary.parse(classes, background)  # cheap checks first: fail before any work
    opts = RunOptions.build(options, **settings)
    unit = to_unit_range(np.asarray(image), opts.contrast_limits)
    model = _model(model)
    win, step = opts.resolve(model.window, model.patch_size)
    opts = RunOptions.build(opts, window=win, stride=step)
    H, W = unit.shape[:2]
    size = inference_size(H, W, opts.short_side)
    if min(size) < model.patch_size:
        raise InputImageError(
            f"The image is {H} x {W} pixels, which at short side {opts.short_side} is smaller than one "
            f"{model.patch_size}-pixel patch; use a larger short side."
        )
    rows, cols = axis_starts(size[0], win, step), axis_starts(size[1], win, step)
    n_windows, patch = len(rows) * len(cols), model.patch_size
    tokens = ((rows[0][1] - rows[0][0]) // patch) * ((cols[0][1] - cols[0][0]) // patch)
    check_fits(
        run_bytes((H, W), size, n_windows, tokens, model.embed_dim, len(vocab.queries), len(vocab.classes)),
        f"Segmenting this {H} x {W} image at short side {opts.short_side} ({size[0]} x {size[1]} px, "
        f"{n_windows} windows)", "use a smaller short side.",
    )  # fmt: skip
    boxes = window_grid(size[0], size[1], win, step)
    pixels = to_model_input(unit, size, model.mean, model.std)
    n_new = len(model.uncached(vocab.queries))
    strips = strip_count(len(vocab.queries), H, W)
    total = n_new + len(boxes) + strips
    text = yield from relay(model.embed_steps(vocab.queries), extra=len(boxes) + strips)
    chunks = []
    for start, crops in crop_batches(pixels, boxes, opts.batch_size or model.default_batch):
        chunks.append(model.dense_features(crops, opts.attention))
        yield Progress(n_new + start + len(crops), total, "image")
    features = torch.cat(chunks)
    probs, best, best_p = yield from probability_steps(
        features, text, vocab, boxes, size, (H, W), opts.logit_scale, n_new + len(boxes), total
    )
    labels = decide_labels(probs, best, best_p, opts.threshold, opts.area_threshold, ())
    return Segmentation(
        model=model, vocabulary=vocab, image_shape=(H, W), options=opts, features=features, boxes=boxes,
        pixels=pixels, probs=probs, best=best, best_p=best_p, labels=labels,
    )  # fmt: skip


def segment(
    image: np.ndarray,
    classes: str | Sequence[ClassSpec] | Vocabulary,
    *,
    background: str | Sequence[str] | None = None,
    model: SclipModel | ModelChoice | None = None,
    options: RunOptions | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    **settings: Any,
) -> Segmentation:
    """Segment a 2D grayscale or RGB(A) image into the given classes with SCLIP.

    ``classes``: ``"nucleus; cytoplasm"``, one class per line, or a list; synonyms separated by
    commas. ``background`` words compete in the softmax and map to label 0. The run options
    (:class:`~napari_sclip.RunOptions`: ``attention``, ``short_side``, ``window``, ``stride``,
    ``contrast_limits``, ``logit_scale``, ``threshold``, ``area_threshold``, ``batch_size``) are
    given as keywords, or as ``options=`` with keywords overriding it. ``progress(done, total)``
    is called between batches; ``cancel()`` returning True raises
    :class:`~napari_sclip.errors.Cancelled` at the next batch.
    """
    steps = segment_steps(image, classes, background=background, model=model, options=options, **settings)
    return drain(steps, progress, cancel)


def _with_option_keywords(fn) -> None:
    """Show every run option as a keyword with its default in ``help(fn)`` and IDEs."""
    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    for f in fields(RunOptions):
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type))
    fn.__signature__ = sig.replace(parameters=params)


_with_option_keywords(segment)
_with_option_keywords(segment_steps)
