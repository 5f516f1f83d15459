"""The overlay picture: the image with each class blended in its palette colour."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..palette import class_colours


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
