"""The pipeline end to end on tiny random models: decisions, caches, inputs, progress and cancel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_sclip import Vocabulary, segment, segment_steps
from napari_sclip.errors import Cancelled, InputImageError, VocabularyError
from napari_sclip.prepare import to_unit_range

from .conftest import reference_merge

VOCAB = "cat, kitten; dog, puppy; bird"
BG = "sky, wall, floor"


def _official_decision(logits, query_labels, n_cls, logit_scale, prob_thd, area_thd):
    """SCLIP's postprocess, written from method.md §4: softmax over queries, synonym max, area, threshold."""
    p = torch.softmax(logits * logit_scale, 0)
    cls = torch.stack([p[query_labels == c].max(0).values if (query_labels == c).any() else torch.zeros_like(p[0]) for c in range(n_cls)])
    if area_thd is not None:
        pred = F.one_hot(cls.argmax(0), n_cls)
        area = pred[:, :, 1:].sum((0, 1))
        keep = (area > area_thd * area.sum()).to(cls.dtype)
        cls[1:] *= keep[:, None, None]
    label = cls.argmax(0)
    label[cls.max(0).values < prob_thd] = 0
    return label.numpy(), cls.numpy()


@pytest.mark.parametrize("scale,thd,area", [(40.0, 0.0, None), (65.0, 0.1, 0.1), (50.0, 0.6, None), (40.0, 0.0, 0.3)])
def test_decision_matches_the_papers_rule(tiny_model, rgb_image, scale, thd, area):
    seg = segment(rgb_image, VOCAB, background=BG, model=tiny_model, short_side=None,
                  logit_scale=scale, threshold=thd, area_threshold=area)  # fmt: skip
    vocab = Vocabulary.parse(VOCAB, BG)
    text = tiny_model.embed(vocab.queries)
    canvas = reference_merge(seg.features.tensor(), text, seg.boxes, seg.inference_shape).float()
    logits = F.interpolate(canvas[None], size=rgb_image.shape[:2], mode="bilinear", align_corners=False)[0]
    labels, cls = _official_decision(logits, torch.from_numpy(vocab.query_labels), 4, scale, thd, area)
    assert (seg.labels == labels).mean() > 0.999
    if area is None:
        np.testing.assert_allclose(seg.probabilities, cls[1:], atol=1e-5)


def test_outputs_shapes_and_types(tiny_model, rgb_image):
    seg = segment(rgb_image, VOCAB, model=tiny_model, short_side=48)
    assert seg.labels.shape == rgb_image.shape[:2] and seg.labels.dtype == np.uint8
    assert seg.probabilities.shape == (3, *rgb_image.shape[:2]) and seg.probabilities.dtype == np.float32
    assert seg.class_names == ["cat", "dog", "bird"]
    assert seg.inference_shape == (48, 62)
    assert seg.background_probability is None
    assert set(np.unique(seg.labels)) <= {1, 2, 3}  # no background words, no threshold: never 0
    np.testing.assert_allclose(seg.probabilities.sum(0) <= 1 + 1e-5, True)


def test_synonyms_take_the_max(tiny_model, rgb_image):
    both = segment(rgb_image, "cat, kitten; dog", model=tiny_model, short_side=None)
    only = segment(rgb_image, ["kitten", "dog"], model=tiny_model, short_side=None)
    alone = segment(rgb_image, ["cat", "dog"], model=tiny_model, short_side=None)
    # each synonym is its own query in the softmax; the class takes the max of their probabilities
    text = tiny_model.embed(["cat", "kitten", "dog"])
    canvas = reference_merge(both.features.tensor(), text, both.boxes, both.inference_shape).float()
    p = torch.softmax(40 * F.interpolate(canvas[None], size=rgb_image.shape[:2], mode="bilinear")[0], 0)
    np.testing.assert_allclose(both.probabilities[0], torch.maximum(p[0], p[1]).numpy(), atol=1e-5)
    assert not np.array_equal(only.probabilities, alone.probabilities)


def test_background_words_become_label_zero(tiny_model, rgb_image):
    seg = segment(rgb_image, VOCAB, background=BG, model=tiny_model, short_side=None)
    bg = seg.background_probability
    assert bg is not None
    winner = np.concatenate([bg[None], seg.probabilities]).argmax(0)
    np.testing.assert_array_equal(seg.labels, winner)
    assert (seg.labels == 0).any()


def test_relabel_equals_a_fresh_run(tiny_model, rgb_image):
    base = segment(rgb_image, VOCAB, background=BG, model=tiny_model, short_side=None)
    runs = tiny_model.image_batches_run
    for thd, area in [(0.5, None), (0.3, 0.2), (0.0, 0.05)]:
        fresh = segment(rgb_image, VOCAB, background=BG, model=tiny_model, short_side=None, threshold=thd, area_threshold=area)
        np.testing.assert_array_equal(base.relabel(threshold=thd, area_threshold=area).labels, fresh.labels)
    before = tiny_model.image_batches_run
    base.relabel(threshold=0.9)
    assert tiny_model.image_batches_run == before
    assert runs < before


def test_suppressed_class_falls_to_next(tiny_model, rgb_image):
    seg = segment(rgb_image, VOCAB, model=tiny_model, short_side=None)
    hidden = seg.relabel(suppressed=[2])
    assert not (hidden.labels == 2).any()
    was2 = seg.labels == 2
    expected = np.where(seg.probabilities[0] >= seg.probabilities[2], 1, 3)
    np.testing.assert_array_equal(hidden.labels[was2], expected[was2])
    np.testing.assert_array_equal(hidden.labels[~was2], seg.labels[~was2])
    with pytest.raises(ValueError, match="between 1 and 3"):
        seg.relabel(suppressed=[4])


def test_rescore_does_not_carry_hidden_label_numbers(tiny_model, rgb_image):
    seg = segment(rgb_image, VOCAB, model=tiny_model, short_side=None).relabel(suppressed=[1])
    swapped = seg.rescore("bird; dog, puppy; cat, kitten")
    assert swapped.suppressed == frozenset() and (swapped.labels == 1).any()


def test_rescore_equals_a_fresh_run_without_the_encoder(tiny_model, rgb_image):
    first = segment(rgb_image, VOCAB, model=tiny_model, short_side=None, threshold=0.2)
    runs = tiny_model.image_batches_run
    new = first.rescore("tree; car, truck", background="road")
    assert tiny_model.image_batches_run == runs
    fresh = segment(rgb_image, "tree; car, truck", background="road", model=tiny_model, short_side=None, threshold=0.2)
    np.testing.assert_array_equal(new.labels, fresh.labels)
    np.testing.assert_allclose(new.probabilities, fresh.probabilities, atol=1e-6)
    assert new.class_names == ["tree", "car"]


def test_rescore_keeps_the_background_words_unless_told(tiny_model, rgb_image):
    seg = segment(rgb_image, "red; green", background="black, white", model=tiny_model, short_side=None)
    assert seg.rescore("red; blue").vocabulary.background == ("black", "white")
    assert seg.rescore("red; blue", background=()).vocabulary.background == ()
    assert seg.rescore("red; blue", background="yellow").vocabulary.background == ("yellow",)
    assert seg.rescore("red; blue\n# background: purple").vocabulary.background == ("purple",)
    np.testing.assert_array_equal(
        seg.rescore("red; blue").labels,
        segment(rgb_image, "red; blue", background="black, white", model=tiny_model, short_side=None).labels,
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda im: im,
        lambda im: im[..., 0],
        lambda im: im[..., :1],
        lambda im: np.concatenate([im, np.full(im.shape[:2] + (1,), 255, np.uint8)], -1),
        lambda im: im.astype(np.uint16) * 200,
        lambda im: im[..., 1].astype(np.uint16) * 250,
        lambda im: im.astype(np.float32) / 255.0,
        lambda im: im[..., 0].astype(np.float64) - 1000.0,
        lambda im: im.astype(np.int16) - 100,
        lambda im: im[..., 0] > 128,
    ],
)
def test_dtype_and_shape_matrix(tiny_model, rgb_image, make):
    img = make(rgb_image)
    seg = segment(img, VOCAB, model=tiny_model, short_side=40)
    assert seg.labels.shape == rgb_image.shape[:2]
    assert np.isfinite(seg.probabilities).all()


def test_contrast_limits_drive_normalisation(tiny_model):
    img = np.linspace(0, 4000, 64 * 64, dtype=np.float32).reshape(64, 64).astype(np.uint16)
    unit = to_unit_range(img, contrast_limits=(0, 2000))
    assert unit.max() == 1.0 and unit[..., 0][0, 0] == 0.0 and (unit[..., 0] == 1.0).mean() > 0.45
    a = segment(img, VOCAB, model=tiny_model, short_side=None, contrast_limits=(0, 2000))
    b = segment(img, VOCAB, model=tiny_model, short_side=None, contrast_limits=(0, 4000))
    assert not np.allclose(a.probabilities, b.probabilities)


def test_nan_and_constant_images_do_not_crash(tiny_model):
    img = np.full((40, 40), 7.0, np.float32)
    assert segment(img, VOCAB, model=tiny_model, short_side=None).labels.shape == (40, 40)
    img[5:10, 5:10] = np.nan
    img[0, 0] = np.inf
    seg = segment(img, VOCAB, model=tiny_model, short_side=None)
    assert np.isfinite(seg.probabilities).all()


@pytest.mark.parametrize(
    "img,fragment",
    [
        (np.zeros((5,)), "Expected a 2D grayscale"),
        (np.zeros((4, 30, 30)), "For a stack, pick one plane"),
        (np.zeros((30, 30, 2)), "choose up to three channels"),
        (np.zeros((0, 30)), "no pixels"),
        (np.full((30, 30), np.nan), "no finite values"),
        (np.array([["a", "b"]]), "dtype"),
    ],
)
def test_bad_images_say_what_to_do(tiny_model, img, fragment):
    with pytest.raises(InputImageError, match=fragment):
        segment(img, VOCAB, model=tiny_model, short_side=None)


def test_bad_parameters_are_refused_before_work(tiny_model, rgb_image):
    with pytest.raises(VocabularyError):
        segment(rgb_image, " ; ", model=tiny_model)
    with pytest.raises(ValueError, match="threshold"):
        segment(rgb_image, VOCAB, model=tiny_model, threshold=2)
    with pytest.raises(ValueError, match="logit_scale"):
        segment(rgb_image, VOCAB, model=tiny_model, logit_scale=0)
    with pytest.raises(ValueError, match="attention mode"):
        segment(rgb_image, VOCAB, model=tiny_model, attention="nope")
    with pytest.raises(ValueError, match="stride"):
        segment(rgb_image, VOCAB, model=tiny_model, stride=64)
    with pytest.raises(InputImageError, match="smaller than one"):
        segment(rgb_image, VOCAB, model=tiny_model, short_side=4)
    assert tiny_model.image_batches_run == 0


def test_progress_and_cancel(tiny_model, rgb_image):
    calls = []
    segment(rgb_image, VOCAB, model=tiny_model, short_side=None, batch_size=2, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] and all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))
    assert len(calls) >= 3
    seen = []

    def cancel():
        return len(seen) >= 1

    before = tiny_model.image_batches_run
    with pytest.raises(Cancelled):
        segment(rgb_image, "new words; other words", model=tiny_model, short_side=None, batch_size=1,
                progress=lambda d, t: seen.append(d), cancel=cancel)  # fmt: skip
    assert tiny_model.image_batches_run - before <= 1  # stopped within one batch


def test_generator_form_yields_then_returns(tiny_model, rgb_image):
    steps = segment_steps(rgb_image, VOCAB, model=tiny_model, short_side=None)
    progress = []
    while True:
        try:
            progress.append(next(steps))
        except StopIteration as stop:
            seg = stop.value
            break
    stages = [p.stage for p in progress]
    assert stages.index("image") < stages.index("merge") and stages[-1] == "merge"
    assert progress[-1].done == progress[-1].total and len({p.total for p in progress}) == 1
    assert seg.labels.shape == rgb_image.shape[:2]


def test_class_table_counts(tiny_model, rgb_image):
    seg = segment(rgb_image, VOCAB, background=BG, model=tiny_model, short_side=None)
    table = seg.class_table()
    assert [r["label"] for r in table] == [0, 1, 2, 3]
    assert sum(r["pixels"] for r in table) == seg.labels.size
    for r in table[1:]:
        mask = seg.labels == r["label"]
        assert r["pixels"] == mask.sum()
        if mask.any():
            assert r["mean_probability"] == pytest.approx(seg.probabilities[r["label"] - 1][mask].mean(), rel=1e-5)


def test_attention_probe_differs_between_modes(tiny_model, rgb_image):
    seg = segment(rgb_image, VOCAB, model=tiny_model, short_side=None)
    a = seg.attention_map(20, 30, "sclip")
    b = seg.attention_map(20, 30, "vanilla")
    assert a.shape == rgb_image.shape[:2] and a.max() > 0
    assert not np.allclose(a, b)
    with pytest.raises(InputImageError, match="outside"):
        seg.attention_map(500, 3)


def test_small_image_is_taken_whole(tiny_model):
    img = np.random.default_rng(0).integers(0, 255, (20, 26, 3), dtype=np.uint8)
    seg = segment(img, VOCAB, model=tiny_model, short_side=None)
    assert len(seg.boxes) == 1 and (seg.boxes[0].y1, seg.boxes[0].x1) == (20, 26)
    assert seg.labels.shape == (20, 26)
