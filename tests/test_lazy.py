"""Lazy inputs and lazy results: dask / zarr / pyramid inputs read window by window, results
computed block by block on demand, identical to the in-memory path."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import torch

from napari_sclip import segment
from napari_sclip.prepare import ModelInput
from napari_sclip.source import ImageSource

VOCAB = "cat, kitten; dog; bird"
BG = "sky, wall"


class CountingArray:
    """An array-like that counts how often, and which pixels, are read."""

    def __init__(self, data: np.ndarray, forbid: bool = False):
        self.data, self.forbid = data, forbid
        self.shape, self.dtype, self.reads, self.pixels = data.shape, data.dtype, 0, 0

    def __getitem__(self, key):
        if self.forbid:
            raise AssertionError("this pyramid level must not be read")
        out = self.data[key]
        self.reads += 1
        self.pixels += out.size // (out.shape[-1] if out.ndim == 3 else 1)
        return out


@pytest.fixture
def big_image():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:300, 0:420]
    img = np.stack([(xx * 1.3) % 256, (yy * 2.1) % 256, ((xx - yy) * 0.9) % 256], axis=-1)
    return (img + rng.normal(0, 8, img.shape)).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("settings", [dict(), dict(threshold=0.4), dict(area_threshold=0.2), dict(short_side=100)])
def test_lazy_equals_in_memory_exactly(tiny_model, big_image, settings):
    kw = dict(dict(background=BG, model=tiny_model, short_side=None), **settings)
    eager = segment(big_image, VOCAB, **kw)
    lazy = segment(da.from_array(big_image, chunks=(128, 128, 3)), VOCAB, **kw)
    assert lazy.lazy and not eager.lazy and type(lazy.labels).__name__ == "Array"
    np.testing.assert_array_equal(np.asarray(lazy.labels), eager.labels)
    np.testing.assert_array_equal(np.asarray(lazy.probabilities), eager.probabilities)
    assert lazy.class_table().to_csv() == eager.class_table().to_csv()
    hidden_e, hidden_l = eager.relabel(suppressed=[2], threshold=0.1), lazy.relabel(suppressed=[2], threshold=0.1)
    np.testing.assert_array_equal(np.asarray(hidden_l.labels), hidden_e.labels)
    new_e, new_l = eager.rescore("tree; car, truck", "road"), lazy.rescore("tree; car, truck", "road")
    np.testing.assert_array_equal(np.asarray(new_l.labels), new_e.labels)


def test_lazy_region_computes_only_its_blocks(tiny_model, big_image, monkeypatch):
    from napari_sclip import score

    monkeypatch.setattr(score, "BLOCK_BYTES", 4 * 4 * 256 * 256)  # 256-px blocks: 2 x 2 of them
    seg = segment(big_image, VOCAB, model=tiny_model, short_side=None, lazy=True)
    assert seg.scorer.side == 256 and seg.labels.numblocks == (2, 2)
    calls = []
    original = seg.scorer.best_classes
    monkeypatch.setattr(seg.scorer, "best_classes", lambda *a, **k: calls.append(a) or original(*a, **k))
    region = np.asarray(seg.labels[10:20, 300:310])
    assert len(calls) == 1 and calls[0][0] == slice(0, 256) and calls[0][1] == slice(256, 420)
    full = np.asarray(seg.labels)
    np.testing.assert_array_equal(region, full[10:20, 300:310])
    np.testing.assert_array_equal(np.asarray(seg.labels_level(4)), full[::4, ::4])


def test_windows_are_read_once_each_when_the_input_is_not_held(tiny_model, big_image):
    counting = CountingArray(big_image)
    source = ImageSource.of([counting])
    pixels = ModelInput(source, source.shape, (0.0, 255.0), tiny_model.mean, tiny_model.std, budget=0)
    assert pixels.full is None
    from napari_sclip.tiling import window_grid

    boxes = window_grid(*source.shape, 32, 16)
    for box in boxes:
        pixels.crop(box)
    assert counting.reads == len(boxes) and counting.pixels == sum((b.y1 - b.y0) * (b.x1 - b.x0) for b in boxes)


def test_pyramid_reads_only_the_level_that_covers_the_inference_size(tiny_model, big_image):
    from skimage.transform import resize

    half = (resize(big_image, (150, 210), order=1, preserve_range=True)).astype(np.uint8)
    quarter = (resize(big_image, (75, 105), order=1, preserve_range=True)).astype(np.uint8)
    levels = [CountingArray(big_image, forbid=True), CountingArray(half, forbid=True), CountingArray(quarter)]
    seg = segment(levels, VOCAB, model=tiny_model, short_side=64, contrast_limits=(0, 255))
    assert seg.labels.shape == big_image.shape[:2] and levels[2].reads > 0
    direct = segment(quarter, VOCAB, model=tiny_model, short_side=64, contrast_limits=(0, 255))
    np.testing.assert_array_equal(seg.features.tensor(), direct.features.tensor())  # same input pixels


def test_zarr_and_tiff_stores_are_read_lazily(tiny_model, big_image, tmp_path):
    import tifffile
    import zarr

    path = tmp_path / "img.zarr"
    z = zarr.open_array(str(path), mode="w", shape=big_image.shape, chunks=(64, 64, 3), dtype=np.uint8)
    z[:] = big_image
    tif = tmp_path / "img.tif"
    tifffile.imwrite(tif, big_image, tile=(64, 64))
    ref = segment(big_image, VOCAB, model=tiny_model, short_side=None)
    for image in (zarr.open_array(str(path), mode="r"), tifffile.imread(tif, aszarr=True)):
        seg = segment(image, VOCAB, model=tiny_model, short_side=None)
        assert seg.lazy
        np.testing.assert_array_equal(np.asarray(seg.labels), ref.labels)


def test_narrow_image_in_bf16_matches_fp32():
    """An image one or two patches wide at inference size: bf16 must not give garbage (oneDNN's bf16
    convolution did on AMX CPUs; the patch embedding is a matrix product now)."""
    from napari_sclip import load_model
    from napari_sclip.testing import make_scene, tiny_clip_path

    scene = make_scene(5, (400, 12))
    results = {}
    for precision in ("fp32", "bf16"):
        model = load_model(None, tiny_clip_path(), device="cpu", precision=precision)
        results[precision] = segment(scene.image, scene.class_names, model=model, short_side=None, window=64, stride=32)
    assert np.isfinite(results["bf16"].probabilities).all()
    assert (results["bf16"].labels == results["fp32"].labels).mean() > 0.95


@pytest.mark.parametrize("size", [(300, 420), (111, 155), (517, 723)])
def test_model_input_per_window_equals_the_whole_resized_image(big_image, size):
    """A window computed alone from the source equals the same window of the whole resized image
    (bit for bit), which equals the official pipeline's F.interpolate (to float rounding)."""
    import torch
    import torch.nn.functional as F

    from napari_sclip.prepare import to_unit_range
    from napari_sclip.tiling import window_grid

    source = ImageSource.of(big_image)
    mean, std = (0.48, 0.45, 0.40), (0.26, 0.26, 0.27)
    whole = ModelInput(source, size, (0.0, 255.0), mean, std)
    alone = ModelInput(source, size, (0.0, 255.0), mean, std, budget=0)
    for box in window_grid(*size, 64, 48):
        torch.testing.assert_close(alone.crop(box), whole.crop(box), atol=0, rtol=0)
    unit = torch.from_numpy(to_unit_range(big_image, (0, 255))).permute(2, 0, 1)[None]
    ref = F.interpolate(unit, size=size, mode="bilinear", align_corners=False)[0]
    ref = (ref - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    torch.testing.assert_close(whole.full, ref, atol=1e-4, rtol=0)  # normalised values: 1e-5 of the 0..1 range


@pytest.mark.parametrize("short_side,hidden", [(64, ()), (64, (2,)), (200, ()), (None, (1,))])
def test_best_classes_shortcut_equals_full_interpolation(tiny_model, big_image, short_side, hidden):
    """The decision made mostly at inference resolution equals interpolating every pixel."""
    seg = segment(big_image, VOCAB, background=BG, model=tiny_model, short_side=short_side)
    scorer = seg.scorer
    for step in (1, 3):
        rows, cols = slice(0, -(-300 // step)), slice(0, -(-420 // step))
        full, _ = scorer.block(rows, cols, step).decide(frozenset(hidden))
        fast = scorer.best_classes(rows, cols, step, frozenset(hidden))
        assert torch.equal(fast, full)


def test_labels_only_interpolate_near_class_boundaries(tiny_model, big_image, monkeypatch):
    from napari_sclip import tiling

    seen = []
    original = tiling.Merge.at_points
    monkeypatch.setattr(tiling.Merge, "at_points", staticmethod(lambda *a: seen.append(len(a[3])) or original(*a)))
    segment(big_image, VOCAB, model=tiny_model, short_side=64)
    assert 0 < sum(seen) < 0.5 * big_image.shape[0] * big_image.shape[1]
