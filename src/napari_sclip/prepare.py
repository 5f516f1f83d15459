"""From a user's array to CLIP's input: intensities to 0..1, RGB, resized so the short side is S."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputImageError
from .geometry import inference_size
from .options import check_contrast_limits

__all__ = ["inference_size", "to_model_input", "to_unit_range"]


def _as_rgb_shape(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        return image[..., :3]
    raise InputImageError(
        f"Expected a 2D grayscale image (H, W) or an RGB/RGBA image (H, W, 3|4), got shape "
        f"{image.shape}. For a stack, pick one plane (e.g. image[z]); for multichannel data, "
        "choose up to three channels and stack them as RGB (np.stack([a, b, c], axis=-1))."
    )


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


def to_unit_range(
    image: np.ndarray, contrast_limits: Sequence[float] | None = None, percentiles=(0.5, 99.5)
) -> np.ndarray:
    """Map intensities to float32 0..1 as ``(H, W, 3)``.

    ``contrast_limits`` (e.g. a napari layer's; finite, low < high) win; else uint8 uses its
    dtype range and any other dtype robust percentiles over all channels together. The mapping runs
    in float64 row band by row band, so any dtype's full range is kept (float64 beyond float32's
    range included) in bounded extra memory. NaN and -inf pixels take the low end, +inf the high
    end; a constant image becomes all zeros.
    """
    image = _as_rgb_shape(np.asarray(image))
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputImageError(f"The image has no pixels (shape {image.shape}).")
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool) or np.iscomplexobj(image):
        raise InputImageError(f"Cannot segment an image of dtype {image.dtype}; use integers or floats.")
    if contrast_limits is not None:
        lo, hi = check_contrast_limits(contrast_limits)
    else:
        lo, hi = _auto_limits(image, percentiles)
    span = hi - lo
    shift = max(abs(lo), abs(hi)) if not np.isfinite(span) else 1.0  # limits near float64's end
    scale = 1.0 / (hi / shift - lo / shift) if hi > lo else 0.0
    out = np.empty(image.shape[:2] + (3,), np.float32)
    rows = max(1, (1 << 20) // max(1, image[0].size))
    for r0 in range(0, image.shape[0], rows):
        band = image[r0 : r0 + rows].astype(np.float64)
        band = np.nan_to_num(band, nan=lo, posinf=hi, neginf=lo)
        band = np.clip((band / shift - lo / shift) * scale, 0.0, 1.0)
        out[r0 : r0 + rows] = band[..., None] if band.ndim == 2 else band
    return out


def to_model_input(
    unit_rgb: np.ndarray, size: tuple[int, int], mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """``(3, h, w)`` float32 CLIP-normalised tensor, bilinearly resized (no antialias, as the
    official pipeline) unless the image already has that size."""
    x = torch.from_numpy(np.ascontiguousarray(unit_rgb)).permute(2, 0, 1)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0]
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return ((x - m) / s).contiguous()
