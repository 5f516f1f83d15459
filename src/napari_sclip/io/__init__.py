"""Reading images and writing results: the one place files are made.

- Inputs: :func:`read_image` (in memory) and :func:`open_image` (planes of PNG/JPEG/TIFF files and
  Zarr stores, large ones lazily).
- Results: :func:`write_result` for in-memory arrays (labels TIFF, class table CSV, probabilities
  TIFF, overlay PNG); :meth:`napari_sclip.Segmentation.save` also writes tiled BigTIFF pyramids
  and OME-Zarr for large results (:mod:`.tiff`, :mod:`.ome_zarr`). The CLI, the widget's export
  and napari's writer all go through here. Every file is written under a temporary name and
  renamed when whole; the labels are written last.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import atomic
from ..stats import ClassTable
from .images import IMAGE_SUFFIXES, Plane, open_image, read_image
from .names import COMPANIONS, TIFF_SUFFIXES, ZARR_SUFFIX, companion, is_zarr, stem_of
from .overlay import overlay_rgb
from .tiff import FORMAT_TAG, is_labels_tiff, read_labels, write_tiff

__all__ = [
    "COMPANIONS", "FORMAT_TAG", "IMAGE_SUFFIXES", "TIFF_SUFFIXES", "ZARR_SUFFIX", "Plane", "companion",
    "is_labels_tiff", "is_zarr", "open_image", "overlay_rgb", "read_class_table", "read_image", "read_labels",
    "remove_stale", "stem_of", "write_result",
]  # fmt: skip


def remove_stale(labels_path: Path, written: Sequence[Path]) -> None:
    """Remove the companions an earlier result left at this stem that this write did not renew."""
    for kind in COMPANIONS:
        stale = companion(labels_path, kind)
        if stale not in written:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def write_result(
    labels_path: str | os.PathLike,
    labels: np.ndarray,
    table: ClassTable,
    *,
    class_names: Sequence[str] | None = None,
    probabilities: np.ndarray | None = None,
    overlay: np.ndarray | None = None,
    overlay_plane: tuple[int, ...] | None = None,
) -> list[Path]:
    """Write an in-memory result: the labels TIFF at ``labels_path`` (zlib, uint8/uint16, class
    names in its metadata), ``<stem>_classes.csv`` (:meth:`ClassTable.to_csv`), and if given the
    probabilities ``(K, ...)`` float32 TIFF and an overlay PNG of ``overlay`` (0..1 RGB of one
    plane: the middle plane of a stack, or ``overlay_plane``). Companions an earlier write left at
    the same stem and this write does not renew are removed, so no stale file sits beside new
    labels. The labels are written last: a labels file under its final name means the whole
    result is there. Returns the paths written, labels first."""
    path = Path(labels_path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        path = path.with_suffix(".tif")
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(class_names if class_names is not None else [r.name for r in table.rows[1:]])
    labels = np.asarray(labels)
    replacing = path.exists()
    written = [atomic.write_text(companion(path, "classes"), table.to_csv())]
    if probabilities is not None:
        meta = {FORMAT_TAG: "probabilities", "classes": names}
        written.append(write_tiff(companion(path, "probabilities"), np.asarray(probabilities, np.float32), meta))
    if overlay is not None:
        plane = overlay_plane if overlay_plane is not None else tuple(n // 2 for n in labels.shape[:-2])
        written.append(write_png(companion(path, "overlay"), overlay_rgb(np.asarray(overlay, np.float32), labels[plane], names)))
    if replacing:
        remove_stale(path, written)
    written.insert(0, write_tiff(path, labels, {FORMAT_TAG: "labels", "classes": names}))
    return written


def write_png(path: Path, rgb: np.ndarray) -> Path:
    """An RGB uint8 picture as PNG (atomically)."""
    from skimage import io as skio

    with atomic.atomic_path(path) as tmp:
        skio.imsave(tmp, rgb, check_contrast=False)
    return path


def read_class_table(path: str | os.PathLike) -> ClassTable:
    """Read a class table CSV written by :func:`write_result`."""
    return ClassTable.from_csv(Path(path).read_text(encoding="utf-8"))
