"""What the plugin wrote into a labels layer, and which pixels are the user's.

``written`` holds the plugin's own decision per pixel (in the layer's numbering); a pixel is a user
edit when it is flagged in ``edited``, or when the layer's value differs from ``written`` (paint,
erase, fill, or any other change). Edited pixels keep the user's value through every later
relabel, re-score and re-run, until :meth:`EditMemory.forget`. Each user change records the
pixels it flagged (an :class:`EditMark`), so that undoing it un-flags exactly those.

A labels layer's label ``k`` always means the same class name (numbers are given the first time a
name is seen), so painted pixels keep their meaning when the vocabulary changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .source import Plane


def label_dtype(n_labels: int) -> np.dtype:
    """uint8 while labels fit (napari's colour lookup is far cheaper), else uint16."""
    return np.dtype(np.uint8 if n_labels <= 255 else np.uint16)


@dataclass(frozen=True)
class EditMark:
    """Pixels one user change flagged as edits: a mask within a box of the layer."""

    box: tuple[slice, ...]
    mask: np.ndarray

    @classmethod
    def of(cls, flagged: np.ndarray, origin: tuple[slice, ...] = ()) -> EditMark | None:
        """The mark of a boolean array whose corner sits at ``origin`` (a box of the layer), or
        None when nothing is flagged."""
        if not flagged.any():
            return None
        local = []
        for axis in range(flagged.ndim):
            hit = np.flatnonzero(flagged.any(axis=tuple(a for a in range(flagged.ndim) if a != axis)))
            local.append(slice(int(hit[0]), int(hit[-1]) + 1))
        offsets = [(origin[i].start or 0) if i < len(origin) else 0 for i in range(flagged.ndim)]
        box = tuple(slice(s.start + o, s.stop + o) for s, o in zip(local, offsets))
        return cls(box, flagged[tuple(local)].copy())


def _lut(names: list[str], class_names: Sequence[str], dtype) -> np.ndarray:
    """Map a result's labels (0..K) to a layer's labels, registering new class names in ``names``."""
    for name in class_names:
        if name not in names:
            names.append(name)
    lut = np.zeros(len(class_names) + 1, dtype)
    for k, name in enumerate(class_names, start=1):
        lut[k] = names.index(name) + 1
    return lut


class EditMemory:
    """The plugin's last decision per pixel, and the user's edits, for one labels layer."""

    def __init__(self, shape: Sequence[int], names: Iterable[str] = ()) -> None:
        self.names: list[str] = list(names)
        self.written = np.zeros(tuple(shape), label_dtype(len(self.names)))
        self.edited = np.zeros(tuple(shape), bool)
        self.writing = False  # True while the plugin writes: its paint events are not edits

    @property
    def dtype(self) -> np.dtype:
        """dtype of the labels layer data (widens to uint16 past 255 classes)."""
        return self.written.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.written.shape

    def lut(self, class_names: Sequence[str]) -> np.ndarray:
        """Map a result's labels (0..K) to this layer's labels, registering new class names."""
        for name in class_names:
            if name not in self.names:
                self.names.append(name)
        if label_dtype(len(self.names)) != self.written.dtype:
            self.written = self.written.astype(label_dtype(len(self.names)))
        return _lut(self.names, class_names, self.written.dtype)

    def user_pixels(self, data, region: tuple) -> np.ndarray:
        """Flag the pixels of ``region`` the user changed since the plugin wrote them; return the
        region's edit mask."""
        self.edited[region] |= np.asarray(data[region]) != self.written[region]
        return self.edited[region]

    def record_change(self, data, radius: float) -> EditMark | None:
        """After a user's change: flag the pixels it changed, and the pixels within ``radius`` of
        them that already had the painted value (napari reports no change there, yet the brush
        covered them). With ``radius`` = the brush diameter, every pixel of every dab that changed
        at least one pixel is covered. Returns what became edits."""
        from skimage.morphology import dilation, disk

        data = np.asarray(data)
        new = (data != self.written) & ~self.edited
        box = EditMark.of(new)
        if box is None:
            return None
        r = max(1, int(round(radius)))
        box = tuple(slice(max(s.start - r, 0), s.stop + r) if i >= data.ndim - 2 else s
                    for i, s in enumerate(box.box))  # fmt: skip
        sub_new, sub_data = new[box], data[box]
        footprint = disk(r).reshape((1,) * (data.ndim - 2) + (2 * r + 1, 2 * r + 1)).astype(bool)
        marked = sub_new.copy()
        for value in np.unique(sub_data[sub_new]):
            same = sub_data == value
            marked |= dilation(sub_new & same, footprint) & same
        marked &= ~self.edited[box]
        self.edited[box] |= marked
        return EditMark.of(marked, box)

    def claim(self, data, plane: Plane, footprint: np.ndarray, value: int) -> EditMark | None:
        """Flag the pixels of a brush ``footprint`` (a plane mask) that hold the painted ``value``:
        napari reports only the pixels a stroke changed, not those it painted over with the label
        they already had. Returns what became edits."""
        hit = footprint & (np.asarray(data[plane]) == value) & ~self.edited[plane]
        self.edited[plane] |= hit
        lead = tuple(slice(p, p + 1) for p in plane)
        return EditMark.of(hit.reshape((1,) * len(plane) + hit.shape), lead)

    def apply(self, mark: EditMark, flagged: bool) -> None:
        """Set (redo) or clear (undo) the flags a user change made."""
        if flagged:
            self.edited[mark.box] |= mark.mask
        else:
            self.edited[mark.box] &= ~mark.mask

    def has_edits(self, data) -> bool:
        """Whether the user changed any pixel the plugin wrote (now or before)."""
        return bool(self.edited.any() or np.any(np.asarray(data) != self.written))

    def forget(self, data) -> None:
        """Drop remembered edits: the next write overwrites everything."""
        self.written[...] = np.asarray(data)
        self.edited[...] = False

    def planes_written(self, planes: dict[Plane, np.ndarray]) -> np.ndarray:
        """Data for a brand-new labels layer holding ``planes`` (layer numbering)."""
        data = np.zeros(self.written.shape, self.dtype)
        for plane, labels in planes.items():
            data[plane] = labels
            self.written[plane] = labels
        return data


def stroke_footprint(points: Sequence[Sequence[float]], radius: float, shape: tuple[int, int]) -> np.ndarray:
    """Pixels a round brush of ``radius`` dragged through ``points`` (y, x data coordinates) covers,
    a pixel's margin included: the polyline drawn with ``skimage.draw.line``, then dilated by a disk."""
    from skimage.draw import line
    from skimage.morphology import dilation, disk

    pts = np.rint(np.asarray(points, float).reshape(-1, 2)).astype(int)
    pad = int(np.ceil(radius)) + 2  # draw on a padded canvas: strokes may leave the image
    canvas = np.zeros((shape[0] + 2 * pad, shape[1] + 2 * pad), bool)
    pts = np.clip(pts + pad, 0, np.array(canvas.shape) - 1)
    for (r0, c0), (r1, c1) in zip(pts, np.vstack([pts[1:], pts[-1:]])):
        rr, cc = line(r0, c0, r1, c1)
        canvas[rr, cc] = True
    grown = dilation(canvas, disk(int(np.ceil(radius + 0.5))).astype(bool))
    return grown[pad : pad + shape[0], pad : pad + shape[1]]


class StoreMemory:
    """The edit memory of a large result: the user's edit flags live in its
    :class:`~.store.ResultStore` (chunked, on disk, never a full-resolution array in memory); the
    layer's class numbering here. Edits reach the store only through an edit region's commit."""

    dtype = property(lambda self: self.store.dtype)
    shape = property(lambda self: self.store.shape)

    def __init__(self, store, names: Iterable[str] = ()) -> None:
        self.store = store
        self.names: list[str] = list(names)
        self.writing = False

    def lut(self, class_names: Sequence[str]) -> np.ndarray:
        lut = _lut(self.names, class_names, np.int64)
        if lut.max(initial=0) > np.iinfo(self.dtype).max:
            raise ValueError(f"A large result holds at most {np.iinfo(self.dtype).max} classes.")
        return lut.astype(self.dtype)

    def has_edits(self, data=None) -> bool:
        return self.store.has_edits()

    def forget(self, data=None) -> None:
        self.store.clear_edits()
