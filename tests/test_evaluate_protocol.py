"""Each method's published settings per dataset, layered as data, and the per-image whole-image rule."""

from __future__ import annotations

from dataclasses import fields

import pytest

from napari_sclip import RunOptions
from napari_sclip.attention import MODES
from napari_sclip.evaluate import dataset_names, load_dataset, method_names
from napari_sclip.evaluate.protocol import build, image_options
from napari_sclip.geometry import inference_size

NATURAL = ["voc21", "context60", "coco-object", "voc20", "cityscapes", "context59", "ade20k", "coco-stuff164k"]


def _available(method: str) -> bool:
    from napari_sclip.evaluate.datasets import load_methods

    entry = load_methods()[method]
    known = {f.name for f in fields(RunOptions)}
    extra = set(entry) - known - {"title", "source", "settings_of", "notes"}
    return entry["attention"] in MODES and not extra


def _protocol(dataset: str, method: str, **explicit):
    if not _available(method):
        pytest.skip(f"{method} is not in this version of the engine")
    return build(method, load_dataset(dataset), explicit)


def test_sclip_voc21_is_the_papers_voc_setting():
    p = _protocol("voc21", "sclip")
    o = p.options
    assert (o.attention, o.window, o.stride, o.logit_scale, o.threshold, o.area_threshold) == ("sclip", 224, 112, 65, 0.1, 0.1)
    assert (o.short_side, o.long_side) == (336, 2048) and not p.whole_image
    opts, size = image_options(p, 375, 500)  # a VOC image: 500 x 375
    assert (opts.short_side, size) == (336, (336, 448))


def test_method_and_dataset_layers():
    assert _protocol("context60", "sclip").options.logit_scale == 50
    assert _protocol("coco-stuff164k", "sclip").options.short_side == 448
    assert _protocol("coco-stuff164k", "naclip").options.short_side == 336
    city = _protocol("cityscapes", "clearclip").options
    assert (city.short_side, city.long_side, city.window, city.stride, city.logit_scale) == (448, 2048, 224, 224, 50)
    assert image_options(_protocol("cityscapes", "clearclip"), 1024, 2048)[1] == (448, 896)
    assert _protocol("cityscapes", "sclip").options.short_side == 560
    vanilla = _protocol("voc21", "vanilla")  # the SCLIP paper's baseline runs under SCLIP's settings
    assert vanilla.options.attention == "vanilla" and vanilla.options.logit_scale == 65
    rs = _protocol("potsdam", "sclip")
    o = rs.options
    assert (o.short_side, o.long_side, o.window, o.stride, o.logit_scale, o.threshold) == (448, 448, 224, 112, 50, 0.1)
    assert image_options(rs, 512, 512)[1] == (448, 448) and image_options(rs, 1080, 1280)[1] == (378, 448)


def test_whole_image_and_explicit_options_win():
    p = _protocol("voc21", "naclip")
    assert p.whole_image and p.options.window is None
    opts, size = image_options(p, 375, 500)
    assert (opts.window, opts.stride, size) == (448, 448, (336, 448))
    mine = _protocol("voc21", "naclip", window=64, short_side=None, long_side=None, threshold=0.3)
    assert not mine.whole_image
    assert (mine.options.window, mine.options.short_side, mine.options.threshold) == (64, None, 0.3)
    assert image_options(mine, 70, 90)[1] == (70, 90)


def test_rescale_like_mmcv():
    assert inference_size(375, 500, 336, 2048) == (336, 448)
    assert inference_size(3000, 4000, 448, 448) == (336, 448)  # SegEarth-OV: the long side becomes 448
    assert inference_size(100, 2000, 336, 2048) == (102, 2048)  # the long-side cap limits
    assert inference_size(100, 2000, 336) == (336, 6720)  # no cap
    assert inference_size(200, 200, 336, 2048) == (336, 336)  # small images are enlarged
    assert inference_size(70, 90, None, 45) == (35, 45)


def test_every_dataset_with_every_method_builds_or_says_what_is_missing():
    for dataset in dataset_names():
        for method in method_names():
            if _available(method):
                p = build(method, load_dataset(dataset), {})
                assert p.options.short_side and p.options.long_side and p.options.attention
            else:
                with pytest.raises(ValueError, match=method.split("-")[0] + "|refine"):
                    build(method, load_dataset(dataset), {})


def test_resclip_parameters_per_dataset_and_segearth_upsampler_noted():
    from napari_sclip.evaluate.protocol import method_settings

    voc = _protocol("voc21", "resclip").options
    assert dict(voc.mode_params) == {"feedback_threshold": 0.5, "rcs": (2.0, 0.3), "sfr": (2.2, 0.7)}
    assert _protocol("voc21", "resclip", attention="naclip").options.mode_params == ()  # yours win
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
