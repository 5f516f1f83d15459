"""Bad inputs through the Python API: each gets the right exception and a message saying what to do,
before any expensive work; nothing silently wrong comes back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sclip import ModelChoice, RunOptions, SclipModel, Vocabulary, load_model, segment
from napari_sclip.errors import (
    CheckpointError,
    InputImageError,
    NumericalError,
    OptionsError,
    ResourceError,
    VocabularyError,
)

from .conftest import make_tiny_clip

VOCAB = "cat, kitten; dog; bird"


@pytest.mark.parametrize(
    "options,fragment",
    [
        (dict(contrast_limits=(200, 50)), "low < high"),
        (dict(contrast_limits=(3000, 3000)), "low < high"),
        (dict(contrast_limits=(0, float("nan"))), "finite"),
        (dict(contrast_limits=(1, 2, 3)), "two numbers"),
        (dict(window=0), "window must be a positive whole number"),
        (dict(stride=0), "stride must be a positive whole number"),
        (dict(batch_size=0), "batch_size must be a positive whole number"),
        (dict(batch_size=-1), "batch_size must be a positive whole number"),
        (dict(short_side=0), "short_side must be a positive whole number, or None"),
        (dict(short_side=2.5), "short_side must be a positive whole number"),
        (dict(window=True), "window must be a positive whole number"),
        (dict(window=32, stride=64), "stride (64) larger than the window (32)"),
        (dict(threshold=2), "threshold is a probability"),
        (dict(threshold=float("nan")), "threshold is a probability"),
        (dict(logit_scale=-1), "logit_scale is a positive number"),
        (dict(logit_scale=float("inf")), "logit_scale is a positive number"),
        (dict(area_threshold=1.0), "area_threshold is a fraction"),
        (dict(attention="foo"), "Unknown attention mode 'foo'; choose one of: sclip"),
    ],
)
def test_bad_options_are_refused_before_any_work(tiny_model, rgb_image, options, fragment):
    before = tiny_model.image_batches_run
    with pytest.raises(OptionsError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        segment(rgb_image, VOCAB, model=tiny_model, **options)
    with pytest.raises(OptionsError):
        RunOptions(**options)
    assert tiny_model.image_batches_run == before and len(tiny_model.text) == 0


def test_unknown_keyword_is_a_type_error(tiny_model, rgb_image):
    with pytest.raises(TypeError, match="unknown option.*short_sid"):
        segment(rgb_image, VOCAB, model=tiny_model, short_sid=64)


def test_stride_larger_than_the_models_window(tiny_model, rgb_image):
    with pytest.raises(OptionsError, match="stride \\(48\\) larger than the window \\(32\\)"):
        segment(rgb_image, VOCAB, model=tiny_model, stride=48)


@pytest.mark.parametrize(
    "vocab,fragment",
    [
        (None, "must be text .* not NoneType"),
        (5, "must be text .* not int"),
        ("\u200b", "vocabulary is empty"),
        ("cat; \u200b\u200b; dog", "Class 2 is empty"),
        ("cat, \ufeff, kitten", "empty synonym"),
        (["cat", None], "Class 2 must be a name"),
        ("cat; CAT\u200b", "appears twice"),
    ],
)
def test_bad_vocabularies(tiny_model, rgb_image, vocab, fragment):
    with pytest.raises(VocabularyError, match=fragment):
        segment(rgb_image, vocab, model=tiny_model)


def test_invisible_characters_are_not_part_of_a_name():
    v = Vocabulary.parse("ca\u200bt; \ufeffdog")
    assert v.names == ["cat", "dog"]


def test_float64_beyond_float32_range_is_not_a_constant_image(tiny_model, rgb_image):
    plain = rgb_image[..., 0].astype(np.float64)
    huge = plain * 1e300
    a = segment(plain, VOCAB, model=tiny_model, short_side=None)
    b = segment(huge, VOCAB, model=tiny_model, short_side=None)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert len(np.unique(b.labels)) > 1


def test_a_run_that_cannot_fit_is_refused_before_allocating(tiny_model, rgb_image):
    with pytest.raises(ResourceError, match="would need about .* GB .* use a smaller short side"):
        segment(rgb_image, VOCAB, model=tiny_model, short_side=100_000)
    assert tiny_model.image_batches_run == 0


def test_a_thin_line_is_not_enlarged_into_thousands_of_windows(tiny_model):
    """A 1 x 500 line at the default short side would be 336 x 168,000 px (209,980 windows of the
    tiny model): refused at once; a thicker strip has two ways out, which both work."""
    line = np.random.default_rng(0).integers(0, 255, (1, 500), np.uint8)
    with pytest.raises(InputImageError, match=r"1 x 500 .* enlarges it 336 times.*--short-side native"):
        segment(line, VOCAB, model=tiny_model)
    assert tiny_model.image_batches_run == 0
    thick = np.random.default_rng(0).integers(0, 255, (8, 500), np.uint8)
    with pytest.raises(InputImageError, match="enlarges it 42 times"):
        segment(thick, VOCAB, model=tiny_model)
    assert segment(thick, VOCAB, model=tiny_model, short_side=None).labels.shape == (8, 500)
    assert segment(thick, VOCAB, model=tiny_model, long_side=1024).labels.shape == (8, 500)
    small = np.random.default_rng(0).integers(0, 255, (20, 24), np.uint8)  # enlarged 17x, a few windows: fine
    assert segment(small, VOCAB, model=tiny_model).labels.shape == (20, 24)


def test_non_finite_scores_are_an_error_not_a_result(tiny_model, rgb_image):
    clip = make_tiny_clip(seed=3)
    with torch.no_grad():
        clip.visual.proj[0, 0] = float("nan")  # a damaged weight: every patch feature becomes NaN
    broken = SclipModel.from_open_clip(clip)
    with pytest.raises(NumericalError, match="non-finite .* precision 'fp32'"):
        segment(rgb_image, VOCAB, model=broken, short_side=None)


def test_model_choice_checks_device_and_precision():
    with pytest.raises(OptionsError, match="Unknown device 'nonsense'"):
        ModelChoice(device="nonsense")
    with pytest.raises(OptionsError, match="precision must be one of"):
        ModelChoice(precision="int8")
    assert ModelChoice(device=" CUDA:1 ").device == "cuda:1"


def test_missing_checkpoint_without_suffix_is_file_not_found(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model("ViT-B-16", str(tmp_path / "weights"))


def test_a_phrase_too_long_for_the_text_encoder_is_refused(tiny_model, rgb_image):
    long = " ".join(["very"] * 80) + " long cat"
    with pytest.raises(VocabularyError, match="too long for the model's text encoder"):
        segment(rgb_image, f"dog; {long}", model=tiny_model)


def test_masked_pixels_count_as_missing(tiny_model, rgb_image):
    masked = np.ma.masked_array(rgb_image[..., 0].astype(np.float32), mask=np.zeros(rgb_image.shape[:2], bool))
    masked.mask[:10] = True
    masked.data[:10] = 1e9  # would dominate the intensity range if it were read
    plain = rgb_image[..., 0].astype(np.float32)
    plain[:10] = np.nan
    a = segment(masked, VOCAB, model=tiny_model, short_side=None)
    b = segment(plain, VOCAB, model=tiny_model, short_side=None)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_channel_first_tiff_is_one_colour_image(tmp_path, rgb_image):
    import tifffile

    from napari_sclip.io import open_image

    tifffile.imwrite(tmp_path / "cyx.tif", np.moveaxis(rgb_image, -1, 0), photometric="minisblack",
                     metadata={"axes": "CYX"})  # fmt: skip
    planes = open_image(tmp_path / "cyx.tif")
    assert len(planes) == 1 and planes[0].image.shape == rgb_image.shape
    tifffile.imwrite(tmp_path / "zyx.tif", np.moveaxis(rgb_image, -1, 0), metadata={"axes": "ZYX"})
    assert len(open_image(tmp_path / "zyx.tif")) == 3
