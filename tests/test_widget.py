"""The napari widget in a real viewer (Xvfb): runs, layers, cancel, errors, cached refinement,
edits that survive everything, stacks and channels, export, attention probe, screenshot."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
# open_clip (-> torchvision -> triton) must load before any OpenGL context: under Mesa, triton's
# LLVM clashes with Mesa's. The widget guards real sessions (_napari.compat); tests build models directly.
pytest.importorskip("open_clip")

from napari.utils.notifications import NotificationSeverity, notification_manager  # noqa: E402

from napari_sclip._napari.jobs import JobProgress  # noqa: E402
from napari_sclip._napari.source import compose_rgb  # noqa: E402
from napari_sclip._qt.widget import SclipWidget  # noqa: E402
from napari_sclip.palette import class_colours  # noqa: E402

from .widget_support import CLASSES, engine, finish, paint, register_manifest, stroke  # noqa: E402


def test_run_makes_aligned_labels_and_scores(viewer, widget, qtbot, tiny_model, rgb_image):
    img = viewer.add_image(rgb_image, rgb=True, name="photo", scale=(0.5, 2.0), translate=(3.0, -4.0), rotate=10)
    widget.set_image(img)
    assert widget.run() == "done"
    labels = viewer.layers["photo labels"]
    assert widget.labels_layer is labels and widget.scores_layer is None  # score maps: on demand
    ref = engine(rgb_image, tiny_model, contrast_limits=img.contrast_limits)
    np.testing.assert_array_equal(labels.data, ref.labels)
    widget.show_scores("green thing")
    scores = widget.scores_layer
    assert labels.data.shape == rgb_image.shape[:2] and scores.data.shape == rgb_image.shape[:2]  # no class axis
    np.testing.assert_allclose(scores.data, ref.probabilities[1])  # one class at a time
    assert np.shares_memory(scores.data, widget.session.cache[()].seg.probabilities)  # a view, not a copy
    assert scores.visible and viewer.layers.index(scores) > viewer.layers.index(labels)  # above the labels
    assert list(labels.features["class"]) == ["background", "red thing", "green thing", "blue thing"]
    ys, xs = np.nonzero(labels.data == 2)
    assert ys.size, "the tiny model should give some pixels to class 2"
    assert "class: green thing" in labels.get_status((ys[0], xs[0]), world=False)["value"]
    colours = class_colours(ref.class_names)
    for k in range(1, 4):
        np.testing.assert_allclose(labels.colormap.map(k), colours[k], atol=1e-6)
    point = (10.0, 20.0)
    np.testing.assert_allclose(labels.data_to_world(point), img.data_to_world(point), atol=1e-9)
    np.testing.assert_allclose(scores.data_to_world(point), img.data_to_world(point), atol=1e-9)
    assert tuple(scores.contrast_limits) == (0.0, 1.0) and scores.colormap.name == "inferno"
    np.testing.assert_array_equal(img.data, rgb_image)  # the input is never modified
    widget.update_legend(wait=True)
    rows = widget.panels.results.legend.rows
    assert [r.name for r in rows] == ref.class_names
    counts = np.bincount(ref.labels.ravel(), minlength=4)
    np.testing.assert_allclose([r.fraction for r in rows], counts[1:] / ref.labels.size)


def test_layers_change_only_on_the_main_thread(viewer, widget, qtbot, rgb_image):
    import threading

    viewer.add_image(rgb_image, rgb=True, name="photo")
    threads = []
    viewer.layers.events.inserted.connect(lambda e: threads.append(threading.current_thread()))
    assert widget.run() == "done"
    widget.labels_layer.events.paint.connect(lambda e: threads.append(threading.current_thread()))
    widget.set_vocabulary(CLASSES + "\nyellow thing")
    assert widget.run() == "done"
    assert threads and all(t is threading.main_thread() for t in threads)


def test_cancel_stops_within_a_batch_and_changes_nothing(viewer, widget, qtbot, tiny_model):
    rng = np.random.default_rng(0)
    big = (rng.random((256, 256, 3)) * 255).astype(np.uint8)
    viewer.add_image(big, rgb=True, name="big")
    widget.set_options(short_side=256)  # 225 windows: many batches
    before = [layer.name for layer in viewer.layers]
    seen = {}

    def on_progress(p: JobProgress):
        if p.detail.startswith("window") and "at_cancel" not in seen:
            seen["at_cancel"] = tiny_model.image_batches_run
            assert widget.panels.run_bar.cancel_button.enabled
            widget.cancel()

    widget.progressed.connect(on_progress)
    assert widget.run() == "cancelled"
    qtbot.wait(50)  # the turn that would have built the score layer
    assert [layer.name for layer in viewer.layers] == before  # the empty result layers went too
    assert tiny_model.image_batches_run - seen["at_cancel"] <= 1
    assert not widget.busy and widget.panels.run_bar.run_button.enabled
    # over existing layers, a cancelled re-run leaves them exactly as they were
    widget.set_options(short_side=64)
    assert widget.run() == "done"
    data = np.array(widget.labels_layer.data)
    widget.set_options(short_side=256)
    seen.clear()
    assert widget.run() == "cancelled"
    np.testing.assert_array_equal(widget.labels_layer.data, data)


def _errors_since(n: int) -> list[str]:
    return [str(r.message) for r in notification_manager.records[n:] if r.severity >= NotificationSeverity.ERROR]


def test_errors_become_notifications_and_the_widget_recovers(viewer, widget, qtbot, rgb_image):
    viewer.add_image(rgb_image, rgb=True, name="photo")
    n = len(notification_manager.records)
    widget.set_vocabulary("a\n\nb, ,c")  # an empty synonym
    assert widget.run() == "error"
    assert any("synonym" in m for m in _errors_since(n)), _errors_since(n)
    assert not widget.busy and widget.panels.run_bar.run_button.enabled
    assert "error" in widget.panels.run_bar.status.text()
    n = len(notification_manager.records)
    widget.panels.model.form["checkpoint"].value = "/nonexistent/model.safetensors"  # the fields changed: load
    widget.set_vocabulary(CLASSES)
    assert widget.run() == "error"
    assert any("model.safetensors" in m for m in _errors_since(n)), _errors_since(n)
    assert "photo labels" not in viewer.layers  # the empty labels layer of the failed run went too


def test_threshold_hiding_and_vocabulary_use_the_cache(viewer, widget, qtbot, tiny_model, rgb_image):
    viewer.add_image(rgb_image, rgb=True, name="photo")
    assert widget.run() == "done"
    ref = widget.session.cache[()].seg
    batches = tiny_model.image_batches_run
    # threshold slider -> relabel (debounced)
    assert finish(widget, qtbot, lambda: widget.set_threshold(0.5)) == "done"
    np.testing.assert_array_equal(widget.labels_layer.data, ref.relabel(threshold=0.5).labels)
    # hiding a class -> its pixels fall to the next class
    assert finish(widget, qtbot, lambda: widget.set_class_visible("green thing", False)) == "done"
    assert not (widget.labels_layer.data == 2).any()
    np.testing.assert_array_equal(widget.labels_layer.data, ref.relabel(threshold=0.5, suppressed=[2]).labels)
    assert finish(widget, qtbot, lambda: widget.set_class_visible("green thing", True)) == "done"
    assert widget.run() == "done"  # Run with nothing new: a relabel
    assert "1 relabelled" in widget.panels.run_bar.status.text()
    # a new vocabulary -> re-score from cached features
    widget.set_vocabulary("blue thing\nred thing\nsky, cloud")
    assert widget.run() == "done"
    assert "re-scored from cache" in widget.panels.run_bar.status.text()
    assert tiny_model.image_batches_run == batches  # the image encoder did not run
    rescored = ref.rescore("blue thing\nred thing\nsky, cloud").relabel(threshold=0.5)
    layer_of = widget.session.memory.lut(rescored.class_names)  # layer numbers stay tied to names
    np.testing.assert_array_equal(widget.labels_layer.data, layer_of[rescored.labels])
    assert list(widget.labels_layer.features["class"]) == ["background", "red thing", "green thing", "blue thing", "sky"]
    widget.show_scores("sky")
    np.testing.assert_allclose(widget.scores_layer.data, rescored.probabilities[2])
    # a new scale -> a real run
    widget.set_options(short_side=96)
    assert widget.run() == "done"
    assert tiny_model.image_batches_run > batches


@pytest.mark.parametrize("band", [None, 1000], ids=["one-turn", "row-bands"])
def test_painted_pixels_survive_relabel_rescore_and_rerun(viewer, widget, qtbot, rgb_image, monkeypatch, band):
    if band:  # large updates are written in row bands over several event-loop turns
        from napari_sclip._napari import writer

        monkeypatch.setattr(writer, "BAND_PIXELS", band)
    viewer.add_image(rgb_image, rgb=True, name="photo")
    assert widget.run() == "done"
    layer = widget.labels_layer
    ys, xs = np.mgrid[5:15, 5:15]
    paint(layer, ys.ravel(), xs.ravel(), 3)  # paint "blue thing"
    paint(layer, [40, 41], [60, 60], 0)  # erase two pixels

    def edits_kept():
        assert (layer.data[5:15, 5:15] == 3).all() and layer.data[40, 60] == 0 and layer.data[41, 60] == 0

    before = np.array(layer.data)
    assert finish(widget, qtbot, lambda: widget.set_threshold(0.7)) == "done"
    edits_kept()
    layer.undo()  # one programmatic update = one undo step
    np.testing.assert_array_equal(layer.data, before)
    layer.redo()
    widget.set_vocabulary("green thing, grass\nred thing")  # "blue thing" leaves the vocabulary
    assert widget.run() == "done"
    edits_kept()
    assert list(layer.features["class"])[3] == "blue thing"  # the painted class keeps its name
    widget.update_legend(wait=True)
    assert "blue thing" in [r.name for r in widget.panels.results.legend.rows]  # still listed: it has pixels
    widget.set_options(short_side=96)
    assert widget.run() == "done"  # policy "keep": a full re-run
    assert widget.labels_layer is layer
    edits_kept()


def test_rerun_policies_new_layer_and_overwrite(viewer, widget, qtbot, rgb_image):
    viewer.add_image(rgb_image, rgb=True, name="photo")
    assert widget.run() == "done"
    first = widget.labels_layer
    paint(first, [0, 1], [0, 0], 3)
    snapshot = np.array(first.data)
    widget.panels.results.edit_policy.value = "new"
    widget.set_options(short_side=96)
    assert widget.run() == "done"
    second = widget.labels_layer
    assert second is not first and first in viewer.layers
    np.testing.assert_array_equal(first.data, snapshot)  # the old layer is left alone
    paint(second, [0, 1], [0, 0], 3)
    widget.panels.results.edit_policy.value = "overwrite"
    widget.set_options(short_side=64)
    assert widget.run() == "done"
    ref = widget.session.cache[()].seg
    np.testing.assert_array_equal(second.data, ref.labels)  # edits gone


def _answer_dialog(qtbot, button: str, asked: list) -> None:
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QMessageBox

    def answer():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, answer)
            return
        asked.append(box.text())
        next(b for b in box.buttons() if b.text().replace("&", "") == button).click()

    QTimer.singleShot(50, answer)


def test_rerun_over_edits_asks_and_cancelling_says_so(viewer, widget, qtbot, rgb_image):
    viewer.add_image(rgb_image, rgb=True, name="photo")
    assert widget.run() == "done"
    paint(widget.labels_layer, [3], [3], 3)
    widget.panels.results.edit_policy.value = "ask"
    widget.set_options(short_side=96)
    asked: list = []
    _answer_dialog(qtbot, "Cancel", asked)
    data = np.array(widget.labels_layer.data)
    assert widget.run() == "cancelled"  # issue 8, item 12: the status no longer says "done"
    assert asked and "not run" in widget.panels.run_bar.status.text()
    np.testing.assert_array_equal(widget.labels_layer.data, data)
    _answer_dialog(qtbot, "Keep my edits", asked)
    assert widget.run() == "done"
    assert len(asked) == 2 and "painted" in asked[1]
    assert widget.labels_layer.data[3, 3] == 3


def test_stack_current_plane_and_all_planes(viewer, widget, qtbot, tiny_model):
    rng = np.random.default_rng(2)
    stack = (rng.random((3, 48, 64)) * 4000).astype(np.uint16)
    img = viewer.add_image(stack, name="stack", contrast_limits=(0, 4000), scale=(3.0, 1.0, 1.0))
    widget.set_image(img)
    viewer.dims.set_current_step(0, 1)
    assert widget.run() == "done"
    widget.show_scores("red thing")
    labels, scores = widget.labels_layer, widget.scores_layer
    assert labels.data.shape == (3, 48, 64) and scores.data.shape == (3, 48, 64)
    ref1 = engine(stack[1], tiny_model, contrast_limits=(0, 4000))
    np.testing.assert_array_equal(labels.data[1], ref1.labels)
    assert not labels.data[0].any() and not labels.data[2].any()
    np.testing.assert_allclose(np.asarray(scores.data[1]), ref1.probabilities[0])
    assert not np.asarray(scores.data[0]).any()
    widget.set_image(img, planes="all")
    assert "× 3 planes" in widget.panels.hint.text()
    assert widget.run() == "done"
    status = widget.panels.run_bar.status.text()
    assert "2 segmented" in status and "1 relabelled" in status
    for z in range(3):
        ref = engine(stack[z], tiny_model, contrast_limits=(0, 4000))
        np.testing.assert_array_equal(labels.data[z], ref.labels)
        np.testing.assert_allclose(np.asarray(scores.data[z]), ref.probabilities[0])
    assert finish(widget, qtbot, lambda: widget.set_threshold(0.6)) == "done"  # relabels every plane
    for z in range(3):
        np.testing.assert_array_equal(labels.data[z], widget.session.cache[(z,)].seg.labels)


def test_channels_from_separate_layers(viewer, widget, qtbot, tiny_model):
    from napari_sclip._napari.samples import cells_timelapse

    (nuc, nuc_meta, _), (cyto, cyto_meta, _) = cells_timelapse()
    a = viewer.add_image(nuc[:, :64, :64], **nuc_meta)
    b = viewer.add_image(cyto[:, :64, :64], **cyto_meta)
    a.contrast_limits = (400, 2000)
    widget.set_image(a, colour_from="layers", channels=(None, b, a))
    viewer.dims.set_current_step(0, 2)
    assert widget.run() == "done"
    rgb = compose_rgb([None, b.data[2], a.data[2]], [None, b.contrast_limits, a.contrast_limits])
    ref = engine(rgb, tiny_model, contrast_limits=(0, 1))
    np.testing.assert_array_equal(widget.labels_layer.data[2], ref.labels)
    assert widget.labels_layer.data.shape == a.data.shape


def test_channels_from_a_channel_axis(viewer, widget, qtbot, tiny_model):
    rng = np.random.default_rng(3)
    data = (rng.random((3, 40, 56)) * 1000).astype(np.uint16)  # (c, y, x) in one layer
    img = viewer.add_image(data, name="multi", contrast_limits=(0, 1000))
    widget.set_image(img, colour_from="channel_axis", channels=0, rgb=(2, 0, None))
    assert widget.run() == "done"
    assert widget.labels_layer.data.shape == (40, 56)
    rgb = compose_rgb([data[2], data[0], None], [(0, 1000)] * 3)
    np.testing.assert_array_equal(widget.labels_layer.data, engine(rgb, tiny_model, contrast_limits=(0, 1)).labels)


def test_16bit_is_normalised_through_the_contrast_limits(viewer, widget, qtbot, tiny_model):
    rng = np.random.default_rng(4)
    data = (rng.random((40, 56)) * 60000).astype(np.uint16)
    img = viewer.add_image(data, name="u16", contrast_limits=(0, 60000))
    widget.set_image(img)
    assert widget.run() == "done"
    batches = tiny_model.image_batches_run
    img.contrast_limits = (10000, 30000)
    assert widget.run() == "done"
    assert tiny_model.image_batches_run > batches  # new contrast = new input: a real run
    ref = engine(data, tiny_model, contrast_limits=(10000, 30000))
    np.testing.assert_array_equal(widget.labels_layer.data, ref.labels)


def test_multiscale_image_is_segmented_at_full_resolution(viewer, widget, qtbot, tiny_model, rgb_image):
    half = rgb_image[::2, ::2]
    img = viewer.add_image([rgb_image, half], rgb=True, multiscale=True, name="pyramid")
    widget.set_image(img)
    assert widget.run() == "done"
    assert widget.labels_layer.data.shape == rgb_image.shape[:2]
    ref = engine(rgb_image, tiny_model, contrast_limits=img.contrast_limits)
    np.testing.assert_array_equal(widget.labels_layer.data, ref.labels)


def test_a_real_brush_stroke_is_kept_whole(viewer, widget, qtbot, rgb_image, MouseEvent):
    """napari reports only the pixels a stroke changed; the parts painted over pixels that already
    had the label must be kept too."""
    from napari.layers import Labels

    viewer.add_image(rgb_image, rgb=True, name="photo")
    assert widget.run() == "done"
    layer = widget.labels_layer
    label = int(np.bincount(layer.data.ravel(), minlength=4)[1:].argmax()) + 1  # the most common class
    points = [(35.0, float(x)) for x in range(10, 80, 3)]
    layer.brush_size, layer.selected_label, layer.mode = 7, label, "paint"
    stroke(layer, MouseEvent, points)
    footprint_layer = Labels(np.zeros(layer.data.shape, np.uint8))  # the same stroke on a blank layer
    footprint_layer.brush_size, footprint_layer.selected_label, footprint_layer.mode = 7, 1, "paint"
    stroke(footprint_layer, MouseEvent, points)
    footprint = footprint_layer.data == 1
    assert (layer.data[footprint] == label).all() and footprint.sum() > 300
    layer.mode = "pan_zoom"
    assert finish(widget, qtbot, lambda: widget.set_threshold(0.95)) == "done"
    assert (layer.data[footprint] == label).all()
    assert (layer.data[~footprint] == 0).mean() > 0.5  # the threshold did act elsewhere


def test_model_loads_from_a_checkpoint_once_and_is_shown(viewer, qtbot, tmp_path, rgb_image):
    from .conftest import write_tiny_checkpoint

    path = write_tiny_checkpoint(tmp_path / "tiny.safetensors")
    widget = SclipWidget(viewer)
    viewer.window.add_dock_widget(widget)
    viewer.add_image(rgb_image, rgb=True, name="photo")
    form = widget.panels.model.form
    form["checkpoint"].value = str(path)
    form["device"].value, form["precision"].value = "cpu", "fp32"
    widget.set_vocabulary(CLASSES, "")
    widget.set_options(short_side=64)
    assert widget.run() == "done"
    model = widget.model
    assert model is not None and "tiny" in widget.panels.model.in_use.value
    assert "tiny" in widget.panels.sections["model"].toggle.text()  # shown even when folded
    widget.set_options(short_side=96)
    assert widget.run() == "done"
    assert widget.model is model  # loaded once, reused


def test_screenshot_of_the_widget_at_work(viewer, widget, qtbot, tmp_path):
    from napari_sclip._napari.samples import cells_rgb

    data, meta, _ = cells_rgb()[0]
    viewer.add_image(data[:128, :128], **meta)
    widget.apply_preset("fluorescence")
    assert widget.run() == "done"
    widget.update_legend(wait=True)
    path = tmp_path / "widget.png"
    shot = viewer.screenshot(str(path), canvas_only=False)
    assert path.stat().st_size > 10_000 and shot.shape[0] > 300 and shot.shape[1] > 500
    assert shot[..., :3].std() > 5  # not a blank window


def test_napari_opens_the_widget_and_samples_from_the_manifest(viewer, qtbot):
    """Through napari's own plugin machinery: the dock widget (viewer injected) and sample data."""
    register_manifest()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-sclip", "Open-vocabulary segmentation")
    assert isinstance(widget, SclipWidget)  # napari injected its viewer (a public-API proxy)
    viewer.open_sample("napari-sclip", "aerial")
    viewer.open_sample("napari-sclip", "timelapse")
    assert [layer.name for layer in viewer.layers] == ["aerial scene", "nuclei (DAPI)", "cytoplasm (GFP)"]
    assert len(widget.panels.image.image.choices) == 3


def test_the_readme_scripting_example_runs(viewer, qtbot, tiny_model, monkeypatch):
    """The README's scripting example, as written, with the tiny model for ViT-B/16 and this
    test's viewer for ``napari.Viewer()``."""
    import re
    from pathlib import Path

    import napari

    import napari_sclip

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### From a script or a notebook") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    register_manifest()
    monkeypatch.setattr(napari, "Viewer", lambda *a, **k: viewer)
    monkeypatch.setattr(napari_sclip, "load_model", lambda *a, **k: tiny_model)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the documented example
    widget = namespace["widget"]
    assert namespace["labels"].shape == (3, 256, 256) and widget.scores_layer.metadata["class"] == "cytoplasm"
    qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)  # the threshold's relabel
