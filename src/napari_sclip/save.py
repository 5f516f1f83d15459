"""Saving a :class:`~napari_sclip.Segmentation`: in-memory results as TIFF files, large or lazy ones
as tiled BigTIFF pyramids or OME-Zarr, block by block in bounded memory, with progress.

The format follows the path: ``*.zarr`` is OME-Zarr, ``*.tif`` / ``*.tiff`` a TIFF (tiled with a
pyramid for lazy results). The class table CSV goes beside it in every case.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np

from . import atomic, io
from .errors import OptionsError
from .io import ome_zarr, tiff
from .prepare import to_unit_range
from .source import pyramid_sizes
from .steps import Progress, Steps

OVERLAY_SIDE = 4096  # a lazy result's overlay PNG is a preview at most this long


def save_steps(seg, path: str | os.PathLike, *, probabilities: bool = False, overlay=None) -> Steps[list[Path]]:
    """Generator form of :meth:`Segmentation.save`: yields progress, returns the paths written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if io.is_zarr(path):
        return (yield from _zarr(seg, path, probabilities, overlay))
    if path.suffix.lower() not in io.TIFF_SUFFIXES:
        raise OptionsError(f"Cannot tell the format of {path.name}: save to a .tif or a .zarr path.")
    if not seg.lazy:
        yield Progress(0, 1, "write")
        unit = None if overlay is None else to_unit_range(np.asarray(overlay), seg.options.contrast_limits)
        return io.write_result(path, seg.labels, seg.class_table(), class_names=seg.class_names,
                               probabilities=seg.probabilities if probabilities else None, overlay=unit)  # fmt: skip
    if probabilities:
        raise OptionsError("The probabilities of a large (lazy) result are saved in OME-Zarr only: save to a .zarr path.")
    return (yield from _tiled(seg, path, overlay))


def _job_key(seg) -> str:
    """What a resumable write depends on: vocabulary, options, decisions, model, image geometry."""
    parts = [seg.vocabulary.to_text(), json.dumps(seg.options.as_dict(), default=str), sorted(seg.suppressed),
             sorted(seg.small), seg.model.identity, seg.model.precision, seg.image_shape,
             float(seg.scorer.merge.logits.double().sum())]  # fmt: skip
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:24]


def _metadata(seg) -> dict:
    return {"classes": seg.class_names, "synonyms": [list(s) for s in seg.vocabulary.classes],
            "background": list(seg.vocabulary.background), "options": seg.options.as_dict(), "model": seg.model.name}  # fmt: skip


def _zarr(seg, path: Path, probabilities: bool, overlay) -> Steps[list[Path]]:
    steps = ome_zarr.write_steps(
        path, seg.image_shape, lambda r, c: seg.outputs(r, c, probabilities), class_names=seg.class_names,
        synonyms=seg.vocabulary.classes, background=seg.vocabulary.background, label_dtype=seg.label_dtype,
        probabilities=probabilities, scored_background=bool(seg.vocabulary.background), key=_job_key(seg),
        metadata=_metadata(seg),
    )  # fmt: skip
    partial, table = yield from steps
    written = [atomic.write_text(io.companion(path, "classes"), table.to_csv())]
    if overlay is not None:
        written.append(_overlay(seg, path, overlay))
    io.remove_stale(path, written)
    return [ome_zarr.finish(partial, path), *written]


def _tiled(seg, path: Path, overlay) -> Steps[list[Path]]:
    """A lazy result as a tiled BigTIFF pyramid; the class table is counted while level 0 is written."""
    sizes = pyramid_sizes(seg.image_shape)
    state = {"tally": None, "rows": 0}
    total = seg.image_shape[0] + 1

    def level0(rows: slice) -> np.ndarray:
        labels, tally = seg.band(rows)
        state["tally"] = tally if state["tally"] is None else state["tally"] + tally
        state["rows"] = rows.stop
        return labels

    def coarse(step: int):
        return lambda rows: np.concatenate(
            [seg.labels_block(rows, c, step) for c in _col_blocks(math.ceil(seg.image_shape[1] / step), seg.scorer.side)], axis=1
        )  # fmt: skip

    levels = [(sizes[0], level0)] + [(size, coarse(2**i)) for i, size in enumerate(sizes[1:], start=1)]
    written: list[Path] = []

    def before_rename() -> None:
        table = state["tally"].table(seg.class_names, seg.vocabulary.classes, seg.vocabulary.background)
        written.append(atomic.write_text(io.companion(path, "classes"), table.to_csv()))
        if overlay is not None:
            written.append(_overlay(seg, path, overlay))
        io.remove_stale(path, written)

    yield Progress(0, total, "write")
    meta = {io.FORMAT_TAG: "labels", "classes": seg.class_names}
    tiff.write_tiled(path, levels, seg.label_dtype, meta, before_rename=before_rename)
    yield Progress(total, total, "write")
    return [path, *written]


def _col_blocks(width: int, side: int) -> list[slice]:
    return [slice(c, min(c + side, width)) for c in range(0, width, side)]


def _overlay(seg, path: Path, image) -> Path:
    """The overlay PNG: the whole image, or for a large one a preview at most OVERLAY_SIDE long."""
    from .prepare import image_limits, unit_rgb
    from .source import ImageSource

    source = ImageSource.of(image)
    step = max(1, math.ceil(max(seg.image_shape) / OVERLAY_SIDE))
    labels = np.asarray(seg.labels)[::step, ::step] if not seg.lazy else np.asarray(seg.labels_level(step))
    limits = image_limits(source, seg.options.contrast_limits)
    pixels = source.read(0, slice(None, None, step), slice(None, None, step))
    return io.write_png(io.companion(path, "overlay"), io.overlay_rgb(unit_rgb(pixels, limits), labels, seg.class_names))
