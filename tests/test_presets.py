"""Published methods as presets of run options (API, command line, evaluate), the new options, and
the pipeline pieces modes need: padded windows, text-dependent features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_sclip import RunOptions, segment
from napari_sclip.cli import build_parser
from napari_sclip.errors import OptionsError
from napari_sclip.geometry import window_grid
from napari_sclip.methods import names, preset_options
from napari_sclip.tiling import Merge, window_logits


def test_every_preset_is_valid_run_options():
    for name in names():
        opts = RunOptions.preset(name)
        assert opts.attention == preset_options(name)["attention"]
    assert RunOptions.preset("naclip-pamr").refine == "pamr" and RunOptions.preset("naclip").refine == "none"
    seg = RunOptions.preset("segearth")
    assert (seg.short_side, seg.long_side, seg.logit_scale, dict(seg.mode_params)) == (448, 448, 50, {"cls_weight": -0.3})
    mine = RunOptions.preset("clearclip", threshold=0.5, window=224)
    assert (mine.window, mine.stride, mine.threshold, mine.logit_scale) == (224, 224, 0.5, 50)
    assert RunOptions.preset("resclip", attention="naclip").mode_params == ()  # another mode: not its parameters
    with pytest.raises(OptionsError, match="No preset 'nope'; choose one of: sclip"):
        RunOptions.preset("nope")


def test_mode_parameters_and_refinement_options_are_checked():
    o = RunOptions(attention="resclip", mode_params="feedback_threshold=0.5; rcs=2, 0.3")
    assert dict(o.mode_params) == {"feedback_threshold": 0.5, "rcs": (2.0, 0.3)}
    assert RunOptions(attention="resclip", mode_params={"sfr": [2.2, 0.7]}).mode_params == (("sfr", (2.2, 0.7)),)
    for bad, match in [(dict(attention="naclip", mode_params="rcs=1,2"), "no parameter rcs"),
                       (dict(attention="resclip", mode_params="rcs=1"), "rcs must be two numbers"),
                       (dict(attention="resclip", mode_params="rcs"), "write name=value"),
                       (dict(refine="crf"), "refine must be one of none, pamr"),
                       (dict(pamr_dilations=()), "pamr_dilations must be one or more"),
                       (dict(pamr_steps=0), "pamr_steps must be a positive whole number"),
                       (dict(long_side=-3), "long_side must be a positive")]:  # fmt: skip
        with pytest.raises(OptionsError, match=match):
            RunOptions(**bad)


def test_command_line_preset_with_overrides():
    from napari_sclip.cli import _build

    args = build_parser().parse_args(["segment", "x.png", "--classes", "a", "-o", "out", "--preset", "naclip-pamr",
                                      "--threshold", "0.2", "--pamr-dilations", "4", "8", "--long-side", "none"])
    opts = _build(RunOptions, args)
    assert (opts.attention, opts.refine, opts.pamr_dilations, opts.threshold, opts.long_side) == (
        "naclip", "pamr", (4, 8), 0.2, None)  # fmt: skip
    args = build_parser().parse_args(["segment", "x.png", "--classes", "a", "-o", "out", "--attention", "resclip",
                                      "--mode-params", "feedback_threshold=0.1"])
    assert _build(RunOptions, args).mode_params == (("feedback_threshold", 0.1),)


def test_padded_windows_are_upsampled_at_their_padded_size_and_cut_back():
    """ClearCLIP / SegEarth-OV: a 20 x 50 image in 32-px windows of 8-px patches: 20 rows pad to 24
    (2 above), each window's logits are upsampled to 24 rows and rows 2..21 kept."""
    boxes = window_grid(20, 50, 32, 16)
    g = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(len(boxes), 3, 4, 8, generator=g), dim=-1)
    text = F.normalize(torch.randn(3, 8, generator=g), dim=-1)
    merge = Merge(window_logits(feats, text), boxes, (20, 50), (20, 50), patch=8)
    acc, count = torch.zeros(3, 20, 50, dtype=torch.float64), torch.zeros(20, 50)
    for f, b in zip(feats, boxes):
        up = F.interpolate((f.double() @ text.double().T).permute(2, 0, 1)[None], size=(24, 32), mode="bilinear",
                           align_corners=False)[0]  # fmt: skip
        acc[:, :, b.x0 : b.x1] += up[:, 2:22]
        count[:, b.x0 : b.x1] += 1
    torch.testing.assert_close(merge.at(np.arange(20), np.arange(50)).double(), acc / count, atol=2e-6, rtol=0)


def test_text_dependent_mode_runs_again_on_new_words(tiny_model, rgb_image):
    kw = dict(background="sky", model=tiny_model, short_side=None, attention="resclip",
              mode_params={"feedback_threshold": 0.3})  # fmt: skip
    first = segment(rgb_image, "cat; dog", **kw)
    runs = tiny_model.image_batches_run
    again = first.rescore("bird; car, truck", "sky")
    assert tiny_model.image_batches_run > runs  # the features depend on the words
    np.testing.assert_array_equal(again.labels, segment(rgb_image, "bird; car, truck", **kw).labels)
    probe = again.attention_map(30, 40)
    assert probe.shape == (70, 90) and np.isfinite(probe).all()


def test_segment_takes_a_preset(tiny_model, rgb_image):
    seg = segment(rgb_image, "cat; dog", model=tiny_model, preset="segearth", short_side=None, long_side=None,
                  window=32, stride=16)  # fmt: skip
    assert seg.options.attention == "segearth" and seg.options.logit_scale == 50
    with pytest.raises(OptionsError, match="not both"):
        segment(rgb_image, "cat", model=tiny_model, preset="sclip", options=RunOptions())
