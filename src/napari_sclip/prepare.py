"""From a user's array to CLIP's input: intensities to 0..1, RGB, resized so the short side is S.

Everything here works band by band or window by window on an :class:`~napari_sclip.source.ImageSource`,
so an image of any size goes in with bounded memory. All arithmetic is elementwise (single IEEE
operations), so a window's pixels are the same whether they come from the whole resized image or
are computed alone from the source.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .errors import InputImageError
from .geometry import Box, inference_size
from .options import check_contrast_limits
from .source import ImageSource
from .tiling import Taps, lerp

__all__ = ["ModelInput", "image_limits", "inference_size", "to_unit_range", "unit_rgb"]
BAND_BYTES = 1 << 25  # source pixels read per band when resizing (32 MB)


def _auto_limits(image: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    """uint8 and bool by their range; other dtypes by robust percentiles of their finite values
    (over all channels together, so the colour balance is kept), computed in float64."""
    if image.dtype == np.uint8:
        return 0.0, 255.0
    if image.dtype == bool:
        return 0.0, 1.0
    flat = image.reshape(-1)
    if flat.size > 4_000_000:  # percentiles of a strided sample are as good and much faster
        flat = flat[:: flat.size // 2_000_000]
    values = flat.astype(np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise InputImageError("The image holds no finite values (all NaN or infinite).")
    lo, hi = (float(v) for v in np.percentile(values, percentiles))
    return lo, hi


def image_limits(source: ImageSource, contrast_limits: Sequence[float] | None = None,
                 percentiles=(0.5, 99.5)) -> tuple[float, float]:  # fmt: skip
    """The intensities mapped to 0 and 1: ``contrast_limits`` if given (checked), else the dtype's
    range for uint8 / bool, else robust percentiles of a sample of the image."""
    if contrast_limits is not None:
        return check_contrast_limits(contrast_limits)
    if source.dtype in (np.uint8, np.bool_):
        return _auto_limits(np.zeros(1, source.dtype), percentiles)
    return _auto_limits(source.sample(), percentiles)


def unit_rgb(block: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    """A block ``(h, w)`` or ``(h, w, 3)`` as float32 ``(h, w, 3)`` in 0..1 through ``limits``, in
    float64 (any dtype's full range is kept, float64 beyond float32's included). NaN and -inf
    take the low end, +inf the high end; equal limits give zeros."""
    lo, hi = limits
    span = hi - lo
    shift = max(abs(lo), abs(hi)) if not np.isfinite(span) else 1.0  # limits near float64's end
    scale = 1.0 / (hi / shift - lo / shift) if hi > lo else 0.0
    band = np.nan_to_num(block.astype(np.float64), nan=lo, posinf=hi, neginf=lo)
    band = np.clip((band / shift - lo / shift) * scale, 0.0, 1.0).astype(np.float32)
    return np.repeat(band[..., None], 3, axis=-1) if band.ndim == 2 else band


def to_unit_range(image: np.ndarray, contrast_limits: Sequence[float] | None = None,
                  percentiles=(0.5, 99.5)) -> np.ndarray:  # fmt: skip
    """A whole in-memory image as float32 ``(H, W, 3)`` in 0..1 (see :func:`unit_rgb`), in row bands."""
    source = ImageSource.of(np.asarray(image))
    limits = image_limits(source, contrast_limits, percentiles)
    H, W = source.shape
    out = np.empty((H, W, 3), np.float32)
    rows = max(1, (1 << 20) // max(1, W))
    for r0 in range(0, H, rows):
        out[r0 : r0 + rows] = unit_rgb(source.read(0, slice(r0, r0 + rows), slice(None)), limits)
    return out


class ModelInput:
    """CLIP-normalised pixels ``(3, h, w)`` at inference size, bilinearly resized (no antialias, as
    the official pipeline) from the coarsest pyramid level that covers that size.

    Held whole when it fits ``budget`` bytes (built band by band from the source), else each
    window is computed from the source region under it when asked for.
    """

    def __init__(self, source: ImageSource, size: tuple[int, int], limits: tuple[float, float],
                 mean: Sequence[float], std: Sequence[float], budget: int = 1 << 29) -> None:  # fmt: skip
        self.source, self.size, self.limits = source, tuple(size), limits
        self.level = source.level_for(self.size)
        self.level_shape = source.level_shape(self.level)
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]
        self.full = self._region(0, self.size[0], 0, self.size[1]) if 12 * self.size[0] * self.size[1] <= budget else None

    def crop(self, box: Box) -> torch.Tensor:
        """The ``(3, bh, bw)`` pixels of one window."""
        if self.full is not None:
            return self.full[:, box.y0 : box.y1, box.x0 : box.x1]
        return self._region(box.y0, box.y1, box.x0, box.x1)

    def _region(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """Pixels ``[y0:y1, x0:x1]`` at inference size: only the source rows and columns the bilinear
        taps touch are converted, one band of source rows at a time."""
        (h, w), (lh, lw) = self.size, self.level_shape
        ct = Taps.of(lw, w, np.arange(x0, x1))
        c0, c1 = int(ct.i0.min()), int(ct.i1.max()) + 1
        cols = np.unique(np.concatenate([ct.i0, ct.i1]))
        ct = Taps(np.searchsorted(cols, ct.i0), np.searchsorted(cols, ct.i1), ct.lam)
        out = torch.empty(3, y1 - y0, x1 - x0)
        row_bytes = (c1 - c0) * 3 * max(self.source.dtype.itemsize, 1)
        step = max(1, int(BAND_BYTES // row_bytes * (h / lh)))  # output rows per band
        for r0 in range(y0, y1, step):
            rt = Taps.of(lh, h, np.arange(r0, min(r0 + step, y1)))
            a, b = int(rt.i0.min()), int(rt.i1.max()) + 1
            rows = np.unique(np.concatenate([rt.i0, rt.i1]))
            band = self.source.read(self.level, slice(a, b), slice(c0, c1))[rows - a][:, cols - c0]
            unit = torch.from_numpy(unit_rgb(band, self.limits)).permute(2, 0, 1)
            rt = Taps(np.searchsorted(rows, rt.i0), np.searchsorted(rows, rt.i1), rt.lam)
            resized = lerp(lerp(unit, rt, 1), ct, 2)
            out[:, r0 - y0 : r0 - y0 + resized.shape[1]] = (resized - self.mean) / self.std
        return out
