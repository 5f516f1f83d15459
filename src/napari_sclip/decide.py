"""From logits to labels: softmax over all queries, max over synonyms, suppression, threshold.

Probabilities are stored as ``(K + 1, H, W)``: channel 0 is the background (max over the
background words, zeros when there are none), channel k the k-th class.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch


def class_probabilities(
    logits: torch.Tensor, logit_scale: float, query_labels: torch.Tensor, n_classes: int
) -> torch.Tensor:
    """``softmax(logit_scale * logits)`` over all queries, then the max over each label's queries."""
    p = torch.softmax(logits * logit_scale, dim=0)
    out = torch.empty((n_classes + 1, *p.shape[1:]), dtype=p.dtype)
    present = torch.zeros(n_classes + 1, dtype=torch.bool)
    single_labels, single_rows = [], []
    for label in torch.unique(query_labels).tolist():
        rows = (query_labels == label).nonzero().flatten().tolist()
        present[label] = True
        if len(rows) == 1:  # most classes have one phrase: gathered below in one copy
            single_labels.append(label)
            single_rows.append(rows[0])
        else:  # max over synonyms, in place (no stacked copies)
            out[label] = p[rows[0]]
            for r in rows[1:]:
                torch.maximum(out[label], p[r], out=out[label])
    if single_labels:
        out[single_labels] = p[single_rows]
    for label in (~present).nonzero().flatten().tolist():
        out[label].zero_()
    return out


def label_dtype(n_classes: int) -> np.dtype:
    return np.dtype(np.uint8) if n_classes <= 255 else np.dtype(np.uint16)


def suppress(
    probs: np.ndarray, best: np.ndarray, best_p: np.ndarray, suppressed: Iterable[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Argmax again as if the ``suppressed`` channels' maps were zero (only where they won)."""
    sup = sorted({int(s) for s in suppressed})
    if not sup:
        return best, best_p
    hit = np.isin(best, sup)
    if not hit.any():
        return best, best_p
    sub = probs[:, hit]
    sub[sup] = 0.0
    idx = sub.argmax(0)
    best, best_p = best.copy(), best_p.copy()
    best[hit] = idx
    best_p[hit] = sub[idx, np.arange(sub.shape[1])]
    return best, best_p


def small_classes(best: np.ndarray, n_classes: int, area_threshold: float) -> set[int]:
    """Foreground classes covering at most ``area_threshold`` of the predicted foreground (VOC rule)."""
    areas = np.bincount(best.ravel(), minlength=n_classes + 1)
    foreground = areas[1:].sum()
    return {c for c in range(1, n_classes + 1) if areas[c] <= area_threshold * foreground}


def decide_labels(
    probs: np.ndarray,
    best: np.ndarray,
    best_p: np.ndarray,
    threshold: float = 0.0,
    area_threshold: float | None = None,
    suppressed: Iterable[int] = (),
) -> np.ndarray:
    """Labels from cached argmax: user suppression, then the area rule, then the threshold."""
    n_classes = probs.shape[0] - 1
    sup = set(suppressed)
    b, bp = suppress(probs, best, best_p, sup)
    if area_threshold is not None:
        extra = small_classes(b, n_classes, area_threshold) - sup
        if extra:
            b, bp = suppress(probs, b, bp, sup | extra)
    labels = b.astype(label_dtype(n_classes), copy=True)
    if threshold > 0:
        labels[bp < threshold] = 0
    return labels
