"""The part of an image in view, and edit regions of a large result.

napari 0.9 cannot paint multiscale labels (napari#1587), and a large result's labels are a
multiscale view of its store. To correct them, the user opens an *edit region*: the level-0 labels
of the area in view (at most :data:`EDIT_SIDE` a side) as an ordinary single-scale labels layer
placed over it, with its own :class:`~.edits.EditMemory` (so strokes, brush footprints and undo
work exactly as on a small result). Applying it writes the changed pixels and their edit flags into
the store (level 0 and every pyramid tile they touch) as one undoable :class:`RegionCommit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .edits import EditMemory
from .history import RegionCommit
from .layers import features_table, label_colormap, meta, transform_kwargs
from .pixels import Box
from .session import Session
from .source import Plane

EDIT_SIDE = 2048  # an edit region's largest side (level-0 pixels)


def visible_box(viewer, layer, shape: tuple[int, int]) -> Box:
    """The pixels of ``layer`` (rows, columns of its data, clipped to ``shape``) the canvas shows,
    from the camera and the canvas size; ValueError in a 3D view."""
    if viewer.dims.ndisplay != 2 or tuple(viewer.dims.displayed) != tuple(range(viewer.dims.ndim))[-2:]:
        raise ValueError("The visible region needs a 2D view of the image's rows and columns.")
    camera = viewer.scene.camera
    half = np.asarray(viewer.canvas.size, float) / 2 / camera.zoom
    centre = np.asarray(camera.center, float)[-2:]
    point = np.asarray(viewer.dims.point, float)
    corners = []
    for dy in (-1, 1):
        for dx in (-1, 1):
            p = point.copy()
            p[-2:] = centre + half * (dy, dx)
            corners.append(np.asarray(layer.world_to_data(p), float)[-2:])
    lo, hi = np.min(corners, axis=0), np.max(corners, axis=0)
    y0, x0 = (max(0, int(np.floor(v + 0.5))) for v in lo)
    y1, x1 = (min(n, int(np.ceil(v + 0.5))) for v, n in zip(hi, shape))
    if y1 <= y0 or x1 <= x0:
        raise ValueError("No part of the image is in view: pan it into view first.")
    return y0, y1, x0, x1


def capped(box: Box, side: int = EDIT_SIDE) -> Box:
    """The centre of ``box``, at most ``side`` pixels a side."""
    y0, y1, x0, x1 = box
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    h, w = min(y1 - y0, side), min(x1 - x0, side)
    y0, x0 = max(y0, cy - h // 2), max(x0, cx - w // 2)
    return y0, y0 + h, x0, x0 + w


@dataclass(eq=False)
class EditRegion:
    """An open edit region of a large session: what was loaded, the layer and its edit memory
    (``labels`` / ``memory`` / ``history``: what the edit tracker follows)."""

    session: Session
    plane: Plane
    box: Box  # in the result's level-0 pixels
    loaded: tuple[np.ndarray, np.ndarray]  # labels and edit flags as read from the store
    labels: Any = None  # the single-scale edit layer
    memory: EditMemory | None = None
    history: Any = None

    @property
    def rows(self) -> slice:
        return slice(self.box[0], self.box[1])

    @property
    def cols(self) -> slice:
        return slice(self.box[2], self.box[3])

    @property
    def title(self) -> str:
        return f"{self.session.title} edit region"

    def lead(self) -> tuple[int, ...]:
        return (1,) * len(self.plane)

    def start_memory(self) -> EditMemory:
        """Edit memory of the region: what was loaded counts as written, the store's flags as edits."""
        labels, edited = self.loaded
        memory = EditMemory(self.lead() + labels.shape, self.session.memory.names)
        memory.written = labels.reshape(memory.written.shape).copy()
        memory.edited[...] = edited.reshape(memory.edited.shape)
        self.memory = memory
        return memory

    def layer_kwargs(self) -> dict:
        """Name, colours, class names and placement of the edit layer (over its pixels, on its plane)."""
        session = self.session
        geo = session.geometry
        corner = (geo.corner[0] + self.box[0], geo.corner[1] + self.box[2])
        dropped = () if geo.axis is None else (geo.axis,)
        names = session.memory.names
        return {"name": self.title, "features": features_table(names), "colormap": label_colormap(names),
                "opacity": 0.6, "metadata": meta(session, "edit region"),
                **transform_kwargs(session.reference, dropped, plane=self.plane, corner=corner)}  # fmt: skip

    def data(self) -> np.ndarray:
        return self.loaded[0].reshape(self.lead() + self.loaded[0].shape).copy()

    def commit(self) -> RegionCommit | None:
        """The changes the user made (labels and edit flags), or None."""
        shape = self.loaded[0].shape
        labels = np.asarray(self.labels.data).reshape(shape)
        edited = self.memory.edited.reshape(shape) | (labels != self.memory.written.reshape(shape))
        before_labels, before_edited = self.loaded
        index = np.flatnonzero((labels != before_labels) | (edited != before_edited))
        if not index.size:
            return None
        flat = lambda a: a.reshape(-1)[index].copy()  # noqa: E731
        return RegionCommit(self.plane, self.rows, self.cols, index, (flat(before_labels), flat(before_edited)),
                            (flat(labels), flat(edited)))  # fmt: skip


def replay(store, commit: RegionCommit, undone: bool, generation: int | None = None) -> None:
    """Put a commit's pixels (before when ``undone``, else after) into a generation of the store
    (default: the current; worker thread)."""
    labels, edited = store.read_region(commit.plane, commit.rows, commit.cols, generation)
    values, flags = commit.before if undone else commit.after
    labels, edited = labels.copy(), edited.copy()
    labels.reshape(-1)[commit.index] = values
    edited.reshape(-1)[commit.index] = flags
    store.write_region(commit.plane, commit.rows, commit.cols, labels, edited, generation)
