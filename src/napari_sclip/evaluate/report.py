"""The results: a table for the terminal and a JSON document (fractions 0..1; null where NaN)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .metric import Scores

METRIC = (
    "mmseg IoUMetric: per-class intersection, union and ground-truth pixels summed over all images "
    "(ground truth 255 ignored) before dividing; a class counts in miou unless it is absent from both "
    "the ground truth and the predictions of the whole set; accuracy = pixel accuracy (aAcc), "
    "mean_accuracy = mean over classes with ground truth (mAcc)"
)


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.2f}"


def _num(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def table(scores: Scores, class_names: Sequence[str]) -> str:
    """Per-class IoU and accuracy (percent), pixel counts, then the summary line."""
    c = scores.counts
    width = max(5, *(len(n) for n in class_names))
    lines = [f"{'label':>5}  {'class':<{width}}  {'IoU %':>7}  {'Acc %':>7}  {'truth px':>12}  {'predicted px':>12}"]
    for i, name in enumerate(class_names):
        lines.append(f"{i:>5}  {name:<{width}}  {_pct(scores.iou[i]):>7}  {_pct(scores.accuracy[i]):>7}  "
                     f"{int(c.truth[i]):>12}  {int(c.predicted[i]):>12}")  # fmt: skip
    counted = int((~np.isnan(scores.iou)).sum())
    summary = f"mIoU {_pct(scores.miou)}   mAcc {_pct(scores.mean_accuracy)}   aAcc {_pct(scores.pixel_accuracy)}"
    if counted < len(class_names):
        summary += f"   ({counted} of {len(class_names)} classes counted: the others are in neither the masks nor the predictions)"
    return "\n".join([*lines, summary])


def per_class(scores: Scores, class_names: Sequence[str]) -> list[dict[str, Any]]:
    c = scores.counts
    return [
        {"label": i, "class": name, "iou": _num(scores.iou[i]), "accuracy": _num(scores.accuracy[i]),
         "intersection": int(c.intersection[i]), "union": int(c.union[i]), "truth_pixels": int(c.truth[i]),
         "predicted_pixels": int(c.predicted[i])}
        for i, name in enumerate(class_names)
    ]  # fmt: skip


def document(scores: Scores, class_names: Sequence[str], **sections: Any) -> dict[str, Any]:
    """The JSON document: the scores first, then the given sections (settings, model, dataset,
    counts, ...)."""
    return {
        "miou": _num(scores.miou), "accuracy": _num(scores.pixel_accuracy),
        "mean_accuracy": _num(scores.mean_accuracy), "metric": METRIC,
        "per_class": per_class(scores, class_names), **sections,
    }  # fmt: skip
