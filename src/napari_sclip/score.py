"""Scoring: merged logits -> softmax over all queries -> max over each class's synonyms, per block.

A :class:`Scorer` evaluates any block of the image (a slice of rows x columns, at full resolution
or every ``step``-th pixel for a pyramid level) from the per-window token logits alone. The
eager path fills whole arrays block by block; the lazy path wraps the same blocks in dask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .errors import NumericalError
from .refine import Refined, refined
from .tiling import Merge

BLOCK_BYTES = 1 << 26  # logits of one block stay near 64 MB


def block_size(n_queries: int) -> int:
    """Side of the square image blocks scored at once (a multiple of 256, at least 256)."""
    side = int(math.sqrt(BLOCK_BYTES / (4 * max(1, n_queries))))
    return max(256, side // 256 * 256)


def block_starts(length: int, side: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the blocks along one axis."""
    return [(s, min(s + side, length)) for s in range(0, length, side)]


@dataclass(frozen=True)
class BlockScores:
    """A block's class scores: ``logits`` ``(K+1, h, w)`` (max over each class's queries; -inf
    for a label without queries) and ``lse`` ``(h, w)`` = logsumexp over all scaled queries."""

    logits: torch.Tensor
    lse: torch.Tensor
    scale: float

    def probabilities(self) -> torch.Tensor:
        """Class probabilities ``(K+1, h, w)``: the max over synonyms of the softmax."""
        return torch.exp(self.logits * self.scale - self.lse)

    def decide(self, suppressed: frozenset[int] = frozenset()) -> tuple[torch.Tensor, torch.Tensor]:
        """``(best class, its probability)`` among the classes not ``suppressed``."""
        logits = self.logits
        if suppressed:
            logits = logits.clone()
            logits[sorted(suppressed)] = -math.inf
        top, best = logits.max(0)
        return best, torch.exp(top * self.scale - self.lse)


class Scorer:
    """Class scores of one image for one vocabulary, at any block."""

    def __init__(self, merge: Merge | Refined, query_labels: np.ndarray, n_classes: int, logit_scale: float) -> None:
        if not bool(torch.isfinite(merge.logits).all()):
            raise NumericalError(
                "The model produced non-finite scores (NaN or infinity), so no result was made. This "
                "can happen at reduced precision: run again with precision 'fp32'."
            )
        self.merge, self.n_classes, self.scale = merge, n_classes, float(logit_scale)
        self.query_labels = np.asarray(query_labels)
        self.side = block_size(merge.n_queries)
        self.groups = [np.flatnonzero(self.query_labels == c) for c in range(n_classes + 1)]

    @property
    def shape(self) -> tuple[int, int]:
        return self.merge.image

    def block(self, rows: slice, cols: slice, step: int = 1) -> BlockScores:
        """Scores of a block of pyramid level ``step`` (rows x cols in that level's pixels, which
        are the image's pixels ``step * index``; step 1 is the full resolution)."""
        r = np.arange(rows.start, rows.stop) * step
        c = np.arange(cols.start, cols.stop) * step
        logits = self.merge.at(r, c)
        lse = torch.logsumexp(logits * self.scale, dim=0)
        out = torch.full((self.n_classes + 1, len(r), len(c)), -math.inf)
        for label, group in enumerate(self.groups):
            if len(group) == 1:
                out[label] = logits[int(group[0])]
            elif len(group) > 1:
                out[label] = logits[torch.from_numpy(group)].amax(0)
        return BlockScores(out, lse, self.scale)

    def blocks(self, step: int = 1):
        """Every block of the image (row-major): yields ``(rows, cols)`` slices in pixels of the
        level ``step`` (each block covers ``side`` output pixels a side)."""
        H, W = self.shape
        h, w = -(-H // step), -(-W // step)
        for r0, r1 in block_starts(h, self.side):
            for c0, c1 in block_starts(w, self.side):
                yield slice(r0, r1), slice(c0, c1)


def image_scorer(logits: torch.Tensor, boxes, pixels, image: tuple[int, int], patch: int, vocabulary,
                 options) -> Scorer:  # fmt: skip
    """The Scorer of per-window token logits ``(n, Q, gh, gw)`` over ``boxes``: the paper's merge to
    the ``image`` size, refined by PAMR when the run ``options`` ask, scored at their logit scale."""
    merge = refined(Merge(logits, boxes, pixels.size, image, patch), options, pixels)
    return Scorer(merge, vocabulary.query_labels, len(vocabulary.classes), options.logit_scale)
