"""Export results to files: labels TIFF, class-table CSV, optional probabilities TIFF (no Qt).

Used by the widget's Export button and by the npe2 writer for labels layers.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

CSV_FIELDS = ("label", "class", "pixels", "fraction", "mean_probability")


def sibling(path: str | os.PathLike, suffix: str) -> Path:
    """``cells.tif`` + ``_classes.csv`` -> ``cells_classes.csv`` (same folder)."""
    path = Path(path)
    stem = path.name
    for ext in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    return path.with_name(stem + suffix)


def class_rows(
    names: Sequence[str], labels: np.ndarray, probability_sums: np.ndarray | None = None
) -> list[dict]:
    """One row per class (label 1..N) plus background (0): pixels, fraction, mean probability."""
    labels = np.asarray(labels)
    counts = np.bincount(labels.ravel(), minlength=len(names) + 1)
    total = max(int(labels.size), 1)
    rows = []
    for k, name in enumerate(["background", *names]):
        n = int(counts[k]) if k < len(counts) else 0
        mean = ""
        if probability_sums is not None and k > 0 and n and k < len(probability_sums):
            mean = f"{probability_sums[k] / n:.4f}"
        rows.append(
            {"label": k, "class": name, "pixels": n, "fraction": f"{n / total:.6f}", "mean_probability": mean}
        )
    return rows


def write_class_csv(path: str | os.PathLike, rows: Sequence[dict]) -> Path:
    """Write the class table as CSV (columns :data:`CSV_FIELDS`)."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_class_csv(path: str | os.PathLike) -> list[dict]:
    """Read a class table written by :func:`write_class_csv` (values as strings)."""
    with Path(path).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def export_result(
    path: str | os.PathLike,
    labels: np.ndarray,
    names: Sequence[str],
    *,
    probabilities: np.ndarray | None = None,
    probability_sums: np.ndarray | None = None,
    class_axis_names: Sequence[str] | None = None,
) -> list[str]:
    """Write ``path`` (labels TIFF), ``<stem>_classes.csv`` and, if given, ``<stem>_probabilities.tif``
    ((K, ...) float32, channel order ``class_axis_names``). Returns the written paths."""
    import tifffile

    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        path = path.with_suffix(".tif")
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels)
    tifffile.imwrite(path, labels, compression="zlib", metadata={"classes": list(names)})
    written = [str(path)]
    csv_path = write_class_csv(sibling(path, "_classes.csv"), class_rows(names, labels, probability_sums))
    written.append(str(csv_path))
    if probabilities is not None:
        prob_path = sibling(path, "_probabilities.tif")
        meta = {"classes": list(class_axis_names or names)}
        tifffile.imwrite(prob_path, np.asarray(probabilities, np.float32), compression="zlib", metadata=meta)
        written.append(str(prob_path))
    return written


def write_labels(path: str, data: np.ndarray, meta: dict) -> list[str]:
    """npe2 writer: a labels layer to TIFF plus its class table (from the layer's features)."""
    names: list[str] = []
    features = meta.get("features")
    if features is not None and "class" in features and "index" in features:
        table = dict(zip((int(i) for i in features["index"]), (str(c) for c in features["class"])))
        names = [table.get(k, f"label {k}") for k in range(1, max(table, default=0) + 1)]
    largest = int(np.asarray(data).max(initial=0))
    names += [f"label {k}" for k in range(len(names) + 1, largest + 1)]
    return export_result(path, data, names)
