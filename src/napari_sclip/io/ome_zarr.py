"""OME-Zarr (NGFF 0.4, zarr v2) results, written chunk by chunk, resumably, in bounded memory.

Layout of ``<stem>.zarr``: the image is the confidence map (the probability of each pixel's label,
float32) as a multiscale; ``labels/classes`` holds the labels pyramid with NGFF ``image-label``
colours and per-label properties (class, synonyms, pixels, fraction, mean probability);
``probabilities`` optionally the ``(K, H, W)`` class probabilities. The store is built under
``.<stem>.zarr.partial`` and renamed when complete; an interrupted write resumes from the chunks
already there (same job key), and a different job starts over.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..palette import class_colours
from ..source import pyramid_sizes
from ..stats import ClassTable, Tally
from ..steps import Progress, Steps

CHUNK = int(os.environ.get("NAPARI_SCLIP_ZARR_CHUNK", 1024))  # chunk side (smaller only for tests)
JOB_KEY = "napari-sclip-job"
Compute = Callable[[slice, slice], tuple[np.ndarray, np.ndarray, "np.ndarray | None"]]


def _array(group, name: str, shape, dtype, chunks):
    import zarr

    if name in group:
        return group[name]
    arr = group.create_array(name, shape=shape, dtype=dtype, chunks=chunks, fill_value=0,
                             chunk_key_encoding={"name": "v2", "separator": "/"})  # fmt: skip
    return zarr.open_array(arr.store, path=arr.path, mode="r+", zarr_format=2)


def _writable(arr):
    return arr.with_config({"write_empty_chunks": True})


def _multiscales(name: str, n_levels: int, channel: bool = False) -> list[dict]:
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    if channel:
        axes.insert(0, {"name": "c", "type": "channel"})
    lead = [1.0] if channel else []
    datasets = [{"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": lead + [2.0**i] * 2}]}
                for i in range(n_levels)]  # fmt: skip
    return [{"version": "0.4", "name": name, "axes": axes, "datasets": datasets, "type": "nearest"}]


def _open_partial(partial: Path, key: str):
    import zarr

    if partial.is_dir():
        root = zarr.open_group(str(partial), mode="r+", zarr_format=2)
        if root.attrs.get(JOB_KEY) == key:
            return root, True
        shutil.rmtree(partial)
    root = zarr.open_group(str(partial), mode="w", zarr_format=2)
    root.attrs[JOB_KEY] = key
    return root, False


def write_steps(
    path: str | os.PathLike, shape: tuple[int, int], compute: Compute, *, class_names: Sequence[str],
    synonyms: Sequence[Sequence[str]], background: Sequence[str], label_dtype, probabilities: bool,
    scored_background: bool, key: str, metadata: dict,
) -> Steps[tuple[Path, ClassTable]]:  # fmt: skip
    """Write the store chunk by chunk (progress per chunk); returns ``(path, class table)``."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    root, _ = _open_partial(partial, key)
    H, W = shape
    k = len(class_names)
    labels0 = _writable(_array(root.require_group("labels").require_group("classes"), "0", shape, label_dtype, (CHUNK, CHUNK)))
    conf0 = _writable(_array(root, "0", shape, np.float32, (CHUNK, CHUNK)))
    probs0 = _writable(_array(root.require_group("probabilities"), "0", (k, H, W), np.float32, (k, CHUNK, CHUNK))) if probabilities else None
    regions = [(slice(r, min(r + CHUNK, H)), slice(c, min(c + CHUNK, W))) for r in range(0, H, CHUNK) for c in range(0, W, CHUNK)]
    levels = pyramid_sizes(shape)
    total = len(regions) + len(levels)
    for i, (rows, cols) in enumerate(regions):
        chunk_file = partial / "labels" / "classes" / "0" / f"{rows.start // CHUNK}" / f"{cols.start // CHUNK}"
        if not chunk_file.is_file():  # chunks are written whole; the labels chunk last
            labels, confidence, probs = compute(rows, cols)
            if probs0 is not None:
                probs0[:, rows, cols] = probs
            conf0[rows, cols] = confidence
            labels0[rows, cols] = labels
        yield Progress(i + 1, total, "write")
    tally = Tally.of(np.zeros(0, np.uint8), n_labels=k + 1)
    channels = np.arange(k + 1)
    if not scored_background:
        channels[0] = -1
    for rows, cols in regions:  # the class table from the stored labels and confidence
        labels = np.asarray(labels0[rows, cols])
        conf = np.asarray(conf0[rows, cols])[None]
        tally += Tally.of(labels, conf, np.where(channels >= 0, 0, -1), k + 1)
    table = tally.table(class_names, synonyms, background)
    arrays = [(labels0, root["labels"]["classes"]), (conf0, root)] + ([(probs0, root["probabilities"])] if probs0 is not None else [])
    for n, size in enumerate(levels[1:], start=1):
        for base, group in arrays:
            _downsample(group, n, size, base.shape[:-2])
        yield Progress(len(regions) + n + 1, total, "pyramid")
    _write_metadata(root, len(levels), table, class_names, metadata, probs0 is not None)
    yield Progress(total, total, "pyramid")
    return partial, table


def _downsample(group, level: int, size: tuple[int, int], lead: tuple[int, ...]) -> None:
    """Level ``level`` = every other pixel of level ``level - 1`` (nearest: right for labels)."""
    src = group[str(level - 1)]
    chunks = (*lead, CHUNK, CHUNK)
    dst = _writable(_array(group, str(level), (*lead, *size), src.dtype, chunks))
    for r in range(0, size[0], CHUNK):
        for c in range(0, size[1], CHUNK):
            block = np.asarray(src[..., 2 * r : 2 * (r + CHUNK), 2 * c : 2 * (c + CHUNK)])
            dst[..., r : r + CHUNK, c : c + CHUNK] = block[..., ::2, ::2]


def _write_metadata(root, n_levels: int, table: ClassTable, class_names, metadata: dict, probabilities: bool) -> None:
    colours = (class_colours(class_names) * 255).round().astype(int)
    rows = [r.as_dict() for r in table]
    properties = [{"label-value": r["label"], **{k: v for k, v in r.items() if k != "label"}} for r in rows]
    for p in properties:
        if p["mean_probability"] != p["mean_probability"]:  # NaN is not JSON
            p["mean_probability"] = None
    classes = root["labels"]["classes"]
    classes.attrs.update({
        "multiscales": _multiscales("classes", n_levels),
        "image-label": {"version": "0.4", "source": {"image": "../../"}, "properties": properties,
                        "colors": [{"label-value": v, "rgba": [int(x) for x in colours[v]]} for v in range(1, len(colours))]},
    })  # fmt: skip
    root["labels"].attrs["labels"] = ["classes"]
    if probabilities:
        root["probabilities"].attrs["multiscales"] = _multiscales("probabilities", n_levels, channel=True)
        root["probabilities"].attrs["classes"] = list(class_names)
    root.attrs.update({"multiscales": _multiscales("confidence", n_levels), "napari-sclip": metadata})


def finish(partial: Path, path: Path) -> Path:
    """Move a complete store under its final name (replacing an older one)."""
    old = path.with_name(f".{path.name}.old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(partial, path)
    with contextlib.suppress(OSError):
        shutil.rmtree(old)
    return path


def read_layers(path: str | os.PathLike) -> list[tuple]:
    """napari layer data ``(data, kwargs, type)`` of a store written here: the labels (multiscale,
    class names as features, palette colours) and the confidence map; lazily read."""
    import dask.array as da
    import zarr

    path = Path(path)
    root = zarr.open_group(str(path), mode="r")
    stem = path.name.removesuffix(".zarr").removesuffix(".ome")
    classes = root["labels"]["classes"]
    levels = [da.from_zarr(classes[d["path"]]) for d in classes.attrs["multiscales"][0]["datasets"]]
    props = classes.attrs["image-label"]["properties"]
    features = {"index": [p["label-value"] for p in props], "class": [p["class"] for p in props]}
    colours = {c["label-value"]: [x / 255 for x in c["rgba"]] for c in classes.attrs["image-label"]["colors"]}
    confidence = [da.from_zarr(root[d["path"]]) for d in root.attrs["multiscales"][0]["datasets"]]
    return [
        (confidence, {"name": f"{stem} confidence", "colormap": "inferno", "contrast_limits": (0.0, 1.0),
                      "visible": False, "metadata": {"napari-sclip": "confidence"}}, "image"),  # fmt: skip
        (levels, {"name": f"{stem} labels", "features": features, "colormap": {None: [0, 0, 0, 0], 0: [0, 0, 0, 0], **colours},
                  "metadata": {"napari-sclip": "class labels", "source": str(path)}}, "labels"),  # fmt: skip
    ]
