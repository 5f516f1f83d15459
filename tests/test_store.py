"""The on-disk store of large results: generations share chunk files by hard links and never change
each other, each has its own edit flags, readers pin a snapshot, stores of killed processes are
swept, and a job stopped while its generation is being made leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("zarr")

from napari_sclip._napari import store as store_module  # noqa: E402
from napari_sclip._napari.store import PREFIX, ResultStore  # noqa: E402


def _filled(tmp_path) -> ResultStore:
    store = ResultStore((600, 700), np.uint8, folder=tmp_path)
    store.write_region(
        (),
        slice(0, 600),
        slice(0, 700),
        np.full((600, 700), 2, np.uint8),
        np.zeros((600, 700), bool),
    )
    return store


def test_generations_share_files_and_never_change_each_other(tmp_path):
    store = _filled(tmp_path)
    flags = np.zeros((600, 700), bool)
    flags[:10, :10] = True
    store.write_region((), slice(0, 600), slice(0, 700), np.full((600, 700), 2, np.uint8), flags)
    new = store.begin()
    chunk = store.path / f"g{new}" / "0" / "0" / "0"
    assert chunk.stat().st_nlink == 2 and store_module.links_are_safe(tmp_path)
    block = lambda rows, cols, step: np.full(
        (rows.stop - rows.start, cols.stop - cols.start), 5, np.uint8
    )  # noqa: E731
    for _ in store.write_plane(new, (), block, ignore_edits=True):
        pass
    assert (np.asarray(store.levels(0)[0]) == 2).all() and (
        np.asarray(store.levels(new)[0]) == 5
    ).all()
    store.generation = new
    store.clear_edits()  # only the new generation's flags
    assert not store.has_edits()
    store.generation = 0
    assert store.has_edits() and np.asarray(store.flags(0)[0])[:10, :10].all()


def test_without_atomic_chunk_writes_generations_are_copies(tmp_path, monkeypatch):
    import contextlib

    from zarr.storage import _local

    @contextlib.contextmanager
    def in_place(path, mode, exclusive=False):  # a zarr that rewrites the chunk file itself
        with open(path, mode) as f:
            yield f

    monkeypatch.setattr(_local, "_atomic_write", in_place)
    monkeypatch.setattr(store_module, "_LINKS_SAFE", None)
    store = _filled(tmp_path)
    assert store_module.links_are_safe(tmp_path) is False
    new = store.begin()
    assert (store.path / f"g{new}" / "0" / "0" / "0").stat().st_nlink == 1
    store.levels(new)[0][:5, :5] = 9
    assert (np.asarray(store.levels(0)[0]) == 2).all()
    monkeypatch.setattr(store_module, "_LINKS_SAFE", None)  # the next store checks again


def test_a_pinned_snapshot_outlives_keep_only_until_released(tmp_path):
    store = _filled(tmp_path)
    generation, key = store.snapshot()
    store.keep_only(())
    assert (store.path / f"g{generation}").is_dir()
    store.write_region(
        (), slice(0, 1), slice(0, 1), np.ones((1, 1), np.uint8), np.ones((1, 1), bool)
    )
    assert np.asarray(store.levels(generation)[0])[0, 0] == 2  # a fixed copy
    assert store.snapshot()[1] != key  # the key names the content: edits written since count
    store.release(generation)
    assert not (store.path / f"g{generation}").exists()


def test_stores_of_killed_processes_are_swept(tmp_path):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)  # fmt: skip
    (tmp_path / f"{PREFIX}{dead}-old").mkdir()
    mine = ResultStore((10, 10), np.uint8, folder=tmp_path)
    other = ResultStore((10, 10), np.uint8, folder=tmp_path)
    assert not (tmp_path / f"{PREFIX}{dead}-old").exists()
    assert (
        mine.path.is_dir()
        and other.path.is_dir()
        and mine.path.name.startswith(f"{PREFIX}{__import__('os').getpid()}-")
    )


def test_a_job_stopped_while_its_generation_is_made_leaves_none(tmp_path, monkeypatch):
    from napari_sclip._napari.jobs import Step, drive
    from napari_sclip._napari.large import StoreJob

    store = _filled(tmp_path)
    job = StoreJob(store)
    begin = store.begin

    def slow_begin(pin=False):
        job.discard()  # the user stops the job while the copy is being made
        return begin(pin)

    monkeypatch.setattr(store, "begin", slow_begin)
    list(drive([Step("store", "preparing", job.begin_step(), weight=0.0)]))
    assert sorted(p.name for p in store.path.glob("[ge]*")) == ["e0", "g0"]
