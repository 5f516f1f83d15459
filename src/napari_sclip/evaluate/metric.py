"""Intersection-over-union as mmsegmentation's ``IoUMetric`` computes it, without mmsegmentation.

Per image, over the pixels whose ground truth is not the ignore index, three per-class counts:
the intersection (prediction = truth = c), the predicted area and the ground-truth area. They are
summed over the whole set (dataset totals, not per-image means) and only then divided:

* ``IoU_c = intersection_c / union_c`` with ``union_c = predicted_c + truth_c - intersection_c``;
  NaN when ``union_c`` is 0, i.e. the class is absent from both the ground truth and the
  predictions of the whole set. A class predicted somewhere but never in the ground truth has
  IoU 0 and counts.
* ``mIoU`` = mean of the IoUs that are not NaN.
* ``Acc_c = intersection_c / truth_c`` (NaN when the class has no ground-truth pixel); ``mAcc`` =
  their mean without NaN; ``aAcc`` = total intersection / total ground-truth pixels (pixel accuracy).

A prediction outside ``0..C-1`` (a pixel left unassigned where the dataset has no background
class) counts in no class's predicted area, so it is simply wrong for its true class, as in mmseg.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Counts:
    """Per-class pixel counts of one image or a whole set: ``(C,)`` int64 each."""

    intersection: np.ndarray
    predicted: np.ndarray
    truth: np.ndarray

    @classmethod
    def zeros(cls, n_classes: int) -> Counts:
        z = np.zeros(n_classes, np.int64)
        return cls(z, z.copy(), z.copy())

    @classmethod
    def of(cls, pred: np.ndarray, truth: np.ndarray, n_classes: int, ignore_index: int = 255) -> Counts:
        """Counts of one prediction against its ground truth (same shape). Truth values must be
        ``0..C-1`` or ``ignore_index``; predictions outside ``0..C-1`` count as no class."""
        if pred.shape != truth.shape:
            raise ValueError(f"prediction {pred.shape} and ground truth {truth.shape} differ in shape")
        valid = truth != ignore_index
        t = truth[valid].astype(np.int64)
        if t.size and (t.min() < 0 or t.max() >= n_classes):
            raise ValueError(f"ground truth holds labels outside 0..{n_classes - 1} (and {ignore_index})")
        p = pred[valid].astype(np.int64)
        p[(p < 0) | (p >= n_classes)] = n_classes  # the "no class" column
        cells = np.bincount(t * (n_classes + 1) + p, minlength=n_classes * (n_classes + 1))
        confusion = cells.reshape(n_classes, n_classes + 1)
        return cls(np.diagonal(confusion).copy(), confusion[:, :n_classes].sum(0), confusion.sum(1))

    @property
    def union(self) -> np.ndarray:
        return self.predicted + self.truth - self.intersection

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.intersection + other.intersection, self.predicted + other.predicted,
                      self.truth + other.truth)  # fmt: skip

    def to_dict(self) -> dict[str, list[int]]:
        return {k: [int(v) for v in getattr(self, k)] for k in ("intersection", "predicted", "truth")}

    @classmethod
    def from_dict(cls, data: dict, n_classes: int) -> Counts:
        arrays = [np.asarray(data[k], np.int64) for k in ("intersection", "predicted", "truth")]
        if any(a.shape != (n_classes,) for a in arrays):
            raise ValueError(f"stored counts are not {n_classes} per class")
        return cls(*arrays)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else float("nan")


@dataclass(frozen=True)
class Scores:
    """The scores of summed :class:`Counts` (fractions 0..1; NaN where undefined)."""

    counts: Counts
    iou: np.ndarray
    accuracy: np.ndarray
    miou: float
    mean_accuracy: float
    pixel_accuracy: float

    @classmethod
    def of(cls, counts: Counts) -> Scores:
        iou = _ratio(counts.intersection, counts.union)
        acc = _ratio(counts.intersection, counts.truth)
        total = int(counts.truth.sum())
        pixel = float(counts.intersection.sum() / total) if total else float("nan")
        return cls(counts, iou, acc, _nanmean(iou), _nanmean(acc), pixel)
