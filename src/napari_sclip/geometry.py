"""Sizes and window grids: pure arithmetic, importable without torch (the widget's hints use it).

Grid rule (method.md §3): per axis ``max(H - win + stride - 1, 0) // stride + 1`` windows starting
at ``i * stride``, the last clamped to end at the border; an axis shorter than a window is taken whole.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """One window, ``[y0, y1) x [x0, x1)`` in inference-size pixels."""

    y0: int
    y1: int
    x0: int
    x1: int


def inference_size(height: int, width: int, short_side: int | None, long_side: int | None = None) -> tuple[int, int]:
    """Size after mmcv's keep-ratio rescale: the scale that brings the short side to ``short_side``
    or the long side to ``long_side``, whichever is smaller (a None limit does not count; both None
    keeps the size), sizes rounded as mmcv does."""
    limits = [(s, n) for s, n in ((short_side, min(height, width)), (long_side, max(height, width))) if s is not None]
    if not limits:
        return height, width
    if any(s <= 0 for s, _ in limits):
        raise ValueError(f"short_side and long_side must be positive numbers of pixels or None, not {short_side}, {long_side}.")
    scale = min(s / n for s, n in limits)
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def axis_starts(length: int, window: int, stride: int) -> list[tuple[int, int]]:
    """``(start, end)`` of the windows along one axis."""
    if window <= 0 or stride <= 0:
        raise ValueError(f"window and stride must be positive, got {window} and {stride}.")
    count = max(length - window + stride - 1, 0) // stride + 1
    spans = []
    for i in range(count):
        end = min(i * stride + window, length)
        spans.append((max(end - window, 0), end))
    return spans


def window_grid(height: int, width: int, window: int, stride: int) -> list[Box]:
    """All windows over an image of ``height x width``, row by row."""
    return [
        Box(y0, y1, x0, x1)
        for y0, y1 in axis_starts(height, window, stride)
        for x0, x1 in axis_starts(width, window, stride)
    ]
