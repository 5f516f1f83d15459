"""Results to files and back, through the one writer (:func:`napari_sclip.io.write_result`): the
widget's Export, napari's writer for labels layers, and napari's reader for the labels TIFFs it
wrote (they open as a Labels layer with their class names)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import atomic, io
from ..stats import Tally, padded_channels
from ..steps import drain
from . import counts
from .layers import RESULT_TAG, TOKEN_KEY, features_table, label_colormap
from .session import REGISTRY, Session


def export(session: Session, path: str | os.PathLike, probabilities: bool = False, data=None) -> list[Path]:
    """Write the session's labels (``data``, default the layer's), its class table (segmented
    planes only) and optionally the probabilities, one channel per layer class. A large result
    goes to OME-Zarr (see :func:`export_steps`)."""
    if session.labels is None or session.memory is None or not session.cache:
        raise ValueError("Nothing to export yet: run a segmentation first.")
    if session.store is not None:
        return drain(export_steps(session, path))
    labels = np.asarray(session.labels.data if data is None else data)
    counted = counts.tally(counts.count_inputs(session), band_rows=None)
    table = counts.class_table(session.memory.names, session.vocabulary(), counted)
    probs = _probabilities(session) if probabilities else None
    return io.write_result(path, labels, table, class_names=session.memory.names, probabilities=probs)


def export_steps(session: Session, path: str | os.PathLike, snapshot: tuple[int, str] | None = None):
    """A large result to OME-Zarr through the engine's writer, chunk by chunk (a generator of
    progress): the labels with the user's edits, the confidence (probability of each pixel's label),
    class names, colours and the class table CSV. A stack gives one store per segmented plane
    (``name_<plane>.zarr``); the generator returns the paths written. ``snapshot``: the pinned
    ``(generation, key)`` of :meth:`~.store.ResultStore.snapshot` to read (default: the current
    generation as it is now). What it reads is fixed here, on the calling thread."""
    path = Path(path)
    if not io.is_zarr(path):
        raise ValueError("A large result is exported as OME-Zarr: choose a path ending in .zarr.")
    store, memory, vocab = session.store, session.memory, session.vocabulary()
    generation, key = snapshot or (store.generation, store.content_key())
    synonyms = {syns[0]: syns for syns in vocab.classes}
    names = list(memory.names)
    planes = []
    for plane in sorted(session.cache):
        seg = session.cache[plane].seg
        target = path if not plane else Path(f"{io.stem_of(path)}_{'_'.join(map(str, plane))}.zarr")
        planes.append((target, _confident(store.levels(generation)[0], plane, seg, counts.channels_of(memory, seg))))
    options = {"class_names": names, "synonyms": [synonyms.get(n, (n,)) for n in names], "background": vocab.background,
               "label_dtype": memory.dtype, "probabilities": False, "scored_background": bool(vocab.background),
               "key": key, "metadata": {"classes": names, "edited": True}}  # fmt: skip
    return _export_planes(session.geometry.shape[-2:], planes, options)


def _export_planes(shape, planes, options):
    from ..io import ome_zarr

    written = []
    for target, compute in planes:
        partial, table = yield from ome_zarr.write_steps(target, shape, compute, **options)
        csv = atomic.write_text(io.companion(target, "classes"), table.to_csv())
        written += [ome_zarr.finish(partial, target), csv]
    return written


def _confident(labels, plane, seg, channels: np.ndarray):
    """Block function for the writer: the store's labels and each pixel's probability of its label
    (0 where its class has no probability map: painted classes outside the vocabulary, or label
    numbers beyond the class names)."""

    def compute(rows: slice, cols: slice):
        block = np.asarray(labels[(*plane, rows, cols)])
        probs = seg.scorer.block(rows, cols).probabilities().numpy()
        pick = padded_channels(channels, int(block.max(initial=0)) + 1)[block]
        confidence = np.take_along_axis(probs, np.clip(pick, 0, None)[None], axis=0)[0]
        return block, np.where(pick >= 0, confidence, 0.0).astype(np.float32), None

    return compute


def _probabilities(session: Session) -> np.ndarray:
    """``(N, *shape)`` float32: channel k-1 is the probability of the layer's label k (zeros where
    a plane was not segmented or its vocabulary lacks the class)."""
    memory, geo = session.memory, session.geometry
    out = np.zeros((len(memory.names), *geo.shape), np.float32)
    for plane, result in session.cache.items():
        lut = memory.lut(result.seg.class_names)
        out[(lut[1:] - 1, *plane)] = result.seg.probabilities
    return out


def write_labels(path: str, data, meta: dict) -> list[str]:
    """npe2 writer: a labels layer to TIFF plus its class table. A layer the widget wrote (and whose
    session is alive) gets the widget's export; any other layer its features' class names."""
    token = (meta.get("metadata") or {}).get(TOKEN_KEY)
    session = REGISTRY.get(token) if token else None
    if isinstance(data, list) or type(data).__name__ == "MultiScaleData":
        raise ValueError("A large (multiscale) result is saved from the widget: Export… to a .zarr path.")
    if session is not None and session.labels is not None and session.cache:
        return [str(p) for p in export(session, path, data=data)]
    labels = np.asarray(data)
    names = _feature_names(meta.get("features"), int(labels.max(initial=0)))
    table = Tally.of(labels).table(names)
    return [str(p) for p in io.write_result(path, labels, table, class_names=names)]


def _feature_names(features, largest: int) -> list[str]:
    table: dict[int, str] = {}
    if features is not None and "class" in features and "index" in features:
        table = {int(i): str(c) for i, c in zip(features["index"], features["class"])}
    top = max(max(table, default=0), largest)
    return [table.get(k, f"label {k}") for k in range(1, top + 1)]


def get_reader(path):
    """npe2 reader: a labels TIFF written by napari-sclip (or None: not ours)."""
    if isinstance(path, list | tuple) or not str(path).lower().endswith(io.TIFF_SUFFIXES):
        return None
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            meta = tif.shaped_metadata[0] if tif.shaped_metadata else {}
    except Exception:  # noqa: BLE001 - not a TIFF we can read: another reader's turn
        return None
    return read_labels if meta.get(io.FORMAT_TAG) == "labels" else None


def read_labels(path) -> list[tuple]:
    """The labels and their class names, as napari layer data."""
    labels, names = io.read_labels(path)
    kwargs = {"name": Path(path).stem, "features": features_table(names), "colormap": label_colormap(names),
              "metadata": {RESULT_TAG: "labels", "file": str(path)}}  # fmt: skip
    return [(labels, kwargs, "labels")]


def get_zarr_reader(path):
    """npe2 reader: an OME-Zarr result written by napari-sclip (or None: not ours)."""
    if isinstance(path, list | tuple) or not io.is_zarr(path):
        return None
    try:
        import zarr

        ours = "napari-sclip" in zarr.open_group(str(path), mode="r").attrs
    except Exception:  # noqa: BLE001 - not a zarr group we can read: another reader's turn
        return None
    return read_zarr if ours else None


def read_zarr(path) -> list[tuple]:
    """The labels (multiscale, class names as features) and the confidence map, read lazily."""
    from ..io import ome_zarr

    return ome_zarr.read_layers(path)
