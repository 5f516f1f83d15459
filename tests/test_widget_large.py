"""Large images in the widget (issue 10), in a real viewer under Xvfb, kept fast: small images take
the large path by lowering the widget's threshold (``LARGE_PIXELS``). Pyramid inputs read only the
level the engine needs; large results are multiscale layers over a zarr store; edits go through an
edit region and survive relabel, re-score, re-run and undo; stacks go plane by plane into the store;
the visible region is segmented in place; score maps are lazy; closing stops everything."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("open_clip")

from .widget_support import CLASSES, engine, finish, stroke  # noqa: E402


def scene(h: int = 150, w: int = 200) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 2.8) % 256, (yy * 3.6) % 256, ((xx + yy) * 1.5) % 256], axis=-1)
    return img.astype(np.uint8)


class Counted:
    """An array that records which pyramid level is read outside the UI thread (the engine's reads;
    napari reads on the UI thread to draw)."""

    def __init__(self, array: np.ndarray, level: int, log: list) -> None:
        self.array, self.level, self.log = array, level, log
        self.shape, self.dtype, self.ndim, self.size = array.shape, array.dtype, array.ndim, array.size

    def __getitem__(self, key):
        if threading.current_thread() is not threading.main_thread():
            self.log.append(self.level)
        return self.array[key]

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.array, dtype)

    def __len__(self):
        return len(self.array)


def test_multiscale_input_reads_only_the_covering_level(viewer, widget, tiny_model):
    full = scene(512, 640)
    pyramid = [full, full[::2, ::2], full[::4, ::4], full[::8, ::8]]
    log: list = []
    img = viewer.add_image([Counted(a, i, log) for i, a in enumerate(pyramid)], rgb=True, multiscale=True, name="pyr")
    widget.set_image(img)
    widget.set_options(short_side=96)  # level 2 (128 x 160) is the coarsest that covers 96 x 120
    assert widget.run() == "done"
    assert log and set(log) == {2}, sorted(set(log))
    assert widget.labels_layer.data.shape == (512, 640)  # aligned with full resolution
    ref = engine(pyramid, tiny_model, short_side=96, contrast_limits=img.contrast_limits)
    np.testing.assert_array_equal(widget.labels_layer.data, np.asarray(ref.labels))


@pytest.mark.parametrize("colour_from", ["channel_axis", "layers"])
def test_numpy_pyramid_channels_are_composed_lazily_without_hashing(monkeypatch, colour_from):
    import dask.array.core as core
    from napari.layers import Image

    from napari_sclip._napari.source import ImageSource, Mapping, compose_rgb

    hashed, tokenize = [], core.tokenize

    def spy(*args, **kwargs):
        hashed.extend(a for a in args if isinstance(a, np.ndarray) and a.size > 64)
        return tokenize(*args, **kwargs)

    monkeypatch.setattr(core, "tokenize", spy)
    full = np.random.default_rng(0).integers(0, 400, (3, 256, 320)).astype(np.uint16)
    layer = Image([full, full[:, ::2, ::2]], multiscale=True, contrast_limits=(0, 400))
    if colour_from == "layers":
        red, blue = (Image([c, c[::2, ::2]], multiscale=True, contrast_limits=(0, 400)) for c in (full[2], full[0]))
        mapping = Mapping("layers", layers=(red, None, blue))
        layer = red
    else:
        mapping = Mapping("channel_axis", axis=0, channels=(2, None, 0))
    image, _ = ImageSource(layer, mapping).read(())
    assert isinstance(image, list) and len(image) == 2 and all(type(a).__module__.startswith("dask") for a in image)
    assert not hashed  # numpy levels wrapped under a name of their own, not tokenized by their data
    np.testing.assert_allclose(np.asarray(image[0]), compose_rgb([full[2], None, full[0]], [(0, 400)] * 3))
    np.testing.assert_allclose(np.asarray(image[1]), compose_rgb([full[2, ::2, ::2], None, full[0, ::2, ::2]], [(0, 400)] * 3))


def _labels0(layer) -> np.ndarray:
    return np.asarray(layer.data[0])


def _painted_result(viewer, widget, MouseEvent):
    """A large result with a real brush stroke applied through an edit region: (layer, store, seg,
    mask of the stroke's pixels, painted label 3)."""
    from napari.layers import Labels

    viewer.add_image(scene(), rgb=True, name="photo")
    assert widget.run() == "done"
    layer, store, seg = widget.labels_layer, widget.session.store, widget.session.cache[()].seg
    viewer.scene.camera.center, viewer.scene.camera.zoom = (0, 75, 100), 8.0
    edit = widget.edit_region()
    h, w = (n / 8 for n in viewer.canvas.size)  # the canvas at zoom 8, in image pixels
    assert not layer.visible and edit.mode == "paint"
    assert abs(edit.data.shape[0] - h) <= 2 and abs(edit.data.shape[1] - w) <= 2, (edit.data.shape, h, w)
    y0, x0 = (int(v) for v in edit.translate)
    points = [(y0 + 30.0, x0 + x) for x in range(20, 60, 2)]
    blank = Labels(np.zeros(edit.data.shape, np.uint8), translate=edit.translate)  # the brush's footprint
    for target in (edit, blank):
        target.brush_size, target.selected_label, target.mode = 5, 3, "paint"
        stroke(target, MouseEvent, points)
    painted = np.asarray(blank.data) == 3
    assert painted.sum() > 150 and (np.asarray(edit.data)[painted] == 3).all()
    widget.apply_edits()
    assert layer.visible and not edit.visible and store.has_edits()
    mine = np.zeros((150, 200), bool)
    mine[y0 : y0 + painted.shape[0], x0 : x0 + painted.shape[1]] = painted
    return layer, store, seg, mine


def _kept(layer, mine) -> None:
    data = _labels0(layer)
    assert (data[mine] == 3).all()
    np.testing.assert_array_equal(np.asarray(layer.data[1]), data[::2, ::2])  # the pyramid follows


def test_large_result_is_a_multiscale_store_and_edits_survive_everything(viewer, widget, qtbot, large, MouseEvent):
    layer, store, seg, mine = _painted_result(viewer, widget, MouseEvent)
    assert layer.multiscale and not layer.editable and len(layer.data) == len(store.sizes) == 2
    assert all(type(a).__module__.startswith("zarr") and str(store.path) in str(a.store) for a in layer.data)
    assert seg.lazy and widget.session.memory.shape == (150, 200)
    np.testing.assert_array_equal(_labels0(layer)[~mine], np.asarray(seg.labels)[~mine])
    _kept(layer, mine)
    assert finish(widget, qtbot, lambda: widget.set_threshold(0.6)) == "done"  # relabel: into the store
    _kept(layer, mine)
    np.testing.assert_array_equal(_labels0(layer)[~mine], np.asarray(seg.relabel(threshold=0.6).labels)[~mine])
    widget.set_vocabulary(CLASSES + "\nyellow thing")
    assert widget.run() == "done" and "re-scored" in widget.panels.run_bar.status.text()
    _kept(layer, mine)
    widget.set_options(short_side=96)
    assert widget.run() == "done" and "segmented" in widget.panels.run_bar.status.text()
    _kept(layer, mine)
    assert widget.labels_layer is layer and widget.session.store is store
    # undo of plugin updates swaps generations back (slider too); undo of the commit un-paints
    for _ in range(3):
        layer.undo()
    assert widget.panels.refine.values()["threshold"] == 0.0
    _kept(layer, mine)
    layer.undo()
    qtbot.waitUntil(lambda: not widget.regions.writing, timeout=10_000)
    np.testing.assert_array_equal(_labels0(layer), np.asarray(seg.labels))
    assert not store.has_edits()
    layer.redo()
    qtbot.waitUntil(lambda: not widget.regions.writing, timeout=10_000)
    _kept(layer, mine)


def test_large_result_exports_with_its_edits_and_forgets_them(viewer, widget, qtbot, large, tmp_path, MouseEvent):
    from napari_sclip.io.ome_zarr import read_layers

    layer, store, seg, mine = _painted_result(viewer, widget, MouseEvent)
    written = widget.export(tmp_path / "photo.zarr")
    np.testing.assert_array_equal(np.asarray(read_layers(written[0])[1][0][0]), _labels0(layer))
    assert "green thing" in written[1].read_text()
    widget.forget_edits()
    assert not store.has_edits()
    for threshold in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.1, 0.2, 0.25):
        assert finish(widget, qtbot, lambda t=threshold: widget.set_threshold(t)) == "done"
    np.testing.assert_array_equal(_labels0(layer), np.asarray(seg.relabel(threshold=0.25).labels))
    assert len(list(store.path.glob("g*"))) <= 9  # generations beyond undo's reach (8 updates) are deleted


def _traced_peak(action) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_all_planes_go_plane_by_plane_into_a_stacked_store(viewer, widget, qtbot, large, tiny_model):
    rng = np.random.default_rng(5)
    stack = (rng.random((6, 120, 160)) * 4000).astype(np.uint16)
    img = viewer.add_image(stack, name="stack", contrast_limits=(0, 4000))
    widget.set_image(img)
    one = _traced_peak(lambda: widget.run() == "done" or pytest.fail("run"))
    widget.set_image(img, planes="all")
    every = _traced_peak(lambda: widget.run() == "done" or pytest.fail("run"))
    layer = widget.labels_layer
    assert layer.multiscale and layer.data.shape == (6, 120, 160)
    assert "5 segmented, 1 relabelled" in widget.panels.run_bar.status.text()
    for z in range(6):
        ref = engine(stack[z], tiny_model, contrast_limits=(0, 4000))
        np.testing.assert_array_equal(np.asarray(layer.data[0][z]), ref.labels)
        assert widget.session.cache[(z,)].seg.lazy
    # five more planes cost no more memory than one plane's class probabilities (float32, 4 channels)
    assert every < one + 4 * 4 * 120 * 160, (one, every)
    viewer.dims.set_current_step(0, 2)
    viewer.scene.camera.center, viewer.scene.camera.zoom = (0, 60, 80), 20.0
    edit = widget.edit_region()
    assert edit.data.shape[0] == 1 and edit.data_to_world((0, 0, 0))[0] == 2  # on the plane on screen


def test_visible_region_is_segmented_in_place(viewer, widget, tiny_model):
    full = scene(400, 560)
    pyramid = [full, full[::2, ::2], full[::4, ::4]]
    img = viewer.add_image(pyramid, rgb=True, multiscale=True, name="scene", scale=(0.5, 0.5), translate=(10, 20))
    widget.set_image(img, region="visible")
    viewer.scene.camera.center, viewer.scene.camera.zoom = (0, 10 + 0.5 * 200, 20 + 0.5 * 280), 6.0
    assert widget.run() == "done"
    layer = widget.labels_layer
    y0, y1, x0, x1 = box = widget.session.geometry.box
    h, w = (n / 6 / 0.5 for n in viewer.canvas.size)  # the canvas in image pixels
    expect = (200 - h / 2, 200 + h / 2, 280 - w / 2, 280 + w / 2)
    assert all(v % 4 == 0 for v in box) and all(abs(a - b) <= 4 for a, b in zip(box, expect)), (box, expect)
    assert layer.name == f"scene [rows {y0}-{y1}, columns {x0}-{x1}] labels"
    np.testing.assert_allclose(layer.data_to_world((0, 0)), img.data_to_world((y0, x0)))
    crops = [a[y0 // f : -(-y1 // f), x0 // f : -(-x1 // f)] for a, f in zip(pyramid, (1, 2, 4))]
    ref = engine(crops, tiny_model, contrast_limits=img.contrast_limits, lazy=False)
    np.testing.assert_array_equal(layer.data, ref.labels)
    widget.set_image(img)  # the whole image is another result, with its own layer
    assert widget.labels_layer is None


def test_score_maps_of_large_results_are_lazy_multiscale(viewer, widget, large):
    viewer.add_image(scene(), rgb=True, name="photo")
    assert widget.run() == "done"
    widget.show_scores("green thing")
    scores = widget.scores_layer
    seg = widget.session.cache[()].seg
    assert scores.multiscale and all(type(a).__module__.startswith("dask") for a in scores.data)
    np.testing.assert_allclose(np.asarray(scores.data[0]), np.asarray(seg.probabilities[1]), atol=1e-6)
    np.testing.assert_allclose(np.asarray(scores.data[1]), np.asarray(seg.probabilities[1])[::2, ::2], atol=1e-6)


def test_closing_mid_run_discards_the_new_generation_and_keeps_applied_edits(viewer, widget, qtbot, large):
    viewer.add_image(scene(), rgb=True, name="photo")
    assert widget.run() == "done"
    store, layer = widget.session.store, widget.labels_layer
    viewer.scene.camera.center, viewer.scene.camera.zoom = (0, 75, 100), 8.0
    edit = widget.edit_region()
    y0, x0 = (int(v) for v in edit.translate)
    value = 1 if edit.data[3, 3] != 1 else 2
    with edit.block_history():
        edit.data_setitem((np.array([3]), np.array([3])), value)
    widget.set_options(short_side=200)  # many windows: a long run
    widget.run(wait=False)  # the open region is applied first, then the run starts
    qtbot.waitUntil(lambda: widget.runs._worker is not None, timeout=20_000)
    generation = store.generation
    widget.close()
    qtbot.wait(200)
    assert _labels0(layer)[y0 + 3, x0 + 3] == value and store.has_edits()
    assert store.generation == generation and layer.data[0].store.root.parent.name == f"g{generation}"
    assert sorted(p.name for p in store.path.glob("g*")) == [f"g{generation}"]  # the run's one is gone
    assert widget._released and not widget.workers.running
