"""The napari widget in a real viewer (Xvfb): runs, layers, cancel, errors, cached refinement,
edits that survive everything, stacks and channels, export, attention probe, screenshot."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
# open_clip (-> torchvision -> triton) must load before any OpenGL context: under Mesa, triton's
# LLVM clashes with Mesa's. The widget guards real sessions (_compat); tests build models directly.
pytest.importorskip("open_clip")

from napari.utils.notifications import NotificationSeverity, notification_manager  # noqa: E402

from napari_sclip import _layers, segment  # noqa: E402
from napari_sclip._jobs import Progress  # noqa: E402
from napari_sclip._source import compose_rgb  # noqa: E402
from napari_sclip._widget import SclipWidget  # noqa: E402

CLASSES = "red thing\ngreen thing, grass\nblue thing"
TIMEOUT = 120_000


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _register_manifest() -> None:
    """Make napari know the plugin even when it is not pip-installed (tests run from a checkout)."""
    from importlib import resources

    from npe2 import PluginManager, PluginManifest

    pm = PluginManager.instance()
    try:
        pm.get_manifest("napari-sclip")
    except KeyError:
        pm.register(PluginManifest.from_file(str(resources.files("napari_sclip").joinpath("napari.yaml"))))


@pytest.fixture
def widget(viewer, qtbot, tiny_model):
    """The widget as napari builds it from the manifest (it gets napari's public-API viewer proxy)."""
    _register_manifest()
    _dock, w = viewer.window.add_plugin_dock_widget("napari-sclip", "Open-vocabulary segmentation")
    w.set_model(tiny_model)
    w.set_vocabulary(CLASSES, "")
    w.short_side.setValue(64)
    w.edit_policy.setCurrentIndex(w.edit_policy.findData("keep"))
    return w


def finish(widget, qtbot, start) -> str:
    """Call ``start`` (which starts a job) and wait for the job, layer writes included."""
    with qtbot.waitSignal(widget.job_finished, timeout=TIMEOUT) as blocker:
        start()
    return blocker.args[0]


def engine(image, model, classes=CLASSES, **kw):
    kw.setdefault("short_side", 64)
    return segment(image, classes, model=model, **kw)


def test_run_makes_aligned_labels_and_scores(viewer, widget, qtbot, tiny_model, rgb_image):
    img = viewer.add_image(rgb_image, rgb=True, name="photo", scale=(0.5, 2.0), translate=(3.0, -4.0), rotate=10)
    widget.set_image(img)
    assert finish(widget, qtbot, widget.run) == "done"
    labels, scores = viewer.layers["photo labels"], viewer.layers["photo scores"]
    assert widget.labels_layer is labels and widget.scores_layer is scores
    assert labels.data.shape == rgb_image.shape[:2] and scores.data.shape == (3, *rgb_image.shape[:2])
    ref = engine(rgb_image, tiny_model, contrast_limits=img.contrast_limits)
    np.testing.assert_array_equal(labels.data, ref.labels)
    np.testing.assert_allclose(scores.data, ref.probabilities)
    assert list(labels.features["class"]) == ["background", "red thing", "green thing", "blue thing"]
    assert "class: green thing" in labels.get_status((0, 0), world=False)["value"] or labels.data[0, 0] != 2
    for k, name in enumerate(ref.class_names, start=1):
        np.testing.assert_allclose(labels.colormap.map(k), _layers.class_colour(name, k), atol=1e-6)
    point = (10.0, 20.0)
    np.testing.assert_allclose(labels.data_to_world(point), img.data_to_world(point), atol=1e-9)
    np.testing.assert_allclose(scores.data_to_world((1.0, *point))[1:], img.data_to_world(point), atol=1e-9)
    assert tuple(scores.contrast_limits) == (0.0, 1.0) and scores.colormap.name == "inferno"
    np.testing.assert_array_equal(img.data, rgb_image)  # the input is never modified
    widget.update_legend(wait=True)
    rows = widget.legend.rows
    assert [r.name for r in rows] == ref.class_names
    counts = np.bincount(ref.labels.ravel(), minlength=4)
    np.testing.assert_allclose([r.fraction for r in rows], counts[1:] / ref.labels.size)


def test_layers_change_only_on_the_main_thread(viewer, widget, qtbot, rgb_image):
    import threading

    viewer.add_image(rgb_image, rgb=True, name="photo")
    threads = []
    viewer.layers.events.inserted.connect(lambda e: threads.append(threading.current_thread()))
    assert finish(widget, qtbot, widget.run) == "done"
    widget.labels_layer.events.paint.connect(lambda e: threads.append(threading.current_thread()))
    widget.set_vocabulary(CLASSES + "\nyellow thing")
    assert finish(widget, qtbot, widget.run) == "done"
    assert threads and all(t is threading.main_thread() for t in threads)


def test_cancel_stops_within_a_batch_and_changes_nothing(viewer, widget, qtbot, tiny_model):
    rng = np.random.default_rng(0)
    big = (rng.random((256, 256, 3)) * 255).astype(np.uint8)
    viewer.add_image(big, rgb=True, name="big")
    widget.short_side.setValue(256)  # 225 windows: many batches
    before = [layer.name for layer in viewer.layers]
    seen = {}

    def on_event(event):
        if isinstance(event, Progress) and event.total and "at_cancel" not in seen:
            seen["at_cancel"] = tiny_model.image_batches_run
            widget.cancel()

    def start():
        widget.run().yielded.connect(on_event)

    assert finish(widget, qtbot, start) == "cancelled"
    assert [layer.name for layer in viewer.layers] == before
    assert tiny_model.image_batches_run - seen["at_cancel"] <= 1
    assert not widget.busy and widget.run_button.isEnabled()
    # over existing layers, a cancelled re-run leaves them exactly as they were
    widget.short_side.setValue(64)
    assert finish(widget, qtbot, widget.run) == "done"
    data = np.array(widget.labels_layer.data)
    widget.short_side.setValue(256)
    seen.clear()
    assert finish(widget, qtbot, start) == "cancelled"
    np.testing.assert_array_equal(widget.labels_layer.data, data)


def _errors_since(n: int) -> list[str]:
    return [str(r.message) for r in notification_manager.records[n:] if r.severity >= NotificationSeverity.ERROR]


def test_errors_become_notifications_and_the_widget_recovers(viewer, widget, qtbot, rgb_image):
    viewer.add_image(rgb_image, rgb=True, name="photo")
    n = len(notification_manager.records)
    widget.set_vocabulary("a\n\nb, ,c")  # an empty synonym
    assert finish(widget, qtbot, widget.run) == "error"
    assert any("synonym" in m for m in _errors_since(n)), _errors_since(n)
    assert not widget.busy and widget.run_button.isEnabled() and "error" in widget.status_label.text()
    n = len(notification_manager.records)
    widget.checkpoint.setText("/nonexistent/model.safetensors")  # the model fields changed: load it
    widget.set_vocabulary(CLASSES)
    assert finish(widget, qtbot, widget.run) == "error"
    assert any("model.safetensors" in m for m in _errors_since(n)), _errors_since(n)
    assert "photo labels" not in viewer.layers


def test_threshold_hiding_and_vocabulary_use_the_cache(viewer, widget, qtbot, tiny_model, rgb_image):
    viewer.add_image(rgb_image, rgb=True, name="photo")
    assert finish(widget, qtbot, widget.run) == "done"
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
    assert finish(widget, qtbot, widget.run) == "done"  # Run with nothing new: a relabel
    assert "1 relabelled" in widget.status_label.text()
    # a new vocabulary -> re-score from cached features
    widget.set_vocabulary("blue thing\nred thing\nsky, cloud")
    assert finish(widget, qtbot, widget.run) == "done"
    assert "re-scored from cache" in widget.status_label.text()
    assert tiny_model.image_batches_run == batches  # the image encoder did not run
    rescored = ref.rescore("blue thing\nred thing\nsky, cloud").relabel(threshold=0.5)
    layer_of = widget.session.memory.lut(rescored.class_names)  # layer numbers stay tied to names
    np.testing.assert_array_equal(widget.labels_layer.data, layer_of[rescored.labels])
    assert list(widget.labels_layer.features["class"]) == ["background", "red thing", "green thing", "blue thing", "sky"]
    assert widget.scores_layer.data.shape[0] == 3 and widget.scores_layer.metadata["classes"] == rescored.class_names
    # a new scale -> a real run
    widget.short_side.setValue(96)
    assert finish(widget, qtbot, widget.run) == "done"
    assert tiny_model.image_batches_run > batches


def _paint(layer, rows, cols, value):
    """A user stroke: one undoable edit, as the paint brush makes."""
    with layer.block_history():
        layer.data_setitem((np.asarray(rows), np.asarray(cols)), value)


@pytest.mark.parametrize("chunk", [None, 1000], ids=["one-turn", "row-bands"])
def test_painted_pixels_survive_relabel_rescore_and_rerun(viewer, widget, qtbot, rgb_image, monkeypatch, chunk):
    if chunk:  # large updates are written in row bands over several event-loop turns
        from napari_sclip import _results

        monkeypatch.setattr(_results, "CHUNK_PIXELS", chunk)
    viewer.add_image(rgb_image, rgb=True, name="photo")
    assert finish(widget, qtbot, widget.run) == "done"
    layer = widget.labels_layer
    ys, xs = np.mgrid[5:15, 5:15]
    _paint(layer, ys.ravel(), xs.ravel(), 3)  # paint "blue thing"
    _paint(layer, [40, 41], [60, 60], 0)  # erase two pixels

    def edits_kept():
        assert (layer.data[5:15, 5:15] == 3).all() and layer.data[40, 60] == 0 and layer.data[41, 60] == 0

    before = np.array(layer.data)
    assert finish(widget, qtbot, lambda: widget.set_threshold(0.7)) == "done"
    edits_kept()
    layer.undo()  # one programmatic update = one undo step
    np.testing.assert_array_equal(layer.data, before)
    layer.redo()
    widget.set_vocabulary("green thing, grass\nred thing")  # "blue thing" leaves the vocabulary
    assert finish(widget, qtbot, widget.run) == "done"
    edits_kept()
    assert list(layer.features["class"])[3] == "blue thing"  # the painted class keeps its name
    widget.update_legend(wait=True)
    assert "blue thing" in [r.name for r in widget.legend.rows]  # still listed: it has pixels
    widget.short_side.setValue(96)
    assert finish(widget, qtbot, widget.run) == "done"  # policy "keep": a full re-run
    assert widget.labels_layer is layer
    edits_kept()


def test_rerun_policies_new_layer_and_overwrite(viewer, widget, qtbot, rgb_image):
    viewer.add_image(rgb_image, rgb=True, name="photo")
    assert finish(widget, qtbot, widget.run) == "done"
    first = widget.labels_layer
    _paint(first, [0, 1], [0, 0], 3)
    snapshot = np.array(first.data)
    widget.edit_policy.setCurrentIndex(widget.edit_policy.findData("new"))
    widget.short_side.setValue(96)
    assert finish(widget, qtbot, widget.run) == "done"
    second = widget.labels_layer
    assert second is not first and first in viewer.layers
    np.testing.assert_array_equal(first.data, snapshot)  # the old layer is left alone
    _paint(second, [0, 1], [0, 0], 3)
    widget.edit_policy.setCurrentIndex(widget.edit_policy.findData("overwrite"))
    widget.short_side.setValue(64)
    assert finish(widget, qtbot, widget.run) == "done"
    ref = widget.session.cache[()].seg
    np.testing.assert_array_equal(second.data, ref.labels)  # edits gone


def test_rerun_over_edits_asks(viewer, widget, qtbot, rgb_image):
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QMessageBox

    viewer.add_image(rgb_image, rgb=True, name="photo")
    assert finish(widget, qtbot, widget.run) == "done"
    _paint(widget.labels_layer, [3], [3], 3)
    widget.edit_policy.setCurrentIndex(widget.edit_policy.findData("ask"))
    widget.short_side.setValue(96)
    asked = []

    def answer():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, answer)
            return
        asked.append(box.text())
        next(b for b in box.buttons() if b.text() == "Keep my edits").click()

    QTimer.singleShot(50, answer)
    assert finish(widget, qtbot, widget.run) == "done"
    assert asked and "painted" in asked[0]
    assert widget.labels_layer.data[3, 3] == 3


def test_stack_current_plane_and_all_planes(viewer, widget, qtbot, tiny_model):
    rng = np.random.default_rng(2)
    stack = (rng.random((3, 48, 64)) * 4000).astype(np.uint16)
    img = viewer.add_image(stack, name="stack", contrast_limits=(0, 4000), scale=(3.0, 1.0, 1.0))
    widget.set_image(img)
    viewer.dims.set_current_step(0, 1)
    assert finish(widget, qtbot, widget.run) == "done"
    labels, scores = widget.labels_layer, widget.scores_layer
    assert labels.data.shape == (3, 48, 64) and scores.data.shape == (3, 3, 48, 64)
    ref1 = engine(stack[1], tiny_model, contrast_limits=(0, 4000))
    np.testing.assert_array_equal(labels.data[1], ref1.labels)
    assert not labels.data[0].any() and not labels.data[2].any()
    np.testing.assert_allclose(scores.data[:, 1], ref1.probabilities)
    assert not scores.data[:, 0].any()
    widget.planes_combo.setCurrentIndex(widget.planes_combo.findData("all"))
    assert "× 3 planes" in widget.hint_label.text()
    assert finish(widget, qtbot, widget.run) == "done"
    assert "2 segmented" in widget.status_label.text() and "1 relabelled" in widget.status_label.text()
    for z in range(3):
        ref = engine(stack[z], tiny_model, contrast_limits=(0, 4000))
        np.testing.assert_array_equal(labels.data[z], ref.labels)
        np.testing.assert_allclose(scores.data[:, z], ref.probabilities)
    assert finish(widget, qtbot, lambda: widget.set_threshold(0.6)) == "done"  # relabels every plane
    for z in range(3):
        np.testing.assert_array_equal(labels.data[z], widget.session.cache[(z,)].seg.labels)


def test_channels_from_separate_layers(viewer, widget, qtbot, tiny_model):
    from napari_sclip._sample_data import cells_timelapse

    (nuc, nuc_meta, _), (cyto, cyto_meta, _) = cells_timelapse()
    a = viewer.add_image(nuc[:, :64, :64], **nuc_meta)
    b = viewer.add_image(cyto[:, :64, :64], **cyto_meta)
    a.contrast_limits = (400, 2000)
    widget.set_image(a)
    widget.rgb_mode.setCurrentIndex(widget.rgb_mode.findData("layers"))
    widget.layer_picks[0].setCurrentIndex(widget.layer_picks[0].findData(None))
    widget.layer_picks[1].setCurrentIndex(widget.layer_picks[1].findData(b))
    widget.layer_picks[2].setCurrentIndex(widget.layer_picks[2].findData(a))
    viewer.dims.set_current_step(0, 2)
    assert finish(widget, qtbot, widget.run) == "done"
    rgb = compose_rgb([None, b.data[2], a.data[2]], [None, b.contrast_limits, a.contrast_limits])
    ref = engine(rgb, tiny_model, contrast_limits=(0, 1))
    np.testing.assert_array_equal(widget.labels_layer.data[2], ref.labels)
    assert widget.labels_layer.data.shape == a.data.shape


def test_channels_from_a_channel_axis(viewer, widget, qtbot, tiny_model):
    rng = np.random.default_rng(3)
    data = (rng.random((3, 40, 56)) * 1000).astype(np.uint16)  # (c, y, x) in one layer
    img = viewer.add_image(data, name="multi", contrast_limits=(0, 1000))
    widget.set_image(img)
    widget.rgb_mode.setCurrentIndex(widget.rgb_mode.findData("axis"))
    widget.channel_axis.setValue(0)
    for box, c in zip(widget.channel_picks, (2, 0, None)):
        box.setCurrentIndex(box.findData(c))
    assert finish(widget, qtbot, widget.run) == "done"
    assert widget.labels_layer.data.shape == (40, 56)
    rgb = compose_rgb([data[2], data[0], None], [(0, 1000)] * 3)
    np.testing.assert_array_equal(widget.labels_layer.data, engine(rgb, tiny_model, contrast_limits=(0, 1)).labels)


def test_16bit_is_normalised_through_the_contrast_limits(viewer, widget, qtbot, tiny_model):
    rng = np.random.default_rng(4)
    data = (rng.random((40, 56)) * 60000).astype(np.uint16)
    img = viewer.add_image(data, name="u16", contrast_limits=(0, 60000))
    widget.set_image(img)
    assert finish(widget, qtbot, widget.run) == "done"
    batches = tiny_model.image_batches_run
    img.contrast_limits = (10000, 30000)
    assert finish(widget, qtbot, widget.run) == "done"
    assert tiny_model.image_batches_run > batches  # new contrast = new input: a real run
    ref = engine(data, tiny_model, contrast_limits=(10000, 30000))
    np.testing.assert_array_equal(widget.labels_layer.data, ref.labels)


def test_export_reads_back_equal(viewer, widget, qtbot, rgb_image, tmp_path):
    import tifffile

    from napari_sclip._export import read_class_csv

    viewer.add_image(rgb_image, rgb=True, name="photo")
    assert finish(widget, qtbot, widget.run) == "done"
    _paint(widget.labels_layer, [0, 0], [0, 1], 1)
    written = widget.export(tmp_path / "result.tif", probabilities=True)
    np.testing.assert_array_equal(tifffile.imread(written[0]), widget.labels_layer.data)
    np.testing.assert_array_equal(tifffile.imread(written[2]), widget.scores_layer.data)
    rows = read_class_csv(written[1])
    counts = np.bincount(np.asarray(widget.labels_layer.data).ravel(), minlength=4)
    assert [int(r["pixels"]) for r in rows] == list(counts)
    assert [r["class"] for r in rows] == ["background", "red thing", "green thing", "blue thing"]


def test_attention_probe_shows_sclip_next_to_vanilla(viewer, widget, qtbot, rgb_image):
    img = viewer.add_image(rgb_image, rgb=True, name="photo", scale=(2.0, 2.0))
    assert finish(widget, qtbot, widget.run) == "done"
    with qtbot.waitSignal(viewer.layers.events.inserted, timeout=TIMEOUT):
        worker = widget.probe_attention(30, 40)
    qtbot.waitUntil(lambda: "photo attention (vanilla)" in viewer.layers, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: not worker.is_running, timeout=TIMEOUT)
    sclip, vanilla = viewer.layers["photo attention (SCLIP)"], viewer.layers["photo attention (vanilla)"]
    seg = widget.session.cache[()].seg
    np.testing.assert_allclose(sclip.data, seg.attention_map(30, 40, "sclip"))
    np.testing.assert_allclose(vanilla.data, seg.attention_map(30, 40, "vanilla"))
    right_of_image = img.data_to_world((0, img.data.shape[1]))[1]
    assert sclip.data_to_world((0, 0))[0] == img.data_to_world((0, 0))[0]  # side by side, same rows
    assert right_of_image < sclip.data_to_world((0, 0))[1] < vanilla.data_to_world((0, 0))[1]
    marks = viewer.layers["photo probe point"].data
    assert len(marks) == 3 and np.allclose(marks[0], (30, 40))  # the point, in all three panels
    assert "photo attention (SCLIP)" not in [widget.image_combo.itemText(i) for i in range(widget.image_combo.count())]


def test_vocabulary_presets_and_files(widget, tmp_path):
    widget.apply_preset("fluorescence")
    assert widget.classes_edit.toPlainText().startswith("nuclei")
    assert "background" in widget.background_edit.text()
    path = widget.save_vocabulary(tmp_path / "v.txt")
    widget.set_vocabulary("x", "y")
    widget.load_vocabulary(path)
    assert widget.classes_edit.toPlainText().startswith("nuclei") and "background" in widget.background_edit.text()
    titles = [widget.preset_combo.itemText(i) for i in range(widget.preset_combo.count())]
    assert any("LoveDA" in t for t in titles) and any("OpenEarthMap" in t for t in titles)


def test_model_loads_from_a_checkpoint_once(viewer, qtbot, tiny_clip, rgb_image, tmp_path):
    import json

    from safetensors.torch import save_file

    config = {"embed_dim": 32, "quick_gelu": False,
              "vision_cfg": dict(image_size=32, patch_size=8, width=32, layers=2, head_width=16),
              "text_cfg": dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=1)}  # fmt: skip
    path = tmp_path / "tiny.safetensors"
    state = {k: v.contiguous() for k, v in tiny_clip.state_dict().items()}
    save_file(state, str(path), metadata={"format": "napari-sclip/open_clip-v1", "name": "tiny-file",
                                          "open_clip_config": json.dumps(config), "description": "test"})  # fmt: skip
    widget = SclipWidget(viewer)
    viewer.window.add_dock_widget(widget)
    viewer.add_image(rgb_image, rgb=True, name="photo")
    widget.model_name.setText("")
    widget.checkpoint.setText(str(path))
    widget.device_combo.setCurrentIndex(widget.device_combo.findData("cpu"))
    widget.precision_combo.setCurrentIndex(widget.precision_combo.findData("fp32"))
    widget.set_vocabulary(CLASSES, "")
    widget.short_side.setValue(64)
    assert finish(widget, qtbot, widget.run) == "done"
    model = widget.model
    assert model is not None and "tiny" in widget.model_label.text()
    widget.short_side.setValue(96)
    assert finish(widget, qtbot, widget.run) == "done"
    assert widget.model is model  # loaded once, reused


def test_window_hint_matches_the_engine_grid(widget, viewer, rgb_image):
    from napari_sclip._form import window_count
    from napari_sclip.prepare import inference_size
    from napari_sclip.tiling import window_grid

    viewer.add_image(rgb_image, rgb=True, name="photo")
    for short, win, stride in [(64, 32, 16), (336, 224, 112), (None, 32, 32), (100, 32, 10)]:
        h, w = inference_size(70, 90, short)
        assert window_count(70, 90, short, win, stride) == len(window_grid(h, w, win, stride))
    widget.short_side.setValue(64)
    assert widget.hint_label.text().startswith(f"{window_count(70, 90, 64, 32, 16)} windows of 32 px")


def test_attention_modes_match_the_engine():
    from napari_sclip._form import ATTENTION_MODES
    from napari_sclip.attention import MODES

    assert set(ATTENTION_MODES) == set(MODES)


def test_screenshot_of_the_widget_at_work(viewer, widget, qtbot, tmp_path):
    from napari_sclip._sample_data import cells_rgb

    data, meta, _ = cells_rgb()[0]
    viewer.add_image(data[:128, :128], **meta)
    widget.apply_preset("fluorescence")
    assert finish(widget, qtbot, widget.run) == "done"
    widget.update_legend(wait=True)
    path = tmp_path / "widget.png"
    shot = viewer.screenshot(str(path), canvas_only=False)
    assert path.stat().st_size > 10_000 and shot.shape[0] > 300 and shot.shape[1] > 500
    assert shot[..., :3].std() > 5  # not a blank window


def test_napari_opens_the_widget_and_samples_from_the_manifest(viewer, qtbot):
    """Through napari's own plugin machinery: the dock widget (viewer injected) and sample data."""
    _register_manifest()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-sclip", "Open-vocabulary segmentation")
    assert isinstance(widget, SclipWidget)  # napari injected its viewer (a public-API proxy)
    viewer.open_sample("napari-sclip", "aerial")
    viewer.open_sample("napari-sclip", "timelapse")
    assert [layer.name for layer in viewer.layers] == ["aerial scene", "nuclei (DAPI)", "cytoplasm (GFP)"]
    assert widget.image_combo.count() == 3


def _stroke(target, MouseEvent, points) -> None:
    """A real napari mouse stroke (press, drags, release) through the callbacks of ``target``."""
    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import (
        mouse_move_callbacks,
        mouse_press_callbacks,
        mouse_release_callbacks,
    )

    def event(kind, pos, dragging):
        return ReadOnlyWrapper(MouseEvent(type=kind, is_dragging=dragging, position=pos, view_direction=None,
                                          dims_displayed=(0, 1), dims_point=(0, 0)))  # fmt: skip

    mouse_press_callbacks(target, event("mouse_press", points[0], False))
    for p in points[1:]:
        mouse_move_callbacks(target, event("mouse_move", p, True))
    mouse_release_callbacks(target, event("mouse_release", points[-1], False))


def test_a_real_brush_stroke_is_kept_whole(viewer, widget, qtbot, rgb_image, MouseEvent):
    """napari reports only the pixels a stroke changed; the parts painted over pixels that already
    had the label must be kept too."""
    from napari.layers import Labels

    viewer.add_image(rgb_image, rgb=True, name="photo")
    assert finish(widget, qtbot, widget.run) == "done"
    layer = widget.labels_layer
    label = int(np.bincount(layer.data.ravel(), minlength=4)[1:].argmax()) + 1  # the most common class
    points = [(35.0, float(x)) for x in range(10, 80, 3)]
    layer.brush_size, layer.selected_label, layer.mode = 7, label, "paint"
    _stroke(layer, MouseEvent, points)
    footprint_layer = Labels(np.zeros(layer.data.shape, np.uint8))  # the same stroke on a blank layer
    footprint_layer.brush_size, footprint_layer.selected_label, footprint_layer.mode = 7, 1, "paint"
    _stroke(footprint_layer, MouseEvent, points)
    footprint = footprint_layer.data == 1
    assert (layer.data[footprint] == label).all() and footprint.sum() > 300
    layer.mode = "pan_zoom"
    assert finish(widget, qtbot, lambda: widget.set_threshold(0.95)) == "done"
    assert (layer.data[footprint] == label).all()
    assert (layer.data[~footprint] == 0).mean() > 0.5  # the threshold did act elsewhere


def test_clicking_with_the_probe_on(viewer, widget, qtbot, rgb_image, MouseEvent):
    viewer.add_image(rgb_image, rgb=True, name="photo", scale=(2.0, 2.0))
    assert finish(widget, qtbot, widget.run) == "done"
    before = list(viewer.mouse_drag_callbacks)
    widget.probe_check.setChecked(True)
    (probe,) = [cb for cb in viewer.mouse_drag_callbacks if cb not in before]
    press = MouseEvent(type="mouse_press", position=(40.0, 60.0), view_direction=None,
                       dims_displayed=(0, 1), dims_point=(0, 0))  # fmt: skip
    probe(viewer, press)  # what napari calls on a click in the canvas
    qtbot.waitUntil(lambda: "photo probe point" in viewer.layers, timeout=TIMEOUT)
    np.testing.assert_allclose(viewer.layers["photo probe point"].data[0], (20.0, 30.0))  # data coords
    widget.probe_check.setChecked(False)
    assert widget._probe_click not in viewer.mouse_drag_callbacks


def test_multiscale_image_is_segmented_at_full_resolution(viewer, widget, qtbot, tiny_model, rgb_image):
    half = rgb_image[::2, ::2]
    img = viewer.add_image([rgb_image, half], rgb=True, multiscale=True, name="pyramid")
    widget.set_image(img)
    assert finish(widget, qtbot, widget.run) == "done"
    assert widget.labels_layer.data.shape == rgb_image.shape[:2]
    np.testing.assert_array_equal(widget.labels_layer.data, engine(rgb_image, tiny_model, contrast_limits=img.contrast_limits).labels)
