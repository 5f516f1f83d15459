"""The image to segment, read lazily: numpy, dask, zarr or tifffile-backed arrays, or a pyramid.

An :class:`ImageSource` never materialises the whole image: windows and row bands are read as
they are needed, from the coarsest pyramid level that still covers the inference size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import InputImageError

SHAPE_HELP = (
    "For a stack, pick one plane (e.g. image[z]); for multichannel data, choose up to three "
    "channels and stack them as RGB (np.stack([a, b, c], axis=-1))."
)


def _array_like(a) -> bool:
    return hasattr(a, "shape") and hasattr(a, "dtype") and hasattr(a, "__getitem__") and not isinstance(a, str)


def _open(a):
    """Turn a zarr group or store (e.g. ``tifffile.imread(path, aszarr=True)``) into its arrays."""
    if _array_like(a):
        return [a]
    try:
        import zarr
    except ImportError:  # pragma: no cover - zarr is a dependency
        return [a]
    try:
        node = zarr.open(a, mode="r")
    except Exception:  # noqa: BLE001 - not a zarr store: let the shape check speak
        return [a]
    if isinstance(node, zarr.Array):
        return [node]
    datasets = node.attrs.get("multiscales", [{}])[0].get("datasets") or [{"path": k} for k in sorted(node.array_keys())]
    return [node[d["path"]] for d in datasets]


@dataclass(eq=False)
class ImageSource:
    """A 2D grayscale or RGB(A) image, possibly as a pyramid (largest level first).

    ``reads`` counts the pixel reads (tests check that only the needed windows are read).
    """

    levels: list
    reads: int = field(default=0, repr=False)

    @classmethod
    def of(cls, image) -> ImageSource:
        """Wrap an array, a list of arrays (a pyramid) or a zarr store/group."""
        if isinstance(image, ImageSource):
            return image
        if isinstance(image, np.ma.MaskedArray):  # masked pixels count as missing (the low end)
            image = np.ma.filled(image.astype(np.float64 if image.dtype == np.float64 else np.float32), np.nan)
        if isinstance(image, list | tuple) and image and all(_array_like(a) for a in image):
            levels = list(image)
        elif isinstance(image, list | tuple):
            levels = [np.asarray(image)]
        else:
            levels = _open(image)
            if not _array_like(levels[0]):
                levels = [np.asarray(image)]
        source = cls(levels)
        source._check()
        return source

    def _check(self) -> None:
        shape = tuple(self.levels[0].shape)
        ndim_ok = len(shape) == 2 or (len(shape) == 3 and shape[-1] in (1, 3, 4))
        if not ndim_ok:
            raise InputImageError(
                f"Expected a 2D grayscale image (H, W) or an RGB/RGBA image (H, W, 3|4), got shape {shape}. "
                + SHAPE_HELP
            )
        if shape[0] == 0 or shape[1] == 0:
            raise InputImageError(f"The image has no pixels (shape {shape}).")
        dtype = np.dtype(self.levels[0].dtype)
        if not (np.issubdtype(dtype, np.number) or dtype == np.bool_) or np.issubdtype(dtype, np.complexfloating):
            raise InputImageError(f"Cannot segment an image of dtype {dtype}; use integers or floats.")
        for level in self.levels[1:]:
            if tuple(level.shape[2:]) != shape[2:] or level.shape[0] > shape[0]:
                raise InputImageError("Pyramid levels must share their channels and get smaller, largest first.")

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the full-resolution image."""
        return int(self.levels[0].shape[0]), int(self.levels[0].shape[1])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.levels[0].dtype)

    @property
    def in_memory(self) -> bool:
        """Whether the image is a plain numpy array (cheap to read anywhere)."""
        return len(self.levels) == 1 and isinstance(self.levels[0], np.ndarray)

    def level_shape(self, level: int) -> tuple[int, int]:
        return int(self.levels[level].shape[0]), int(self.levels[level].shape[1])

    def level_for(self, size: tuple[int, int]) -> int:
        """The coarsest level at least ``size`` in both dimensions (level 0 if none is smaller)."""
        best = 0
        for i in range(1, len(self.levels)):
            h, w = self.level_shape(i)
            if h >= size[0] and w >= size[1]:
                best = i
        return best

    def read(self, level: int, rows: slice, cols: slice) -> np.ndarray:
        """Pixels ``[rows, cols]`` of a level as numpy, ``(h, w)`` or ``(h, w, C)`` (alpha dropped,
        a single channel squeezed)."""
        self.reads += 1
        block = np.asarray(self.levels[level][rows, cols])
        if block.ndim == 3:
            block = block[..., 0] if block.shape[-1] == 1 else block[..., :3]
        return block

    def sample(self, max_pixels: int = 2_000_000) -> np.ndarray:
        """Pixels for robust intensity statistics: the coarsest level if small enough, else an even
        grid of row bands of level 0 (never the whole image)."""
        for i in reversed(range(len(self.levels))):
            h, w = self.level_shape(i)
            if h * w <= max_pixels * 4 or i == 0 and self.in_memory:
                return self.read(i, slice(None), slice(None))
        h, w = self.shape
        bands = max(1, min(64, max_pixels // max(w, 1)))
        rows = max(1, max_pixels // (bands * max(w, 1)))
        starts = np.linspace(0, max(h - rows, 0), bands).astype(int)
        return np.concatenate([self.read(0, slice(s, s + rows), slice(None)) for s in starts])


def pyramid_sizes(shape: Sequence[int], smallest: int = 256) -> list[tuple[int, int]]:
    """Sizes of a 2x pyramid down to about ``smallest`` pixels on the long side."""
    h, w = int(shape[0]), int(shape[1])
    sizes = [(h, w)]
    while max(h, w) > smallest:
        h, w = -(-h // 2), -(-w // 2)
        sizes.append((h, w))
    return sizes
