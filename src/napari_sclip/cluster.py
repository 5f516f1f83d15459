"""Scale-out on dask.distributed: whole images as tasks on a cluster whose workers each load the
model once (a worker plugin) and use their GPU when they have one.

A local cluster listens on loopback only. Results are written by the workers into the output
folder (a folder every worker can reach), exactly as one process would write them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

PLUGIN = "napari-sclip-model"


def _plugin_class():
    from distributed import WorkerPlugin

    class ModelPlugin(WorkerPlugin):
        """Loads the model on each worker once (also on workers that join later)."""

        name = PLUGIN
        idempotent = True

        def __init__(self, choice) -> None:
            self.choice, self.model = choice, None

        def setup(self, worker) -> None:
            self.model = self.choice.load()

        def teardown(self, worker) -> None:
            self.model = None

    return ModelPlugin


@contextlib.contextmanager
def open_client(workers: int = 0, scheduler: str | None = None):
    """A client of the scheduler at ``scheduler``, or of a new local cluster of ``workers``
    processes on loopback (closed on exit)."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)  # fmt: skip
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def register_model(client, choice) -> None:
    """Have every worker of ``client`` load the model ``choice`` once (kept by a worker plugin)."""
    client.register_plugin(_plugin_class()(choice))


def _task(path: str, output, vocabulary, options, probabilities: bool, overlay: bool):
    from distributed import get_worker

    from .runner import segment_file

    model = get_worker().plugins[PLUGIN].model
    return segment_file(Path(path), output, vocabulary, options, model, probabilities=probabilities, overlay=overlay)


def run_files(client, work, vocabulary, options, choice, *, probabilities: bool = False,
              overlay: bool = True) -> Iterator[tuple[Path, object]]:  # fmt: skip
    """Segment ``work`` (input path, runner.Output) on the cluster; yields ``(path, FileResult or
    the exception)`` as images finish."""
    from distributed import as_completed

    register_model(client, choice)
    futures = {
        client.submit(_task, str(path), output, vocabulary, options, probabilities, overlay, pure=False): path
        for path, output in work
    }
    for future in as_completed(futures):
        try:
            yield futures[future], future.result()
        except Exception as exc:  # noqa: BLE001 - reported per image, the others go on
            yield futures[future], exc
