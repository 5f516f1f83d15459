"""The result of a run: labels and class probabilities, with what is needed to refine them.

A :class:`Segmentation` keeps the per-window token logits (small) and the image features, so a new
vocabulary costs one text encoding and a merge (:meth:`~Segmentation.rescore`), and a new decision
costs nothing but the decision (:meth:`~Segmentation.relabel`). Small images keep their best class
and its probability in memory (``labels`` is numpy); large or lazy ones compute every
full-resolution product block by block on demand (``labels`` and ``probabilities`` are dask arrays).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .attention import get_mode
from .decide import (
    Maps,
    apply_threshold,
    block_labels,
    eager_labels,
    label_dtype,
    lazy_small_classes,
)
from .errors import OptionsError
from .features import FeatureStore
from .lazy import block_array
from .model import SclipModel
from .options import RunOptions
from .prepare import ModelInput
from .score import Scorer, image_scorer
from .stats import ClassTable, Tally
from .steps import CancelFn, Progress, ProgressFn, Steps, drain, relay
from .tiling import Box, window_logits
from .vocabulary import ClassSpec, Vocabulary


@dataclass(eq=False)
class Segmentation:
    """Labels and class probabilities of one image.

    ``labels``: ``(H, W)`` uint8/uint16, 0 = background or below threshold, k = k-th class (numpy,
    or a dask array for a lazy result: ``np.asarray`` computes it). ``probabilities``: ``(K, H, W)``
    float32, channel k-1 for label k. ``options`` are the run options with the window and stride used.
    """

    model: SclipModel
    vocabulary: Vocabulary
    image_shape: tuple[int, int]
    options: RunOptions
    boxes: list[Box] = field(repr=False)
    pixels: ModelInput = field(repr=False)
    features: FeatureStore | None = field(repr=False)
    scorer: Scorer = field(repr=False)
    maps: Maps | None = field(repr=False)
    labels: object = field(repr=False, default=None)
    suppressed: frozenset[int] = frozenset()
    small: frozenset[int] = frozenset()
    _probs: np.ndarray | None = field(default=None, repr=False)

    @property
    def class_names(self) -> list[str]:
        return self.vocabulary.names

    @property
    def lazy(self) -> bool:
        """Whether full-resolution products are computed on demand (dask arrays)."""
        return self.maps is None

    @property
    def inference_shape(self) -> tuple[int, int]:
        return self.pixels.size

    attention = property(lambda self: self.options.attention)
    window = property(lambda self: self.options.window)
    stride = property(lambda self: self.options.stride)
    logit_scale = property(lambda self: self.options.logit_scale)
    threshold = property(lambda self: self.options.threshold)
    area_threshold = property(lambda self: self.options.area_threshold)

    @property
    def all_probabilities(self):
        """``(K+1, H, W)``: channel 0 the background words' (zeros without any), channel k class k's."""
        if self.lazy:
            fn = lambda r, c: self.scorer.block(r, c).probabilities().numpy()  # noqa: E731
            return block_array(self.image_shape, self.scorer.side, fn, np.float32, (len(self.class_names) + 1,))
        if self._probs is None:
            out = np.empty((len(self.class_names) + 1, *self.image_shape), np.float32)
            for rows, cols in self.scorer.blocks():
                out[:, rows, cols] = self.scorer.block(rows, cols).probabilities().numpy()
            self._probs = out
        return self._probs

    @property
    def probabilities(self):
        return self.all_probabilities[1:]

    @property
    def background_probability(self):
        """Max probability over the background words, or None without background words."""
        return self.all_probabilities[0] if self.vocabulary.background else None

    # ------------------------------------------------------------------ decisions
    @property
    def label_dtype(self) -> np.dtype:
        return label_dtype(len(self.class_names))

    def labels_block(self, rows: slice, cols: slice, step: int = 1) -> np.ndarray:
        """Labels of a block of pyramid level ``step`` (rows x cols in that level's pixels)."""
        return block_labels(self.scorer, rows, cols, step, self.suppressed | self.small, self.options.threshold)

    def outputs(self, rows: slice, cols: slice, probabilities: bool = False):
        """``(labels, confidence, class probabilities or None)`` of a full-resolution block: the
        confidence is the probability of each pixel's label (background words' for label 0)."""
        scores = self.scorer.block(rows, cols)
        best, best_p = scores.decide(self.suppressed | self.small)
        labels = apply_threshold(best.numpy(), best_p.numpy(), self.options.threshold, len(self.class_names))
        probs = scores.probabilities().numpy()
        confidence = np.take_along_axis(probs, labels[None].astype(np.intp), 0)[0]
        return labels, confidence, probs[1:] if probabilities else None

    def band(self, rows: slice) -> tuple[np.ndarray, Tally]:
        """Labels of a full-width band of rows, and their tally (block by block along the band)."""
        n = len(self.class_names)
        channels = np.arange(n + 1)
        if not self.vocabulary.background:
            channels[0] = -1
        parts, tally = [], Tally.of(np.zeros(0, np.uint8), n_labels=n + 1)
        W = self.image_shape[1]
        for c0 in range(0, W, self.scorer.side):
            cols = slice(c0, min(c0 + self.scorer.side, W))
            labels, confidence, _ = self.outputs(rows, cols)
            parts.append(labels)
            tally += Tally.of(labels, confidence[None], np.where(channels >= 0, 0, -1), n + 1)
        return np.concatenate(parts, axis=1), tally

    def labels_level(self, step: int):
        """Labels of pyramid level ``step`` (every ``step``-th pixel), computed on demand (dask)."""
        H, W = self.image_shape
        return block_array((-(-H // step), -(-W // step)), self.scorer.side,
                           lambda r, c: self.labels_block(r, c, step), self.label_dtype)  # fmt: skip

    def _decide(self) -> Segmentation:
        """Fill ``small`` and ``labels`` from the options, ``suppressed`` and the cached maps."""
        if self.lazy:
            seg = replace(self, small=lazy_small_classes(self.scorer, self.suppressed, self.options.area_threshold))
            return replace(seg, labels=seg.labels_level(1))
        labels, small = eager_labels(self.scorer, self.maps, self.suppressed, self.options)
        return replace(self, small=small, labels=labels)

    def relabel(
        self,
        threshold: float | None = None,
        area_threshold: float | None | str = "keep",
        suppressed: Iterable[int] | None = None,
    ) -> Segmentation:
        """New labels from the cached scores (no model run). ``suppressed`` labels are excluded as
        if their probability were zero; their pixels fall to the next class."""
        changes = {} if threshold is None else {"threshold": threshold}
        if area_threshold != "keep":
            changes["area_threshold"] = area_threshold
        options = RunOptions.build(self.options, **changes)
        sup = self.suppressed if suppressed is None else _check_suppressed(suppressed, len(self.class_names))
        return replace(self, options=options, suppressed=sup)._decide()

    # ------------------------------------------------------------------ re-scoring
    def rescore_steps(
        self, classes: str | Sequence[ClassSpec] | Vocabulary, background=None, *, logit_scale: float | None = None,
        **score: Any,
    ) -> Steps[Segmentation]:  # fmt: skip
        """Generator form of :meth:`rescore`."""
        vocab = Vocabulary.parse(classes, background)
        if background is None and not isinstance(classes, Vocabulary) and not vocab.background:
            vocab = Vocabulary.parse(classes, self.vocabulary.background)  # new words, same background
        options = _score_options(self.options, dict(score, logit_scale=logit_scale))
        if get_mode(options.attention).needs_text:  # the image features depend on the words: run again
            from .segment import segment_steps

            return (yield from segment_steps(self.pixels.source, vocab, model=self.model, options=options,
                                             lazy=self.lazy))  # fmt: skip
        if self.features is None:
            raise OptionsError("This result was computed on a cluster, which does not keep the image features: "
                               "segment again to use a new vocabulary.")  # fmt: skip
        n_new = len(self.model.uncached(vocab.queries))
        merge_steps = 0 if self.lazy else len(list(self.scorer.blocks()))
        total = n_new + 1 + merge_steps
        text = yield from relay(self.model.embed_steps(vocab.queries), extra=1 + merge_steps)
        logits = torch.cat([window_logits(f, text) for _, f in self.features.batches(64)])
        yield Progress(n_new + 1, total, "merge")
        scorer = image_scorer(logits, self.boxes, self.pixels, self.image_shape, self.model.patch_size, vocab, options)
        # label numbers belong to the old vocabulary: hidden classes do not carry over to a new one
        base = replace(self, vocabulary=vocab, options=options, scorer=scorer, suppressed=frozenset(),
                       small=frozenset(), labels=None, _probs=None)  # fmt: skip
        return (yield from decision_steps(base, self.lazy, n_new + 1, total))

    def rescore(
        self,
        classes: str | Sequence[ClassSpec] | Vocabulary,
        background: str | Sequence[str] | None = None,
        *,
        logit_scale: float | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
        **score: Any,
    ) -> Segmentation:
        """A new Segmentation for a new vocabulary from the cached image features (no image-encoder
        run); the score options (``logit_scale``, ``refine``, ``pamr_steps``, ``pamr_dilations``) may
        change too. The background words stay unless ``background`` (``()``: none) or the vocabulary
        gives others. Modes that read the words (resclip) run the image encoder again."""
        steps = self.rescore_steps(classes, background, logit_scale=logit_scale, **score)
        return drain(steps, progress, cancel)

    # ------------------------------------------------------------------ statistics and files
    def tally(self) -> Tally:
        """Pixel counts and probability sums per label (background scored only with background
        words), block by block."""
        n = len(self.class_names)
        channels = np.arange(n + 1)
        if not self.vocabulary.background:
            channels[0] = -1
        total = Tally.of(np.zeros(0, np.uint8), n_labels=n + 1)
        for rows, cols in self.scorer.blocks():
            labels = self.labels_block(rows, cols) if self.lazy else self.labels[rows, cols]
            total += Tally.of(labels, self.scorer.block(rows, cols).probabilities().numpy(), channels, n + 1)
        return total

    def class_table(self) -> ClassTable:
        """Per label (0 = background): name, synonyms, pixel count, area fraction, mean probability."""
        return self.tally().table(self.class_names, self.vocabulary.classes, self.vocabulary.background)

    def save_steps(self, path: str | os.PathLike, *, probabilities: bool = False, overlay=None) -> Steps[list[Path]]:
        """Generator form of :meth:`save` (progress per block)."""
        from .save import save_steps

        return (yield from save_steps(self, path, probabilities=probabilities, overlay=overlay))

    def save(self, path: str | os.PathLike, *, probabilities: bool = False, overlay=None,
             progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> list[Path]:  # fmt: skip
        """Write the result: ``*.tif`` for a labels TIFF (tiled, with a pyramid, for a lazy
        result), ``*.zarr`` for OME-Zarr (labels pyramid with class names and colours, confidence
        map, optional probabilities; resumable); the class table CSV beside it, and optionally the
        probabilities and an overlay PNG of ``overlay`` (the image that was segmented). Every file
        appears complete under its name or not at all. Returns the paths written."""
        return drain(self.save_steps(path, probabilities=probabilities, overlay=overlay), progress, cancel)

    def attention_map(self, y: float, x: float, attention: str | None = None) -> np.ndarray:
        """Last-block attention of the patch under image pixel ``(y, x)`` (SCLIP Fig. 4), ``(H, W)``:
        see :func:`napari_sclip.probe.attention_map`."""
        from .probe import attention_map

        return attention_map(self, y, x, attention or self.attention)


def decision_steps(base: Segmentation, lazy: bool, done: int, total: int) -> Steps[Segmentation]:
    """Finish a result: for an in-memory one, score every block once (progress per block) and
    keep the best class and its probability; then decide the labels."""
    if lazy:
        return base._decide()
    H, W = base.image_shape
    best = np.empty((H, W), label_dtype(len(base.class_names)))
    for i, (rows, cols) in enumerate(base.scorer.blocks()):
        best[rows, cols] = base.scorer.best_classes(rows, cols).numpy()
        yield Progress(done + i + 1, total, "merge")
    return replace(base, maps=Maps(best))._decide()


def _score_options(options: RunOptions, changes: dict[str, Any]) -> RunOptions:
    """``options`` with new values of score-stage options (None: unchanged); others are refused."""
    changes = {k: v for k, v in changes.items() if v is not None}
    stages = {f.name: f.metadata["spec"].stage for f in fields(RunOptions)}
    wrong = sorted(k for k in changes if stages.get(k) != "score")
    if wrong:
        score = ", ".join(k for k, v in stages.items() if v == "score")
        raise TypeError(f"a re-score changes only the score options ({score}), not {', '.join(wrong)}")
    return RunOptions.build(options, **changes) if changes else options


def _check_suppressed(sup: Iterable[int], n: int) -> frozenset[int]:
    out = frozenset(int(s) for s in sup)
    bad = [s for s in out if not 1 <= s <= n]
    if bad:
        raise OptionsError(f"suppressed labels must be between 1 and {n}, got {sorted(bad)}.")
    return out


__all__ = ["Segmentation", "decision_steps"]
