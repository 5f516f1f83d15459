"""Large results: the user's applied edits are never lost or overwritten without their say (undo of
an overwrite, edit layers, pending store writes, closing, export), in a real viewer under Xvfb."""

from __future__ import annotations

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("open_clip")

from .test_widget_large import _kept, _painted_result  # noqa: E402
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
