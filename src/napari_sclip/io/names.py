"""How result files are named: ``<stem>_labels.tif`` (or ``<stem>.zarr``) and companions beside it."""

from __future__ import annotations

import os
from pathlib import Path

TIFF_SUFFIXES = (".tif", ".tiff")
ZARR_SUFFIX = ".zarr"
#: Files written beside the labels (``<stem>_labels.tif``, any ``<stem>.tif`` or ``<stem>.zarr``).
COMPANIONS = {"classes": "_classes.csv", "probabilities": "_probabilities.tif", "overlay": "_overlay.png"}


def stem_of(labels_path: str | os.PathLike) -> Path:
    """``out/cells_labels.tif``, ``out/cells.tif`` and ``out/cells.zarr`` -> ``out/cells``."""
    path = Path(labels_path)
    name = path.name
    for ext in (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".ome.zarr", ZARR_SUFFIX):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return path.with_name(name.removesuffix("_labels"))


def companion(labels_path: str | os.PathLike, kind: str) -> Path:
    """Path of the ``kind`` file ("classes", "probabilities", "overlay") beside a result."""
    stem = stem_of(labels_path)
    return stem.with_name(stem.name + COMPANIONS[kind])


def is_zarr(path: str | os.PathLike) -> bool:
    return str(path).lower().rstrip("/").endswith(ZARR_SUFFIX)
