"""Segmentation scores for the semantic tests and the tiny-CLIP benchmark."""

from __future__ import annotations

import numpy as np


def confusion_matrix(pred: np.ndarray, target: np.ndarray, n_labels: int) -> np.ndarray:
    """(n_labels, n_labels) int64 counts, rows = target label, columns = predicted label.

    Labels are 0..n_labels-1 (0 = background / unassigned); ``pred`` and ``target`` share a shape.
    """
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch: pred {pred.shape} vs target {target.shape}")
    idx = target.astype(np.int64).ravel() * n_labels + pred.astype(np.int64).ravel()
    return np.bincount(idx, minlength=n_labels * n_labels).reshape(n_labels, n_labels)


def mean_iou(confusion: np.ndarray, ignore: tuple[int, ...] = (0,)) -> float:
    """Mean intersection-over-union over the labels that occur in the target, minus ``ignore``."""
    inter = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - inter
    keep = confusion.sum(1) > 0
    keep[list(ignore)] = False
    return float((inter[keep] / union[keep]).mean())


def pixel_accuracy(confusion: np.ndarray) -> float:
    """Fraction of pixels whose predicted label equals the target label."""
    return float(np.trace(confusion) / confusion.sum())


def concept_ids(
    labels: np.ndarray, class_names: list[str], concepts: tuple[str, ...]
) -> np.ndarray:
    """Map scene-local labels 1..K (``class_names[k-1]``) to global ids 1..len(concepts); 0 stays 0.

    Lets scores be accumulated over scenes with different vocabularies, per concept."""
    lut = np.array([0] + [concepts.index(c) + 1 for c in class_names], np.int64)
    return lut[labels]
