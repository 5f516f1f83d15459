"""The evaluation metric against hand computations and an independent mmseg-style formula; masks and pairing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_sclip.evaluate import Counts, Scores, pair_folders
from napari_sclip.evaluate.masks import LabelRule, MaskError, read_mask

# Image 1 of the hand example: 3 classes, two ignored pixels (255).
TRUTH_1 = np.array([[0, 0, 1, 1], [0, 2, 1, 255], [255, 2, 2, 1]])
PRED_1 = np.array([[0, 1, 1, 1], [0, 2, 0, 0], [1, 2, 1, 1]])


def test_one_image_by_hand():
    # valid (truth, pred) pairs: (0,0) (0,1) (1,1) (1,1) | (0,0) (2,2) (1,0) | (2,2) (2,1) (1,1)
    c = Counts.of(PRED_1, TRUTH_1, 3)
    assert c.intersection.tolist() == [2, 3, 2]
    assert c.predicted.tolist() == [3, 5, 2]  # the prediction under an ignored pixel is not counted
    assert c.truth.tolist() == [3, 4, 3]
    assert c.union.tolist() == [4, 6, 3]
    s = Scores.of(c)
    np.testing.assert_allclose(s.iou, [2 / 4, 3 / 6, 2 / 3])
    np.testing.assert_allclose(s.accuracy, [2 / 3, 3 / 4, 2 / 3])
    assert s.miou == pytest.approx((0.5 + 0.5 + 2 / 3) / 3)
    assert s.mean_accuracy == pytest.approx((2 / 3 + 3 / 4 + 2 / 3) / 3)
    assert s.pixel_accuracy == pytest.approx(7 / 10)


def test_totals_over_the_set_and_the_classes_that_count():
    """Counts are summed before dividing; a class predicted but never true counts with IoU 0; a class
    absent from both truth and prediction is left out; an unassigned prediction is wrong."""
    c5 = Counts.of(PRED_1, TRUTH_1, 5)
    c5 = c5 + Counts.of(np.array([[3, 1]]), np.array([[1, 1]]), 5)  # class 3 predicted, never true
    c5 = c5 + Counts.of(np.array([[5]]), np.array([[2]]), 5)  # 5 = "no class" (outside 0..4)
    s = Scores.of(c5)
    assert c5.intersection.tolist() == [2, 4, 2, 0, 0]
    assert c5.predicted.tolist() == [3, 6, 2, 1, 0]
    assert c5.truth.tolist() == [3, 6, 4, 0, 0]
    np.testing.assert_allclose(s.iou[:4], [2 / 4, 4 / 8, 2 / 4, 0.0])
    assert math.isnan(s.iou[4]) and math.isnan(s.accuracy[3]) and math.isnan(s.accuracy[4])
    assert s.miou == pytest.approx((0.5 + 0.5 + 0.5 + 0.0) / 4)
    assert s.mean_accuracy == pytest.approx((2 / 3 + 4 / 6 + 2 / 4) / 3)
    assert s.pixel_accuracy == pytest.approx(8 / 13)
    images = [(PRED_1, TRUTH_1), (np.array([[3, 1]]), np.array([[1, 1]])), (np.array([[5]]), np.array([[2]]))]
    per_image = np.mean([Scores.of(Counts.of(p, t, 5)).miou for p, t in images])
    assert per_image == pytest.approx(((1 + 1 + 4 / 3) / 6 + 0.25 + 0.0) / 3)  # not what is reported


def _mmseg_style(preds, truths, n, ignore=255):
    """mmseg IoUMetric as its docs describe it: histc per image, totals, nanmean (float, torch)."""
    import torch

    totals = torch.zeros(3, n, dtype=torch.float64)
    for p, t in zip(preds, truths):
        p, t = torch.from_numpy(p).double(), torch.from_numpy(t).double()
        mask = t != ignore
        p, t = p[mask], t[mask]
        inter = p[p == t]
        for row, values in enumerate((inter, p, t)):
            totals[row] += torch.histc(values, bins=n, min=0, max=n - 1)
    inter, area_p, area_t = totals
    iou = inter / (area_p + area_t - inter)
    return float(np.nanmean(iou.numpy())), float(inter.sum() / area_t.sum())


def test_agrees_with_an_independent_mmseg_style_computation():
    rng = np.random.default_rng(0)
    n = 7
    truths = [rng.integers(0, n - 1, (20, 30)) for _ in range(4)]  # class n-1 never true
    for t in truths:
        t[rng.random(t.shape) < 0.1] = 255
    preds = [np.where(rng.random(t.shape) < 0.6, np.where(t == 255, 0, t), rng.integers(0, n, t.shape)) for t in truths]
    total = Counts.zeros(n)
    for p, t in zip(preds, truths):
        total = total + Counts.of(p, t, n)
    miou, aacc = _mmseg_style(preds, truths, n)
    s = Scores.of(total)
    assert s.miou == pytest.approx(miou, abs=1e-12) and s.pixel_accuracy == pytest.approx(aacc, abs=1e-12)


def test_counts_refuse_bad_truth_and_round_trip():
    with pytest.raises(ValueError, match="outside 0..2"):
        Counts.of(np.zeros((2, 2)), np.array([[0, 3], [1, 2]]), 3)
    with pytest.raises(ValueError, match="shape"):
        Counts.of(np.zeros((2, 2)), np.zeros((2, 3)), 3)
    c = Counts.of(PRED_1, TRUTH_1, 3)
    back = Counts.from_dict(c.to_dict(), 3)
    assert back.to_dict() == c.to_dict()
    with pytest.raises(ValueError):
        Counts.from_dict(c.to_dict(), 4)


def test_reading_masks(tmp_path):
    palette = Image.fromarray(np.array([[0, 1], [2, 255]], np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
    palette.save(tmp_path / "p.png")
    assert read_mask(tmp_path / "p.png").tolist() == [[0, 1], [2, 255]]  # indices, not colours
    grey_rgb = np.repeat(np.array([[3, 4]], np.uint8)[..., None], 3, axis=2)
    Image.fromarray(grey_rgb).save(tmp_path / "g.png")
    assert LabelRule(5).labels(read_mask(tmp_path / "g.png"), "g.png").tolist() == [[3, 4]]
    tifffile.imwrite(tmp_path / "t.tif", np.array([[1, 300]], np.uint16))
    assert read_mask(tmp_path / "t.tif").tolist() == [[1, 300]]
    tifffile.imwrite(tmp_path / "f.tif", np.array([[1.5, 2]], np.float32))
    with pytest.raises(MaskError, match="non-integer"):
        read_mask(tmp_path / "f.tif")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(MaskError, match="could not read"):
        read_mask(tmp_path / "bad.png")


def test_label_rules():
    stored = np.array([[0, 1, 5], [255, 2, 0]])
    assert LabelRule(5, reduce_zero_label=True).labels(stored, "m").tolist() == [[255, 0, 4], [255, 1, 255]]
    with pytest.raises(MaskError, match=r"label\(s\) 5, .*only 5 classes"):
        LabelRule(5).labels(stored, "m.png")
    colours = {(255, 255, 255): 1, (255, 0, 0): 6}
    rgb = np.array([[[255, 255, 255], [255, 0, 0], [0, 0, 0]]])
    rule = LabelRule(6, reduce_zero_label=True, colours=colours, colour_default=0)
    assert rule.labels(rgb, "m").tolist() == [[0, 5, 255]]
    with pytest.raises(MaskError, match=r"\(0, 0, 0\)"):
        LabelRule(6, colours=colours).labels(rgb, "m")
    with pytest.raises(MaskError, match="colour table"):
        LabelRule(6).labels(rgb, "m")


def test_pairing_your_folders(tmp_path):
    imgs, msks = tmp_path / "images", tmp_path / "masks"
    imgs.mkdir()
    msks.mkdir()
    for name in ("a.png", "b.TIF", "c.jpg", ".hidden.png", "notes.txt"):
        (imgs / name).write_bytes(b"")
    for name in ("a.png", "b.png", "d.png"):
        (msks / name).write_bytes(b"")
    p = pair_folders(imgs, msks)
    assert [(x.name, x.image.name, x.mask.name) for x in p.pairs] == [("a", "a.png", "a.png"), ("b", "b.TIF", "b.png")]
    assert [x.name for x in p.images_without_mask] == ["c.jpg"]
    assert [x.name for x in p.masks_without_image] == ["d.png"]
    assert p.unpaired_lines() == ["1 images without a mask (not evaluated): c.jpg",
                                  "1 masks without an image (not evaluated): d.png"]  # fmt: skip
    (imgs / "a.tif").write_bytes(b"")
    with pytest.raises(ValueError, match="same stem"):
        pair_folders(imgs, msks)
    with pytest.raises(ValueError, match="does not exist"):
        pair_folders(tmp_path / "nope", msks)
