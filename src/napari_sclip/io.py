"""Reading images and writing results (labels TIFF, class table CSV, probabilities, overlay PNG)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import InputImageError

TIFF_SUFFIXES = (".tif", ".tiff")


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
    except InputImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's problem
        raise InputImageError(f"Could not read {path.name} as an image ({type(exc).__name__}: {exc}).") from None


def write_class_table(rows: Sequence[dict], path: str | Path) -> Path:
    """CSV with one row per label: label, class, synonyms, pixels, fraction, mean_probability."""
    path = Path(path)
    fields = ["label", "class", "synonyms", "pixels", "fraction", "mean_probability"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            out = dict(row)
            out["fraction"] = f"{row['fraction']:.6f}"
            mp = row.get("mean_probability", float("nan"))
            out["mean_probability"] = "" if mp != mp else f"{mp:.6f}"
            writer.writerow(out)
    return path


def read_class_table(path: str | Path) -> list[dict]:
    """Read back a CSV written by :func:`write_class_table` (numbers as numbers)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["label"], r["pixels"] = int(r["label"]), int(r["pixels"])
        r["fraction"] = float(r["fraction"])
        r["mean_probability"] = float(r["mean_probability"]) if r["mean_probability"] else float("nan")
    return rows


def write_labels(labels: np.ndarray, path: str | Path) -> Path:
    """Labels as a zlib-compressed TIFF (uint8 / uint16), readable by napari, Fiji and QGIS."""
    import tifffile

    path = Path(path)
    tifffile.imwrite(path, labels, compression="zlib")
    return path


def write_probabilities(probabilities: np.ndarray, class_names: Sequence[str], path: str | Path) -> Path:
    """Per-class probabilities ``(K, H, W)`` float32 TIFF, class names in the description."""
    import tifffile

    path = Path(path)
    tifffile.imwrite(
        path, np.asarray(probabilities, np.float32), compression="zlib",
        metadata={"axes": "CYX", "Labels": list(class_names)},
    )  # fmt: skip
    return path


def palette(n: int) -> np.ndarray:
    """``(n + 1, 3)`` uint8 colours: black for label 0, then well-separated hues."""
    from skimage.color import hsv2rgb

    hues = (np.arange(n) * 0.618033988749895) % 1.0
    hsv = np.stack([hues, np.full(n, 0.75), np.full(n, 0.95)], axis=1)
    rgb = (hsv2rgb(hsv[None])[0] * 255).round().astype(np.uint8)
    return np.concatenate([np.zeros((1, 3), np.uint8), rgb])


def overlay(unit_rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image (0..1 float RGB) with labels blended in colour; label 0 stays untinted."""
    colours = palette(int(labels.max()) if labels.size else 0).astype(np.float32) / 255
    tint = colours[labels]
    mix = np.where(labels[..., None] > 0, (1 - alpha) * unit_rgb + alpha * tint, unit_rgb)
    return (np.clip(mix, 0, 1) * 255).round().astype(np.uint8)
