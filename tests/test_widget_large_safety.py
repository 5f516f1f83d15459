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
