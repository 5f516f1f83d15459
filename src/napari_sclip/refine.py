"""PAMR, pixel-adaptive mask refinement (Araslanov & Roth 2020), as NACLIP and ResCLIP use it.

Placement (the official code's): on the raw cosine logits at the output resolution (after the
merge and the resize to the image's size), before the softmax; the guide image is the network's
input (CLIP-normalised, at inference size) bilinearly resized to the output size. For each pixel,
the 8 neighbours at each dilation (replicated at the image border) get an affinity from the local
colour contrast; ``steps`` times, every query's logit becomes the affinity-weighted mean of its
neighbours' logits.

:class:`Refined` evaluates this for any block of the image like :class:`~napari_sclip.tiling.Merge`
does for the merge: it computes tiles with a halo of ``steps x max(dilations)`` pixels (beyond which
nothing can reach a pixel), a few queries at a time, so memory stays bounded on images of any size.
Every operation is elementwise or a fixed-order sum, so a tile's pixels equal the whole image's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .geometry import Box
from .tiling import Merge, Taps, lerp

PAMR_BYTES = 1 << 28  # working set of one refined tile (logits and their shifted copies)
TILE = 512  # output pixels per tile side (plus the halo)


def _offsets(d: int) -> list[tuple[int, int]]:
    """The 8 neighbours at dilation ``d``, in the official kernel order (row by row)."""
    return [(dy * d, dx * d) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _shifted(t: torch.Tensor, dilations: Sequence[int], centre: bool = False) -> Iterator[torch.Tensor]:
    """``t`` (B, C, H, W) read at each neighbour offset (and at the centre once per dilation when
    ``centre``), with the border replicated."""
    h, w = t.shape[-2:]
    for d in dilations:
        padded = F.pad(t, (d, d, d, d), mode="replicate")
        for dy in (-d, 0, d):
            for dx in (-d, 0, d):
                if centre or (dy, dx) != (0, 0):
                    yield padded[..., d + dy : d + dy + h, d + dx : d + dx + w]


def _fold(terms: Iterator[torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Sum of the terms in order (a fixed order, so any tile sums like the whole), and their count."""
    total, n = None, 0
    for t in terms:
        total, n = (t.clone() if total is None else total + t), n + 1
    return total, n


def affinity(image: torch.Tensor, dilations: Sequence[int]) -> torch.Tensor:
    """The neighbour weights ``(B, 8 * len(dilations), H, W)`` of a guide image ``(B, C, H, W)``:
    a softmax over neighbours of the channel mean of ``-|I(x) - I(x+o)| / (1e-8 + 0.1 std)``, the
    std (unbiased) per channel over the 3x3 samples of every dilation (centre once per dilation)."""
    image = image.to(torch.promote_types(image.dtype, torch.float32))
    total, n = _fold(_shifted(image, dilations, centre=True))
    mean = total / n
    var, _ = _fold((s - mean) ** 2 for s in _shifted(image, dilations, centre=True))
    scale = 1e-8 + 0.1 * torch.sqrt(var / (n - 1))
    logits = []
    for s in _shifted(image, dilations):
        a = -(image - s).abs() / scale
        logits.append(_fold(a[:, c] for c in range(a.shape[1]))[0] / a.shape[1])
    top = logits[0]
    for a in logits[1:]:
        top = torch.maximum(top, a)
    exps = [torch.exp(a - top) for a in logits]
    norm, _ = _fold(iter(exps))
    return torch.stack([e / norm for e in exps], dim=1)


def pamr(image: torch.Tensor, logits: torch.Tensor, steps: int = 10, dilations: Sequence[int] = (8, 16),
         weights: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Refine ``logits`` (B, Q, H, W) with the guide ``image`` (B, C, H, W) (or precomputed ``weights``)."""
    weights = affinity(image, dilations) if weights is None else weights
    m = logits.to(torch.promote_types(logits.dtype, torch.float32))
    for _ in range(steps):
        m, _ = _fold(weights[:, p : p + 1] * s for p, s in enumerate(_shifted(m, dilations)))
    return m


def guide(pixels, image: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
    """The network input (a :class:`~napari_sclip.prepare.ModelInput`) bilinearly resized to the
    ``image`` size, at image rows ``[r0, r1)`` x cols ``[c0, c1)``: ``(3, r1-r0, c1-c0)``."""
    (h, w), (H, W) = pixels.size, image
    rt, ct = Taps.of(h, H, np.arange(*rows)), Taps.of(w, W, np.arange(*cols))
    y0, y1 = int(rt.i0.min()), int(rt.i1.max()) + 1
    x0, x1 = int(ct.i0.min()), int(ct.i1.max()) + 1
    region = pixels.crop(Box(y0, y1, x0, x1))
    return lerp(lerp(region, rt.shifted(y0), 1), ct.shifted(x0), 2)


def _spans(index: np.ndarray, tile: int) -> list[tuple[int, int, np.ndarray]]:
    """Split sorted pixel indices into tiles of at most ``tile`` pixels: ``(start, stop, members)``."""
    out, i = [], 0
    while i < len(index):
        start = int(index[i])
        j = int(np.searchsorted(index, start + tile))
        out.append((start, int(index[j - 1]) + 1, index[i:j]))
        i = j
    return out


class Refined:
    """The PAMR-refined merged logits of one image, evaluated at any rows x cols like a Merge."""

    def __init__(self, merge: Merge, pixels, steps: int, dilations: Sequence[int], budget: int | None = None,
                 tile: int | None = None) -> None:  # fmt: skip
        self.merge, self.pixels = merge, pixels
        self.steps, self.dilations = int(steps), tuple(int(d) for d in dilations)
        self.halo = self.steps * max(self.dilations)
        self.tile, self.budget = int(tile or TILE), int(budget or PAMR_BYTES)

    logits = property(lambda self: self.merge.logits)
    n_queries = property(lambda self: self.merge.n_queries)
    image = property(lambda self: self.merge.image)

    def at(self, rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
        """Refined logits ``(Q, len(rows), len(cols))`` at image rows x cols (sorted, ascending)."""
        rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        out = torch.empty(self.n_queries, len(rows), len(cols))
        r_at, c_at = 0, 0
        for r0, r1, rsel in _spans(rows, self.tile):
            c_at = 0
            for c0, c1, csel in _spans(cols, self.tile):
                out[:, r_at : r_at + len(rsel), c_at : c_at + len(csel)] = self._tile(r0, r1, rsel, c0, c1, csel)
                c_at += len(csel)
            r_at += len(rsel)
        return out

    def _tile(self, r0, r1, rsel, c0, c1, csel) -> torch.Tensor:
        H, W = self.image
        ra, rb = max(0, r0 - self.halo), min(H, r1 + self.halo)
        ca, cb = max(0, c0 - self.halo), min(W, c1 + self.halo)
        weights = affinity(guide(self.pixels, self.image, (ra, rb), (ca, cb))[None], self.dilations)
        rr, cc = torch.from_numpy(rsel - ra), torch.from_numpy(csel - ca)
        per_query = 16 * (rb - ra) * (cb - ca)  # the logits, a padded copy, the sum and a term
        chunk = max(1, self.budget // per_query)
        out = torch.empty(self.n_queries, len(rsel), len(csel))
        for q0 in range(0, self.n_queries, chunk):
            queries = np.arange(q0, min(q0 + chunk, self.n_queries))
            logits = self.merge.at(np.arange(ra, rb), np.arange(ca, cb), queries)
            refined = pamr(None, logits[None], self.steps, self.dilations, weights)[0]
            out[queries] = refined.index_select(1, rr).index_select(2, cc)
        return out


def refined(merge: Merge, options, pixels) -> Merge | Refined:
    """The logits a Scorer reads: the merge, refined when the run options ask for PAMR."""
    if getattr(options, "refine", "none") != "pamr":
        return merge
    return Refined(merge, pixels, options.pamr_steps, options.pamr_dilations)
