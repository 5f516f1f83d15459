"""Keeps the legend true to the labels layer: counts (through :mod:`.._napari.counts`) in a worker
thread after runs, strokes, undo and redo; only the newest count is shown."""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import QObject, QTimer, Signal

from .._napari import counts
from .._napari.session import Session
from .legend import Legend
from .workers import Workers


class LegendPresenter(QObject):
    """``refresh(session)`` recounts; ``updated`` after the table changed."""

    updated = Signal()

    def __init__(self, legend: Legend, workers: Workers, current: Callable[[], Session | None], layers) -> None:
        super().__init__()
        self.legend = legend
        self.workers = workers
        self.current = current
        self.layers = layers
        self._generation = 0
        self.shown: Session | None = None  # whose legend the table shows
        self.timer = QTimer(self, singleShot=True, interval=250)  # strokes come in bursts
        self.timer.timeout.connect(self.refresh)

    def refresh(self, wait: bool = False) -> None:
        """Recount the current session's labels (in a worker unless ``wait``)."""
        self.timer.stop()
        self._generation += 1
        session = self.shown = self.current()
        if session is None or not session.labels_alive(self.layers) or not session.cache:
            self._show(self._generation, None, [])
            return
        inputs = counts.count_inputs(session)  # views and names taken here, on the UI thread
        names, vocabulary, hidden = list(session.memory.names), session.vocabulary(), set(session.hidden)
        generation = self._generation

        def rows():
            return counts.legend_rows(names, vocabulary, hidden, counts.class_table(names, vocabulary, counts.tally(inputs)))

        if wait:
            self._show(generation, session, rows())
        else:
            self.workers.start(rows, returned=lambda r: self._show(generation, session, r))

    def _show(self, generation: int, session: Session | None, rows) -> None:
        if generation == self._generation:
            self.legend.set_rows(rows)
            self.updated.emit()
