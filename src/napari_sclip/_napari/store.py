"""The on-disk store of a large result: labels pyramids in zarr, the user's edit flags, and one
pyramid per plugin update (a *generation*), so that undo of an update is a swap, not a recompute.

Layout of a store (a temporary folder ``napari-sclip-store-<pid>-*``, removed with the store
object; a new store sweeps those of killed processes): ``g<n>/<level>`` the labels of generation n,
``e<n>/<level>`` the pixels the user edited in it (each generation has its own flags, so undoing an
"overwrite" update brings the flags back with the labels); every array has the result's shape at that level (plane axes whole, rows and columns halved per level,
as :func:`napari_sclip.source.pyramid_sizes`), in chunks of :data:`CHUNK` pixels. Level i holds
every ``2**i``-th pixel of level 0 (nearest: right for labels), so each level can be written from
the engine's pyramid blocks directly, coarsest first.

A new generation starts as hard links to the current one's chunk files (no copy): zarr (from 3.1.3)
replaces a chunk file atomically when it writes it, so writing a generation never changes another.
A one-time self-check (:func:`links_are_safe`) falls back to copying the files where that does not
hold. Napari reads the arrays directly (not through dask, whose cache would show stale tiles).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..atomic import sweep_folders
from ..source import pyramid_sizes
from .source import Plane

CHUNK = 512
PREFIX = "napari-sclip-store-"
BlockFn = Callable[[slice, slice, int], np.ndarray]  # (rows, cols, step) -> labels of that level block


def _v2_array(path: Path, shape, chunks, dtype):
    import zarr

    return zarr.create_array(store=str(path), shape=shape, chunks=chunks, dtype=dtype, fill_value=0, zarr_format=2,
                             chunk_key_encoding={"name": "v2", "separator": "/"})  # fmt: skip


_LINKS_SAFE: bool | None = None


def links_are_safe(folder: Path) -> bool:
    """Whether a chunk write through zarr leaves a hard-linked twin of the chunk file unchanged
    (zarr writes a temporary file and renames it); checked once per process, in ``folder``."""
    global _LINKS_SAFE
    if _LINKS_SAFE is None:
        probe = folder / ".link-check"
        try:
            array = _v2_array(probe / "a", (1,), (1,), np.uint8)
            array[0] = 1
            os.link(probe / "a" / "0", probe / "twin")
            before = (probe / "twin").read_bytes()
            array[0] = 2
            _LINKS_SAFE = (probe / "twin").read_bytes() == before
        except OSError:  # no hard links here
            _LINKS_SAFE = False
        finally:
            shutil.rmtree(probe, ignore_errors=True)
    return _LINKS_SAFE


def _link_tree(src: Path, dst: Path, links: bool) -> None:
    """``dst`` as hard links to the files of ``src`` (copies where links are not possible or safe)."""

    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link if links else shutil.copy2)


def level_window(start: int, stop: int, step: int) -> tuple[slice, slice]:
    """The pixels of a level-0 span ``[start, stop)`` that level ``step`` holds: ``(level slice,
    slice of the span's own pixels)``."""
    first = -(-start // step)
    last = -(-stop // step)
    return slice(first, last), slice(first * step - start, None, step)


class ResultStore:
    """Labels pyramids of one result geometry ``shape`` (plane axes, then H, W) on disk."""

    def __init__(self, shape, dtype, folder: str | os.PathLike | None = None) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.lead = self.shape[:-2]
        self.sizes = pyramid_sizes(self.shape[-2:])
        if len(self.sizes) == 1:  # napari needs two levels to take a list as a multiscale
            self.sizes.append(tuple(-(-n // 2) for n in self.sizes[0]))
        self.dtype = np.dtype(dtype)
        sweep_folders(PREFIX, folder)  # stores of killed processes
        self.path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=folder))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)
        self._links = links_are_safe(self.path)
        self.generation = 0
        self.revision = 0  # counts writes of edits into the store (export keys)
        self.pinned: set[int] = set()  # generations a reader holds (never dropped meanwhile)
        self._newest = 0
        self._lock = threading.Lock()
        self._arrays: dict[str, list] = {}
        self._create("g0", self.dtype)
        self._create("e0", np.dtype(bool))

    # ------------------------------------------------------------------ arrays
    def _create(self, name: str, dtype) -> None:
        arrays = []
        for i, size in enumerate(self.sizes):
            chunks = (1,) * len(self.lead) + (min(CHUNK, size[0]), min(CHUNK, size[1]))
            arrays.append(_v2_array(self.path / name / str(i), (*self.lead, *size), chunks, dtype))
        self._arrays[name] = arrays

    def _open(self, name: str) -> list:
        import zarr

        if name not in self._arrays:
            self._arrays[name] = [zarr.open_array(str(self.path / name / str(i)), mode="r+", zarr_format=2)
                                  for i in range(len(self.sizes))]  # fmt: skip
        return self._arrays[name]

    def levels(self, generation: int | None = None) -> list:
        """The labels pyramid (zarr arrays, largest first) of a generation (default: the current)."""
        return self._open(f"g{self.generation if generation is None else generation}")

    def flags(self, generation: int | None = None) -> list:
        """The edit flags pyramid of a generation (default: the current)."""
        return self._open(f"e{self.generation if generation is None else generation}")

    @property
    def edited(self) -> list:
        return self.flags()

    @property
    def nbytes_on_disk(self) -> int:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    # ------------------------------------------------------------------ generations
    def begin(self, pin: bool = False) -> int:
        """A new generation, equal to the current one, edit flags included (hard links); returns its
        number. ``pin``: protected from :meth:`drop` until :meth:`release`."""
        with self._lock:
            self._newest += 1
            new, current = self._newest, self.generation
            if pin:
                self.pinned.add(new)
        for kind in "ge":
            _link_tree(self.path / f"{kind}{current}", self.path / f"{kind}{new}", self._links)
        return new

    def snapshot(self) -> tuple[int, str]:
        """A fixed copy of the current labels for a reader (export): ``(generation, key)``, the
        key naming its content (store, generation, edits written); pinned until :meth:`release`."""
        key = self.content_key()
        return self.begin(pin=True), key

    def content_key(self) -> str:
        """Names what the current generation holds: the store, the generation, the edits written."""
        return f"{self.path.name}-g{self.generation}-r{self.revision}"

    def release(self, generation: int) -> None:
        """A reader is done with a pinned generation: it is deleted."""
        self.pinned.discard(generation)
        self.drop(generation)

    def drop(self, generation: int) -> None:
        """Delete a generation that is neither current, pinned nor wanted any more (renamed at once,
        its files deleted in a background thread: thousands of chunk files take a while)."""
        if generation == self.generation or generation in self.pinned:
            return
        for kind in "ge":
            folder = self.path / f"{kind}{generation}"
            self._arrays.pop(folder.name, None)
            trash = self.path / f".trash-{uuid.uuid4().hex}"
            try:
                os.replace(folder, trash)
            except OSError:  # gone already
                continue
            threading.Thread(target=shutil.rmtree, args=(trash, True), daemon=True).start()

    def keep_only(self, wanted) -> None:
        """Delete every generation but the current one and ``wanted`` (what undo / redo can reach)."""
        keep = set(wanted) | {self.generation}
        for folder in self.path.glob("g*"):
            if folder.name[1:].isdigit() and int(folder.name[1:]) not in keep:
                self.drop(int(folder.name[1:]))

    # ------------------------------------------------------------------ writing
    def chunks(self, level: int) -> list[tuple[slice, slice]]:
        h, w = self.sizes[level]
        return [(slice(r, min(r + CHUNK, h)), slice(c, min(c + CHUNK, w)))
                for r in range(0, h, CHUNK) for c in range(0, w, CHUNK)]  # fmt: skip

    def plane_chunks(self) -> int:
        """Chunks a plane write goes through (every level)."""
        return sum(len(self.chunks(i)) for i in range(len(self.sizes)))

    def write_plane(self, generation: int, plane: Plane, block: BlockFn, ignore_edits: bool = False
                    ) -> Iterator[tuple[int, int]]:  # fmt: skip
        """Write the plugin's labels of ``plane`` into a generation, coarsest level first, chunk
        by chunk (yields chunks done and in all, each before its write); the user's edited pixels
        keep their value unless ``ignore_edits``."""
        total, done = self.plane_chunks(), 0
        labels, edited = self.levels(generation), self.flags(generation)
        for level in reversed(range(len(self.sizes))):
            for rows, cols in self.chunks(level):
                key = (*plane, rows, cols)
                new = block(rows, cols, 2**level).astype(self.dtype, copy=False)
                flags = None if ignore_edits else edited[level][key]
                if flags is not None and flags.any():
                    new = np.where(flags, labels[level][key], new)
                done += 1
                yield done, total  # before the write: a job stopped here writes nothing more
                labels[level][key] = new

    def read_region(self, plane: Plane, rows: slice, cols: slice, generation: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Level-0 labels and edit flags of a region of a generation (default: the current)."""
        key = (*plane, rows, cols)
        return np.asarray(self.levels(generation)[0][key]), np.asarray(self.flags(generation)[0][key])

    def write_region(self, plane: Plane, rows: slice, cols: slice, labels: np.ndarray, edited: np.ndarray,
                     generation: int | None = None) -> None:  # fmt: skip
        """Level-0 labels and edit flags of a region into a generation (default: the current), and
        into every pyramid level the pixels it holds of them."""
        self.revision += 1
        for arrays, values in ((self.levels(generation), labels), (self.flags(generation), edited)):
            for level, array in enumerate(arrays):
                step = 2**level
                (r_lvl, r_own), (c_lvl, c_own) = level_window(rows.start, rows.stop, step), level_window(cols.start, cols.stop, step)
                part = values[r_own, c_own]
                if part.size:
                    array[(*plane, r_lvl, c_lvl)] = part

    # ------------------------------------------------------------------ edits
    def has_edits(self) -> bool:
        """Whether any pixel of the current generation is flagged as the user's (all-False chunks
        are never stored)."""
        folder = self.path / f"e{self.generation}" / "0"
        chunk = lambda f: not f.name.startswith(".") and not f.name.endswith(".partial")  # noqa: E731 - not metadata, not a write under way
        return any(f.is_file() for f in folder.rglob("*") if chunk(f))

    def clear_edits(self) -> None:
        """Forget the current generation's edit flags (other generations keep theirs: an undo
        brings them back)."""
        name = f"e{self.generation}"
        self._arrays.pop(name, None)
        self.revision += 1
        shutil.rmtree(self.path / name, ignore_errors=True)
        self._create(name, np.dtype(bool))

    def close(self) -> None:
        """Delete the store's folder now."""
        self._arrays.clear()
        self._finalizer()
