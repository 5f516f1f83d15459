"""Large results in the viewer (see :data:`.session.LARGE_PIXELS`): the job steps that write the
plugin's labels into a new generation of the :class:`~.store.ResultStore` plane by plane in the
worker thread (the user's edits merged chunk by chunk), lazy multiscale score maps, and the
inputs of the legend's count (a coarse pyramid level, never the full resolution). No Qt here."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .counts import CountInput
from .jobs import PlaneOutcome, StepGen, Tick, call
from .pixels import lazy_array
from .session import Session
from .source import Plane

#: The legend counts the finest pyramid level with at most this many pixels per plane.
COUNT_PIXELS = 1 << 22


@dataclass
class StoreJob:
    """What a job on a large result writes: the store, the generation it writes (made by its first
    step, in the worker) and the outcomes as they are computed (worker side: the UI thread hears of
    them later). ``ignore_edits``: the "overwrite" policy."""

    store: object  # ResultStore
    ignore_edits: bool = False
    generation: int | None = None
    outcomes: dict[Plane, PlaneOutcome] = field(default_factory=dict)
    discarded: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def begin_step(self) -> Callable[[], StepGen]:
        def begin():
            generation = self.store.begin()
            with self._lock:
                self.generation = generation
                stopped = self.discarded
            if stopped:  # stopped while the copy was being made: it goes too
                self.store.drop(generation)
            return generation

        return lambda: call(begin)

    def recorded(self, start: Callable[[], StepGen], plane: Plane) -> Callable[[], StepGen]:
        """A plane's step whose outcome the write step after it can read."""

        def gen():
            outcome = yield from start()
            self.outcomes[plane] = outcome
            return outcome

        return gen

    def write_step(self, plane: Plane) -> Callable[[], StepGen]:
        """Write a plane's labels (in the layer's numbering) into the new generation."""

        def gen():
            outcome = self.outcomes[plane]
            seg, table = outcome.result.seg, outcome.lut
            block = lambda rows, cols, step: table[seg.labels_block(rows, cols, step)]  # noqa: E731
            for done, total in self.store.write_plane(self.generation, plane, block, self.ignore_edits):
                yield Tick(done, total, f"labels chunk {done} of {total}")
                if self.discarded:  # the job was stopped: nothing more into a dropped generation
                    return

        return gen

    def discard(self) -> None:
        with self._lock:
            self.discarded = True
            generation = self.generation
        if generation is not None:  # else the begin step drops it once made
            self.store.drop(generation)


def count_level(shape: tuple[int, ...]) -> int:
    """The pyramid level the legend counts: the finest with at most :data:`COUNT_PIXELS` pixels."""
    h, w = shape[-2:]
    level = 0
    while (-(-h // 2**level)) * (-(-w // 2**level)) > COUNT_PIXELS:
        level += 1
    return level


def probabilities_level(seg, step: int):
    """All class probabilities ``(K+1, h, w)`` of pyramid level ``step``, lazily (dask)."""
    from ..lazy import block_array

    H, W = seg.image_shape
    fn = lambda r, c: seg.scorer.block(r, c, step).probabilities().numpy()  # noqa: E731
    return block_array((-(-H // step), -(-W // step)), seg.scorer.side, fn, np.float32, (len(seg.class_names) + 1,))


def count_inputs(session: Session, channels_of) -> list[CountInput]:
    """Per cached plane: the store's labels and the probabilities at the counted level (views:
    nothing is read until the count runs, in a worker)."""
    store = session.store
    level = min(count_level(store.shape), len(store.sizes) - 1)
    labels = lazy_array(store.levels()[level])
    return [CountInput(labels[plane], probabilities_level(session.cache[plane].seg, 2**level),
                       channels_of(session.cache[plane].seg))
            for plane in sorted(session.cache)]  # fmt: skip


def score_levels(session: Session, name: str) -> list:
    """The probability of class ``name`` as a lazy multiscale (one dask array per store level, planes
    without that class as zeros): computed only where napari looks."""
    import dask.array as da

    from ..lazy import block_array

    geo, store = session.geometry, session.store
    planes = geo.planes() if geo.plane_shape else [()]
    side = 512
    levels = []
    for i, (h, w) in enumerate(store.sizes):
        step, tiles = 2**i, []
        for plane in planes:
            result = session.cache.get(plane)
            names = result.seg.class_names if result is not None else []
            if name in names:
                k, seg = names.index(name) + 1, result.seg
                fn = lambda r, c, seg=seg, k=k, step=step: seg.scorer.block(r, c, step).probabilities()[k].numpy()  # noqa: E731
                tiles.append(block_array((h, w), side, fn, np.float32))
            else:
                tiles.append(da.zeros((h, w), np.float32, chunks=side))
        levels.append(tiles[0] if not geo.plane_shape else da.stack(tiles).reshape((*geo.plane_shape, h, w)))
    return levels


def blank_levels(session: Session, dtype=np.float32) -> list:
    """Zero-stride zeros shaped like the store's levels (a layer's placeholder, no memory)."""
    lead = session.geometry.plane_shape
    return [np.broadcast_to(dtype(0), (*lead, h, w)) for h, w in session.store.sizes]
