"""Reading input images: PNG/JPEG/TIFF into memory, and large TIFF, OME-TIFF and (OME-)Zarr lazily.

:func:`open_image` returns the planes of a file (one for a 2D or RGB image, several for a stack),
each as something :func:`napari_sclip.segment` reads window by window: numpy for small files,
dask arrays (a pyramid list when the file has levels) for large ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputImageError
from .names import TIFF_SUFFIXES, is_zarr

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", *TIFF_SUFFIXES)
EAGER_BYTES = 1 << 29  # files that decode to more than 512 MB are read lazily


@dataclass(frozen=True)
class Plane:
    """One plane of an input file: ``index`` (None for a 2D / RGB file) and its pixels (an array,
    or a list of arrays from the largest level down)."""

    index: tuple[int, ...] | None
    image: object


def read_image(path: str | os.PathLike) -> np.ndarray:
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


class TiffLevel:
    """One level of a TIFF read through ``tifffile.imread(path, aszarr=True)``, opened on first use
    and pickled by path (tifffile's stores cannot travel to cluster workers)."""

    def __init__(self, path: str, level: int, shape: tuple[int, ...], dtype) -> None:
        self.path, self.level, self.shape, self.dtype = str(path), level, tuple(shape), np.dtype(dtype)
        self.ndim, self._array = len(self.shape), None

    def __getitem__(self, key):
        if self._array is None:
            import tifffile
            import zarr

            self._array = zarr.open(tifffile.imread(self.path, aszarr=True, level=self.level), mode="r")
        return self._array[key]

    def __reduce__(self):
        return TiffLevel, (self.path, self.level, self.shape, self.dtype)


def _tiff_levels(path: Path) -> list:
    """dask arrays of every level of a TIFF's first series (chunks of whole tiles, 1024 px or more)."""
    import dask.array as da
    import tifffile

    with tifffile.TiffFile(path) as tif:
        shapes = [(lv.shape, lv.dtype) for lv in tif.series[0].levels]
    levels = []
    for i, (shape, dtype) in enumerate(shapes):
        chunks = tuple(min(n, 1024) for n in shape[:2]) + tuple(shape[2:])
        levels.append(da.from_array(TiffLevel(str(path), i, shape, dtype), chunks=(*chunks[:2], *shape[2:])[: len(shape)]))
    return levels


def _levels(group_or_array) -> list:
    """dask arrays of a zarr array or multiscale group, largest first."""
    import dask.array as da
    import zarr

    if isinstance(group_or_array, zarr.Array):
        return [da.from_zarr(group_or_array)]
    meta = group_or_array.attrs.get("multiscales") or group_or_array.attrs.get("ome", {}).get("multiscales")
    paths = [d["path"] for d in meta[0]["datasets"]] if meta else sorted(group_or_array.array_keys())
    return [da.from_zarr(group_or_array[p]) for p in paths]


def _axes(path: Path, levels: list) -> str:
    """Axis letters of the level-0 array (from TIFF or NGFF metadata; guessed from the shape)."""
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            axes = tif.series[0].axes
        # interleaved samples (YXS) are colour; planar ones (SYX, e.g. tifffile's default for a
        # (3, H, W) array) stay planes, as an explicit C axis (CYX) is moved last to be colour
        return axes[:-1] + "C" if axes.endswith("S") else axes
    import zarr

    root = zarr.open(str(path), mode="r")
    meta = root.attrs.get("multiscales") if hasattr(root, "attrs") else None
    if meta and meta[0].get("axes"):
        return "".join(a["name"] if isinstance(a, str) else a["name"] for a in meta[0]["axes"]).upper()
    ndim = levels[0].ndim
    return "YX" if ndim == 2 else ("YXC" if ndim == 3 and levels[0].shape[-1] in (3, 4) else "Q" * (ndim - 2) + "YX")


def _large_tiff(path: Path) -> bool:
    """Whether a TIFF decodes to more than :data:`EAGER_BYTES` (header only)."""
    if path.suffix.lower() not in TIFF_SUFFIXES or not path.is_file():
        return False
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return int(np.prod(series.shape)) * series.dtype.itemsize > EAGER_BYTES
    except Exception as exc:  # noqa: BLE001
        raise InputImageError(f"Could not read {path.name} as a TIFF ({type(exc).__name__}: {exc}).") from None


def reads_lazily(path: str | os.PathLike) -> bool:
    """Whether :func:`open_image` gives lazy planes (a Zarr store, a large TIFF), from headers only."""
    path = Path(path)
    return is_zarr(path) or _large_tiff(path)


def open_image(path: str | os.PathLike) -> list[Plane]:
    """The planes of an image file or Zarr store, read lazily when large (see module docstring)."""
    path = Path(path)
    lazy_tiff = _large_tiff(path)
    if not (lazy_tiff or is_zarr(path)):
        image = read_image(path)
        if path.suffix.lower() in TIFF_SUFFIXES:  # channels first (CYX, CZYX...) go last
            axes = _axes(path, [image])
            if len(axes) == image.ndim and "C" in axes[:-1]:
                image = np.moveaxis(image, axes.index("C"), -1)
        return _split(image, None)
    try:
        import zarr

        levels = _tiff_levels(path) if lazy_tiff else _levels(zarr.open(str(path), mode="r"))
        axes = _axes(path, levels)
    except InputImageError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InputImageError(f"Could not open {path.name} ({type(exc).__name__}: {exc}).") from None
    return _split_levels(levels, axes)


def _split(image: np.ndarray, axes: str | None) -> list[Plane]:
    """2D / RGB -> one plane; a stack -> one plane per leading index (legacy rule for in-memory files)."""
    if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4)):
        return [Plane(None, image)]
    if image.ndim == 3 or (image.ndim == 4 and image.shape[-1] in (3, 4)):
        return [Plane((z,), image[z]) for z in range(image.shape[0])]
    raise InputImageError(f"Shape {image.shape} is not 2D, RGB or a stack of those; split it into planes first.")


def _split_levels(levels: list, axes: str) -> list[Plane]:
    """Planes of a lazy multiscale image: channels (C) moved last, other leading axes iterated."""
    if "C" in axes and axes.index("C") != len(axes) - 1:
        c = axes.index("C")
        levels = [lv.transpose([*(i for i in range(lv.ndim) if i != c), c]) for lv in levels]
        axes = axes.replace("C", "") + "C"
    n_lead = levels[0].ndim - (3 if axes.endswith("C") else 2)
    levels = [lv for lv in levels if lv.shape[:n_lead] == levels[0].shape[:n_lead]]  # spatial pyramids only
    if n_lead == 0:
        return [Plane(None, levels if len(levels) > 1 else levels[0])]
    out = []
    for index in np.ndindex(*levels[0].shape[:n_lead]):
        planes = [lv[index] for lv in levels]
        out.append(Plane(tuple(int(i) for i in index), planes if len(planes) > 1 else planes[0]))
    return out
