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
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .attention import get_mode
from .decide import apply_threshold, label_dtype, small_classes
from .encoder import names_order
from .errors import InputImageError, OptionsError
from .features import FeatureStore
from .lazy import block_array
from .model import SclipModel
from .options import RunOptions
from .prepare import ModelInput
from .score import Scorer, image_scorer
from .stats import ClassTable, Tally
from .steps import CancelFn, Progress, ProgressFn, Steps, drain, relay
from .tiling import Box, Taps, lerp, window_logits
from .vocabulary import ClassSpec, Vocabulary


@dataclass(frozen=True)
class Maps:
    """The unsuppressed decision at full resolution (in-memory results): best class and its probability."""

    best: np.ndarray
    best_p: np.ndarray


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
    features: FeatureStore = field(repr=False)
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
    def _label_block(self, rows: slice, cols: slice, step: int = 1) -> np.ndarray:
        best, best_p = self.scorer.block(rows, cols, step).decide(self.suppressed | self.small)
        return apply_threshold(best.numpy(), best_p.numpy(), self.options.threshold, len(self.class_names))

    def labels_level(self, step: int):
        """Labels of pyramid level ``step`` (every ``step``-th pixel), computed on demand (dask)."""
        H, W = self.image_shape
        return block_array((-(-H // step), -(-W // step)), self.scorer.side,
                           lambda r, c: self._label_block(r, c, step), label_dtype(len(self.class_names)))  # fmt: skip

    def _decide(self) -> Segmentation:
        """Fill ``small`` and ``labels`` from the options, ``suppressed`` and the cached maps."""
        n = len(self.class_names)
        if self.lazy:
            small = frozenset()
            if self.options.area_threshold is not None:
                hist = np.zeros(n + 1, np.int64)
                for rows, cols in self.scorer.blocks():
                    best, _ = self.scorer.block(rows, cols).decide(self.suppressed)
                    hist += np.bincount(best.numpy().ravel(), minlength=n + 1)
                small = small_classes(hist, n, self.options.area_threshold) - self.suppressed
            seg = replace(self, small=small)
            return replace(seg, labels=seg.labels_level(1))
        best, best_p = self._suppress(self.suppressed)
        small = small_classes(np.bincount(best.ravel(), minlength=n + 1), n, self.options.area_threshold)
        small -= self.suppressed
        if small:
            best, best_p = self._suppress(self.suppressed | small)
        return replace(self, small=small, labels=apply_threshold(best, best_p, self.options.threshold, n))

    def _suppress(self, hidden: frozenset[int]) -> tuple[np.ndarray, np.ndarray]:
        """The cached decision with ``hidden`` classes excluded (their pixels rescored by block)."""
        best, best_p = self.maps.best, self.maps.best_p
        if not hidden:
            return best, best_p
        hit = np.isin(best, sorted(hidden))
        if not hit.any():
            return best, best_p
        best, best_p = best.copy(), best_p.copy()
        for rows, cols in self.scorer.blocks():
            mask = hit[rows, cols]
            if mask.any():
                b, p = self.scorer.block(rows, cols).decide(hidden)
                best[rows, cols][mask] = b.numpy()[mask]
                best_p[rows, cols][mask] = p.numpy()[mask]
        return best, best_p

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
        self, classes: str | Sequence[ClassSpec] | Vocabulary, background=None, *, logit_scale: float | None = None
    ) -> Steps[Segmentation]:
        """Generator form of :meth:`rescore`."""
        vocab = Vocabulary.parse(classes, background)
        options = self.options if logit_scale is None else RunOptions.build(self.options, logit_scale=logit_scale)
        if get_mode(options.attention).needs_text:  # the image features depend on the words: run again
            from .segment import segment_steps

            return (yield from segment_steps(self.pixels.source, vocab, model=self.model, options=options,
                                             lazy=self.lazy))  # fmt: skip
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
    ) -> Segmentation:
        """A new Segmentation for a new vocabulary from the cached image features (no image-encoder run)."""
        return drain(self.rescore_steps(classes, background, logit_scale=logit_scale), progress, cancel)

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
            labels = self._label_block(rows, cols) if self.lazy else self.labels[rows, cols]
            total += Tally.of(labels, self.scorer.block(rows, cols).probabilities().numpy(), channels, n + 1)
        return total

    def class_table(self) -> ClassTable:
        """Per label (0 = background): name, synonyms, pixel count, area fraction, mean probability."""
        return self.tally().table(self.class_names, self.vocabulary.classes, self.vocabulary.background)

    def save(self, path: str | os.PathLike, *, probabilities: bool = False, overlay=None) -> list[Path]:
        """Write the labels at ``path`` with the class table beside it, and optionally the
        probabilities and an overlay PNG on ``overlay`` (the image, 0..1 RGB); see
        :func:`napari_sclip.io.write_result`."""
        from .io import write_result

        return write_result(
            path, self.labels, self.class_table(), class_names=self.class_names,
            probabilities=self.probabilities if probabilities else None, overlay=overlay,
        )  # fmt: skip

    def attention_map(self, y: float, x: float, attention: str | None = None) -> np.ndarray:
        """Last-block attention of the patch under image pixel ``(y, x)`` (SCLIP Fig. 4), ``(H, W)``.

        The window whose centre is nearest the point is used; attention to patches outside it is 0.
        """
        H, W = self.image_shape
        if not (0 <= y < H and 0 <= x < W):
            raise InputImageError(f"Point ({y:.0f}, {x:.0f}) is outside the image ({H} x {W}).")
        h, w = self.inference_shape
        yi, xi = min(int(y * h / H), h - 1), min(int(x * w / W), w - 1)
        inside = [b for b in self.boxes if b.y0 <= yi < b.y1 and b.x0 <= xi < b.x1]
        box = min(inside, key=lambda b: ((b.y0 + b.y1) / 2 - yi) ** 2 + ((b.x0 + b.x1) / 2 - xi) ** 2)
        mode = get_mode(attention or self.attention)
        params = dict(self.options.mode_params) if mode.name == self.attention else None
        order = names_order(self.vocabulary.query_labels)
        text = self.model.embed([self.vocabulary.queries[i] for i in order]) if mode.needs_text else None
        attn = self.model.patch_attention(self.pixels.crop(box)[None], mode.name, text=text,
                                          logit_scale=self.logit_scale, params=params)[0]  # fmt: skip
        patch = self.model.patch_size
        gh, gw = mode.grid(box.y1 - box.y0, box.x1 - box.x0, patch)
        row = min((yi - box.y0) // patch, gh - 1) * gw + min((xi - box.x0) // patch, gw - 1)
        grid = attn[row].reshape(gh, gw)
        canvas = torch.zeros(1, h, w)  # nearest-neighbour upsampling of the grid into its window
        ys = np.minimum((np.arange(box.y1 - box.y0) * gh) // (box.y1 - box.y0), gh - 1)
        xs = np.minimum((np.arange(box.x1 - box.x0) * gw) // (box.x1 - box.x0), gw - 1)
        canvas[0, box.y0 : box.y1, box.x0 : box.x1] = grid[ys][:, xs]
        return lerp(lerp(canvas, Taps.of(h, H, np.arange(H)), 1), Taps.of(w, W, np.arange(W)), 2)[0].numpy()


def decision_steps(base: Segmentation, lazy: bool, done: int, total: int) -> Steps[Segmentation]:
    """Finish a result: for an in-memory one, score every block once (progress per block) and
    keep the best class and its probability; then decide the labels."""
    if lazy:
        return base._decide()
    H, W = base.image_shape
    best = np.empty((H, W), label_dtype(len(base.class_names)))
    best_p = np.empty((H, W), np.float32)
    for i, (rows, cols) in enumerate(base.scorer.blocks()):
        b, p = base.scorer.block(rows, cols).decide()
        best[rows, cols], best_p[rows, cols] = b.numpy(), p.numpy()
        yield Progress(done + i + 1, total, "merge")
    return replace(base, maps=Maps(best, best_p))._decide()


def _check_suppressed(sup: Iterable[int], n: int) -> frozenset[int]:
    out = frozenset(int(s) for s in sup)
    bad = [s for s in out if not 1 <= s <= n]
    if bad:
        raise OptionsError(f"suppressed labels must be between 1 and {n}, got {sorted(bad)}.")
    return out


__all__ = ["Maps", "Segmentation", "decision_steps"]
