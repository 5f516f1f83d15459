"""From a user's array to CLIP's input: intensities to 0..1, RGB, resized so the short side is S."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputImageError
from .geometry import inference_size

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


def to_unit_range(
    image: np.ndarray, contrast_limits: Sequence[float] | None = None, percentiles=(0.5, 99.5)
) -> np.ndarray:
    """Map intensities to float32 0..1 as ``(H, W, 3)``.

    ``contrast_limits`` (e.g. a napari layer's) win; else uint8 uses its dtype range and any
    other dtype robust percentiles over all channels together (so colour balance is kept).
    NaN pixels become 0; a constant image becomes all zeros.
    """
    image = _as_rgb_shape(np.asarray(image))
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputImageError(f"The image has no pixels (shape {image.shape}).")
    if image.dtype == bool:
        image = image.astype(np.float32)
    if not (np.issubdtype(image.dtype, np.number)) or np.iscomplexobj(image):
        raise InputImageError(f"Cannot segment an image of dtype {image.dtype}; use integers or floats.")
    data = image.astype(np.float32, copy=False)
    finite = np.isfinite(data)
    if contrast_limits is not None:
        lo, hi = (float(v) for v in contrast_limits)
    elif image.dtype == np.uint8:
        lo, hi = 0.0, 255.0
    else:
        values = data[finite]
        if values.size == 0:
            raise InputImageError("The image holds no finite values (all NaN or infinite).")
        if values.size > 4_000_000:  # percentiles of a strided sample are as good and much faster
            values = values[:: values.size // 2_000_000]
        lo, hi = (float(v) for v in np.percentile(values, percentiles))
    scale = 1.0 / (hi - lo) if hi > lo else 0.0
    if not finite.all():
        data = np.where(finite, data, np.float32(lo))  # NaN / inf pixels count as the low end
    out = np.empty(data.shape, np.float32)
    np.subtract(data, lo, out=out)
    out *= scale
    np.clip(out, 0.0, 1.0, out=out)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=-1)
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
