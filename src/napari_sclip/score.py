"""Scoring: per-window token logits merged at image resolution, softmax, synonym max, per-pixel best.

Full-resolution logits ``(Q, H, W)`` never exist: the merged canvas (inference size) is resized
to the image strip by strip, and each strip is turned into class probabilities at once.
"""

from __future__ import annotations

import numpy as np
import torch

from .decide import class_probabilities, label_dtype
from .errors import NumericalError
from .steps import Progress, Steps
from .tiling import Box, merge_logits, resize_rows
from .vocabulary import Vocabulary

STRIP_BYTES = 1 << 25  # one strip of float32 logits stays near 32 MB


def strip_rows(n_queries: int, height: int, width: int) -> int:
    """Rows per strip so one strip of logits stays near :data:`STRIP_BYTES`."""
    return max(1, min(height, (STRIP_BYTES // 4) // max(1, n_queries * width)))


def strip_count(n_queries: int, height: int, width: int) -> int:
    """How many strips the merge of ``n_queries`` logits over ``height x width`` takes."""
    return -(-height // strip_rows(n_queries, height, width))


def probability_steps(
    features: torch.Tensor,
    text: torch.Tensor,
    vocab: Vocabulary,
    boxes: list[Box],
    inference: tuple[int, int],
    out_size: tuple[int, int],
    logit_scale: float,
    done: int,
    total: int,
) -> Steps[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(K+1, H, W)`` class probabilities at image size, with the per-pixel best channel and its
    probability. Yields progress after each strip (counted from ``done`` towards ``total``).

    Raises :class:`~napari_sclip.errors.NumericalError` if any probability is not finite."""
    canvas = merge_logits(features, text, boxes, inference)
    labels = torch.from_numpy(vocab.query_labels)
    n = len(vocab.classes)
    H, W = out_size
    probs = np.empty((n + 1, H, W), np.float32)
    best = np.empty((H, W), label_dtype(n))
    best_p = np.empty((H, W), np.float32)
    rows = strip_rows(canvas.shape[0], H, W)
    for i, r0 in enumerate(range(0, H, rows)):
        r1 = min(r0 + rows, H)
        p = class_probabilities(resize_rows(canvas, out_size, r0, r1), logit_scale, labels, n)
        if not bool(torch.isfinite(p).all()):
            raise NumericalError(
                "The model produced non-finite scores (NaN or infinity), so no result was made. This "
                "can happen at reduced precision: run again with precision 'fp32'."
            )
        top_p, top = p.max(0)
        probs[:, r0:r1] = p.numpy()
        best[r0:r1] = top.numpy()
        best_p[r0:r1] = top_p.numpy()
        yield Progress(done + i + 1, total, "merge")
    return probs, best, best_p
