"""``napari-sclip evaluate`` end to end with the committed tiny CLIP on synthetic scenes it has never seen:
your own folders, a dataset layout with an official-style names file, resuming, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from skimage import io as skio

from napari_sclip import load_model, segment
from napari_sclip.cli import main
from napari_sclip.testing import CONCEPTS, make_scene, tiny_clip_path
from napari_sclip.testing.metrics import concept_ids, confusion_matrix

SEEDS = range(3000, 3004)
GEOMETRY = ["--short-side", "native", "--window", "64", "--stride", "32"]  # the 64-px tiny CLIP's geometry
MODEL = ["--device", "cpu", "--precision", "fp32", "-q"]


@pytest.fixture(scope="module")
def model():
    return load_model(None, tiny_clip_path(), device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    """images/ and masks/ of four held-out scenes; mask k = the k-th word of CONCEPTS."""
    root = tmp_path_factory.mktemp("scenes")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for seed in SEEDS:
        s = make_scene(seed, 64)
        skio.imsave(root / "images" / f"scene{seed}.png", s.image, check_contrast=False)
        ids = concept_ids(s.mask, s.class_names, CONCEPTS).astype(np.uint8)
        skio.imsave(root / "masks" / f"scene{seed}.png", ids, check_contrast=False)
    return root


def _evaluate(*args, out: Path) -> tuple[int, dict]:
    code = main(["evaluate", *map(str, args), "--checkpoint", str(tiny_clip_path()), *MODEL, "--json", str(out)])
    return code, (json.loads(out.read_text()) if out.exists() else {})


def _own(folders, *extra, out):
    return _evaluate("--images", folders / "images", "--masks", folders / "masks", "--classes", "; ".join(CONCEPTS),
                     *GEOMETRY, *extra, out=out)  # fmt: skip


@pytest.fixture(scope="module")
def evaluated(folders, tmp_path_factory):
    """One run over the four scenes: (exit code, JSON, terminal output, JSON path)."""
    out = tmp_path_factory.mktemp("run") / "r.json"
    code, result = _own(folders, out=out)
    return code, result, out


def test_your_folders_score_like_a_direct_computation(evaluated, model):
    code, result, _ = evaluated
    assert code == 0
    assert result["miou"] > 0.75  # measured 0.817 (64-px scenes: one window each, kept small for speed)
    conf = np.zeros((11, 11), np.int64)
    for seed in SEEDS:
        s = make_scene(seed, 64)
        seg = segment(s.image, list(CONCEPTS), model=model, short_side=None, window=64, stride=32)
        conf += confusion_matrix(seg.labels, concept_ids(s.mask, s.class_names, CONCEPTS), 11)
    inter, truth, pred = np.diag(conf), conf.sum(1), conf.sum(0)
    assert [c["intersection"] for c in result["per_class"]] == inter.tolist()
    assert [c["truth_pixels"] for c in result["per_class"]] == truth.tolist()
    assert [c["predicted_pixels"] for c in result["per_class"]] == pred.tolist()
    present = (truth + pred > 0)[1:]  # background (label 0): in no mask and never predicted
    assert result["miou"] == pytest.approx((inter[1:] / (truth + pred - inter)[1:].clip(1))[present].mean())
    assert result["accuracy"] == pytest.approx(inter.sum() / truth.sum())
    assert result["per_class"][0]["iou"] is None and result["counts"]["scored"] == 4
    assert result["settings"]["window"] == 64 and result["model"]["name"] == "tiny-shapes-clip"


def test_resumes_and_never_mixes_settings(evaluated, folders):
    _, first, out = evaluated
    work = out.with_name("r.counts")
    _, again = _own(folders, out=out)
    assert again["counts"]["resumed"] == 4 and again["per_class"] == first["per_class"]
    stored = sorted(p for p in work.glob("*/*.json") if p.name != "setup.json")
    assert len(stored) == 4
    stored[0].unlink()
    _, partly = _own(folders, out=out)
    assert partly["counts"]["resumed"] == 3 and partly["per_class"] == first["per_class"]
    _, other = _own(folders, "--logit-scale", "20", "--limit", "1", "--work", work, out=out.with_name("o.json"))
    assert other["counts"]["resumed"] == 0 and other["counts"]["scored"] == 1
    assert len([p for p in work.iterdir() if p.is_dir()]) == 2  # one folder per setup


def test_unpaired_files_and_bad_pairs_are_named(folders, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(folders, data)
    (data / "images" / "scene3003.png").unlink()
    skio.imsave(data / "masks" / "scene3000.png", np.zeros((60, 64), np.uint8), check_contrast=False)
    skio.imsave(data / "masks" / "scene3001.png", np.full((64, 64), 11, np.uint8), check_contrast=False)
    code, result = _own(data, out=tmp_path / "r.json")
    err = capsys.readouterr().err
    assert code == 4
    assert "1 masks without an image (not evaluated): scene3003.png" in err
    assert "scene3000: the image is 64 x 64 pixels but its mask scene3000.png is 60 x 64" in err
    assert "scene3001: scene3001.png holds label(s) 11, but there are only 11 classes" in err
    assert [f["image"] for f in result["counts"]["failed"]] == ["scene3000", "scene3001"]
    assert result["counts"]["scored"] == 1 and result["counts"]["unpaired_masks"][0].endswith("scene3003.png")


def _openearthmap(root: Path) -> Path:
    """An OpenEarthMap layout of scenes: label 0 is the 'black' background, 1..8 other words; dots ignored."""
    words = ["black", "red", "green", "blue", "yellow", "orange", "purple", "white", "stripes"]
    for folder in ("img_dir/val", "ann_dir/val"):
        (root / folder).mkdir(parents=True)
    for seed in SEEDS[:2]:
        s = make_scene(seed, 64)
        lut = np.array([255] + [words.index(c) if c in words else 255 for c in s.class_names], np.uint8)
        tifffile.imwrite(root / "img_dir/val" / f"tile{seed}.tif", s.image)
        tifffile.imwrite(root / "ann_dir/val" / f"tile{seed}.tif", lut[s.mask])
    names = root / "names.txt"
    names.write_text("\n".join(words))  # one line per class in label order, as the official names files
    return names


def test_a_dataset_layout_with_a_names_file(tmp_path, model):
    names = _openearthmap(tmp_path / "oem")
    code, result = _evaluate("--dataset", "OpenEarthMap", "--root", tmp_path / "oem", "--classes-file", names,
                             *GEOMETRY, out=tmp_path / "r.json")  # fmt: skip
    assert code == 0
    settings = result["settings"]
    assert (settings["method"], settings["logit_scale"], settings["threshold"]) == ("sclip", 50, 0.1)  # published
    assert settings["short_side"] is None and settings["long_side"] is None and settings["window"] == 64  # yours win
    assert result["miou"] > 0.75 and result["data"]["name"] == "OpenEarthMap"  # measured 0.865
    words = names.read_text().split("\n")
    conf = np.zeros((9, 9), np.int64)
    for path in sorted((tmp_path / "oem/img_dir/val").iterdir()):
        seg = segment(tifffile.imread(path), words[1:], background=words[0], model=model, short_side=None, window=64,
                      stride=32, logit_scale=50, threshold=0.1)  # fmt: skip
        truth = tifffile.imread(tmp_path / "oem/ann_dir/val" / path.name)
        keep = truth != 255
        conf += confusion_matrix(seg.labels[keep], truth[keep], 9)
    assert [c["intersection"] for c in result["per_class"]] == np.diag(conf).tolist()
    assert [c["predicted_pixels"] for c in result["per_class"]] == conf.sum(0).tolist()


def test_refusals(folders, tmp_path, capsys):
    assert _evaluate("--dataset", "voc21", out=tmp_path / "a.json")[0] == 2
    assert "--dataset takes --root" in capsys.readouterr().err
    assert _evaluate("--images", folders / "images", "--masks", folders / "masks", out=tmp_path / "a.json")[0] == 2
    assert "name the classes of your masks" in capsys.readouterr().err
    assert _evaluate("--classes", "a", out=tmp_path / "a.json")[0] == 2
    assert "give --images DIR and --masks DIR" in capsys.readouterr().err
    assert _evaluate("--dataset", "voc21", "--root", tmp_path, out=tmp_path / "a.json")[0] == 2
    assert "--root must be the folder that holds JPEGImages/" in capsys.readouterr().err
    assert not (tmp_path / "a.json").exists()


def test_a_partial_benchmark_is_planned_with_its_published_settings_and_a_warning(tmp_path):
    from napari_sclip.cli import build_parser
    from napari_sclip.evaluate.command import plan

    root = tmp_path / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True)
    skio.imsave(root / "JPEGImages/a.jpg", np.zeros((8, 8, 3), np.uint8), check_contrast=False)
    skio.imsave(root / "SegmentationClass/a.png", np.zeros((8, 8), np.uint8), check_contrast=False)
    (root / "ImageSets/Segmentation/val.txt").write_text("a\n")
    job = plan(build_parser().parse_args(["evaluate", "--dataset", "voc21", "--root", str(root)]))
    assert job.task.protocol.options.logit_scale == 65 and len(job.task.pairs) == 1
    assert any("has 1449 images, this one 1: the result is not comparable" in n for n in job.notes)


def test_every_method_plans_with_its_published_settings(tmp_path):
    from napari_sclip.cli import build_parser
    from napari_sclip.evaluate.command import plan

    _openearthmap(tmp_path / "oem")
    for method, expect in [("segearth", ("segearth", 448, 448, "none", (("cls_weight", -0.3),))),
                           ("naclip-pamr", ("naclip", 448, 448, "pamr", ())),
                           ("resclip", ("resclip", 448, 448, "none", (("feedback_threshold", 0.25),
                                                                      ("rcs", (2.0, 0.4)), ("sfr", (1.8, 0.7)))))]:
        args = build_parser().parse_args(["evaluate", "--dataset", "openearthmap", "--root", str(tmp_path / "oem"),
                                          "--method", method])
        o = plan(args).task.protocol.options
        assert (o.attention, o.short_side, o.long_side, o.refine, o.mode_params) == expect
