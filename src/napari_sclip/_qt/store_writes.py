"""Writes into large results' stores (edit regions applied, their undo and redo, export
snapshots): one at a time in a worker thread, in the order asked, each with what the UI does after
it; when the widget closes, the running write is waited for and the queued ones are done at once,
so no applied edit is lost."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .workers import Workers


@dataclass(eq=False)
class Write:
    """``fn()`` runs in the worker; then, on the UI thread, ``then()`` (or ``failed(exc)``);
    ``closing(ok)`` instead of both when the widget closes; ``refresh()`` after it, however it
    ended (a failed write may have changed part of the store)."""

    fn: Callable[[], Any]
    then: Callable[[], None] | None = None
    failed: Callable[[BaseException], None] | None = None
    closing: Callable[[bool], None] | None = None
    refresh: Callable[[], None] | None = None
    error: BaseException | None = None
    ran: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        """The worker's part (records its error; sets ``ran`` however it ends)."""
        try:
            self.fn()
        except BaseException as exc:  # reported on the UI thread
            self.error = exc
            raise
        finally:
            self.ran.set()


class StoreWrites:
    """The queue; ``on_busy()`` when it starts or stops writing; ``say`` reports failures."""

    def __init__(
        self, workers: Workers, say: Callable[[str], None], on_busy: Callable[[], None]
    ) -> None:
        self.workers, self.say, self.on_busy = workers, say, on_busy
        self._queue: deque[Write] = deque()
        self._running: Write | None = None
        self.closed = False

    @property
    def pending(self) -> bool:
        return self._running is not None or bool(self._queue)

    def add(self, write: Write) -> None:
        if self.closed:
            return
        was = self.pending
        self._queue.append(write)
        self._pump()
        if not was:
            self.on_busy()

    def _pump(self) -> None:
        if self._running is not None or not self._queue or self.closed:
            return
        write = self._running = self._queue.popleft()
        self.workers.start(
            write.run, returned=lambda _: self._ended(write), errored=lambda exc: self._ended(write)
        )

    def _ended(self, write: Write) -> None:
        if self.closed or write is not self._running:
            return
        self._running = None
        if write.refresh is not None:
            write.refresh()
        if write.error is not None:
            self.say(f"writing into the store failed: {write.error}")
            if write.failed is not None:
                write.failed(write.error)
        elif write.then is not None:
            write.then()
        self._pump()
        if not self.pending:
            self.on_busy()

    def finish_now(self) -> None:
        """The widget closes: wait for the running write, do the queued ones here and now, and let
        each settle through ``closing(ok)``; nothing is written afterwards."""
        self.closed = True
        running, self._running = self._running, None
        if running is not None:
            running.ran.wait()
            if running.closing is not None:
                running.closing(running.error is None)
        while self._queue:
            write = self._queue.popleft()
            try:
                write.fn()
            except Exception as exc:  # noqa: BLE001 - the others still get their turn
                write.error = exc
            if write.closing is not None:
                write.closing(write.error is None)
