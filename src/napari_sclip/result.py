"""The result of a run: labels and class probabilities, with what is needed to refine them.

A :class:`Segmentation` keeps the image features, so a new vocabulary costs one text encoding
and a merge (:meth:`~Segmentation.rescore`), and a new decision costs nothing but the decision
(:meth:`~Segmentation.relabel`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .decide import decide_labels
from .errors import InputImageError, OptionsError
from .model import SclipModel
from .options import RunOptions
from .score import probability_steps, strip_count
from .stats import ClassTable, Tally
from .steps import CancelFn, ProgressFn, Steps, drain, relay
from .tiling import Box, resize_rows
from .vocabulary import ClassSpec, Vocabulary


@dataclass(eq=False)
class Segmentation:
    """Labels and class probabilities of one image.

    ``labels``: ``(H, W)`` uint8/uint16, 0 = background or below threshold, k = k-th class.
    ``probabilities``: ``(K, H, W)`` float32, channel k-1 for label k. ``options`` are the run
    options with the window and stride the run used.
    """

    model: SclipModel
    vocabulary: Vocabulary
    image_shape: tuple[int, int]
    options: RunOptions
    features: torch.Tensor = field(repr=False)
    boxes: list[Box] = field(repr=False)
    pixels: torch.Tensor = field(repr=False)
    probs: np.ndarray = field(repr=False)
    best: np.ndarray = field(repr=False)
    best_p: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    suppressed: frozenset[int] = frozenset()

    @property
    def class_names(self) -> list[str]:
        return self.vocabulary.names

    @property
    def probabilities(self) -> np.ndarray:
        return self.probs[1:]

    @property
    def background_probability(self) -> np.ndarray | None:
        """Max probability over the background words, or None without background words."""
        return self.probs[0] if self.vocabulary.background else None

    @property
    def inference_shape(self) -> tuple[int, int]:
        return tuple(self.pixels.shape[-2:])

    attention = property(lambda self: self.options.attention)
    window = property(lambda self: self.options.window)
    stride = property(lambda self: self.options.stride)
    logit_scale = property(lambda self: self.options.logit_scale)
    threshold = property(lambda self: self.options.threshold)
    area_threshold = property(lambda self: self.options.area_threshold)

    def relabel(
        self,
        threshold: float | None = None,
        area_threshold: float | None | str = "keep",
        suppressed: Iterable[int] | None = None,
    ) -> Segmentation:
        """New labels from the cached probabilities (no model run). ``suppressed`` labels are
        excluded as if their probability were zero; their pixels fall to the next class."""
        changes = {} if threshold is None else {"threshold": threshold}
        if area_threshold != "keep":
            changes["area_threshold"] = area_threshold
        options = RunOptions.build(self.options, **changes)
        sup = self.suppressed if suppressed is None else _check_suppressed(suppressed, len(self.class_names))
        labels = decide_labels(self.probs, self.best, self.best_p, options.threshold, options.area_threshold, sup)
        return replace(self, options=options, suppressed=sup, labels=labels)

    def rescore_steps(
        self, classes: str | Sequence[ClassSpec] | Vocabulary, background=None, *, logit_scale: float | None = None
    ) -> Steps[Segmentation]:
        """Generator form of :meth:`rescore`."""
        vocab = Vocabulary.parse(classes, background)
        options = self.options if logit_scale is None else RunOptions.build(self.options, logit_scale=logit_scale)
        strips = strip_count(len(vocab.queries), *self.image_shape)
        n_new = len(self.model.uncached(vocab.queries))
        text = yield from relay(self.model.embed_steps(vocab.queries), extra=strips)
        probs, best, best_p = yield from probability_steps(
            self.features, text, vocab, self.boxes, self.inference_shape, self.image_shape,
            options.logit_scale, n_new, n_new + strips,
        )  # fmt: skip
        # label numbers belong to the old vocabulary: hidden classes do not carry over to a new one
        labels = decide_labels(probs, best, best_p, options.threshold, options.area_threshold, ())
        return replace(self, vocabulary=vocab, options=options, probs=probs, best=best, best_p=best_p,
                       labels=labels, suppressed=frozenset())  # fmt: skip

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

    def tally(self) -> Tally:
        """Pixel counts and probability sums per label (background scored only with background words)."""
        channels = np.arange(len(self.class_names) + 1)
        if not self.vocabulary.background:
            channels[0] = -1
        return Tally.of(self.labels, self.probs, channels)

    def class_table(self) -> ClassTable:
        """Per label (0 = background): name, synonyms, pixel count, area fraction, mean probability."""
        return self.tally().table(self.class_names, self.vocabulary.classes, self.vocabulary.background)

    def save(self, path: str | os.PathLike, *, probabilities: bool = False, overlay=None) -> list[Path]:
        """Write the labels TIFF at ``path``, its class table CSV beside it, and optionally the
        probabilities TIFF and an overlay PNG on ``overlay`` (the image, 0..1 RGB). See
        :func:`napari_sclip.io.write_result`."""
        from .io import write_result

        return write_result(
            path, self.labels, self.class_table(), probabilities=self.probabilities if probabilities else None,
            class_names=self.class_names, overlay=overlay,
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
        crop = self.pixels[None, :, box.y0 : box.y1, box.x0 : box.x1]
        attn = self.model.patch_attention(crop, attention or self.attention)[0]
        patch = self.model.patch_size
        gh, gw = (box.y1 - box.y0) // patch, (box.x1 - box.x0) // patch
        row = min((yi - box.y0) // patch, gh - 1) * gw + min((xi - box.x0) // patch, gw - 1)
        grid = attn[row].reshape(1, 1, gh, gw)
        tile = torch.nn.functional.interpolate(grid, size=(box.y1 - box.y0, box.x1 - box.x0), mode="nearest")[0]
        canvas = torch.zeros(1, h, w)
        canvas[:, box.y0 : box.y1, box.x0 : box.x1] = tile
        out = np.empty((H, W), np.float32)
        for r in range(0, H, 512):
            out[r : r + 512] = resize_rows(canvas, (H, W), r, min(r + 512, H))[0].numpy()
        return out


def _check_suppressed(sup: Iterable[int], n: int) -> frozenset[int]:
    out = frozenset(int(s) for s in sup)
    bad = [s for s in out if not 1 <= s <= n]
    if bad:
        raise OptionsError(f"suppressed labels must be between 1 and {n}, got {sorted(bad)}.")
    return out
