"""PAMR: its definition, its placement after the merge, and tiles with a halo that equal the whole."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import torch

from napari_sclip import RunOptions, segment
from napari_sclip.geometry import window_grid
from napari_sclip.prepare import ModelInput, image_limits
from napari_sclip.refine import Refined, guide, pamr
from napari_sclip.source import ImageSource
from napari_sclip.tiling import Merge

from .test_modes_formula import pamr64


def test_pamr_matches_its_definition():
    g = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, 23, 31, generator=g, dtype=torch.float64)
    logits = torch.randn(1, 4, 23, 31, generator=g, dtype=torch.float64)
    for steps, dil in [(3, (2, 5)), (2, (8, 16))]:
        torch.testing.assert_close(pamr(image, logits, steps, dil), pamr64(image, logits, steps, dil), rtol=1e-12, atol=1e-12)


@pytest.fixture
def merged(rgb_image):
    """A merge of random window logits (7 queries) of the 70 x 90 image at inference size 56 x 72."""
    source = ImageSource.of(rgb_image)
    pixels = ModelInput(source, (56, 72), image_limits(source), (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    boxes = window_grid(56, 72, 32, 16)
    logits = torch.randn(len(boxes), 7, 4, 4, generator=torch.Generator().manual_seed(1))
    return Merge(logits, boxes, (56, 72), (70, 90), patch=8), pixels


def test_tiles_with_a_halo_equal_the_whole_image(merged):
    merge, pixels = merged
    rows, cols = np.arange(70), np.arange(90)
    whole = pamr(guide(pixels, (70, 90), (0, 70), (0, 90))[None], merge.at(rows, cols)[None], 3, (2, 3))[0]
    tiled = Refined(merge, pixels, 3, (2, 3), tile=32, budget=16 * 50 * 50 * 4)  # 32-px tiles, 4 queries at a time
    np.testing.assert_array_equal(tiled.at(rows, cols).numpy(), whole.numpy())
    block = tiled.at(np.arange(20, 53), np.arange(61, 90))  # any block: the same pixels
    np.testing.assert_array_equal(block.numpy(), whole[:, 20:53, 61:90].numpy())
    level = tiled.at(np.arange(0, 70, 3), np.arange(0, 90, 3))  # a pyramid level: refined at full size, subsampled
    np.testing.assert_array_equal(level.numpy(), whole[:, ::3, ::3].numpy())
    assert not torch.equal(whole, merge.at(rows, cols))


def test_pamr_runs_after_the_merge_and_in_memory_equals_lazy(tiny_model, rgb_image, monkeypatch):
    from napari_sclip import refine

    monkeypatch.setattr(refine, "TILE", 24)  # several tiles on this small image
    kw = dict(background="sky", model=tiny_model, short_side=None, refine="pamr", pamr_steps=3, pamr_dilations=(2, 4))
    eager = segment(rgb_image, "cat; dog, puppy", **kw)
    lazy = segment(da.from_array(rgb_image, chunks=(32, 32, 3)), "cat; dog, puppy", **kw)
    np.testing.assert_array_equal(np.asarray(lazy.labels), eager.labels)
    np.testing.assert_array_equal(np.asarray(lazy.probabilities), eager.probabilities)
    plain = segment(rgb_image, "cat; dog, puppy", **dict(kw, refine="none"))
    refined = pamr(guide(plain.pixels, (70, 90), (0, 70), (0, 90))[None],
                   plain.scorer.merge.at(np.arange(70), np.arange(90))[None], 3, (2, 4))[0]  # fmt: skip
    expect = torch.softmax(40 * refined, 0)
    np.testing.assert_allclose(eager.all_probabilities[1], expect[0].numpy(), atol=1e-6)  # cat: the first query
    assert RunOptions(refine="pamr").key("image") == RunOptions().key("image")  # the features stay valid


def test_a_rescore_can_turn_pamr_on_without_the_encoder(tiny_model, rgb_image):
    kw = dict(model=tiny_model, short_side=None, pamr_steps=3, pamr_dilations=(2, 4))
    plain = segment(rgb_image, "cat; dog", **kw)
    runs = tiny_model.image_batches_run
    refined = plain.rescore("cat; dog", refine="pamr")
    assert tiny_model.image_batches_run == runs and refined.options.refine == "pamr"
    np.testing.assert_array_equal(refined.labels, segment(rgb_image, "cat; dog", refine="pamr", **kw).labels)
    with pytest.raises(TypeError, match="only the score options"):
        plain.rescore("cat", short_side=100)
