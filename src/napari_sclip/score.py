"""Scoring: merged logits -> softmax over all queries -> max over each class's synonyms, per block.

A :class:`Scorer` evaluates any block of the image (a slice of rows x columns, at full resolution
or every ``step``-th pixel for a pyramid level) from the per-window token logits alone. The
eager path fills whole arrays block by block; the lazy path wraps the same blocks in dask.
"""

from __future__ import annotations

import functools
import math

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


class BlockScores:
    """A block's class scores: ``logits`` ``(K+1, h, w)`` (max over each class's queries; -inf
    for a label without queries) and, computed when first needed, ``lse`` ``(h, w)`` = logsumexp
    over all scaled queries (the softmax's denominator)."""

    def __init__(self, logits: torch.Tensor, queries: torch.Tensor, scale: float) -> None:
        self.logits, self._queries, self.scale = logits, queries, scale

    @functools.cached_property
    def lse(self) -> torch.Tensor:
        lse = torch.logsumexp(self._queries * self.scale, dim=0)
        self._queries = None
        return lse

    def probabilities(self) -> torch.Tensor:
        """Class probabilities ``(K+1, h, w)``: the max over synonyms of the softmax."""
        return torch.exp(self.logits * self.scale - self.lse)

    def decide(self, suppressed: frozenset[int] = frozenset(), with_p: bool = True):
        """``(best class, its probability or None)`` among the classes not ``suppressed``; the
        best class needs no exponential, so ``with_p=False`` is much cheaper."""
        logits = self.logits
        if suppressed:
            logits = logits.clone()
            logits[sorted(suppressed)] = -math.inf
        top, best = logits.max(0)
        return best, torch.exp(top * self.scale - self.lse) if with_p else None


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
        self._labels = torch.from_numpy(self.query_labels.astype(np.int64))

    @property
    def shape(self) -> tuple[int, int]:
        return self.merge.image

    def block(self, rows: slice, cols: slice, step: int = 1) -> BlockScores:
        """Scores of a block of pyramid level ``step`` (rows x cols in that level's pixels, which
        are the image's pixels ``step * index``; step 1 is the full resolution)."""
        r = np.arange(rows.start, rows.stop) * step
        c = np.arange(cols.start, cols.stop) * step
        logits = self.merge.at(r, c)
        return BlockScores(self._class_max(logits, frozenset()), logits, self.scale)

    def _class_max(self, logits: torch.Tensor, suppressed: frozenset[int]) -> torch.Tensor:
        """``(K+1, ...)`` max over each class's queries (one scatter-reduce: measured 2.5x faster
        than a loop over the classes); -inf for labels without queries or hidden."""
        shape = logits.shape[1:]
        flat = logits.reshape(logits.shape[0], -1)
        out = torch.full((self.n_classes + 1, flat.shape[1]), -math.inf)
        index = self._labels[:, None].expand_as(flat)
        out.scatter_reduce_(0, index, flat, reduce="amax", include_self=True)
        if suppressed:
            out[sorted(suppressed)] = -math.inf
        return out.reshape(self.n_classes + 1, *shape)

    def best_classes(self, rows: slice, cols: slice, step: int = 1, suppressed: frozenset[int] = frozenset()) -> torch.Tensor:
        """The best class at every pixel of a block (as :meth:`BlockScores.decide`), mostly decided
        at inference resolution: where one query beats every other class by a margin at all four
        canvas corners around a pixel, bilinear interpolation cannot change the winner; only the
        other pixels are interpolated (with the same operations, so the result is identical)."""
        if isinstance(self.merge, Refined):  # refined logits are no interpolation of the canvas
            return self.block(rows, cols, step).decide(suppressed, with_p=False)[0]
        r = np.arange(rows.start, rows.stop) * step
        c = np.arange(cols.start, cols.stop) * step
        canvas, rt, ct = self.merge.canvas_at(r, c)
        if not self.merge.resized:
            return self._class_max(canvas, suppressed).max(0)[1]
        top, arg = self._class_max(canvas, suppressed).topk(2, dim=0)
        labels = torch.from_numpy(self.query_labels)[:, None, None]
        rest = torch.where(arg[0][None] == labels, top[1][None], top[0][None])  # best other class
        margin = canvas - rest
        margin[torch.from_numpy(np.isin(self.query_labels, sorted(suppressed)))] = -math.inf
        nu, nv = canvas.shape[1:]
        down, right = np.minimum(np.arange(nu) + 1, nu - 1), np.minimum(np.arange(nv) + 1, nv - 1)
        corners = torch.minimum(margin, margin[:, down])
        corners = torch.minimum(corners, corners[:, :, right])  # min over the 2 x 2 corners of each cell
        best_margin, best_query = corners.max(0)
        winner = labels[:, 0, 0][best_query]
        sure = best_margin > 1e-5  # far above float rounding of the interpolation
        out = winner[rt.i0][:, ct.i0]
        unsure = ~sure[rt.i0][:, ct.i0]
        if bool(unsure.any()):
            ys, xs = (t.numpy() for t in unsure.nonzero(as_tuple=True))
            points = self.merge.at_points(canvas, rt, ct, ys, xs)
            out[unsure] = self._class_max(points, suppressed).max(0)[1]
        return out

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
