"""Sliding windows, 1-D bilinear taps, and the paper-exact merge of per-window logits for any region.

The merge (each window's token logits bilinearly upsampled to the window, averaged over the
windows that overlap, bilinearly resized to the image) is evaluated for any set of image rows x
columns from the windows that cover them. Every step is a gather or a single IEEE operation per
element, so a pixel's value never depends on the block it is computed in: blockwise (lazy) and
whole-image results are identical, and ``(Q, H, W)`` logits never exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .geometry import Box, axis_starts, window_grid

__all__ = ["Box", "Merge", "Taps", "axis_starts", "crop_batches", "lerp", "window_grid", "window_logits"]


@dataclass(frozen=True)
class Taps:
    """PyTorch's 1-D bilinear resampling (align_corners=False) at chosen output indices:
    ``out[j] = x[i0[j]] + (x[i1[j]] - x[i0[j]]) * lam[j]``."""

    i0: np.ndarray
    i1: np.ndarray
    lam: np.ndarray  # float32

    @classmethod
    def of(cls, n_in: int, n_out: int, dst: np.ndarray) -> Taps:
        dst = np.asarray(dst, np.int64)
        if n_in == n_out:
            return cls(dst, dst, np.zeros(len(dst), np.float32))
        scale = np.float32(n_in) / np.float32(n_out)  # in float32, as PyTorch computes it
        src = np.maximum(scale * (dst.astype(np.float32) + np.float32(0.5)) - np.float32(0.5), np.float32(0))
        i0 = np.minimum(src.astype(np.int64), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return cls(i0, i1, (src - i0.astype(np.float32)).astype(np.float32))

    def shifted(self, offset: int) -> Taps:
        return Taps(self.i0 - offset, self.i1 - offset, self.lam)


def lerp(x: torch.Tensor, taps: Taps, dim: int) -> torch.Tensor:
    """Resample ``x`` along ``dim`` with ``taps`` (three separate IEEE operations per element)."""
    a = x.index_select(dim, torch.from_numpy(taps.i0))
    b = x.index_select(dim, torch.from_numpy(taps.i1))
    shape = [1] * x.ndim
    shape[dim] = len(taps.lam)
    return a + (b - a) * torch.from_numpy(taps.lam).reshape(shape)


def crop_batches(pixels, boxes: Sequence[Box], batch: int):
    """Yield ``(index_of_first, (B, 3, h, w) tensor)``; ``pixels.crop(box)`` gives one window."""
    for start in range(0, len(boxes), batch):
        chunk = boxes[start : start + batch]
        yield start, torch.stack([pixels.crop(b) for b in chunk])


def window_logits(features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Cosine logits ``(B, Q, gh, gw)`` of normalised patch features ``(B, gh, gw, D)`` against
    normalised text ``(Q, D)``, one window at a time (a window's logits never depend on its batch)."""
    text = text.to(torch.float32)
    return torch.stack([(f.to(torch.float32) @ text.T).permute(2, 0, 1) for f in features])


class Merge:
    """The merged logits of one image, evaluated on demand at any image rows x columns.

    ``logits`` are the per-window token logits ``(n, Q, gh, gw)`` of the ``boxes`` (row-major grid
    at inference size ``inference``); ``image`` is the output size. A window whose grid times the
    ``patch`` size exceeds it was zero-padded to whole patches, centred (:meth:`Mode.grid`): its
    logits are upsampled to the padded size and cut back.
    """

    def __init__(self, logits: torch.Tensor, boxes: Sequence[Box], inference: tuple[int, int], image: tuple[int, int],
                 patch: int | None = None):  # fmt: skip
        self.logits, self.boxes, self.patch = logits, list(boxes), patch
        self.inference, self.image = tuple(inference), tuple(image)
        self.rows = sorted({(b.y0, b.y1) for b in self.boxes})
        self.cols = sorted({(b.x0, b.x1) for b in self.boxes})

    @property
    def n_queries(self) -> int:
        return int(self.logits.shape[1])

    @property
    def resized(self) -> bool:
        """Whether the image size differs from the inference size (a final bilinear resize)."""
        return self.inference != self.image

    def canvas_at(self, rows: np.ndarray, cols: np.ndarray, queries: np.ndarray | None = None) -> tuple[torch.Tensor, Taps, Taps]:
        """The merged canvas at the inference-size rows x cols the image rows x cols need, and the
        taps (as positions in that canvas) that resize it to them; of all queries or of ``queries``."""
        (h, w), (H, W) = self.inference, self.image
        rt, ct = Taps.of(h, H, rows), Taps.of(w, W, cols)
        u = np.unique(np.concatenate([rt.i0, rt.i1]))
        v = np.unique(np.concatenate([ct.i0, ct.i1]))
        rt = Taps(np.searchsorted(u, rt.i0), np.searchsorted(u, rt.i1), rt.lam)
        ct = Taps(np.searchsorted(v, ct.i0), np.searchsorted(v, ct.i1), ct.lam)
        return self._canvas(u, v, None if queries is None else torch.as_tensor(queries, dtype=torch.long)), rt, ct

    def at(self, rows: np.ndarray, cols: np.ndarray, queries: np.ndarray | None = None) -> torch.Tensor:
        """Logits ``(Q, len(rows), len(cols))`` at image rows x cols (sorted, ascending), of all
        queries or of the ``queries`` given (indices)."""
        canvas, rt, ct = self.canvas_at(rows, cols, queries)
        if not self.resized:
            return canvas
        return lerp(lerp(canvas, ct, 2), rt, 1)  # columns first: the row gathers copy whole rows

    @staticmethod
    def at_points(canvas: torch.Tensor, rt: Taps, ct: Taps, ys: np.ndarray, xs: np.ndarray) -> torch.Tensor:
        """``at`` for single pixels (output row ``ys[i]``, column ``xs[i]``): the four canvas corners
        of each, blended with the same operations in the same order as the block's (columns, then
        rows), so each value is bit-identical to the block's."""
        q, _, n = canvas.shape
        flat = canvas.reshape(q, -1)
        r0, r1, c0, c1 = rt.i0[ys] * n, rt.i1[ys] * n, ct.i0[xs], ct.i1[xs]
        corner = lambda r, c: flat.index_select(1, torch.from_numpy(r + c))  # noqa: E731
        lc, lr = torch.from_numpy(ct.lam[xs]), torch.from_numpy(rt.lam[ys])
        a0, a1, b0, b1 = corner(r0, c0), corner(r0, c1), corner(r1, c0), corner(r1, c1)
        a, b = a0 + (a1 - a0) * lc, b0 + (b1 - b0) * lc
        return a + (b - a) * lr

    def _taps(self, grid: int, size: int, dst: np.ndarray) -> Taps:
        """A window's upsampling taps along one axis at its pixels ``dst`` (0-based in the window)."""
        full = grid * (self.patch or 0)
        if full > size:  # padded to whole patches: upsample to the padded size, cut back
            return Taps.of(grid, full, dst + (full - size) // 2)
        return Taps.of(grid, size, dst)

    def _canvas(self, u: np.ndarray, v: np.ndarray, queries: torch.Tensor | None) -> torch.Tensor:
        """The mean of upsampled window logits at inference-size rows ``u`` x cols ``v``."""
        q = self.n_queries if queries is None else len(queries)
        acc = torch.zeros(q, len(u), len(v))
        count = torch.zeros(1, len(u), len(v))
        gh, gw = self.logits.shape[-2:]
        n_cols = len(self.cols)
        for ri, (y0, y1) in enumerate(self.rows):
            a, b = np.searchsorted(u, y0), np.searchsorted(u, y1)
            if a == b:
                continue
            rtaps = self._taps(gh, y1 - y0, u[a:b] - y0)
            for ci, (x0, x1) in enumerate(self.cols):
                c, d = np.searchsorted(v, x0), np.searchsorted(v, x1)
                if c == d:
                    continue
                window = self.logits[ri * n_cols + ci]
                window = window if queries is None else window.index_select(0, queries)
                tile = lerp(lerp(window, self._taps(gw, x1 - x0, v[c:d] - x0), 2), rtaps, 1)
                acc[:, a:b, c:d] += tile
                count[:, a:b, c:d] += 1
        if bool((count == 0).any()):  # pragma: no cover - the grid rule covers every pixel
            raise RuntimeError("window grid left pixels uncovered")
        return acc / count
