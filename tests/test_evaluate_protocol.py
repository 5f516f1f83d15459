"""Each method's published settings per dataset, layered as data, and the per-image resize rules."""

from __future__ import annotations

from dataclasses import fields

import pytest

from napari_sclip import RunOptions
from napari_sclip.attention import MODES
from napari_sclip.evaluate import dataset_names, load_dataset, method_names
from napari_sclip.evaluate.protocol import build, image_options, rescale_size

NATURAL = ["voc21", "context60", "coco-object", "voc20", "cityscapes", "context59", "ade20k", "coco-stuff164k"]


def _available(method: str) -> bool:
    from napari_sclip.evaluate.datasets import load_methods

    entry = load_methods()[method]
    known = {f.name for f in fields(RunOptions)}
    extra = set(entry) - known - {"title", "source", "settings_of", "notes", "resize", "window"}
    return entry["attention"] in MODES and not extra


def _protocol(dataset: str, method: str, **explicit):
    if not _available(method):
        pytest.skip(f"{method} is not in this version of the engine")
    return build(method, load_dataset(dataset), explicit)


def test_sclip_voc21_is_the_papers_voc_setting():
    p = _protocol("voc21", "sclip")
    o = p.options
    assert (o.attention, o.window, o.stride, o.logit_scale, o.threshold, o.area_threshold) == ("sclip", 224, 112, 65, 0.1, 0.1)
    assert p.resize == (2048, 336) and not p.whole_image
    opts, size, exact = image_options(p, 375, 500)  # a VOC image: 500 x 375
    assert (opts.short_side, size, exact) == (336, (336, 448), True)


def test_method_and_dataset_layers():
    assert _protocol("context60", "sclip").options.logit_scale == 50
    assert _protocol("coco-stuff164k", "sclip").resize == (2048, 448)
    assert _protocol("coco-stuff164k", "naclip").resize == (2048, 336)
    city = _protocol("cityscapes", "clearclip")
    assert (city.resize, city.options.window, city.options.stride, city.options.logit_scale) == ((2048, 448), 224, 224, 50)
    assert image_options(city, 1024, 2048)[1] == (448, 896)
    assert _protocol("cityscapes", "sclip").resize == (2048, 560)
    vanilla = _protocol("voc21", "vanilla")  # the SCLIP paper's baseline runs under SCLIP's settings
    assert vanilla.options.attention == "vanilla" and vanilla.options.logit_scale == 65
    rs = _protocol("potsdam", "sclip")
    assert (rs.resize, rs.options.window, rs.options.stride, rs.options.logit_scale, rs.options.threshold) == (
        (448, 448), 224, 112, 50, 0.1)  # fmt: skip
    assert image_options(rs, 512, 512)[1] == (448, 448) and image_options(rs, 1080, 1280)[1:] == ((378, 448), True)


def test_whole_image_and_explicit_options_win():
    p = _protocol("voc21", "naclip")
    assert p.whole_image and p.options.window is None
    opts, size, _ = image_options(p, 375, 500)
    assert (opts.window, opts.stride, size) == (448, 448, (336, 448))
    mine = _protocol("voc21", "naclip", window=64, short_side=None, threshold=0.3)
    assert not mine.whole_image and mine.resize is None
    assert (mine.options.window, mine.options.short_side, mine.options.threshold) == (64, None, 0.3)
    assert image_options(mine, 70, 90)[1] == (70, 90)


def test_rescale_like_mmcv():
    assert rescale_size(375, 500, (2048, 336)) == (336, 448)
    assert rescale_size(3000, 4000, (448, 448)) == (336, 448)
    assert rescale_size(100, 2000, (2048, 336)) == (102, 2048)  # the long-side cap limits
    p = _protocol("voc21", "sclip")
    assert image_options(p, 100, 2000)[1:] == ((102, 2040), False)  # the engine only knows the short side
    assert rescale_size(200, 200, (2048, 336)) == (336, 336)  # small images are enlarged


def test_every_dataset_with_every_method_builds_or_says_what_is_missing():
    for dataset in dataset_names():
        for method in method_names():
            if _available(method):
                p = build(method, load_dataset(dataset), {})
                assert p.resize is not None and p.options.attention
            else:
                with pytest.raises(ValueError, match=method.split("-")[0] + "|refine"):
                    build(method, load_dataset(dataset), {})


def test_resclip_internals_and_segearth_upsampler_are_noted():
    from napari_sclip.evaluate.protocol import method_settings

    _, notes = method_settings("resclip", load_dataset("voc21"))
    assert any("temp_thd 0.5" in n for n in notes)
    _, notes = method_settings("segearth", load_dataset("loveda"))
    assert any("SimFeatUp" in n for n in notes)
    _, notes = method_settings("segearth", load_dataset("voc21"))
    assert any("no published settings of segearth for VOC21" in n for n in notes)


def test_published_numbers_match_the_quoted_averages():
    """A data-entry check: the per-dataset numbers average to the figures quoted in method.md / the issue."""
    def average(method, key="miou"):
        values = [load_dataset(d).published[method][key] for d in NATURAL]
        return round(sum(values) / len(values), 1)

    assert average("sclip", "paper") == 38.2
    assert average("vanilla") == 14.1
    assert average("clearclip") == 38.1
    assert average("naclip") == 39.4
    assert average("naclip-pamr") == 42.5
    assert average("resclip") == 41.4
