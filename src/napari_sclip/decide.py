"""From class scores to labels: user suppression, the paper's area rule, the probability threshold.

Label 0 is the background (the background words won, or the best class is below the threshold),
label k the k-th class.
"""

from __future__ import annotations

import numpy as np


def label_dtype(n_classes: int) -> np.dtype:
    return np.dtype(np.uint8) if n_classes <= 255 else np.dtype(np.uint16)


def small_classes(histogram: np.ndarray, n_classes: int, area_threshold: float | None) -> frozenset[int]:
    """Foreground classes covering at most ``area_threshold`` of the predicted foreground (VOC rule),
    from the histogram of the best classes."""
    if area_threshold is None:
        return frozenset()
    areas = np.zeros(n_classes + 1, np.int64)
    areas[: min(len(histogram), n_classes + 1)] = histogram[: n_classes + 1]
    foreground = areas[1:].sum()
    return frozenset(c for c in range(1, n_classes + 1) if areas[c] <= area_threshold * foreground)


def apply_threshold(best: np.ndarray, best_p: np.ndarray | None, threshold: float, n_classes: int) -> np.ndarray:
    """Labels: the best class, or 0 where its probability is below ``threshold`` (``best_p`` is only
    read when the threshold is above 0)."""
    labels = best.astype(label_dtype(n_classes), copy=True)
    if threshold > 0:
        labels[best_p < threshold] = 0
    return labels
