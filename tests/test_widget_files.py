"""One vocabulary format and one writer: presets and saved files round-trip byte for byte through the
widget; the CLI, the widget's Export and napari's writer write identical files for the same result;
the labels TIFF opens again as labels."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("open_clip")

from napari_sclip.vocabulary import preset_names  # noqa: E402

from .widget_support import paint  # noqa: E402

VOCABULARY = "# my classes\nred thing, crimson\ngreen thing\n# background: blue thing, sky\n"


def test_presets_and_files_round_trip_byte_for_byte(qtbot, tmp_path):
    from napari_sclip._qt.vocabulary_panel import VocabularyPanel

    panel = VocabularyPanel()
    for name in preset_names():
        panel.preset.value = name  # the Presets menu
        assert panel.preset.value is None  # back to "Presets…"
        saved = panel.save(tmp_path / f"{name}.txt")
        original = resources.files("napari_sclip").joinpath(f"presets/{name}.txt").read_bytes()
        assert saved.read_bytes() == original, name
    mine = tmp_path / "mine.txt"
    mine.write_text(VOCABULARY, encoding="utf-8")
    panel.load(mine)
    assert panel.background.value == "blue thing, sky" and panel.classes.toPlainText().startswith("# my classes")
    assert panel.save(tmp_path / "again.txt").read_bytes() == mine.read_bytes()


def test_cli_export_and_napari_writer_write_identical_files(viewer, widget, qtbot, rgb_image, tmp_path):
    from skimage import io as skio

    from napari_sclip import cli
    from napari_sclip.options import ModelChoice

    from .conftest import write_tiny_checkpoint

    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.safetensors")
    vocabulary = tmp_path / "vocabulary.txt"
    vocabulary.write_text(VOCABULARY, encoding="utf-8")
    skio.imsave(tmp_path / "photo.png", rgb_image, check_contrast=False)
    args = ["segment", str(tmp_path / "photo.png"), "--classes-file", str(vocabulary), "--checkpoint", str(checkpoint),
            "--device", "cpu", "--precision", "fp32", "--short-side", "64", "--no-overlay", "-q"]  # fmt: skip
    assert cli.main([*args, "-o", str(tmp_path / "cli")]) == 0
    widget.set_model(ModelChoice(checkpoint=str(checkpoint), device="cpu", precision="fp32").load())
    widget.load_vocabulary(vocabulary)
    viewer.add_image(rgb_image, rgb=True, name="photo")
    assert widget.run() == "done"
    widget.export(tmp_path / "widget" / "photo_labels.tif")
    (tmp_path / "napari").mkdir()
    widget.labels_layer.save(str(tmp_path / "napari" / "photo_labels.tif"), plugin="napari-sclip")
    for name in ("photo_labels.tif", "photo_classes.csv"):
        cli_bytes = (tmp_path / "cli" / name).read_bytes()
        assert (tmp_path / "widget" / name).read_bytes() == cli_bytes, name
        assert (tmp_path / "napari" / name).read_bytes() == cli_bytes, name


def test_writer_without_a_live_session_uses_the_layer_features(viewer, tmp_path):
    from napari_sclip._napari.files import get_reader, write_labels
    from napari_sclip._napari.layers import features_table
    from napari_sclip.io import read_class_table, read_labels

    data = np.array([[0, 1], [3, 3]], np.uint8)
    written = write_labels(str(tmp_path / "w_labels.tiff"), data, {"features": features_table(["x", "y", "z"])})
    labels, names = read_labels(written[0])
    np.testing.assert_array_equal(labels, data)
    assert names == ["x", "y", "z"]
    assert [r.name for r in read_class_table(written[1])] == ["background", "x", "y", "z"]
    assert get_reader(written[0]) is not None
    plain = tmp_path / "plain_labels.tif"
    import tifffile

    tifffile.imwrite(plain, data)
    assert get_reader(str(plain)) is None  # not ours: another reader's turn
    layer = viewer.open(written[0], plugin="napari-sclip")[0]
    assert layer._type_string == "labels" and list(layer.features["class"]) == ["background", "x", "y", "z"]


def test_export_with_probabilities_and_edits(viewer, widget, qtbot, rgb_image, tmp_path):
    import tifffile

    from napari_sclip.io import read_class_table

    viewer.add_image(rgb_image, rgb=True, name="photo")
    assert widget.run() == "done"
    paint(widget.labels_layer, [0, 0], [0, 1], 1)
    written = widget.export(tmp_path / "result_labels.tif", probabilities=True)
    np.testing.assert_array_equal(tifffile.imread(written[0]), widget.labels_layer.data)
    np.testing.assert_array_equal(tifffile.imread(written[2]), widget.session.cache[()].seg.probabilities)
    rows = read_class_table(written[1])
    counts = np.bincount(np.asarray(widget.labels_layer.data).ravel(), minlength=4)
    assert [r.pixels for r in rows] == list(counts)  # the user's edits count
    assert [r.name for r in rows] == ["background", "red thing", "green thing", "blue thing"]


def test_an_ome_zarr_result_opens_in_napari_with_its_class_names(viewer, tmp_path, rgb_image, monkeypatch):
    """``segment --format zarr`` (a lazy pyramid written chunk by chunk) opens through the plugin's
    reader as multiscale labels with the class names and colours, plus the confidence map; level 0
    equals the labels TIFF of the same run; a store that is not ours is left to other readers."""
    import tifffile
    import zarr
    from skimage import io as skio

    from napari_sclip import cli
    from napari_sclip._napari.files import get_zarr_reader
    from napari_sclip.io import ome_zarr

    from .conftest import write_tiny_checkpoint

    monkeypatch.setattr(ome_zarr, "CHUNK", 128)  # several chunks on a small image
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.safetensors")
    image = np.tile(rgb_image, (4, 4, 1))  # 280 x 360: two pyramid levels
    skio.imsave(tmp_path / "scene.png", image, check_contrast=False)
    common = ["segment", str(tmp_path / "scene.png"), "--classes", VOCABULARY.splitlines()[1] + "; green thing",
              "--background", "blue thing", "--checkpoint", str(checkpoint), "--device", "cpu", "--precision",
              "fp32", "--short-side", "64", "--no-overlay", "-q"]  # fmt: skip
    assert cli.main([*common, "--format", "zarr", "-o", str(tmp_path / "z")]) == 0
    assert cli.main([*common, "-o", str(tmp_path / "t")]) == 0
    store = tmp_path / "z" / "scene.zarr"
    assert get_zarr_reader(str(store)) is not None
    layers = viewer.open(str(store), plugin="napari-sclip")
    labels = next(la for la in layers if la._type_string == "labels")
    confidence = next(la for la in layers if la._type_string == "image")
    assert labels.multiscale and len(labels.data) > 1 and confidence.multiscale
    assert list(labels.features["class"]) == ["background", "red thing", "green thing"]
    np.testing.assert_array_equal(np.asarray(labels.data[0]), tifffile.imread(tmp_path / "t" / "scene_labels.tif"))
    assert labels.data[0].shape == image.shape[:2] and labels.colormap.map(np.array([1]))[0, 3] == 1
    other = tmp_path / "other.zarr"
    zarr.open_group(str(other), mode="w").create_array("x", shape=(4, 4), dtype="u1")
    assert get_zarr_reader(str(other)) is None
