"""TIFF files: whole arrays, or tiled BigTIFF pyramids written tile by tile in bounded memory."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from .. import atomic

TILE = 256
FORMAT_TAG = "napari-sclip"
BandFn = Callable[[slice], np.ndarray]  # rows of one level -> (h, w) block of that level


def write_tiff(path: Path, data: np.ndarray, meta: dict) -> Path:
    """An in-memory array as a zlib TIFF (written atomically), ``meta`` in its description."""
    import tifffile

    with atomic.atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, compression="zlib", metadata=meta)
    return path


def _tiles(shape: tuple[int, int], band: BandFn, rows: int = TILE) -> Iterator[np.ndarray]:
    """Row-major ``TILE`` x ``TILE`` tiles of a level, computed one band of rows at a time."""
    h, w = shape
    for r0 in range(0, h, rows):
        block = band(slice(r0, min(r0 + rows, h)))
        if block.shape[0] < rows or w % TILE:
            pad_w = -w % TILE
            block = np.pad(block, ((0, rows - block.shape[0]), (0, pad_w)))
        for c0 in range(0, block.shape[1], TILE):
            yield np.ascontiguousarray(block[:, c0 : c0 + TILE])


def write_tiled(path: str | os.PathLike, levels: Sequence[tuple[tuple[int, int], BandFn]], dtype, meta: dict,
                before_rename: Callable[[], None] | None = None) -> Path:  # fmt: skip
    """A tiled BigTIFF pyramid (zlib level 1): ``levels`` are ``(shape, band function)``, largest
    first; each level is written band by band, so memory stays bounded whatever the size.
    ``before_rename`` runs once the file is complete, before it takes its final name."""
    import tifffile

    path = Path(path)
    opts = dict(dtype=np.dtype(dtype), tile=(TILE, TILE), compression="zlib", compressionargs={"level": 1})
    with atomic.atomic_path(path) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=True) as tw:
            (shape, band), rest = levels[0], levels[1:]
            tw.write(data=_tiles(shape, band), shape=shape, subifds=len(rest), metadata=meta, **opts)
            for shape, band in rest:
                tw.write(data=_tiles(shape, band), shape=shape, subfiletype=1, **opts)
        if before_rename is not None:
            before_rename()
    return path


def read_labels(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """A labels TIFF written by napari-sclip: ``(labels, class names from its metadata)``."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        labels = tif.asarray()
        meta = tif.shaped_metadata[0] if tif.shaped_metadata else {}
    return labels, list(meta.get("classes", []))


def is_labels_tiff(path: str | os.PathLike) -> bool:
    """Whether a TIFF file holds labels written by napari-sclip."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            meta = tif.shaped_metadata[0] if tif.shaped_metadata else {}
    except Exception:  # noqa: BLE001 - not a TIFF we can read
        return False
    return meta.get(FORMAT_TAG) == "labels"
