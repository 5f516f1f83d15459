"""Dask arrays whose chunks are computed on demand from their location (results of large images).

Nothing is computed when an array is made; reading a region computes only the blocks under it,
with the same block function the in-memory path uses, so both give identical values.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import numpy as np

from .score import block_starts

BlockFn = Callable[[slice, slice], np.ndarray]


def block_array(shape: tuple[int, int], side: int, fn: BlockFn, dtype, leading: tuple[int, ...] = ()):
    """A dask array of ``leading + shape`` in ``side`` x ``side`` chunks; chunk ``(rows, cols)`` is
    ``fn(rows, cols)`` (which returns ``leading + (h, w)``)."""
    import dask.array as da

    chunks = (*((n,) for n in leading), *(tuple(e - s for s, e in block_starts(n, side)) for n in shape))
    ndim = len(leading) + 2

    def compute(block_info=None):
        (r0, r1), (c0, c1) = block_info[None]["array-location"][-2:]
        return fn(slice(r0, r1), slice(c0, c1))

    # a name of its own: else dask tokenizes ``fn`` by pickling it, and its closure holds the model
    # and the logits (seconds of pickling, with the GIL held, for every array made)
    name = f"sclip-{uuid.uuid4().hex}"
    return da.map_blocks(compute, chunks=chunks, dtype=dtype, meta=np.empty((0,) * ndim, dtype), name=name)


def is_lazy(array) -> bool:
    """Whether ``array`` is a dask array (computed on demand)."""
    return type(array).__module__.startswith("dask")
