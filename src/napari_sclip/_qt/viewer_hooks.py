"""The widget's connections to the viewer (layer list, selection, each image's name and data),
made in one place so that closing the widget undoes every one of them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from .._napari.layers import RESULT_TAG


class ViewerHooks:
    """Calls ``on_images()`` when the image layers change, ``on_removed(layer)``,
    ``on_active(layer)`` when the user selects a layer, ``on_data(layer)`` when an image's data
    is replaced."""

    def __init__(self, viewer, on_images: Callable[[], None], on_removed: Callable, on_active: Callable,
                 on_data: Callable) -> None:  # fmt: skip
        self.viewer = viewer
        self.on_data = on_data
        events = viewer.layers.events
        self._hooks = [
            (events.inserted, lambda event: on_images()),
            (events.reordered, lambda event: on_images()),
            (events.removed, lambda event: (on_removed(event.value), on_images())),
            (viewer.layers.selection.events.active, lambda event: on_active(viewer.layers.selection.active)),
        ]
        self._on_images = on_images
        self._watched: dict[int, tuple] = {}
        for emitter, callback in self._hooks:
            emitter.connect(callback)

    def images(self) -> list:
        """The image layers one could segment (not the plugin's own outputs); each watched."""
        from napari.layers import Image

        found = [lay for lay in self.viewer.layers if isinstance(lay, Image) and RESULT_TAG not in lay.metadata]
        for layer in found:
            if id(layer) not in self._watched:
                name, data = (lambda event: self._on_images()), (lambda event, lay=layer: self.on_data(lay))
                layer.events.name.connect(name)
                layer.events.data.connect(data)
                self._watched[id(layer)] = (layer, name, data)
        for key, (layer, _name, _data) in list(self._watched.items()):
            if layer not in found:
                self._unwatch(key)
        return found

    def _unwatch(self, key: int) -> None:
        layer, name, data = self._watched.pop(key)
        layer.events.name.disconnect(name)
        layer.events.data.disconnect(data)

    def release(self) -> None:
        for emitter, callback in self._hooks:
            emitter.disconnect(callback)
        for key in list(self._watched):
            self._unwatch(key)


def release_all(workers, writer, hooks: ViewerHooks, probe, tracker, sessions) -> None:
    """Everything that ties a closing widget to the viewer, undone: workers stopped, viewer and
    layer hooks off, the labels layers' own undo back (idempotent)."""
    workers.stop_all()
    writer.closed = True
    hooks.release()
    with contextlib.suppress(RuntimeError):
        probe.set_enabled(False)
    tracker.release(list(sessions))


class ReleasedOnClose:
    """A dock widget that calls ``self.release()`` once when it is closed or taken out of its dock
    (napari closes a dock widget that way, without a close event)."""

    _released = False

    def event(self, event) -> bool:
        from qtpy.QtCore import QEvent

        if event.type() == QEvent.Type.ParentChange and self.parent() is None and not self._released:
            self.release()
        return super().event(event)

    def closeEvent(self, event) -> None:
        self.release()
        super().closeEvent(event)
