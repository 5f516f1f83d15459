"""Helpers for the widget tests in a real napari viewer (Xvfb): the manifest, waiting for jobs,
user strokes and clicks (the ``viewer`` and ``widget`` fixtures are in ``conftest.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES = "red thing\ngreen thing, grass\nblue thing"
TIMEOUT = 120_000


def register_manifest() -> None:
    """Make napari know the plugin even when it is not pip-installed (tests run from a checkout)."""
    from importlib import resources

    from npe2 import PluginManager, PluginManifest

    pm = PluginManager.instance()
    try:
        pm.get_manifest("napari-sclip")
    except KeyError:
        pm.register(PluginManifest.from_file(str(resources.files("napari_sclip").joinpath("napari.yaml"))))


def finish(widget, qtbot, start) -> str:
    """Call ``start`` (which starts a job, e.g. a debounced relabel) and wait for the job."""
    with qtbot.waitSignal(widget.job_finished, timeout=TIMEOUT) as blocker:
        start()
    return blocker.args[0]


def engine(image, model, classes=CLASSES, **kw):
    from napari_sclip import segment

    kw.setdefault("short_side", 64)
    return segment(image, classes, model=model, **kw)


def paint(layer, rows, cols, value) -> None:
    """A user edit through the layer's undoable API, as the brush makes one."""
    with layer.block_history():
        layer.data_setitem((np.asarray(rows), np.asarray(cols)), value)


@dataclass
class Mouse:
    """A vispy-like mouse event, as napari's layer and viewer callbacks read it."""

    type: str
    position: tuple
    is_dragging: bool = False
    modifiers: tuple = ()
    dims_displayed: tuple = (0, 1)
    dims_point: tuple = (0, 0)
    view_direction: tuple | None = None
    pos: tuple = (0, 0)
    button: int = 1
    handled: bool = False


def stroke(target, MouseEvent, points) -> None:
    """A real napari mouse stroke (press, drags, release) through the callbacks of ``target``
    (a layer or the viewer)."""
    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import (
        mouse_move_callbacks,
        mouse_press_callbacks,
        mouse_release_callbacks,
    )

    def event(kind, pos, dragging):
        return ReadOnlyWrapper(Mouse(type=kind, is_dragging=dragging, position=pos))

    mouse_press_callbacks(target, event("mouse_press", points[0], False))
    for p in points[1:]:
        mouse_move_callbacks(target, event("mouse_move", p, True))
    mouse_release_callbacks(target, event("mouse_release", points[-1], False))


def click(viewer, MouseEvent, position) -> None:
    """A click in the canvas (press and release, no move) through the viewer's callbacks."""
    stroke(viewer, MouseEvent, [position])
