"""Class colours: one palette for napari's labels layers, the legend and the overlay files.

Colour words keep their colour ("red", "water", "nuclei"), as long as it stays distinct from the
colours already given. Every other class takes, from a set of colour-blind-safe candidates
(Okabe-Ito, Paul Tol), the one farthest from those already given, measured as CIEDE2000 colour
difference under normal vision and simulated protanopia, deuteranopia and tritanopia (Machado et
al. 2009, severity 1). Class k's colour depends only on classes 1..k, so adding a class never
recolours the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

_HEX = (
    # Okabe & Ito
    "E69F00", "56B4E9", "009E73", "F0E442", "0072B2", "D55E00", "CC79A7",
    # Paul Tol: vibrant, then muted
    "EE3377", "33BBEE", "CC3311", "009988", "EE7733", "0077BB",
    "332288", "DDCC77", "117733", "88CCEE", "882255", "44AA99", "999933", "AA4499", "CC6677",
    "BBBBBB", "6699CC", "997700",
)  # fmt: skip
CANDIDATES = np.array([[int(h[i : i + 2], 16) for i in (0, 2, 4)] for h in _HEX], np.float64) / 255

#: Colours people expect for common words (maps, microscopy stains, colour names), RGB 0..255.
NAMED_COLOURS: dict[str, tuple[int, int, int]] = {
    "water": (30, 110, 230), "river": (30, 110, 230), "lake": (30, 110, 230), "sea": (20, 70, 200),
    "building": (220, 40, 40), "road": (160, 160, 160), "street": (160, 160, 160),
    "tree": (20, 120, 40), "forest": (20, 120, 40), "agricultural": (240, 200, 60),
    "agriculture land": (240, 200, 60), "cropland": (240, 200, 60), "barren": (190, 150, 110),
    "bareland": (190, 150, 110), "rangeland": (150, 220, 110), "grass": (120, 220, 90),
    "developed space": (230, 120, 200), "nuclei": (40, 90, 255), "nucleus": (40, 90, 255),
    "cytoplasm": (60, 220, 80), "cell": (60, 220, 80),
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 230), "yellow": (240, 220, 40),
    "orange": (245, 140, 30), "purple": (150, 50, 190), "white": (240, 240, 240),
    "black": (70, 70, 70), "grey": (150, 150, 150), "gray": (150, 150, 150),
}  # fmt: skip

# Machado, Oliveira & Fernandes (2009), severity 1.0, on linear RGB.
_CVD = np.array([
    np.eye(3),
    [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
    [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]],
    [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]],
])  # fmt: skip
NAMED_MIN = 10.0  # a colour word keeps its colour if it differs this much (CIEDE2000) from the others
DISTINCT = 20.0  # a candidate this far from all others, for every vision, counts as distinct


def _named(name: str) -> np.ndarray | None:
    key = " ".join(name.lower().split())
    rgb = NAMED_COLOURS.get(key) or (NAMED_COLOURS.get(key[:-1]) if key.endswith("s") else None)
    return None if rgb is None else np.array(rgb, np.float64) / 255


def _lab(rgb: np.ndarray) -> np.ndarray:
    """``(V, N, 3)`` CIELAB of ``(N, 3)`` sRGB colours as seen by each vision of ``_CVD``."""
    from skimage.color import rgb2lab

    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    seen = np.clip(np.einsum("vij,nj->vni", _CVD, linear), 0, 1)
    srgb = np.where(seen <= 0.0031308, seen * 12.92, 1.055 * seen ** (1 / 2.4) - 0.055)
    return rgb2lab(srgb)


def _shades(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` then lighter and darker versions of it (CIELAB lightness moved in steps of 12)."""
    from skimage.color import lab2rgb, rgb2lab

    lab = rgb2lab(rgb[None])[0]
    steps = [lab[0] + d for d in (0, -12, 12, -24, 24, -36, 36) if 15 <= lab[0] + d <= 95]
    return np.clip(lab2rgb(np.array([[L, lab[1], lab[2]] for L in steps])), 0, 1)


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIEDE2000 between every colour of ``a`` ``(V, N, 3)`` and of ``b`` ``(V, M, 3)``: ``(V, N, M)``."""
    from skimage.color import deltaE_ciede2000

    return deltaE_ciede2000(a[:, :, None, :], b[:, None, :, :], channel_axis=-1)


@lru_cache(maxsize=256)
def _assign(names: tuple[str, ...]) -> np.ndarray:
    cand_lab = _lab(CANDIDATES)
    chosen: list[np.ndarray] = []
    for name in names:
        named = _named(name)
        if not chosen:
            chosen.append(named if named is not None else CANDIDATES[0])
            continue
        taken_lab = _lab(np.array(chosen))
        if named is not None:
            shades = _shades(named)
            ok = _distance(_lab(shades), taken_lab).min(axis=(0, 2)) >= NAMED_MIN
            if ok.any():  # the word's colour, or the nearest lighter / darker shade of it
                chosen.append(shades[int(np.argmax(ok))])
                continue
        score = _distance(cand_lab, taken_lab).min(axis=(0, 2))  # worst vision, nearest taken colour
        pick = int(np.argmax(score))
        if named is not None and score.max() >= DISTINCT:  # distinct and as close to the word as possible
            near = _distance(cand_lab[:1], _lab(named[None])[:1])[0, :, 0]
            pick = int(np.argmin(np.where(score >= DISTINCT, near, np.inf)))
        chosen.append(CANDIDATES[pick])
    return np.array(chosen, np.float64).reshape(-1, 3)


def class_colours(names: Sequence[str]) -> np.ndarray:
    """``(K + 1, 4)`` RGBA float32 in 0..1: row 0 (background) transparent, row k class k's colour."""
    rgb = _assign(tuple(names))
    out = np.zeros((len(names) + 1, 4), np.float32)
    out[1:, :3] = rgb
    out[1:, 3] = 1.0
    return out
