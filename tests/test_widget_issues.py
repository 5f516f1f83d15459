"""Issue 8, reproduced in a real viewer as a user drives it (layer events, undo / redo through the
layer, dock close, layer removal, mode switches in every order), and fixed."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("open_clip")

from napari_sclip._napari.samples import cells_timelapse  # noqa: E402

from .widget_support import TIMEOUT, click, finish, paint, register_manifest, stroke  # noqa: E402


def _timelapse(viewer, size=48):
    (nuc, nuc_meta, _), (cyto, cyto_meta, _) = cells_timelapse()
    a = viewer.add_image(nuc[:, :size, :size], **nuc_meta)
    b = viewer.add_image(cyto[:, :size, :size], **cyto_meta)
    return a, b


MODES = {"layer": {}, "channel_axis": {"channels": 0}, "layers": {"channels": "pick"}}
#: Every ordered pair of colour modes, each followed by a run (an Eulerian walk over the 3 modes).
WALK = ["layer", "channel_axis", "layers", "channel_axis", "layer", "layers", "layer"]


def test_colour_from_switches_in_every_order_never_break(viewer, widget, qtbot, tmp_path):
    """Item 1: each mapping gets its own state; switching back finds it intact."""
    a, b = _timelapse(viewer)
    shapes = {"layer": (3, 48, 48), "channel_axis": (48, 48), "layers": (3, 48, 48)}
    for i, mode in enumerate(WALK):
        kw = dict(MODES[mode])
        if kw.get("channels") == "pick":
            kw["channels"] = (None, b, a)
        widget.set_image(a, colour_from=mode, **kw)
        viewer.dims.set_current_step(0, i % 3)
        assert widget.run() == "done", widget.panels.run_bar.status.text()
        assert widget.labels_layer.data.shape == shapes[mode]
        assert finish(widget, qtbot, lambda i=i: widget.set_threshold(0.1 + 0.05 * i)) == "done"
        widget.update_legend(wait=True)
        assert widget.panels.results.legend.rows
        widget.show_scores("cytoplasm")
        if i == 1:  # deleting the result layers does not break the next run of this mapping (i = 3)
            viewer.layers.remove(widget.labels_layer)
            viewer.layers.remove(widget.scores_layer)
            assert not widget.panels.results.legend.rows  # the legend went with the labels
            assert not widget.panels.results.export_button.enabled
    assert widget.export(tmp_path / "after_switches_labels.tif")
    assert len([lay for lay in viewer.layers if " labels" in lay.name]) == 3  # one per mapping


def test_undo_of_a_plugin_update_restores_the_plugin_state(viewer, widget, qtbot, rgb_image):
    """Item 2: undo / redo of the plugin's own update restores slider, cache and legend, and never
    counts as user edits; undo of a user stroke un-flags its pixels."""
    viewer.add_image(rgb_image, rgb=True, name="photo")
    widget.panels.results.edit_policy.value = "ask"
    assert widget.run() == "done"
    layer, session = widget.labels_layer, widget.session
    first = np.array(layer.data)
    seg = session.cache[()].seg
    assert finish(widget, qtbot, lambda: widget.set_threshold(0.9)) == "done"
    np.testing.assert_array_equal(layer.data, seg.relabel(threshold=0.9).labels)
    with qtbot.waitSignal(widget.legend_updated, timeout=TIMEOUT):
        layer.undo()  # what napari's Ctrl+Z calls
    np.testing.assert_array_equal(layer.data, first)
    assert widget.panels.refine["threshold"].value == 0.0  # the slider follows
    assert session.cache[()].seg.threshold == 0.0 and not session.memory.edited.any()
    assert not session.has_edits(viewer.layers)
    np.testing.assert_allclose(sum(r.fraction for r in widget.panels.results.legend.rows), (first > 0).mean())
    assert finish(widget, qtbot, lambda: widget.set_threshold(0.95)) == "done"
    np.testing.assert_array_equal(layer.data, seg.relabel(threshold=0.95).labels)  # nothing frozen
    layer.undo()
    layer.redo()  # redo the 0.95 update
    assert widget.panels.refine["threshold"].value == pytest.approx(0.95)
    asked = []
    widget.runs.ask = lambda: asked.append(True) or "keep"
    widget.set_options(short_side=96)
    assert widget.run() == "done" and not asked  # policy "ask", yet nothing was painted: no question
    # a user stroke, undone, is no longer an edit
    assert finish(widget, qtbot, lambda: widget.set_threshold(0.0)) == "done"
    paint(layer, [1, 2], [1, 1], 3)
    assert session.memory.edited[1:3, 1].all()
    layer.undo()
    assert not session.memory.edited.any() and not session.has_edits(viewer.layers)
    # a long series of updates, all undone: older ones no longer keep their state, none turns
    # into edits, and the plane is simply run again next time
    for value in np.linspace(0.1, 0.9, 12):
        assert finish(widget, qtbot, lambda v=value: widget.set_threshold(float(v))) == "done"
    for _ in range(13):
        layer.undo()
    assert not session.has_edits(viewer.layers) and () not in session.cache
    assert widget.run() == "done" and "1 segmented" in widget.panels.run_bar.status.text()


def test_layout_fits_a_small_screen_and_shows_what_is_used(viewer, widget, qtbot, tiny_model):
    """Item 3: a scroll area, a narrow dock in every mode, a growing vocabulary box, the model in use."""
    from qtpy.QtWidgets import QScrollArea

    viewer.window.resize(1280, 800)
    a, b = _timelapse(viewer)
    a.name = "a very long layer name that would widen the dock " * 2
    for section in widget.panels.sections.values():
        section.set_expanded(True)
    widget.set_image(a, colour_from="layers", channels=(None, b, a))
    qtbot.wait(50)
    scroll = widget.panels.scroll
    assert isinstance(scroll, QScrollArea) and scroll.widgetResizable()
    assert widget.panels.scroll.widget().sizeHint().height() > 800  # taller than the screen: it scrolls
    assert widget.sizeHint().width() < 420 and widget.minimumSizeHint().width() < 420
    box = widget.panels.vocabulary.classes
    two = box.height()
    widget.set_vocabulary("\n".join(f"class {i}" for i in range(7)))
    assert box.height() > two and box.height() >= 7 * box.fontMetrics().lineSpacing()
    assert "tiny-random" in widget.panels.model.in_use.value
    assert "given by a script" in widget.panels.model.in_use.value
    assert "tiny-random" in widget.panels.sections["model"].toggle.text()


def test_channels_of_a_single_channel_time_lapse_is_a_clear_choice(viewer, widget, qtbot):
    """Item 4: no axis is taken for channels silently; the note says what the result will be."""
    from napari.layers import Image

    a, _b = _timelapse(viewer)
    widget.set_image(a)
    widget.panels.image.colour_from.value = "channel_axis"
    assert widget.panels.image.axis.value is None  # "— choose —"
    assert widget.run() == "error"
    assert "Choose the axis" in widget.panels.run_bar.status.text()
    widget.panels.image.axis.value = 0
    note = widget.panels.image.note.value
    assert "axis 0" in note and "no planes" in note
    labelled = viewer.add_image(np.zeros((2, 3, 16, 16), np.uint16), name="tczyx", axis_labels=("t", "c", "y", "x"))
    assert isinstance(labelled, Image)
    widget.set_image(labelled)
    widget.panels.image.colour_from.value = "channel_axis"
    assert widget.panels.image.axis.value == 1  # an axis named as channels is taken


def test_separate_layers_have_planes_and_a_hint_before_any_run(viewer, widget, qtbot):
    """Item 5."""
    a, b = _timelapse(viewer)
    widget.set_image(a, colour_from="layers", channels=(None, b, a), planes="all")
    assert widget.panels.image.planes.enabled
    assert widget.panels.hint.text().endswith("× 3 planes")
    widget.panels.image.colour_from.value = "layer"
    widget.panels.image.colour_from.value = "layers"  # defaults from the layers' colours
    assert [p.value for p in widget.panels.image.picks] == [None, b, a]


def _start_and_wait_for_windows(widget, qtbot):
    seen = []
    widget.progressed.connect(lambda p: seen.append(p) if p.detail.startswith("window") else None)
    widget.run(wait=False)
    qtbot.waitUntil(lambda: bool(seen), timeout=TIMEOUT)


def test_closing_the_dock_mid_run_stops_the_job(viewer, qtbot, tiny_model):
    """Item 6: the job stops, no layer appears afterwards, the widget can be collected."""
    register_manifest()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-sclip", "Open-vocabulary segmentation")
    widget.set_model(tiny_model)
    big = (np.random.default_rng(0).random((512, 512, 3)) * 255).astype(np.uint8)
    viewer.add_image(big, rgb=True, name="big")
    widget.set_options(short_side=512)  # 961 windows: the tiny model is still running when we close
    _start_and_wait_for_windows(widget, qtbot)
    at_close = []
    widget.job_finished.connect(lambda outcome: at_close.append((outcome, tiny_model.image_batches_run)))
    viewer.window.remove_dock_widget(widget)  # what the dock's close button does
    qtbot.wait(300)
    assert at_close[0][0] == "cancelled" and [lay.name for lay in viewer.layers] == ["big"]
    assert tiny_model.image_batches_run - at_close[0][1] <= 1
    ref = weakref.ref(widget)
    del widget, _dock
    for _ in range(3):
        gc.collect()
        qtbot.wait(20)
    assert ref() is None


def test_removing_the_image_mid_run_stops_the_job(viewer, widget, qtbot, tiny_model):
    big = (np.random.default_rng(0).random((512, 512, 3)) * 255).astype(np.uint8)
    image = viewer.add_image(big, rgb=True, name="big")
    widget.set_options(short_side=512)
    _start_and_wait_for_windows(widget, qtbot)
    with qtbot.waitSignal(widget.job_finished, timeout=TIMEOUT) as outcome:
        viewer.layers.remove(image)
    assert outcome.args == ["cancelled"] and not widget.busy
    qtbot.wait(300)
    assert len(viewer.layers) == 0 and "removed" in widget.panels.run_bar.status.text()


def test_scores_layer_keeps_the_sliders_and_the_memory(viewer, widget, qtbot):
    """Item 7: no class axis (the time slider stays time), the map shown above the labels, no copy."""
    a, _b = _timelapse(viewer)
    widget.set_image(a, planes="all")
    assert widget.run() == "done"
    widget.panels.results.legend.activated.emit(2)  # a double-click on the second row
    scores, labels = widget.scores_layer, widget.labels_layer
    assert scores.ndim == labels.ndim == 3 and viewer.dims.ndim == 3
    viewer.dims.set_current_step(0, 2)  # a script moving through time
    assert viewer.dims.current_step[0] == 2 and viewer.dims.nsteps == (3, 48, 48)  # no class slider
    assert scores.visible and scores.metadata["class"] == "green thing" and labels.selected_label == 2
    assert viewer.layers.index(scores) > viewer.layers.index(labels)
    import dask.array as da

    assert isinstance(scores.data, da.Array)  # views of the cached probabilities, computed per plane
    seg = widget.session.cache[(2,)].seg
    np.testing.assert_array_equal(np.asarray(scores.data[2]), seg.probabilities[1])


def test_attention_probe_is_where_the_user_clicked(viewer, widget, qtbot, rgb_image, MouseEvent):
    """Item 8: over the image, framed, vanilla to compare; a paint stroke does not probe; a re-run
    at another scale clears it."""
    img = viewer.add_image(rgb_image, rgb=True, name="photo", scale=(2.0, 2.0))
    assert widget.run() == "done"
    widget.panels.results.probe.value = True
    viewer.layers.selection.active = img
    click(viewer, MouseEvent, (60.0, 80.0))  # world coordinates: image pixel (30, 40)
    qtbot.waitUntil(lambda: "photo probe" in viewer.layers, timeout=TIMEOUT)
    sclip, vanilla = viewer.layers["photo attention (SCLIP)"], viewer.layers["photo attention (vanilla CLIP)"]
    seg = widget.session.cache[()].seg
    np.testing.assert_allclose(sclip.data, seg.attention_map(30, 40, "sclip"))
    np.testing.assert_allclose(vanilla.data, seg.attention_map(30, 40, "vanilla"))
    np.testing.assert_allclose(sclip.data_to_world((5, 7)), img.data_to_world((5, 7)))  # over the image
    assert sclip.visible and not vanilla.visible and sclip.colormap.colors[0, 3] == 0  # see-through where 0
    frame, dot = viewer.layers["photo probe"].data
    assert frame[0, 0] < 30 < frame[2, 0] and np.allclose(dot.mean(axis=0), (30, 40))
    assert "photo attention (SCLIP)" not in [lay.name for lay in widget.hooks.images()]
    before = np.array(sclip.data)
    labels = widget.labels_layer
    labels.mode, labels.selected_label = "paint", 1
    viewer.layers.selection.active = labels
    stroke(viewer, MouseEvent, [(10.0, 10.0), (12.0, 14.0)])  # the viewer sees the stroke too
    stroke(labels, MouseEvent, [(10.0, 10.0), (12.0, 14.0)])
    qtbot.wait(100)
    np.testing.assert_array_equal(sclip.data, before)  # not re-probed
    labels.mode = "pan_zoom"
    widget.set_options(short_side=96)
    assert widget.run() == "done"
    assert "photo probe" not in viewer.layers and "photo attention (SCLIP)" not in viewer.layers  # stale: gone
    widget.panels.results.probe.value = False
    assert widget.probe._on_drag not in viewer.mouse_drag_callbacks


def test_attention_probe_on_a_stack_plane(viewer, widget, qtbot):
    """The probe of plane t sits on plane t only (a one-plane layer shifted there)."""
    a, _b = _timelapse(viewer)
    widget.set_image(a, planes="all")
    assert widget.run() == "done"
    worker = widget.probe_attention(20, 24, (2,))
    qtbot.waitUntil(lambda: "nuclei (DAPI) probe" in viewer.layers and not worker.is_running, timeout=TIMEOUT)
    sclip = viewer.layers["nuclei (DAPI) attention (SCLIP)"]
    assert sclip.data.shape == (1, 48, 48)
    np.testing.assert_allclose(sclip.data_to_world((0, 5, 7)), a.data_to_world((2, 5, 7)))
    np.testing.assert_allclose(sclip.data[0], widget.session.cache[(2,)].seg.attention_map(20, 24, "sclip"))
    assert viewer.layers["nuclei (DAPI) probe"].data[1].mean(axis=0)[1:] == pytest.approx((20, 24))
    worker = widget.probe_attention(10, 12, (0,))  # another plane: the layers move there
    qtbot.waitUntil(lambda: not worker.is_running and "nuclei (DAPI) probe" in viewer.layers, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: viewer.layers["nuclei (DAPI) probe"].metadata["point"] == (0, 10.0, 12.0), timeout=TIMEOUT)
    sclip = viewer.layers["nuclei (DAPI) attention (SCLIP)"]
    np.testing.assert_allclose(sclip.data_to_world((0, 5, 7)), a.data_to_world((0, 5, 7)))


def test_numbers_agree_legend_csv_hint_and_progress(viewer, widget, qtbot, tmp_path):
    """Item 9: only segmented planes count, legend and CSV agree, the writer's CSV has the mean
    probability, the exported TIFF reopens as labels, hint and progress count the same windows."""
    from napari_sclip.io import read_class_table

    a, _b = _timelapse(viewer)
    widget.set_image(a, planes="current")
    windows = []
    widget.progressed.connect(lambda p: windows.append(p.detail) if p.detail.startswith("window") else None)
    assert widget.run() == "done"
    assert windows[-1].split(" of ")[1] == widget.panels.hint.text().split(" windows")[0]
    widget.update_legend(wait=True)
    rows = widget.panels.results.legend.rows
    written = widget.export(tmp_path / "one_plane_labels.tif")
    table = read_class_table(written[1])
    assert [round(r.fraction, 6) for r in rows] == [round(r.fraction, 6) for r in table.rows[1:]]
    assert sum(r.pixels for r in table.rows) == 48 * 48  # one plane of three
    saved = widget.labels_layer.save(str(tmp_path / "saved_labels.tif"), plugin="napari-sclip")
    assert all(np.isfinite(r.mean_probability) for r in read_class_table(saved[1]).rows[1:] if r.pixels)
    opened = viewer.open(written[0], plugin="napari-sclip")
    assert opened[0]._type_string == "labels"
    assert list(opened[0].features["class"]) == ["background", *widget.session.memory.names]


def test_hidden_classes_belong_to_their_image(viewer, widget, qtbot, rgb_image):
    """Item 10."""
    a = viewer.add_image(rgb_image, rgb=True, name="A")
    b = viewer.add_image(rgb_image[::-1].copy(), rgb=True, name="B")
    widget.set_image(a)
    assert widget.run() == "done"
    assert finish(widget, qtbot, lambda: widget.set_class_visible("green thing", False)) == "done"
    assert not (widget.labels_layer.data == 2).any()
    widget.set_image(b)
    assert widget.run() == "done"
    assert (widget.labels_layer.data == 2).any() and not widget.session.hidden


def test_result_actions_follow_the_state(viewer, widget, qtbot, rgb_image):
    """Item 12: Export and Forget only with a result; Cancel off while the layers are written;
    the result layers exist before the first result arrives."""
    viewer.add_image(rgb_image, rgb=True, name="photo")
    results, bar = widget.panels.results, widget.panels.run_bar
    assert not results.export_button.enabled and not results.forget_button.enabled
    states = []
    widget.progressed.connect(lambda p: states.append(("photo labels" in viewer.layers, bar.cancel_button.enabled)))
    from napari_sclip._qt import layer_writer

    original = layer_writer.LayerWriter.write

    def spy(self, job, then):
        states.append(("writing", bar.cancel_button.enabled))
        original(self, job, then)

    layer_writer.LayerWriter.write = spy
    try:
        assert widget.run() == "done"
    finally:
        layer_writer.LayerWriter.write = original
    assert states[0] == (True, True) and ("writing", False) in states
    assert results.export_button.enabled and results.forget_button.enabled
