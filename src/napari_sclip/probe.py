"""The attention probe: where one patch looks in the last block (SCLIP's Fig. 4), for any mode
(the final attention of modes with their own last stage: ResCLIP's second pass, SC-CLIP's main stream)."""

from __future__ import annotations

import numpy as np
import torch

from .attention import get_mode
from .encoder import names_order
from .errors import InputImageError
from .tiling import Taps, lerp


def attention_map(seg, y: float, x: float, attention: str) -> np.ndarray:
    """Last-block attention of the patch under image pixel ``(y, x)``, ``(H, W)`` float32.

    The window whose centre is nearest the point is used; attention to patches outside it is 0.
    """
    H, W = seg.image_shape
    if not (0 <= y < H and 0 <= x < W):
        raise InputImageError(f"Point ({y:.0f}, {x:.0f}) is outside the image ({H} x {W}).")
    h, w = seg.inference_shape
    yi, xi = min(int(y * h / H), h - 1), min(int(x * w / W), w - 1)
    inside = [b for b in seg.boxes if b.y0 <= yi < b.y1 and b.x0 <= xi < b.x1]
    box = min(inside, key=lambda b: ((b.y0 + b.y1) / 2 - yi) ** 2 + ((b.x0 + b.x1) / 2 - xi) ** 2)
    mode = get_mode(attention)
    params = dict(seg.options.mode_params) if mode.name == seg.attention else None
    order = names_order(seg.vocabulary.query_labels)
    text = seg.model.embed([seg.vocabulary.queries[i] for i in order]) if mode.needs_text else None
    attn = seg.model.patch_attention(seg.pixels.crop(box)[None], mode.name, text=text, logit_scale=seg.logit_scale,
                                     params=params)[0]  # fmt: skip
    patch = seg.model.patch_size
    gh, gw = mode.grid(box.y1 - box.y0, box.x1 - box.x0, patch)
    row = min((yi - box.y0) // patch, gh - 1) * gw + min((xi - box.x0) // patch, gw - 1)
    grid = attn[row].reshape(gh, gw)
    canvas = torch.zeros(1, h, w)  # nearest-neighbour upsampling of the grid into its window
    ys = np.minimum((np.arange(box.y1 - box.y0) * gh) // (box.y1 - box.y0), gh - 1)
    xs = np.minimum((np.arange(box.x1 - box.x0) * gw) // (box.x1 - box.x0), gw - 1)
    canvas[0, box.y0 : box.y1, box.x0 : box.x1] = grid[ys][:, xs]
    return lerp(lerp(canvas, Taps.of(h, H, np.arange(H)), 1), Taps.of(w, W, np.arange(W)), 2)[0].numpy()
