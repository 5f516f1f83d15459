"""The pipeline: prepare -> windows -> encode -> vocabulary -> merge -> decide.

Written once as a generator that yields :class:`~napari_sclip.steps.Progress` between batches;
:func:`segment` drives it with ``progress`` / ``cancel`` callbacks, a napari ``thread_worker`` can
``yield from`` it, and both share every line of the computation. The image is read window by
window (or band by band), so inputs of any size go in with bounded memory.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from .attention import get_mode
from .budget import check_fits, eager_bytes, run_bytes, spill_bytes
from .encode import encode_steps
from .encoder import names_order
from .errors import InputImageError, OptionsError
from .features import FeatureStore
from .model import SclipModel
from .options import ModelChoice, RunOptions
from .prepare import ModelInput, image_limits, inference_size
from .result import Segmentation, decision_steps
from .score import block_size, block_starts, image_scorer
from .source import ImageSource
from .steps import CancelFn, ProgressFn, Steps, drain, relay
from .tiling import axis_starts, window_grid
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


def _base_options(options: RunOptions | None, preset: str | None) -> RunOptions | None:
    if options is not None and preset is not None:
        raise OptionsError("Give options= or preset=, not both (keywords override either).")
    return RunOptions.preset(preset) if preset is not None else options


def segment_steps(
    image,
    classes: str | Sequence[ClassSpec] | Vocabulary,
    *,
    background: str | Sequence[str] | None = None,
    model: SclipModel | ModelChoice | None = None,
    options: RunOptions | None = None,
    preset: str | None = None,
    lazy: bool | None = None,
    client=None,
    **settings: Any,
) -> Steps[Segmentation]:
    """Generator form of :func:`segment`: yields :class:`Progress`, returns the Segmentation."""
    vocab = Vocabulary.parse(classes, background)  # cheap checks first: fail before any work
    opts = RunOptions.build(_base_options(options, preset), **settings)
    source = ImageSource.of(image)
    limits = image_limits(source, opts.contrast_limits)
    model = _model(model)
    win, step = opts.resolve(model.window, model.patch_size)
    opts = RunOptions.build(opts, window=win, stride=step)
    H, W = source.shape
    size = inference_size(H, W, opts.short_side, opts.long_side)
    if min(size) < model.patch_size:
        raise InputImageError(
            f"The image is {H} x {W} pixels, which at short side {opts.short_side} is smaller than one "
            f"{model.patch_size}-pixel patch; use a larger short side."
        )
    rows, cols = axis_starts(size[0], win, step), axis_starts(size[1], win, step)
    mode = get_mode(opts.attention)
    grid = (*mode.grid(rows[0][1] - rows[0][0], cols[0][1] - cols[0][0], model.patch_size), model.embed_dim)
    n_windows = len(rows) * len(cols)
    if lazy is None:
        lazy = not source.in_memory or eager_bytes((H, W), len(vocab.classes)) > (1 << 30)
    check_fits(
        run_bytes((H, W), size, n_windows, grid, len(vocab.queries), len(vocab.classes), lazy),
        f"Segmenting this {H} x {W} image at short side {opts.short_side} ({size[0]} x {size[1]} px, "
        f"{n_windows} windows)", "use a smaller short side.", spill_bytes(n_windows, grid),
    )  # fmt: skip
    boxes = window_grid(size[0], size[1], win, step)
    pixels = ModelInput(source, size, limits, model.mean, model.std)
    n_new = len(model.uncached(vocab.queries))
    side = block_size(len(vocab.queries))
    n_blocks = 0 if lazy else len(block_starts(H, side)) * len(block_starts(W, side))
    total = n_new + n_windows + n_blocks
    text = yield from relay(model.embed_steps(vocab.queries), extra=n_windows + n_blocks)
    features = None if client is not None else FeatureStore(n_windows, grid)
    mode_text = text[names_order(vocab.query_labels)] if mode.needs_text else None
    logits = yield from encode_steps(model, pixels, boxes, opts, text, features, n_new, total, client, mode_text)
    scorer = image_scorer(logits, boxes, pixels, (H, W), model.patch_size, vocab, opts)
    base = Segmentation(
        model=model, vocabulary=vocab, image_shape=(H, W), options=opts, boxes=boxes, pixels=pixels,
        features=features, scorer=scorer, maps=None,
    )  # fmt: skip
    return (yield from decision_steps(base, lazy, n_new + n_windows, total))


def segment(
    image,
    classes: str | Sequence[ClassSpec] | Vocabulary,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    **keywords: Any,
) -> Segmentation:
    """Segment a 2D grayscale or RGB(A) image into the given classes with SCLIP.

    ``image``: a numpy, dask or zarr array, a ``tifffile.imread(path, aszarr=True)`` store, or a
    list of arrays as a pyramid (largest first); it is read window by window, never whole.
    ``classes``: ``"nucleus; cytoplasm"``, one class per line, or a list; synonyms separated by
    commas. ``background`` words compete in the softmax and map to label 0. ``model``: a loaded
    model, a :class:`~napari_sclip.ModelChoice`, or None for ViT-B/16 with OpenAI's weights. The run
    options (:class:`~napari_sclip.RunOptions`: ``attention``, ``mode_params``, ``short_side``,
    ``long_side``, ``window``, ``stride``, ``contrast_limits``, ``logit_scale``, ``refine``,
    ``pamr_steps``, ``pamr_dilations``, ``threshold``, ``area_threshold``, ``batch_size``) are given
    as keywords, or as ``options=`` with keywords overriding it; ``preset="naclip-pamr"`` starts from
    a published method's settings instead (:meth:`RunOptions.preset`).
    ``lazy``: results as dask arrays computed on demand (default: for lazy inputs and results over
    1 GB). ``client``: a ``dask.distributed.Client`` whose workers run the image encoder on groups
    of windows (each loads the model once; the image must be picklable: numpy, or dask / zarr
    arrays on a shared disk). ``progress(done, total)`` is called between batches; ``cancel()``
    returning True raises :class:`~napari_sclip.errors.Cancelled` at the next batch.
    """
    return drain(segment_steps(image, classes, **keywords), progress, cancel)


def _with_option_keywords(fn, base=None) -> None:
    """Show the keywords of ``base`` (default: ``fn``'s own) and every run option with its default
    in ``help(fn)`` and IDEs."""
    own = [p for p in inspect.signature(fn).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    if base is not None:
        known = {p.name for p in own} | {f.name for f in fields(RunOptions)}
        own += [p for p in inspect.signature(base).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
                and p.name not in known]  # fmt: skip
    for f in fields(RunOptions):
        own.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type))
    fn.__signature__ = inspect.signature(fn).replace(parameters=own)


_with_option_keywords(segment_steps)
_with_option_keywords(segment, segment_steps)
