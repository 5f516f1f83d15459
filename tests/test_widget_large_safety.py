"""Large results: the user's applied edits are never lost or overwritten without their say (undo of
an overwrite, edit layers, pending store writes, closing, export), in a real viewer under Xvfb."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("open_clip")

from .test_widget_large import _kept, _labels0, _painted_result, scene  # noqa: E402
from .widget_support import finish  # noqa: E402


def test_undoing_an_overwrite_run_brings_the_edit_flags_back(
    viewer, widget, qtbot, large, MouseEvent
):
    layer, store, seg, mine = _painted_result(viewer, widget, MouseEvent)
    widget.panels.results.edit_policy.value = "overwrite"
    widget.set_options(short_side=96)
    assert widget.run() == "done" and not store.has_edits()
    layer.undo()
    assert store.has_edits()
    _kept(layer, mine)
    widget.panels.results.edit_policy.value = "keep"
    widget.set_options(short_side=64)
    assert finish(widget, qtbot, lambda: widget.set_threshold(0.6)) == "done"
    _kept(layer, mine)
    assert store.has_edits()


def _set(edit, rows, cols, value) -> None:
    """A user change in the edit layer through napari's undoable API (as a brush makes one)."""
    edit.data_setitem((np.zeros(len(rows), int), np.asarray(rows), np.asarray(cols)) if edit.ndim == 3 else
                      (np.asarray(rows), np.asarray(cols)), value)  # fmt: skip


@pytest.fixture
def gate(monkeypatch):
    """Store region writes wait (in their worker) until ``gate.set()``."""
    from napari_sclip._napari.store import ResultStore

    event, write = threading.Event(), ResultStore.write_region

    def held(self, *args, **kwargs):
        assert event.wait(20)
        return write(self, *args, **kwargs)

    monkeypatch.setattr(ResultStore, "write_region", held)
    return event


@pytest.fixture
def no_hang(monkeypatch):
    """Waits for store writes give up after 10 s (and say so), so that a hang fails the test."""
    from qtpy.QtCore import QEventLoop, QTimer

    from napari_sclip._qt import regions

    timeouts: list = []

    class Bounded(QEventLoop):
        def exec(self):
            QTimer.singleShot(10_000, lambda: (timeouts.append(True), self.quit()))
            return super().exec()

    monkeypatch.setattr(regions, "QEventLoop", Bounded)
    return timeouts


def _painted_result_gated(viewer, widget, gate, MouseEvent):
    """:func:`_painted_result` with its region written, then the gate closed for what follows."""
    gate.set()
    out = _painted_result(viewer, widget, MouseEvent)
    gate.clear()
    return out


def test_each_region_is_a_fresh_layer_whose_undo_never_replays_older_regions(
    viewer, widget, large, MouseEvent
):
    layer, store, seg, mine = _painted_result(viewer, widget, MouseEvent)
    first = viewer.layers[f"{widget.session.title} edit region"]
    edit = widget.edit_region()  # the same place: the stroke is in it, applied
    assert edit is not first and first not in viewer.layers
    before = np.asarray(edit.data).copy()
    edit.undo()  # nothing of this region to undo: the old region's stroke is not replayed
    np.testing.assert_array_equal(np.asarray(edit.data), before)
    _kept(layer, mine)


def test_a_region_opens_once_the_previous_apply_has_landed(viewer, widget, qtbot, large, gate):
    viewer.add_image(scene(), rgb=True, name="photo")
    assert widget.run() == "done"
    viewer.scene.camera.center, viewer.scene.camera.zoom = (0, 75, 100), 8.0
    edit = widget.edit_region()
    value = 1 if edit.data[5, 5] != 1 else 2
    _set(edit, [5], [5], value)
    widget.apply_edits(wait=False)
    assert widget.regions.writing
    gate.set()
    again = widget.edit_region()  # waits for the write, then reads the store
    assert again.data[5, 5] == value


def test_apply_and_wait_returns_when_nothing_changed_behind_pending_writes(viewer, widget, qtbot, large, gate, no_hang,
                                                                            MouseEvent):  # fmt: skip
    layer, store, seg, mine = _painted_result_gated(viewer, widget, gate, MouseEvent)
    widget.edit_region()
    layer.undo()  # the applied region's undo: a store write, pending
    assert widget.regions.writing
    threading.Timer(0.5, gate.set).start()
    widget.apply_edits()  # the new region has no change: returns (it once waited for a quit already sent)
    assert not no_hang
    qtbot.waitUntil(lambda: not widget.regions.writing, timeout=10_000)
    np.testing.assert_array_equal(_labels0(layer), np.asarray(seg.labels))


def test_a_failed_apply_opens_the_region_again_and_is_no_undo_step(
    viewer, widget, qtbot, large, no_hang, monkeypatch
):
    from napari_sclip._napari.store import ResultStore

    viewer.add_image(scene(), rgb=True, name="photo")
    assert widget.run() == "done"
    layer, store = widget.labels_layer, widget.session.store
    viewer.scene.camera.center, viewer.scene.camera.zoom = (0, 75, 100), 8.0
    edit = widget.edit_region()
    value = 1 if edit.data[5, 5] != 1 else 2
    _set(edit, [5], [5], value)
    write = ResultStore.write_region

    def full(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ResultStore, "write_region", full)
    with pytest.raises(RuntimeError, match="disk full"):
        widget.apply_edits()
    assert (
        not no_hang
        and widget.regions.region_of(widget.session) is not None
        and edit.visible
        and not layer.visible
    )
    assert "could not be written" in widget.panels.run_bar.status.text()
    assert widget.session.history.top is None and edit.data[5, 5] == value
    edit.undo()  # the stroke's own undo still works
    assert edit.data[5, 5] != value
    edit.redo()
    monkeypatch.setattr(ResultStore, "write_region", write)
    assert widget.run() == "done"  # a run applies the region first
    assert (
        store.has_edits()
        and int(
            np.asarray(store.levels()[0])[int(edit.translate[0]) + 5, int(edit.translate[1]) + 5]
        )
        == value
    )


def test_no_plugin_undo_while_region_writes_are_pending(
    viewer, widget, qtbot, large, gate, MouseEvent
):
    layer, store, seg, mine = _painted_result_gated(viewer, widget, gate, MouseEvent)
    assert finish(widget, qtbot, lambda: widget.set_threshold(0.6)) == "done"
    generation = store.generation
    edit = widget.edit_region()
    y, x = int(edit.translate[0]) + 2, int(edit.translate[1]) + 2
    old = int(edit.data[2, 2])
    value = 3 if old != 3 else 1
    _set(edit, [2], [2], value)
    widget.apply_edits(wait=False)  # pending behind the gate
    layer.undo()  # the region's commit: a store write after it, fine
    layer.undo()  # the threshold's update would swap generations under the writes: not now
    assert store.generation == generation and widget.regions.writing
    gate.set()
    qtbot.waitUntil(lambda: not widget.regions.writing, timeout=10_000)
    assert (
        int(store.levels(generation)[0][y, x]) == old
    )  # both writes went where they were asked to
    layer.undo()  # now it goes
    assert store.generation != generation
    _kept(layer, mine)
    layer.redo()
    layer.redo()  # the commit again
    qtbot.waitUntil(lambda: not widget.regions.writing, timeout=10_000)
    assert store.generation == generation and int(store.levels()[0][y, x]) == value


def test_closing_the_widget_finishes_queued_region_writes(
    viewer, widget, qtbot, large, gate, MouseEvent
):
    import threading

    layer, store, seg, mine = _painted_result_gated(viewer, widget, gate, MouseEvent)
    layer.undo()  # the commit's undo: pending behind the gate
    layer.redo()  # and its redo, queued
    layer.undo()
    assert widget.regions.writing
    threading.Timer(0.5, gate.set).start()
    widget.close()
    np.testing.assert_array_equal(
        _labels0(layer), np.asarray(seg.labels)
    )  # every queued write landed
    assert not store.has_edits()


def test_export_applies_the_open_region_and_keeps_labels_beyond_the_class_names(
    viewer, widget, qtbot, large, tmp_path, MouseEvent
):
    from napari_sclip._napari.files import export_steps
    from napari_sclip.io.ome_zarr import read_layers

    layer, store, seg, mine = _painted_result(viewer, widget, MouseEvent)
    next(
        export_steps(widget.session, tmp_path / "photo.zarr")
    )  # an export interrupted after its first chunk
    edit = widget.edit_region()
    y, x = int(edit.translate[0]) + 4, int(edit.translate[1]) + 4
    _set(edit, [4], [4], 7)  # a label number beyond the 3 class names
    written = widget.export(
        tmp_path / "photo.zarr"
    )  # the open region first; a new export, not the stale one
    labels = np.asarray(read_layers(written[0])[1][0][0])
    assert labels[y, x] == 7 and (labels[mine] == 3).all()
    np.testing.assert_array_equal(labels, _labels0(layer))
    assert widget.regions.region_of(widget.session) is None and store.pinned == set()
    assert len(list(store.path.glob("g*"))) == 1  # the export's snapshot is gone


def test_forget_my_edits_waits_for_jobs_and_store_writes(
    viewer, widget, qtbot, large, gate, MouseEvent
):
    layer, store, seg, mine = _painted_result_gated(viewer, widget, gate, MouseEvent)
    forget = widget.panels.results.forget_button
    assert forget.enabled
    widget.set_options(short_side=96)
    with qtbot.waitSignal(widget.job_finished, timeout=60_000):
        widget.run(wait=False)
        assert widget.busy and not forget.enabled
        widget.forget_edits()  # the worker reads the flags: not now
        assert store.has_edits()
    assert forget.enabled
    edit = widget.edit_region()
    _set(edit, [1], [1], 3)
    widget.apply_edits(wait=False)
    assert widget.regions.writing and not forget.enabled
    widget.forget_edits()
    gate.set()
    qtbot.waitUntil(lambda: not widget.regions.writing, timeout=10_000)
    assert forget.enabled and store.has_edits()
    _kept(layer, mine)
    widget.forget_edits()
    assert not store.has_edits()
