"""Sliding windows over the image tensor and the paper-exact merge of per-window logits.

Each window's token logits are bilinearly upsampled to the window and averaged over overlaps
(the grid itself is in :mod:`napari_sclip.geometry`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .geometry import Box, axis_starts, window_grid

__all__ = ["Box", "axis_starts", "crop_batches", "linear_taps", "merge_logits", "resize_rows", "window_grid"]


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


def linear_taps(n_in: int, n_out: int, start: int = 0, stop: int | None = None):
    """Source rows ``(i0, i1)`` and weight ``lam`` of PyTorch's 1-D bilinear resize
    (align_corners=False) for outputs ``[start, stop)``: ``out = lerp(x[i0], x[i1], lam)``."""
    stop = n_out if stop is None else stop
    dst = torch.arange(start, stop, dtype=torch.float64)
    src = ((dst + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    return i0, i1, (src - i0).to(torch.float32)


def resize_rows(canvas: torch.Tensor, out_size: tuple[int, int], row0: int, row1: int) -> torch.Tensor:
    """Rows ``[row0, row1)`` of ``F.interpolate(canvas, out_size, 'bilinear')``, computed alone.

    Rows are two-tap blends of canvas rows (the canvas is small); columns go through PyTorch's own
    kernel with the height unchanged, which maps them exactly as the full resize does. Lets the
    full-resolution logits be produced strip by strip, so ``(Q, H, W)`` never exists.
    """
    _, h, w = canvas.shape
    big_h, big_w = out_size
    if h == big_h:
        rows = canvas[:, row0:row1]
    else:
        i0, i1, lam = linear_taps(h, big_h, row0, row1)
        rows = torch.lerp(canvas[:, i0], canvas[:, i1], lam[None, :, None])
    if w == big_w:
        return rows
    return F.interpolate(rows[None], size=(rows.shape[1], big_w), mode="bilinear", align_corners=False)[0]
