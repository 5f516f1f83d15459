"""The synthetic scene generator: deterministic, captioned with the engine's templates, labelled."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sclip.templates import imagenet_templates
from napari_sclip.testing import CONCEPTS, caption_for, make_scene, make_training_batch
from napari_sclip.testing.metrics import confusion_matrix, mean_iou, pixel_accuracy


def test_scene_is_deterministic_and_labelled() -> None:
    a, b = make_scene(7), make_scene(7)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert a.class_names == b.class_names
    assert a.image.shape == (128, 128, 3) and a.image.dtype == np.uint8
    assert a.mask.shape == (128, 128)
    # every label 1..K is used, by at least 4 % of the pixels, and nothing else
    counts = np.bincount(a.mask.ravel(), minlength=len(a.class_names) + 1)
    assert counts[0] == 0 and len(counts) == len(a.class_names) + 1
    assert counts[1:].min() >= 0.04 * a.mask.size
    assert set(a.class_names) <= set(CONCEPTS)
    assert not np.array_equal(make_scene(8).image, a.image)


def test_scene_size_and_counts() -> None:
    s = make_scene(3, (96, 160), n_classes=2, n_cells=5)
    assert s.image.shape == (96, 160, 3) and len(s.class_names) == 2


def test_training_batch_captions_name_the_concepts() -> None:
    rng = np.random.default_rng(0)
    images, captions, sets = make_training_batch(rng, 32, 64)
    assert images.shape == (32, 64, 64, 3) and images.dtype == np.uint8
    templates = imagenet_templates()
    for caption, ids in zip(captions, sets, strict=True):
        # the phrase is what fills the template ("a black and white photo of a {}." has colour words)
        fills = [
            caption[len(pre) : len(caption) - len(post)]
            for pre, post in (t.split("{}") for t in templates)
            if caption.startswith(pre)
            and caption.endswith(post)
            and len(caption) > len(pre) + len(post)
        ]
        assert fills, caption
        named = [set(f.replace(",", " ").split()) - {"and"} for f in fills]
        assert {CONCEPTS[i] for i in ids} in named, caption
    again = make_training_batch(np.random.default_rng(0), 32, 64)
    assert np.array_equal(again[0], images) and again[1] == captions


def test_caption_joins_several_concepts() -> None:
    caption = caption_for(np.random.default_rng(1), ["red", "blue", "dots"])
    assert ", " in caption and " and " in caption


def test_unknown_concept_is_refused() -> None:
    from napari_sclip.testing import render_concepts

    with pytest.raises(ValueError, match="unknown concept"):
        render_concepts(np.random.default_rng(0), np.zeros((8, 8), int), ["mauve"])


def test_metrics() -> None:
    target = np.array([[1, 1], [2, 2]])
    pred = np.array([[1, 2], [2, 2]])
    conf = confusion_matrix(pred, target, 3)
    assert pixel_accuracy(conf) == 0.75
    # IoU(1) = 1/2, IoU(2) = 2/3
    assert mean_iou(conf) == pytest.approx((1 / 2 + 2 / 3) / 2)
