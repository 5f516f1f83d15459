"""The command line as a shell user runs it: files in, files out, exit codes and messages."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from skimage import io as skio

from napari_sclip import load_model, segment
from napari_sclip.cli import main
from napari_sclip.io import read_class_table

from .conftest import write_tiny_checkpoint


@pytest.fixture
def checkpoint(tmp_path):
    return write_tiny_checkpoint(tmp_path / "tiny.safetensors", seed=11)


def _args(*extra, checkpoint, out):
    return ["segment", *map(str, extra), "--checkpoint", str(checkpoint), "--device", "cpu", "--precision", "fp32",
            "--short-side", "none", "-o", str(out), "-q"]  # fmt: skip


def test_png_in_labels_table_overlay_out(tmp_path, checkpoint, rgb_image):
    img_path = tmp_path / "scene.png"
    skio.imsave(img_path, rgb_image, check_contrast=False)
    out = tmp_path / "out"
    code = main(_args(img_path, "--classes", "cat, kitten; dog; sky", "--background", "wall", "--save-probabilities",
                      checkpoint=checkpoint, out=out))  # fmt: skip
    assert code == 0
    labels = tifffile.imread(out / "scene_labels.tif")
    model = load_model(None, checkpoint, device="cpu", precision="fp32")
    seg = segment(rgb_image, "cat, kitten; dog; sky", background="wall", model=model, short_side=None)
    np.testing.assert_array_equal(labels, seg.labels)
    table = read_class_table(out / "scene_classes.csv")
    assert [r["class"] for r in table] == ["background", "cat", "dog", "sky"]
    assert table[1]["synonyms"] == "cat, kitten"
    assert sum(r["pixels"] for r in table) == labels.size
    probs = tifffile.imread(out / "scene_probabilities.tif")
    np.testing.assert_allclose(probs, seg.probabilities, atol=1e-6)
    assert skio.imread(out / "scene_overlay.png").shape == rgb_image.shape


def test_stack_tiff_is_segmented_plane_by_plane(tmp_path, checkpoint, rgb_image):
    stack = np.stack([rgb_image[..., 0], rgb_image[..., 1], rgb_image[..., 2]]).astype(np.uint16) * 100
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack)
    classes = tmp_path / "vocab.txt"
    classes.write_text("nucleus\ncytoplasm, cell body\n")
    assert main(_args(path, "--classes-file", classes, checkpoint=checkpoint, out=tmp_path / "o")) == 0
    labels = tifffile.imread(tmp_path / "o" / "stack_labels.tif")
    assert labels.shape == stack.shape and set(np.unique(labels)) <= {1, 2}


def test_exit_codes_and_messages(tmp_path, checkpoint, rgb_image, capsys):
    good = tmp_path / "good.png"
    skio.imsave(good, rgb_image, check_contrast=False)
    assert main(_args(good, "--classes", "cat;;dog", checkpoint=checkpoint, out=tmp_path / "o")) == 2
    assert "Class 2 is empty" in capsys.readouterr().err
    assert main(_args(tmp_path / "nope.png", "--classes", "cat", checkpoint=checkpoint, out=tmp_path / "o")) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(_args(good, "--classes", "cat", checkpoint=tmp_path / "missing.pt", out=tmp_path / "o")) == 3
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.png"
    bad.write_text("this is not a png")
    assert main(_args(bad, good, "--classes", "cat; dog", checkpoint=checkpoint, out=tmp_path / "o")) == 4
    assert "skipped" in capsys.readouterr().err
    assert (tmp_path / "o" / "good_labels.tif").is_file()  # the good image was still written


def test_offline_default_model_message(tmp_path, rgb_image, capsys):
    good = tmp_path / "good.png"
    skio.imsave(good, rgb_image, check_contrast=False)
    code = main(["segment", str(good), "--classes", "cat", "-o", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")])
    assert code == 3
    err = capsys.readouterr().err
    assert "cannot be downloaded" in err and "--checkpoint" in err


def test_help_runs(capsys):
    with pytest.raises(SystemExit) as info:
        main(["segment", "--help"])
    assert info.value.code == 0 and "--classes" in capsys.readouterr().out
