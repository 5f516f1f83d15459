"""Reading images, and the one writer of results: labels TIFF, class table CSV, probabilities TIFF,
overlay PNG. The CLI, the widget's export and napari's writer all call :func:`write_result`.

Every file is written under a temporary name and renamed when whole (:mod:`atomic`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import atomic
from .errors import InputImageError
from .palette import class_colours
from .stats import ClassTable

TIFF_SUFFIXES = (".tif", ".tiff")
#: Files written beside the labels TIFF ``<stem>_labels.tif`` (or any ``<stem>.tif``).
COMPANIONS = {"classes": "_classes.csv", "probabilities": "_probabilities.tif", "overlay": "_overlay.png"}
FORMAT_TAG = "napari-sclip"


def read_image(path: str | Path) -> np.ndarray:
    """Read a PNG, JPEG or TIFF into a numpy array (TIFF keeps its dtype and all pages)."""
    path = Path(path)
    if not path.is_file():
        raise InputImageError(f"No such image file: {path}")
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            return np.asarray(tifffile.imread(path))
        from skimage import io as skio

        return np.asarray(skio.imread(path))
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's problem
        raise InputImageError(f"Could not read {path.name} as an image ({type(exc).__name__}: {exc}).") from None


def stem_of(labels_path: str | os.PathLike) -> Path:
    """``out/cells_labels.tif`` and ``out/cells.tif`` -> ``out/cells``: what companions are named after."""
    path = Path(labels_path)
    name = path.name
    for ext in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return path.with_name(name.removesuffix("_labels"))


def companion(labels_path: str | os.PathLike, kind: str) -> Path:
    """Path of the ``kind`` file ("classes", "probabilities", "overlay") beside a labels TIFF."""
    stem = stem_of(labels_path)
    return stem.with_name(stem.name + COMPANIONS[kind])


def overlay_rgb(unit_rgb: np.ndarray, labels: np.ndarray, class_names: Sequence[str], alpha: float = 0.5) -> np.ndarray:
    """The image (0..1 RGB) with each class blended in its palette colour; label 0 untinted. uint8."""
    from skimage.color import label2rgb

    colours = class_colours(class_names)[:, :3]
    present = [int(v) for v in np.unique(labels) if v != 0]
    if not present:
        return (np.clip(unit_rgb, 0, 1) * 255).round().astype(np.uint8)
    mixed = label2rgb(labels, image=unit_rgb, colors=[colours[v] for v in present], alpha=alpha, bg_label=0,
                      image_alpha=1.0, saturation=1.0, kind="overlay")  # fmt: skip
    return (np.clip(mixed, 0, 1) * 255).round().astype(np.uint8)


def _write_tiff(path: Path, data: np.ndarray, meta: dict) -> Path:
    import tifffile

    with atomic.atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, compression="zlib", metadata=meta)
    return path


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
    """Write a result: the labels TIFF at ``labels_path`` (zlib, uint8/uint16, class names in its
    metadata), ``<stem>_classes.csv`` (:meth:`ClassTable.to_csv`), and if given the probabilities
    ``(K, ...)`` float32 TIFF and an overlay PNG of ``overlay`` (0..1 RGB of one plane: the middle
    plane of a stack, or ``overlay_plane``). Companions an earlier write left at the same stem and
    this write does not renew are removed, so no stale file sits beside new labels. The labels are
    written last: a labels file under its final name means the whole result is there.
    Returns the paths written, labels first."""
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
        written.append(_write_tiff(companion(path, "probabilities"), np.asarray(probabilities, np.float32), meta))
    if overlay is not None:
        plane = overlay_plane if overlay_plane is not None else tuple(n // 2 for n in labels.shape[:-2])
        png = overlay_rgb(np.asarray(overlay, np.float32), labels[plane], names)
        from skimage import io as skio

        with atomic.atomic_path(companion(path, "overlay")) as tmp:
            skio.imsave(tmp, png, check_contrast=False)
        written.append(companion(path, "overlay"))
    if replacing:
        for kind in COMPANIONS:
            stale = companion(path, kind)
            if stale not in written:
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
    # the labels last: once they exist under their name, every companion is complete
    written.insert(0, _write_tiff(path, labels, {FORMAT_TAG: "labels", "classes": names}))
    return written


def read_class_table(path: str | os.PathLike) -> ClassTable:
    """Read a class table CSV written by :func:`write_result`."""
    return ClassTable.from_csv(Path(path).read_text(encoding="utf-8"))


def read_labels(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """A labels TIFF written by :func:`write_result`: ``(labels, class names)`` (names from its
    metadata, or from the class table beside it)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        labels = tif.asarray()
        meta = tif.shaped_metadata[0] if tif.shaped_metadata else {}
    names = list(meta.get("classes", []))
    csv = companion(path, "classes")
    if not names and csv.is_file():
        names = [r.name for r in read_class_table(csv).rows[1:]]
    return labels, names
