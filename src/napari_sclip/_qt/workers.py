"""Every worker thread the widget starts (runs, legend counting, probe), so that closing the
widget stops them all and no callback of a closed widget runs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from typing import Any

SIGNALS = ("started", "returned", "yielded", "errored", "aborted", "finished")


class Workers:
    """Starts napari ``thread_worker`` s with guarded callbacks; :meth:`stop_all` on close."""

    def __init__(self) -> None:
        self.running: dict[int, Any] = {}
        self.closed = False

    def start(self, fn: Callable, *args: Any, returned=None, yielded=None, errored=None, finished=None):
        """Run ``fn(*args)`` (a function or a generator function) in a worker thread; the
        callbacks run on the UI thread, never after :meth:`stop_all`."""
        from napari.qt.threading import thread_worker

        worker = thread_worker(fn, start_thread=False, ignore_errors=True)(*args)
        for signal, callback in (("returned", returned), ("yielded", yielded), ("errored", errored),
                                 ("finished", finished)):  # fmt: skip
            if callback is not None:
                getattr(worker, signal).connect(self._guard(callback))
        # by id: a callback that held the worker would tie it to its own signals (never collected)
        worker.finished.connect(partial(self._done, id(worker)))
        self.running[id(worker)] = worker
        worker.start()
        return worker

    def _done(self, key: int) -> None:
        """A finished worker lets go of every callback: superqt keeps finished workers alive
        through their own signals, and our callbacks must not keep the widget alive with them."""
        worker = self.running.pop(key, None)
        for name in SIGNALS if worker is not None else ():
            with contextlib.suppress(AttributeError, TypeError, RuntimeError):  # no such signal / no slots
                getattr(worker, name).disconnect()

    def _guard(self, callback: Callable) -> Callable:
        def call(*args: Any) -> None:
            if not self.closed:
                callback(*args)

        return call

    def stop_all(self) -> None:
        """Ask every worker to stop at its next yield; their callbacks no longer run."""
        self.closed = True
        for worker in list(self.running.values()):
            worker.quit()
