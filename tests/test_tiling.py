"""Window grid against the paper's rule, and the merge against a straightforward per-window loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_sclip.tiling import axis_starts, merge_logits, resize_rows, window_grid


@pytest.mark.parametrize("length", [1, 100, 223, 224, 225, 300, 336, 447, 448, 449, 1000])
@pytest.mark.parametrize("window,stride", [(224, 112), (64, 32), (224, 224), (100, 30)])
def test_axis_rule(length, window, stride):
    spans = axis_starts(length, window, stride)
    expected = 1 if length <= window else math.ceil((length - window) / stride) + 1
    assert len(spans) == expected
    if length <= window:  # a short axis is taken whole, no padding
        assert spans == [(0, length)]
        return
    for i, (s, e) in enumerate(spans[:-1]):
        assert (s, e) == (i * stride, i * stride + window)
    assert spans[-1] == (length - window, length)  # last window clamped to the border
    covered = np.zeros(length, bool)
    for s, e in spans:
        covered[s:e] = True
    assert covered.all()


def test_grid_is_rows_of_columns():
    boxes = window_grid(336, 448, 224, 112)
    assert len(boxes) == 2 * 3
    assert (boxes[0].y0, boxes[0].x0) == (0, 0)
    assert (boxes[-1].y1, boxes[-1].x1) == (336, 448)
    assert {b.y1 - b.y0 for b in boxes} == {224} and {b.x1 - b.x0 for b in boxes} == {224}


def _reference_merge(features, text, boxes, size):
    """One window at a time: upsample its logits to the window, pad into the canvas, divide by count."""
    q = text.shape[0]
    preds = torch.zeros(q, *size, dtype=torch.float64)
    count = torch.zeros(1, *size, dtype=torch.float64)
    for f, b in zip(features, boxes):
        logits = (f.double() @ text.double().T).permute(2, 0, 1)[None]
        up = F.interpolate(logits, size=(b.y1 - b.y0, b.x1 - b.x0), mode="bilinear", align_corners=False)[0]
        preds += F.pad(up, (b.x0, size[1] - b.x1, b.y0, size[0] - b.y1))
        count[:, b.y0 : b.y1, b.x0 : b.x1] += 1
    return preds / count


@pytest.mark.parametrize("size", [(70, 90), (32, 32), (20, 50)])
def test_merge_equals_per_window_reference(size):
    boxes = window_grid(*size, 32, 16)
    gh, gw = min(size[0], 32) // 8, min(size[1], 32) // 8
    g = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(len(boxes), gh, gw, 16, generator=g), dim=-1)
    text = F.normalize(torch.randn(5, 16, generator=g), dim=-1)
    ours = merge_logits(feats, text, boxes, size, batch=3)
    ref = _reference_merge(feats, text, boxes, size)
    torch.testing.assert_close(ours.double(), ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("src,dst", [((10, 14), (37, 23)), ((40, 40), (13, 17)), ((8, 8), (8, 8)), ((5, 9), (5, 30))])
def test_resize_rows_equals_interpolate(src, dst):
    canvas = torch.randn(3, *src)
    full = F.interpolate(canvas[None], size=dst, mode="bilinear", align_corners=False)[0]
    strips = torch.cat([resize_rows(canvas, dst, r, min(r + 4, dst[0])) for r in range(0, dst[0], 4)], dim=1)
    torch.testing.assert_close(strips, full, atol=1e-5, rtol=1e-5)
