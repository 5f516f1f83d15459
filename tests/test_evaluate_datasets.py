"""The 16 bundled dataset definitions against small layouts written here as each dataset stores them.

The layouts, label encodings and class counts below are written from the datasets' documented
layouts (mmseg's preparation, SegEarth-OV's converters, the releases), independently of the JSON
files they check.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_sclip import PAPER_BACKGROUND, io
from napari_sclip.evaluate import dataset_names, load_dataset
from napari_sclip.evaluate.classes import for_dataset
from napari_sclip.evaluate.masks import read_mask

VOC = ("JPEGImages/{}.jpg", "SegmentationClass/{}.png", "ImageSets/Segmentation/val.txt")
CONTEXT = ("JPEGImages/{}.jpg", "SegmentationClassContext/{}.png", "ImageSets/SegmentationContext/val.txt")
# dataset: (image path, mask path, split file or None) relative to --root; "{}" is the image's stem
LAYOUTS = {
    "voc21": VOC, "voc20": VOC, "context60": CONTEXT, "context59": CONTEXT,
    "coco-object": ("images/val2017/{}.jpg", "annotations/val2017/{}_instanceTrainIds.png", None),
    "coco-stuff164k": ("images/val2017/{}.jpg", "annotations/val2017/{}_labelTrainIds.png", None),
    "cityscapes": ("leftImg8bit/val/{}_leftImg8bit.png", "gtFine/val/{}_gtFine_labelTrainIds.png", None),
    "ade20k": ("images/validation/{}.jpg", "annotations/validation/{}.png", None),
    "openearthmap": ("img_dir/val/{}.tif", "ann_dir/val/{}.tif", None),
    "loveda": ("img_dir/val/{}.png", "ann_dir/val/{}.png", None),
    "isaid": ("img_dir/val/{}.png", "ann_dir/val/{}_instance_color_RGB.png", None),
    "potsdam": ("img_dir/val/{}.png", "ann_dir/val/{}.png", None),
    "vaihingen": ("img_dir/val/{}.png", "ann_dir/val/{}.png", None),
    "uavid": ("img_dir/test/{}.png", "ann_dir/test/{}.png", None),
    "udd5": ("val/src/{}.JPG", "val/gt/{}.png", None),
    "vdd": ("test/src/{}.JPG", "test/gt/{}.png", None),
}  # fmt: skip
# dataset: (classes, background class or None, stored mask value -> label)
LABELS = {
    "voc21": (21, 0, {0: 0, 15: 15, 20: 20, 255: 255}),
    "voc20": (20, None, {0: 255, 1: 0, 20: 19, 255: 255}),
    "context60": (60, 0, {0: 0, 37: 37, 59: 59}),
    "context59": (59, None, {0: 255, 1: 0, 59: 58}),
    "coco-object": (81, 0, {0: 0, 1: 1, 80: 80}),
    "coco-stuff164k": (171, None, {0: 0, 170: 170, 255: 255}),
    "cityscapes": (19, None, {0: 0, 18: 18, 255: 255}),
    "ade20k": (150, None, {0: 255, 1: 0, 150: 149}),
    "openearthmap": (9, 0, {0: 0, 8: 8}),
    "loveda": (7, 0, {0: 255, 1: 0, 7: 6}),
    "isaid": (16, 0, {0: 0, 15: 15, 255: 255}),
    "potsdam": (6, 5, {0: 255, 1: 0, 6: 5}),
    "vaihingen": (6, 5, {0: 255, 1: 0, 6: 5}),
    "uavid": (7, 0, {0: 0, 3: 3, 6: 6}),
    "udd5": (5, 4, {0: 0, 4: 4}),
    "vdd": (7, 0, {0: 0, 6: 6}),
}
# colour-coded releases: RGB -> label (after reduce_zero_label where the dataset has it)
COLOURS = {
    "isaid": {(0, 0, 63): 1, (0, 100, 155): 15, (0, 127, 255): 14, (9, 9, 9): 0},
    "potsdam": {(255, 255, 255): 0, (0, 0, 255): 1, (255, 0, 0): 5, (0, 0, 0): 255, (7, 7, 8): 255},
    "vaihingen": {(255, 255, 255): 0, (255, 255, 0): 4, (255, 0, 0): 5},
    "uavid": {(64, 0, 128): 3, (192, 0, 192): 3, (64, 64, 0): 6, (1, 2, 3): 0},
    "udd5": {(107, 142, 35): 0, (0, 0, 142): 3, (0, 0, 0): 4},
}


def _save_image(path, rng, as_bmp=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = rng.integers(0, 256, (2, 4, 3), dtype=np.uint8)
    if path.suffix == ".tif":
        tifffile.imwrite(path, data)
    else:
        Image.fromarray(data).save(path, format="BMP" if as_bmp else ("JPEG" if path.suffix.lower() == ".jpg" else "PNG"))


def _save_mask(path, values, kind):
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "tif":
        tifffile.imwrite(path, values.astype(np.uint8))
    elif kind == "palette":
        img = Image.fromarray(values.astype(np.uint8), mode="P")
        img.putpalette(list(np.random.default_rng(1).integers(0, 256, 768)))  # colours that are not the labels
        img.save(path)
    else:
        Image.fromarray(values.astype(np.uint8)).save(path)


def _mask_kind(name):
    return {"openearthmap": "tif", "voc21": "palette", "voc20": "palette", "isaid": "palette", "uavid": "palette"}.get(name, "grey")


def _write_layout(root, name):
    """Images a and b with masks, plus files that must not be picked up; returns the stored values."""
    img, msk, split = LAYOUTS[name]
    rng = np.random.default_rng(0)
    stored = np.array(list(LABELS[name][2]) + [0] * (8 - len(LABELS[name][2])))[:8].reshape(2, 4)
    stems = ["a", "munster/b" if name == "cityscapes" else "b"]
    if name == "cityscapes":
        stems[0] = "frankfurt/a"
    for stem in stems:
        _save_image(root / img.format(stem), rng, as_bmp=name in ("isaid", "uavid"))
        _save_mask(root / msk.format(stem), stored, _mask_kind(name))
    if split:
        _save_image(root / img.format("c"), rng)  # not in the split: not evaluated
        (root / split).parent.mkdir(parents=True, exist_ok=True)
        (root / split).write_text("a\nb\n")
    else:
        stem, ext = img.format("c").rsplit(".", 1)
        _save_image(root / f"{stem}.{ext.swapcase()}", rng)  # suffixes match exactly: not an image of the layout
    if name.startswith("coco"):
        _save_mask(root / "annotations/val2017/a.png", stored, "grey")  # the raw map beside the converted one
    return stems, stored


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout_labels_and_vocabulary(tmp_path, name):
    dataset = load_dataset(name)
    stems, stored = _write_layout(tmp_path, name)
    img, msk, _ = LAYOUTS[name]
    pairing = dataset.pairs(tmp_path)
    assert [(p.image, p.mask) for p in pairing.pairs] == [(tmp_path / img.format(s), tmp_path / msk.format(s)) for s in stems]
    n, bg, table = LABELS[name]
    assert len(dataset.classes) == n and dataset.background_index == bg
    expected = np.vectorize(table.__getitem__)(stored)
    for pair in pairing.pairs:
        assert io.read_image(pair.image).shape == (2, 4, 3)
        assert dataset.rule.labels(read_mask(pair.mask), pair.mask.name).tolist() == expected.tolist()
    space = for_dataset(dataset)
    assert len(space.vocabulary.classes) == (n if bg is None else n - 1)
    assert space.to_masks[0] == (n if bg is None else bg)
    assert sorted(space.to_masks[1:].tolist()) == [i for i in range(n) if i != bg]
    assert bool(space.vocabulary.background) == (bg is not None)


@pytest.mark.parametrize("name", sorted(COLOURS))
def test_colour_masks(tmp_path, name):
    dataset = load_dataset(name)
    colours = COLOURS[name]
    rgb = np.array([list(colours)], np.uint8)
    Image.fromarray(rgb).save(tmp_path / "m.png")
    assert dataset.rule.labels(read_mask(tmp_path / "m.png"), "m.png").tolist() == [list(colours.values())]


def test_all_sixteen_are_bundled_and_missing_files_are_named(tmp_path):
    assert sorted(dataset_names()) == sorted(LAYOUTS)
    assert load_dataset("COCO_Object").name == "COCO-Object" and load_dataset("VOC21").key == "voc21"
    with pytest.raises(ValueError, match="no dataset 'voc12'"):
        load_dataset("voc12")
    _write_layout(tmp_path, "voc21")
    (tmp_path / "SegmentationClass/b.png").unlink()
    with pytest.raises(ValueError, match="1 masks are missing: .*b.png"):
        load_dataset("voc21").pairs(tmp_path)
    (tmp_path / "ImageSets/Segmentation/val.txt").write_text("a\nzz\n")
    with pytest.raises(ValueError, match="1 images named in the split file are missing: .*zz.jpg"):
        load_dataset("voc21").pairs(tmp_path)
    with pytest.raises(ValueError, match="--root must be the folder that holds JPEGImages/"):
        load_dataset("voc21").pairs(tmp_path / "VOCdevkit")


def test_background_words_and_names_files():
    voc = for_dataset(load_dataset("voc21"))
    assert voc.vocabulary.background == PAPER_BACKGROUND and voc.vocabulary.names[10] == "diningtable"
    assert for_dataset(load_dataset("context60")).vocabulary.background == ("background",)
    coco = for_dataset(load_dataset("coco-object"))  # "bed" is a COCO class and one of the paper's words
    assert "bed" not in coco.vocabulary.background and len(coco.vocabulary.background) == 25
    assert coco.notes and "bed" in coco.notes[0]
    potsdam = load_dataset("potsdam")
    # a names file in the official style: one line per class in label order, synonyms after commas
    text = "road, parking lot\nbuilding\nlow vegetation\ntree\ncar\nclutter, background"
    space = for_dataset(potsdam, text)
    assert space.vocabulary.classes[0] == ("road", "parking lot")
    assert space.vocabulary.background == ("clutter", "background")
    assert space.to_masks.tolist() == [5, 0, 1, 2, 3, 4]
    five = for_dataset(potsdam, "road; building; low vegetation; tree; car\n# background: clutter")
    assert five.to_masks.tolist() == [5, 0, 1, 2, 3, 4] and five.vocabulary.background == ("clutter",)
    with pytest.raises(ValueError, match="has 6 classes; the vocabulary must list 6 .* but it has 3"):
        for_dataset(potsdam, "a; b; c")
    with pytest.raises(ValueError, match="no background class"):
        for_dataset(load_dataset("voc20"), "; ".join(f"c{i}" for i in range(20)), ("wall",))
    coco_file = "sky, wall, bed\n" + "\n".join(load_dataset("coco-object").classes[1:])
    assert for_dataset(load_dataset("coco-object"), coco_file).vocabulary.background == ("sky", "wall")
