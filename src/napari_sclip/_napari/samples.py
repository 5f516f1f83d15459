"""Sample images that open offline: synthetic fluorescence cells, a synthetic aerial scene,
a two-channel 16-bit time-lapse, and scikit-image's bundled immunohistochemistry photo."""

from __future__ import annotations

import numpy as np

LayerData = tuple  # (data, kwargs, layer_type)


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    from scipy import ndimage

    return ndimage.gaussian_filter(a, sigma)


def _noise_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Smooth noise scaled to 0..1."""
    f = _blur(rng.standard_normal(shape).astype(np.float32), sigma)
    f -= f.min()
    return f / max(float(f.max()), 1e-6)


def fluorescence_planes(shape=(512, 512), n_cells=28, seed=0, drift=0.0) -> tuple[np.ndarray, np.ndarray]:
    """(nuclei, cytoplasm) float32 0..1 planes of a synthetic fluorescence field of cells."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    wobble = _noise_field(rng, shape, 6) - 0.5
    cyto = np.zeros(shape, np.float32)
    nuc = np.zeros(shape, np.float32)
    centres = rng.uniform([30, 30], [h - 30, w - 30], size=(n_cells, 2))
    for cy, cx in centres:
        cy, cx = cy + drift * rng.standard_normal(), cx + drift * rng.standard_normal()
        r_cell, r_nuc = rng.uniform(22, 34), rng.uniform(8, 12)
        angle = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        d_cell = np.hypot(u / 1.3, v / 0.85) / r_cell + 0.35 * wobble
        cyto = np.maximum(cyto, np.clip(1.2 - d_cell, 0, 1) * rng.uniform(0.55, 0.9))
        d_nuc = np.hypot((u - 3) / 1.15, v / 0.9) / r_nuc
        nuc = np.maximum(nuc, (d_nuc < 1).astype(np.float32) * rng.uniform(0.7, 1.0))
    texture = 0.75 + 0.5 * _noise_field(rng, shape, 2)
    cyto = _blur(cyto * texture * (nuc < 0.1), 1.5)
    nuc = _blur(nuc * (0.8 + 0.4 * _noise_field(rng, shape, 1.5)), 1.2)
    return np.clip(nuc, 0, 1), np.clip(cyto, 0, 1)


def cells_rgb() -> list[LayerData]:
    """Synthetic fluorescence cells as one RGB image: nuclei blue, cytoplasm green."""
    nuc, cyto = fluorescence_planes()
    rng = np.random.default_rng(1)
    rgb = np.stack([0.08 * cyto, cyto, nuc], axis=-1) + rng.normal(0, 0.015, cyto.shape + (3,))
    data = (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    return [(data, {"name": "fluorescent cells", "rgb": True}, "image")]


def cells_timelapse() -> list[LayerData]:
    """A 16-bit, 3-frame, two-channel time-lapse, one layer per channel (as channel_axis splits)."""
    frames = [fluorescence_planes((256, 256), n_cells=9, seed=3, drift=2.0 * t) for t in range(3)]
    rng = np.random.default_rng(4)
    layers = []
    for c, (name, cmap) in enumerate((("nuclei (DAPI)", "blue"), ("cytoplasm (GFP)", "green"))):
        stack = np.stack([f[c] for f in frames]) * 3000 + 400
        stack = stack + rng.normal(0, 60, stack.shape)
        data = np.clip(stack, 0, 65535).astype(np.uint16)
        meta = {"name": name, "colormap": cmap, "blending": "additive", "contrast_limits": (300, 3600)}
        layers.append((data, meta, "image"))
    return layers


def aerial_rgb(shape=(512, 512), seed=7) -> list[LayerData]:
    """A synthetic aerial scene: fields, forest, a river, roads and buildings (uint8 RGB)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros(shape + (3,), np.float32)
    # field parcels: a jittered grid of rectangles with crop colours and row stripes
    crops = np.array([[0.78, 0.72, 0.38], [0.55, 0.65, 0.30], [0.62, 0.50, 0.33], [0.70, 0.76, 0.45]])
    edges_y = np.sort(np.r_[0, rng.uniform(0, h, 5), h]).astype(int)
    edges_x = np.sort(np.r_[0, rng.uniform(0, w, 5), w]).astype(int)
    for y0, y1 in zip(edges_y[:-1], edges_y[1:]):
        for x0, x1 in zip(edges_x[:-1], edges_x[1:]):
            colour = crops[rng.integers(len(crops))]
            stripes = 0.92 + 0.08 * np.sin(xx[y0:y1, x0:x1] * rng.uniform(0.3, 0.8))
            img[y0:y1, x0:x1] = colour * stripes[..., None]
    # forest: thresholded smooth noise, dark green with canopy texture
    forest = _noise_field(rng, shape, 30) > 0.62
    canopy = 0.7 + 0.6 * _noise_field(rng, shape, 2)
    img[forest] = (np.array([0.12, 0.30, 0.12]) * canopy[forest][:, None])
    # river: a sinuous band
    centre = h * 0.35 + 40 * np.sin(xx / 70.0) + 15 * np.sin(xx / 23.0)
    river = np.abs(yy - centre) < 14 + 4 * np.sin(xx / 40.0)
    img[river] = np.array([0.14, 0.28, 0.42]) * (0.9 + 0.2 * _noise_field(rng, shape, 3)[river])[:, None]
    # roads: straight grey lines
    road = (np.abs(xx - 0.62 * w - 0.25 * (yy - h / 2)) < 4) | (np.abs(yy - 0.78 * h) < 4)
    img[road] = [0.55, 0.55, 0.55]
    # buildings: small roofs near the roads, each with a shadow
    for _ in range(40):
        on_horizontal = rng.random() < 0.5
        if on_horizontal:
            cx = rng.uniform(10, w - 10)
            cy = 0.78 * h + rng.choice([-1, 1]) * rng.uniform(14, 30)
        else:
            cy = rng.uniform(10, h - 10)
            cx = 0.62 * w + 0.25 * (cy - h / 2) + rng.choice([-1, 1]) * rng.uniform(14, 30)
        hy, hx = rng.uniform(5, 10), rng.uniform(5, 10)
        y0, y1 = int(max(cy - hy, 0)), int(min(cy + hy, h))
        x0, x1 = int(max(cx - hx, 0)), int(min(cx + hx, w))
        img[min(y0 + 3, h - 1) : min(y1 + 3, h), min(x0 + 3, w - 1) : min(x1 + 3, w)] *= 0.45
        roof = [[0.72, 0.30, 0.25], [0.80, 0.80, 0.78], [0.45, 0.42, 0.40]][rng.integers(3)]
        img[y0:y1, x0:x1] = roof
    img = _blur(img, (0.8, 0.8, 0)) + rng.normal(0, 0.015, img.shape)
    data = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    return [(data, {"name": "aerial scene", "rgb": True}, "image")]


def immunohistochemistry() -> list[LayerData]:
    """scikit-image's bundled IHC photo (brightfield microscopy, ships with the package)."""
    from skimage import data

    return [(data.immunohistochemistry(), {"name": "immunohistochemistry", "rgb": True}, "image")]
