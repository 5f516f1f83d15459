"""What the engine reads of an image layer: one plane of every pyramid level (a multiscale layer's
levels, largest first), cropped to a region, with the channel mapping applied lazily (dask) when
the data are not in memory. The engine then reads only the level that covers its inference size,
window by window (:class:`napari_sclip.source.ImageSource`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1) in level-0 pixels


def layer_levels(layer) -> list:
    """A layer's arrays, largest first (one for a single-scale layer)."""
    return list(layer.data) if getattr(layer, "multiscale", False) else [layer.data]


def _in_memory(a) -> bool:
    return isinstance(a, np.ndarray)


def as_dask(a):
    """Any array as dask (dask as it is; others with their own chunks, or dask's): nothing is
    read yet."""
    if type(a).__module__.startswith("dask"):
        return a
    import dask.array as da

    chunks = getattr(a, "chunks", None)
    # name=False: a random name; tokenizing would hash a numpy array, and read or pickle others
    return da.from_array(a, chunks=chunks if isinstance(chunks, tuple) else "auto", name=False)


def lazy_array(a):
    """numpy and dask as they are; other arrays (zarr, tifffile...) wrapped in dask with their own
    chunks, so that indexing a plane reads nothing yet."""
    return a if _in_memory(a) else as_dask(a)


def _spatial(shape: Sequence[int], rgb: bool) -> tuple[int, int]:
    return (int(shape[-3]), int(shape[-2])) if rgb else (int(shape[-2]), int(shape[-1]))


def plane_levels(layer, index: tuple, box: Box | None = None) -> list:
    """``level[index]`` (cropped to ``box``) for each level whose plane axes match level 0's and,
    with a box, whose downsampling divides the box corners (the crop is then exact)."""
    levels = layer_levels(layer)
    rgb = bool(getattr(layer, "rgb", False))
    base_lead = tuple(levels[0].shape[: len(index)])
    H, W = _spatial(levels[0].shape, rgb)
    out = []
    for a in levels:
        if tuple(a.shape[: len(index)]) != base_lead:
            continue
        crop: tuple = ()
        if box is not None:
            h, w = _spatial(a.shape, rgb)
            fy, fx = H / h, W / w
            if a is not levels[0] and not (fy.is_integer() and fx.is_integer() and box[0] % fy == 0 and box[2] % fx == 0):
                continue
            crop = (slice(int(box[0] // fy), -(-box[1] // int(fy))), slice(int(box[2] // fx), -(-box[3] // int(fx))))
        if not index and not crop:
            out.append(a)  # read window by window by the engine itself
            continue
        key = index + (slice(None),) * (a.ndim - len(index) - (3 if rgb else 2)) + crop
        out.append(lazy_array(a)[key])
    return out


def snap(box: Box, factor: int, shape: tuple[int, int]) -> Box:
    """``box`` grown to multiples of ``factor`` (within ``shape``), so that every level crops exactly."""
    y0, y1, x0, x1 = box
    f = max(1, int(factor))
    return (y0 // f * f, min(shape[0], -(-y1 // f) * f), x0 // f * f, min(shape[1], -(-x1 // f) * f))


def pyramid_factor(layer, limit: int = 64) -> int:
    """The largest power-of-two downsampling of the layer's levels, at most ``limit``."""
    levels = layer_levels(layer)
    rgb = bool(getattr(layer, "rgb", False))
    H = _spatial(levels[0].shape, rgb)[0]
    best = 1
    for a in levels[1:]:
        f = H / _spatial(a.shape, rgb)[0]
        if f.is_integer() and int(f) & (int(f) - 1) == 0:
            best = max(best, int(f))
    return min(best, limit)


def as_engine_input(levels: list):
    """One array, or the pyramid (a list, largest first) the engine takes."""
    return levels[0] if len(levels) == 1 else levels


def lazy_rgb(arrays: Sequence, contrast_limits: Sequence[Sequence[float] | None]):
    """:func:`.source.compose_rgb` as a dask array (same operations, so the same values)."""
    import dask.array as da

    first = next(as_dask(a) for a in arrays if a is not None)
    channels = []
    for a, lim in zip(arrays, contrast_limits):
        if a is None:
            channels.append(da.zeros_like(first, dtype=np.float32))
            continue
        a = as_dask(a).astype(np.float32)
        lo, hi = (float(a.min().compute()), float(a.max().compute())) if lim is None else (float(lim[0]), float(lim[1]))
        scale = 1.0 / (hi - lo) if hi > lo else 0.0
        channels.append(da.clip((a - lo) * scale, 0.0, 1.0))
    return da.nan_to_num(da.stack(channels, axis=-1))
