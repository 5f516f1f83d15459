"""Sliding windows over the image tensor and the paper-exact merge of per-window logits.

Each window's token logits are bilinearly upsampled to the window and averaged over overlaps
(the grid itself is in :mod:`napari_sclip.geometry`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .geometry import Box, axis_starts, window_grid

__all__ = ["Box", "axis_starts", "crop_batches", "interpolation_matrix", "merge_logits", "resize_rows", "window_grid"]


def crop_batches(pixels: torch.Tensor, boxes: Sequence[Box], batch: int):
    """Yield ``(index_of_first, (B, 3, h, w) tensor)``; all windows of a grid share one size."""
    for start in range(0, len(boxes), batch):
        chunk = boxes[start : start + batch]
        yield start, torch.stack([pixels[:, b.y0 : b.y1, b.x0 : b.x1] for b in chunk])


def merge_logits(
    features: torch.Tensor,
    text: torch.Tensor,
    boxes: Sequence[Box],
    size: tuple[int, int],
    batch: int = 16,
) -> torch.Tensor:
    """Mean over windows of upsampled cosine logits: ``(Q, h, w)`` float32 at inference size.

    ``features`` is ``(n, gh, gw, D)`` normalised patch features, ``text`` ``(Q, D)`` normalised.
    """
    q = text.shape[0]
    canvas = torch.zeros(q, *size, dtype=torch.float32)
    count = torch.zeros(1, *size, dtype=torch.float32)
    text = text.to(torch.float32)
    for start in range(0, len(boxes), batch):
        chunk = boxes[start : start + batch]
        tokens = features[start : start + len(chunk)].to(torch.float32) @ text.T  # (B, gh, gw, Q)
        b0 = chunk[0]
        up = F.interpolate(
            tokens.permute(0, 3, 1, 2), size=(b0.y1 - b0.y0, b0.x1 - b0.x0), mode="bilinear", align_corners=False
        )
        for b, tile in zip(chunk, up, strict=True):
            canvas[:, b.y0 : b.y1, b.x0 : b.x1] += tile
            count[:, b.y0 : b.y1, b.x0 : b.x1] += 1
    if bool((count == 0).any()):  # pragma: no cover - the grid rule covers every pixel
        raise RuntimeError("window grid left pixels uncovered")
    return canvas / count


def interpolation_matrix(n_in: int, n_out: int, start: int = 0, stop: int | None = None) -> torch.Tensor:
    """Rows ``[start, stop)`` of the ``(n_out, n_in)`` matrix of PyTorch's 1-D bilinear resize
    (align_corners=False): two taps per output, so a resize is two small matrix products."""
    stop = n_out if stop is None else stop
    scale = n_in / n_out
    dst = torch.arange(start, stop, dtype=torch.float64)
    src = ((dst + 0.5) * scale - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    lam = src - i0
    m = torch.zeros(stop - start, n_in, dtype=torch.float64)
    rows = torch.arange(stop - start)
    m.index_put_((rows, i0), 1 - lam, accumulate=True)
    m.index_put_((rows, i1), lam, accumulate=True)
    return m.to(torch.float32)


def resize_rows(canvas: torch.Tensor, out_size: tuple[int, int], row0: int, row1: int) -> torch.Tensor:
    """Rows ``[row0, row1)`` of ``F.interpolate(canvas, out_size, 'bilinear')``, computed alone.

    Lets the full-resolution logits be produced strip by strip, so ``(Q, H, W)`` never exists.
    """
    q, h, w = canvas.shape
    big_h, big_w = out_size
    rows = canvas[:, row0:row1] if h == big_h else interpolation_matrix(h, big_h, row0, row1) @ canvas
    return rows if w == big_w else rows @ interpolation_matrix(w, big_w).T
