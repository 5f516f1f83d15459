"""From class scores to labels: user suppression, the paper's area rule, the probability threshold.

In-memory results keep the unsuppressed best class (:class:`Maps`) and rescore only the pixels a
change touches; lazy results decide block by block.

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


class Maps:
    """The unsuppressed decision of an in-memory result at full resolution: the best class, and its
    probability once something needs it (a threshold), computed then and kept."""

    def __init__(self, best: np.ndarray) -> None:
        self.best, self._best_p = best, None

    def best_p(self, scorer) -> np.ndarray:
        if self._best_p is None:
            out = np.empty(self.best.shape, np.float32)
            for rows, cols in scorer.blocks():
                out[rows, cols] = scorer.block(rows, cols).decide()[1].numpy()
            self._best_p = out
        return self._best_p


def block_labels(scorer, rows: slice, cols: slice, step: int, hidden: frozenset[int], threshold: float) -> np.ndarray:
    """Labels of one block of pyramid level ``step``, ``hidden`` classes excluded."""
    n = scorer.n_classes
    if threshold > 0:
        best, best_p = scorer.block(rows, cols, step).decide(hidden)
        return apply_threshold(best.numpy(), best_p.numpy(), threshold, n)
    return apply_threshold(scorer.best_classes(rows, cols, step, hidden).numpy(), None, 0.0, n)


def lazy_small_classes(scorer, suppressed: frozenset[int], area_threshold: float | None) -> frozenset[int]:
    """The area rule's classes for a lazy result: one pass over every block (only when set)."""
    if area_threshold is None:
        return frozenset()
    hist = np.zeros(scorer.n_classes + 1, np.int64)
    for rows, cols in scorer.blocks():
        best = scorer.best_classes(rows, cols, suppressed=suppressed)
        hist += np.bincount(best.numpy().ravel(), minlength=scorer.n_classes + 1)
    return small_classes(hist, scorer.n_classes, area_threshold) - suppressed


def eager_labels(scorer, maps: Maps, suppressed: frozenset[int], options) -> tuple[np.ndarray, frozenset[int]]:
    """Labels of an in-memory result from its cached decision: suppression, area rule, threshold."""
    n, need_p = scorer.n_classes, options.threshold > 0
    best, best_p = suppress(scorer, maps, suppressed, need_p)
    small = small_classes(np.bincount(best.ravel(), minlength=n + 1), n, options.area_threshold) - suppressed
    if small:
        best, best_p = suppress(scorer, maps, suppressed | small, need_p)
    return apply_threshold(best, best_p, options.threshold, n), small


def suppress(scorer, maps: Maps, hidden: frozenset[int], need_p: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The cached decision with ``hidden`` classes excluded (their pixels rescored block by block);
    the probabilities only when ``need_p``."""
    best = maps.best
    best_p = maps.best_p(scorer) if need_p else None
    hit = np.isin(best, sorted(hidden)) if hidden else None
    if hit is None or not hit.any():
        return best, best_p
    best, best_p = best.copy(), None if best_p is None else best_p.copy()
    for rows, cols in scorer.blocks():
        mask = hit[rows, cols]
        if mask.any():
            if need_p:
                b, p = scorer.block(rows, cols).decide(hidden)
                best_p[rows, cols][mask] = p.numpy()[mask]
            else:
                b = scorer.best_classes(rows, cols, suppressed=hidden)
            best[rows, cols][mask] = b.numpy()[mask]
    return best, best_p
