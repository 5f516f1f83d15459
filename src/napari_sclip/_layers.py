"""Results into napari layers: class colours and tables, transforms, and edits that are never lost.

Pure functions on napari layers and numpy arrays (no Qt, no threads): the widget calls them on the
main thread. A labels layer's label ``k`` always means the same class name (numbers are assigned
the first time a name is seen), so user-painted pixels keep their meaning when the vocabulary
changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ._source import Plane, Source


def label_dtype(n_labels: int) -> np.dtype:
    """uint8 while labels fit (napari's colour lookup is far cheaper), else uint16."""
    return np.dtype(np.uint8 if n_labels <= 255 else np.uint16)

#: Distinct colours (RGB 0..255) given to classes in order of first appearance.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
)  # fmt: skip

#: Colours people expect for common words (maps, microscopy stains); other names use PALETTE.
NAMED_COLOURS: dict[str, tuple[int, int, int]] = {
    "water": (30, 110, 230), "river": (30, 110, 230), "sea": (20, 70, 200),
    "building": (220, 40, 40), "buildings": (220, 40, 40), "road": (160, 160, 160),
    "roads": (160, 160, 160), "tree": (20, 120, 40), "trees": (20, 120, 40),
    "forest": (20, 120, 40), "agricultural": (240, 200, 60), "agriculture land": (240, 200, 60),
    "cropland": (240, 200, 60), "barren": (190, 150, 110), "bareland": (190, 150, 110),
    "rangeland": (150, 220, 110), "grass": (120, 220, 90), "developed space": (230, 120, 200),
    "nuclei": (40, 90, 255), "nucleus": (40, 90, 255), "cytoplasm": (60, 220, 80),
    "cell": (60, 220, 80), "cells": (60, 220, 80),
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 230), "yellow": (240, 220, 40),
    "orange": (245, 140, 30), "purple": (150, 50, 190), "white": (240, 240, 240),
    "black": (70, 70, 70), "grey": (150, 150, 150), "gray": (150, 150, 150),
}  # fmt: skip


def class_colour(name: str, label: int) -> np.ndarray:
    """RGBA 0..1 colour of a class: a familiar colour for common words, else the palette."""
    rgb = NAMED_COLOURS.get(name.strip().lower()) or PALETTE[(label - 1) % len(PALETTE)]
    return np.array([*(c / 255 for c in rgb), 1.0], np.float32)


def label_colormap(names: Sequence[str]):
    """A napari ``DirectLabelColormap``: label k (1-based) gets its class colour, 0 is clear."""
    from napari.utils.colormaps import DirectLabelColormap

    colours: dict = {None: np.zeros(4, np.float32), 0: np.zeros(4, np.float32)}
    for k, name in enumerate(names, start=1):
        colours[k] = class_colour(name, k)
    return DirectLabelColormap(color_dict=colours)


def features_table(names: Sequence[str]):
    """Features for a labels layer: ``index`` (label) and ``class`` (shown in the status bar)."""
    import pandas as pd

    return pd.DataFrame(
        {"index": np.arange(len(names) + 1), "class": ["background", *names]}
    )


def transform_kwargs(source: Source, class_axis: bool = False, last: int | None = None) -> dict:
    """Keyword arguments that align a result layer with ``source.layer`` (scale, translate,
    rotate, shear, affine, units, axis labels); ``class_axis`` prepends an untransformed axis,
    ``last=2`` keeps only the last two (spatial) axes."""
    from napari.utils.transforms import Affine

    layer = source.layer
    keep = [i for i in range(layer.ndim) if i not in source.dropped_axes()]
    if last is not None:
        keep = keep[-last:]
    physical = Affine(
        scale=layer.scale, translate=layer.translate, rotate=layer.rotate, shear=layer.shear
    )
    affine = Affine(affine_matrix=layer.affine.affine_matrix)
    if len(keep) != layer.ndim:
        physical, affine = physical.set_slice(keep), affine.set_slice(keep)
    if class_axis:
        physical, affine = physical.expand_dims([0]), affine.expand_dims([0])
    units = [str(u) for u in layer.units]
    labels = list(layer.axis_labels)
    units = [units[i] for i in keep]
    labels = [labels[i] for i in keep]
    if class_axis:
        units, labels = ["pixel", *units], ["class", *labels]
    shear = np.asarray(physical.shear)
    return {
        "scale": physical.scale,
        "translate": physical.translate,
        "rotate": physical.rotate,
        "shear": shear if shear.ndim == 2 else None,  # napari gives a zero vector when diagonal
        "affine": affine.affine_matrix,
        "units": units,
        "axis_labels": labels,
    }


class EditMemory:
    """What the plugin last wrote into a labels layer, and which pixels the user changed since.

    A pixel is a user edit when the layer's value differs from what the plugin wrote there (paint,
    erase, fill, or any other change). Edited pixels keep the user's value through every later
    relabel, re-score and re-run, until :meth:`forget` is called.
    """

    def __init__(self, shape: Sequence[int], names: Iterable[str] = ()) -> None:
        self.names: list[str] = list(names)
        self.written = np.zeros(tuple(shape), label_dtype(len(self.names)))
        self.edited = np.zeros(tuple(shape), bool)
        self.writing = False  # True while the plugin itself writes (its paint events are not edits)

    @property
    def dtype(self) -> np.dtype:
        """dtype of the labels layer data (widens to uint16 past 255 classes)."""
        return self.written.dtype

    def lut(self, class_names: Sequence[str]) -> np.ndarray:
        """Map a result's labels (0..K) to this layer's labels, registering new class names."""
        for name in class_names:
            if name not in self.names:
                self.names.append(name)
        if label_dtype(len(self.names)) != self.written.dtype:
            self.written = self.written.astype(label_dtype(len(self.names)))
        lut = np.zeros(len(class_names) + 1, self.written.dtype)
        for k, name in enumerate(class_names, start=1):
            lut[k] = self.names.index(name) + 1
        return lut

    def scan(self, data: np.ndarray, region: tuple = ()) -> np.ndarray:
        """Record pixels of ``region`` the user changed since the last write; return its edit mask."""
        changed = np.asarray(data[region]) != self.written[region]
        self.edited[region] |= changed
        return self.edited[region]

    def record_stroke(self, data: np.ndarray, radius: float) -> int:
        """After a user's stroke: remember the pixels it changed, and the pixels within
        ``radius`` of them that already had the painted value (napari reports no change there,
        yet the user painted them). With ``radius`` = the brush diameter, every pixel of every
        brush dab that changed at least one pixel is covered. Returns how many became edits."""
        data = np.asarray(data)
        new = (data != self.written) & ~self.edited
        if not new.any():
            return 0
        r = max(1, int(round(radius)))
        box = []
        for axis in range(data.ndim):
            hit = np.flatnonzero(new.any(axis=tuple(a for a in range(data.ndim) if a != axis)))
            pad = r if axis >= data.ndim - 2 else 0
            box.append(slice(max(int(hit[0]) - pad, 0), int(hit[-1]) + pad + 1))
        box = tuple(box)
        sub_new, sub_data = new[box], data[box]
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        disk = (yy**2 + xx**2 <= r * r).reshape((1,) * (data.ndim - 2) + yy.shape)
        marked = sub_new.copy()
        from scipy import ndimage

        for value in np.unique(sub_data[sub_new]):
            same = sub_data == value
            marked |= ndimage.binary_dilation(sub_new & same, structure=disk) & same
        before = int(self.edited[box].sum())
        self.edited[box] |= marked
        return int(self.edited[box].sum()) - before

    def claim(self, data: np.ndarray, plane: Plane, footprint: np.ndarray, value: int) -> int:
        """Remember the pixels of a brush ``footprint`` (plane mask) that hold the painted
        ``value``: napari reports only pixels a stroke changed, not those it painted over with
        the label they already had. Returns how many pixels became edits."""
        hit = footprint & (np.asarray(data[plane]) == value)
        before = int(self.edited[plane].sum())
        self.edited[plane] |= hit
        return int(self.edited[plane].sum()) - before

    def has_edits(self, data: np.ndarray) -> bool:
        """Whether the user changed any pixel the plugin wrote (now or before)."""
        return bool(self.edited.any() or np.any(np.asarray(data) != self.written))

    def forget(self) -> None:
        """Drop remembered edits: the next write overwrites everything."""
        self.edited[...] = False

    def merge(self, data: np.ndarray, region: tuple, labels: np.ndarray) -> np.ndarray:
        """What to write in ``region`` (a plane, or a plane's row band): ``labels`` (layer
        numbering) with the user's edited pixels kept."""
        mask = self.scan(data, region)
        merged = labels.astype(self.written.dtype, copy=True)
        merged[mask] = np.asarray(data[region])[mask]
        return merged


def stroke_footprint(points: Sequence[Sequence[float]], radius: float, shape: tuple[int, int]) -> np.ndarray:
    """Pixels within ``radius`` of a polyline through ``points`` (y, x data coordinates): where a
    round brush dragged along them has painted (a pixel's margin included)."""
    mask = np.zeros(shape, bool)
    pts = np.asarray(points, float).reshape(-1, 2)
    samples = [pts[:1]]
    for a, b in zip(pts[:-1], pts[1:]):
        n = max(1, int(np.ceil(np.hypot(*(b - a)) * 2)))
        samples.append(a + (b - a) * (np.arange(1, n + 1)[:, None] / n))
    ij = np.rint(np.concatenate(samples)).astype(int)
    inside = (ij[:, 0] >= 0) & (ij[:, 0] < shape[0]) & (ij[:, 1] >= 0) & (ij[:, 1] < shape[1])
    ij = ij[inside]
    if ij.size == 0:
        return mask
    mask[ij[:, 0], ij[:, 1]] = True
    r = max(1, int(np.ceil(radius)))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    from scipy import ndimage

    return ndimage.binary_dilation(mask, structure=yy**2 + xx**2 <= (radius + 0.5) ** 2)


def new_labels_data(memory: EditMemory, planes: Mapping[Plane, np.ndarray]) -> np.ndarray:
    """Data for a brand-new labels layer holding ``planes`` (layer numbering)."""
    data = np.zeros(memory.written.shape, memory.dtype)
    for plane, labels in planes.items():
        data[plane] = labels
        memory.written[plane] = labels
    return data


Region = tuple  # plane indices followed by a row slice: ``(t, slice(r0, r1))``


def bands(planes: Iterable[Plane], height: int, rows: int) -> list[Region]:
    """Split whole planes into row bands of at most ``rows`` rows (one per event-loop turn)."""
    rows = max(1, int(rows))
    return [(*plane, slice(r0, min(r0 + rows, height))) for plane in planes for r0 in range(0, height, rows)]


def write_region(layer, memory: EditMemory, region: Region, labels: np.ndarray) -> int:
    """Write ``labels`` (layer numbering) into ``region`` of a labels layer through
    ``data_setitem`` (undoable), keeping the user's edits; returns how many pixels changed.
    Callers group regions into one undo step (``layer.block_history()``) and set
    ``memory.writing`` meanwhile, so that the paint events it causes are not taken for edits."""
    merged = memory.merge(layer.data, region, labels)
    current = np.asarray(layer.data[region])
    changed = merged != current
    coords = np.nonzero(changed)
    n = coords[0].size
    if n:
        lead = [np.full(n, p, np.intp) for p in region if not isinstance(p, slice)]
        band = region[-1] if region and isinstance(region[-1], slice) else slice(0, None)
        indices = (*lead, coords[0] + (band.start or 0), *coords[1:])
        layer.data_setitem(indices, merged[changed])
    memory.written[region] = merged
    return int(n)


def write_planes(layer, memory: EditMemory, planes: Mapping[Plane, np.ndarray]) -> int:
    """Write result planes into an existing labels layer as ONE undo step, keeping user edits.

    ``planes`` maps plane index -> (H, W) labels in the layer's numbering. Only changed pixels
    are written (``data_setitem`` inside ``block_history``). Returns how many pixels changed.
    """
    memory.writing = True
    try:
        with layer.block_history():
            return sum(write_region(layer, memory, plane, labels) for plane, labels in planes.items())
    finally:
        memory.writing = False


def class_statistics(
    labels: np.ndarray, probabilities: np.ndarray, lut: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel counts and summed probability per layer label, for one plane.

    ``labels`` are the layer's (H, W) labels (user edits included), ``probabilities`` the result's
    (K, H, W) and ``lut`` its label map (result label -> layer label). Returns ``(counts, sums)``
    indexed by layer label (length ``lut.max() + 1`` at least, up to the largest label present);
    ``sums`` only covers pixels whose label is one of the result's classes.
    """
    labels = np.asarray(labels)
    n = int(max(int(labels.max(initial=0)), int(lut.max(initial=0)))) + 1
    counts = np.bincount(labels.ravel(), minlength=n).astype(np.int64)
    channel = np.full(n, -1, np.intp)
    channel[lut[1:]] = np.arange(len(lut) - 1)
    chan = channel[labels]
    valid = chan >= 0
    sums = np.zeros(n, np.float64)
    if valid.any():
        picked = np.take_along_axis(probabilities, np.clip(chan, 0, None)[None], axis=0)[0]
        sums = np.bincount(labels[valid], weights=picked[valid], minlength=n)
    return counts, sums
