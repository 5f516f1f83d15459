"""The pipeline (prepare -> windows -> encode -> vocabulary -> merge -> decide) and its result.

The work is written once as generators that yield :class:`Progress` between batches; the plain
functions drive them with ``progress`` / ``cancel`` callbacks, a napari ``thread_worker`` can
``yield from`` them, and both share every line of the computation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import torch

from . import vocabulary as vocab_mod
from .attention import get_mode
from .decide import class_probabilities, decide_labels, label_dtype
from .errors import Cancelled, InputImageError
from .model import SclipModel, load_model
from .prepare import inference_size, to_model_input, to_unit_range
from .tiling import Box, crop_batches, merge_logits, resize_rows, window_grid
from .vocabulary import ClassSpec, Vocabulary

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


class Progress(NamedTuple):
    """How far a run is: ``done`` of ``total`` units (text phrases + windows); ``stage`` names the step."""

    done: int
    total: int
    stage: str


_default_model: SclipModel | None = None


def default_model() -> SclipModel:
    """``load_model()`` once per process (ViT-B/16, OpenAI weights)."""
    global _default_model
    if _default_model is None:
        _default_model = load_model()
    return _default_model


@dataclass(eq=False)
class Segmentation:
    """Labels and class probabilities of one image, with what is needed to re-score and re-label.

    ``labels``: ``(H, W)`` uint8/uint16, 0 = background or below threshold, k = k-th class.
    ``probabilities``: ``(K, H, W)`` float32, channel k-1 for label k.
    """

    model: SclipModel
    vocabulary: Vocabulary
    image_shape: tuple[int, int]
    features: torch.Tensor = field(repr=False)
    boxes: list[Box] = field(repr=False)
    pixels: torch.Tensor = field(repr=False)
    attention: str
    short_side: int | None
    window: int
    stride: int
    logit_scale: float
    threshold: float
    area_threshold: float | None
    suppressed: frozenset[int]
    probs: np.ndarray = field(repr=False)
    best: np.ndarray = field(repr=False)
    best_p: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)

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

    def relabel(
        self,
        threshold: float | None = None,
        area_threshold: float | None | str = "keep",
        suppressed: Iterable[int] | None = None,
    ) -> Segmentation:
        """New labels from the cached probabilities (no model run). ``suppressed`` labels are
        excluded as if their probability were zero; their pixels fall to the next class."""
        thd = self.threshold if threshold is None else _check_threshold(threshold)
        area = self.area_threshold if area_threshold == "keep" else _check_area(area_threshold)
        sup = self.suppressed if suppressed is None else _check_suppressed(suppressed, len(self.class_names))
        labels = decide_labels(self.probs, self.best, self.best_p, thd, area, sup)
        return replace(self, threshold=thd, area_threshold=area, suppressed=sup, labels=labels)

    def rescore_steps(
        self, classes: str | Sequence[ClassSpec] | Vocabulary, background=None, *, logit_scale: float | None = None
    ) -> Generator[Progress, None, Segmentation]:
        """Generator form of :meth:`rescore`."""
        vocab = Vocabulary.parse(classes, background)
        scale = self.logit_scale if logit_scale is None else _check_scale(logit_scale)
        strips = _strip_count(len(vocab.queries), *self.image_shape)
        n_new = len(vocab_mod.uncached(self.model, vocab.queries))
        text = yield from _text_steps(self.model, vocab, extra=strips)
        maps = yield from _probability_steps(
            self.features, text, vocab, self.boxes, self.inference_shape, self.image_shape, scale, n_new, n_new + strips
        )
        return _finish(self, vocab, scale, *maps)

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
        return run_steps(self.rescore_steps(classes, background, logit_scale=logit_scale), progress, cancel)

    def class_table(self) -> list[dict]:
        """Per label (0 = background): name, synonyms, pixel count, area fraction, mean probability."""
        n = len(self.class_names)
        counts = np.bincount(self.labels.ravel(), minlength=n + 1)
        picked = np.take_along_axis(self.probs, self.labels[None].astype(np.intp), 0)[0]
        sums = np.bincount(self.labels.ravel(), weights=picked.ravel(), minlength=n + 1)
        total = max(int(self.labels.size), 1)
        rows = [
            {
                "label": 0,
                "class": "background",
                "synonyms": ", ".join(self.vocabulary.background),
                "pixels": int(counts[0]),
                "fraction": float(counts[0] / total),
                "mean_probability": float(sums[0] / counts[0]) if counts[0] and self.vocabulary.background else float("nan"),
            }
        ]
        for k, syns in enumerate(self.vocabulary.classes, start=1):
            rows.append(
                {
                    "label": k,
                    "class": syns[0],
                    "synonyms": ", ".join(syns),
                    "pixels": int(counts[k]),
                    "fraction": float(counts[k] / total),
                    "mean_probability": float(sums[k] / counts[k]) if counts[k] else float("nan"),
                }
            )
        return rows

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


def _check_threshold(t: float) -> float:
    if not (0.0 <= float(t) <= 1.0):
        raise ValueError(f"threshold is a probability between 0 and 1, not {t}.")
    return float(t)


def _check_area(a: float | None) -> float | None:
    if a is None:
        return None
    if not (0.0 <= float(a) < 1.0):
        raise ValueError(f"area_threshold is a fraction of the foreground between 0 and 1, not {a}.")
    return float(a)


def _check_scale(s: float) -> float:
    if not (float(s) > 0 and math.isfinite(float(s))):
        raise ValueError(f"logit_scale must be a positive number (the paper uses 40), not {s}.")
    return float(s)


def _check_suppressed(sup: Iterable[int], n: int) -> frozenset[int]:
    out = frozenset(int(s) for s in sup)
    bad = [s for s in out if not 1 <= s <= n]
    if bad:
        raise ValueError(f"suppressed labels must be between 1 and {n}, got {sorted(bad)}.")
    return out


def run_steps(steps: Generator[Progress, None, Segmentation], progress=None, cancel=None) -> Segmentation:
    """Drive a pipeline generator, reporting progress and honouring ``cancel`` between steps."""
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


def _text_steps(model: SclipModel, vocab: Vocabulary, extra: int) -> Generator[Progress, None, torch.Tensor]:
    """Embed the vocabulary's queries, yielding progress counted over ``phrases + extra`` units."""
    steps = vocab_mod.embed_steps(model, vocab.queries)
    while True:
        try:
            done, todo = next(steps)
        except StopIteration as stop:
            return stop.value
        yield Progress(done, todo + extra, "text")


def _strip_rows(n_queries: int, height: int, width: int) -> int:
    """Rows per strip so one strip of logits stays near 32 MB."""
    return max(1, min(height, (1 << 23) // max(1, n_queries * width)))


def _strip_count(n_queries: int, height: int, width: int) -> int:
    return -(-height // _strip_rows(n_queries, height, width))


def _probability_steps(
    features: torch.Tensor,
    text: torch.Tensor,
    vocab: Vocabulary,
    boxes: list[Box],
    inference: tuple[int, int],
    out_size: tuple[int, int],
    logit_scale: float,
    done: int,
    total: int,
) -> Generator[Progress, None, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(K+1, H, W)`` class probabilities at image size, with the per-pixel best channel and its
    probability, built strip by strip from the merged canvas so ``(Q, H, W)`` logits never exist.
    Yields progress after each strip (counted from ``done`` towards ``total``)."""
    canvas = merge_logits(features, text, boxes, inference)
    labels = torch.from_numpy(vocab.query_labels)
    n = len(vocab.classes)
    H, W = out_size
    probs = np.empty((n + 1, H, W), np.float32)
    best = np.empty((H, W), label_dtype(n))
    best_p = np.empty((H, W), np.float32)
    rows = _strip_rows(canvas.shape[0], H, W)
    for i, r0 in enumerate(range(0, H, rows)):
        r1 = min(r0 + rows, H)
        p = class_probabilities(resize_rows(canvas, out_size, r0, r1), logit_scale, labels, n)
        top_p, top = p.max(0)
        probs[:, r0:r1] = p.numpy()
        best[r0:r1] = top.numpy()
        best_p[r0:r1] = top_p.numpy()
        yield Progress(done + i + 1, total, "merge")
    return probs, best, best_p


def _finish(
    base: Segmentation, vocab: Vocabulary, scale: float, probs: np.ndarray, best: np.ndarray, best_p: np.ndarray
) -> Segmentation:
    # label numbers belong to the old vocabulary: hidden classes do not carry over to a new one
    labels = decide_labels(probs, best, best_p, base.threshold, base.area_threshold, ())
    return replace(
        base, vocabulary=vocab, logit_scale=scale, probs=probs, best=best, best_p=best_p, labels=labels,
        suppressed=frozenset(),
    )  # fmt: skip


def segment_steps(
    image: np.ndarray,
    classes: str | Sequence[ClassSpec] | Vocabulary,
    *,
    background: str | Sequence[str] | None = None,
    model: SclipModel | None = None,
    attention: str = "sclip",
    short_side: int | None = 336,
    window: int | None = None,
    stride: int | None = None,
    logit_scale: float = 40.0,
    threshold: float = 0.0,
    area_threshold: float | None = None,
    contrast_limits: Sequence[float] | None = None,
    batch_size: int | None = None,
) -> Generator[Progress, None, Segmentation]:
    """Generator form of :func:`segment`: yields :class:`Progress`, returns the Segmentation."""
    vocab = Vocabulary.parse(classes, background)  # cheap checks first: fail before any work
    get_mode(attention)
    scale = _check_scale(logit_scale)
    thd, area = _check_threshold(threshold), _check_area(area_threshold)
    image = np.asarray(image)
    unit = to_unit_range(image, contrast_limits)
    model = model or default_model()
    win = int(window or model.window)
    step = int(stride or max(1, win // 2))
    if step > win:
        raise ValueError(f"stride ({step}) larger than the window ({win}) would leave gaps.")
    if win < model.patch_size:
        raise ValueError(f"window ({win}) is smaller than one patch ({model.patch_size} px).")
    H, W = unit.shape[:2]
    size = inference_size(H, W, short_side)
    if min(size) < model.patch_size:
        raise InputImageError(
            f"The image is {H} x {W} pixels, which at short side {short_side} is smaller than one "
            f"{model.patch_size}-pixel patch; use a larger short side."
        )
    pixels = to_model_input(unit, size, model.mean, model.std)
    boxes = window_grid(size[0], size[1], win, step)
    n_new = len(vocab_mod.uncached(model, vocab.queries))
    strips = _strip_count(len(vocab.queries), H, W)
    total = n_new + len(boxes) + strips
    text = yield from _text_steps(model, vocab, extra=len(boxes) + strips)
    batch = int(batch_size or model.default_batch)
    chunks = []
    for start, crops in crop_batches(pixels, boxes, batch):
        chunks.append(model.dense_features(crops, attention))
        yield Progress(n_new + start + len(crops), total, "image")
    features = torch.cat(chunks)
    probs, best, best_p = yield from _probability_steps(
        features, text, vocab, boxes, size, (H, W), scale, n_new + len(boxes), total
    )
    labels = decide_labels(probs, best, best_p, thd, area, ())
    return Segmentation(
        model=model, vocabulary=vocab, image_shape=(H, W), features=features, boxes=boxes, pixels=pixels,
        attention=attention, short_side=short_side, window=win, stride=step, logit_scale=scale,
        threshold=thd, area_threshold=area, suppressed=frozenset(), probs=probs, best=best,
        best_p=best_p, labels=labels,
    )  # fmt: skip


def segment(
    image: np.ndarray,
    classes: str | Sequence[ClassSpec] | Vocabulary,
    *,
    background: str | Sequence[str] | None = None,
    model: SclipModel | None = None,
    attention: str = "sclip",
    short_side: int | None = 336,
    window: int | None = None,
    stride: int | None = None,
    logit_scale: float = 40.0,
    threshold: float = 0.0,
    area_threshold: float | None = None,
    contrast_limits: Sequence[float] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    batch_size: int | None = None,
) -> Segmentation:
    """Segment a 2D grayscale or RGB(A) image into the given classes with SCLIP.

    ``classes``: ``"nucleus; cytoplasm"``, one class per line, or a list; synonyms separated by
    commas. ``background`` words compete in the softmax and map to label 0. Windows and merge
    follow the paper (short side ``short_side``, windows of the model's input size, stride half).
    ``progress(done, total)`` is called between batches; ``cancel()`` returning True raises
    :class:`~napari_sclip.errors.Cancelled` at the next batch.
    """
    steps = segment_steps(
        image, classes, background=background, model=model, attention=attention, short_side=short_side,
        window=window, stride=stride, logit_scale=logit_scale, threshold=threshold,
        area_threshold=area_threshold, contrast_limits=contrast_limits, batch_size=batch_size,
    )  # fmt: skip
    return run_steps(steps, progress, cancel)
