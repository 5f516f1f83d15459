"""Window grid against the paper's rule, and the merge against a straightforward per-window loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_sclip.tiling import Merge, Taps, axis_starts, lerp, window_grid, window_logits

from .conftest import reference_merge


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


@pytest.mark.parametrize("size,image", [((70, 90), (70, 90)), ((32, 32), (45, 61)), ((20, 50), (13, 97)),
                                        ((64, 48), (200, 150))])  # fmt: skip
def test_merge_equals_the_per_window_reference(size, image):
    """Merge.at over the whole image = the paper's per-window merge, then F.interpolate to the image."""
    boxes = window_grid(*size, 32, 16)
    gh, gw = min(size[0], 32) // 8, min(size[1], 32) // 8
    g = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(len(boxes), gh, gw, 16, generator=g), dim=-1)
    text = F.normalize(torch.randn(5, 16, generator=g), dim=-1)
    merge = Merge(window_logits(feats, text), boxes, size, image)
    ours = merge.at(np.arange(image[0]), np.arange(image[1]))
    ref = reference_merge(feats, text, boxes, size)
    ref = F.interpolate(ref[None], size=image, mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(ours.double(), ref, atol=2e-6, rtol=0)


def test_blocks_and_levels_are_exactly_the_whole():
    """Any block, and every step-th pixel, equals the same pixels of the whole: bit for bit."""
    size, image = (80, 112), (301, 419)
    boxes = window_grid(*size, 32, 16)
    g = torch.Generator().manual_seed(1)
    feats = F.normalize(torch.randn(len(boxes), 4, 4, 16, generator=g), dim=-1)
    merge = Merge(window_logits(feats, F.normalize(torch.randn(7, 16, generator=g), dim=-1)), boxes, size, image)
    whole = merge.at(np.arange(image[0]), np.arange(image[1]))
    for r0, r1, c0, c1 in [(0, 1, 0, 1), (17, 90, 200, 419), (300, 301, 0, 419), (5, 6, 7, 8)]:
        torch.testing.assert_close(merge.at(np.arange(r0, r1), np.arange(c0, c1)), whole[:, r0:r1, c0:c1], atol=0, rtol=0)
    for step in (2, 3, 8):
        torch.testing.assert_close(merge.at(np.arange(0, image[0], step), np.arange(0, image[1], step)),
                                   whole[:, ::step, ::step], atol=0, rtol=0)  # fmt: skip


@pytest.mark.parametrize("src,dst", [((10, 14), (37, 23)), ((40, 40), (13, 17)), ((8, 8), (8, 8)), ((5, 9), (5, 30))])
def test_taps_equal_interpolate(src, dst):
    canvas = torch.randn(3, *src)
    full = F.interpolate(canvas[None], size=dst, mode="bilinear", align_corners=False)[0]
    ours = lerp(lerp(canvas, Taps.of(src[0], dst[0], np.arange(dst[0])), 1), Taps.of(src[1], dst[1], np.arange(dst[1])), 2)
    torch.testing.assert_close(ours, full, atol=1e-5, rtol=1e-5)
