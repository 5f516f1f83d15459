"""Applying a finished job to the layers, on the UI thread, in turns short enough for the event
loop: the labels written in bands as one undo step (user edits kept), the cache and the undo mirror
updated in the same turn, a shown score map pointed at the new probabilities in the next. The
labels layer is built empty when the Run button is pressed, so no result waits on napari's layer
construction; the score map layer is built when a class's map is first asked for."""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import QObject, QTimer

from .._napari import layers as result_layers
from .._napari.edits import EditMemory, StoreMemory, label_dtype
from .._napari.history import PluginUpdate
from .._napari.jobs import Job
from .._napari.session import Session, Snapshot
from .._napari.store import ResultStore
from .._napari.writer import drain, write_steps


class LayerWriter(QObject):
    """Builds and writes result layers; ``on_labels(session)`` hears about a new labels layer."""

    def __init__(self, viewer, on_labels: Callable[[Session], None]) -> None:
        super().__init__()
        self.viewer = viewer
        self.on_labels = on_labels
        self._steps = None
        self.closed = False

    def _later(self, fn: Callable[[], None]) -> None:
        QTimer.singleShot(0, lambda: None if self.closed else fn())

    def prepare(self, job: Job) -> bool:
        """Before a run: the labels layer, empty, if there is none (or a new one is asked for);
        returns whether one was made."""
        if job.policy == "new" or not job.session.labels_alive(self.viewer.layers):
            self._new_labels(job)
            return True
        return False

    def _new_labels(self, job: Job, store: ResultStore | None = None) -> None:
        session = job.session
        if session.labels is not None and job.replaced is None:
            job.replaced = (session.labels, session.memory, session.history)
        session.forget_labels()
        names = job.request.vocabulary.names if job.request is not None else []
        if session.large:  # labels on disk, shown as a multiscale
            session.memory = StoreMemory(store or ResultStore(session.geometry.shape, label_dtype(len(names))))
        else:
            session.memory = EditMemory(session.geometry.shape)
        session.memory.lut(names)
        session.labels = result_layers.make_labels(session)
        self.viewer.add_layer(session.labels)
        job.created.append(session.labels)
        self.on_labels(session)

    def discard(self, job: Job) -> None:
        """A run that failed or was cancelled leaves no layers of its own behind, and the labels
        layer a "new layer" run set aside is the session's again."""
        session = job.session
        for layer in job.created:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
            if session.labels is layer:
                session.forget_labels()
        job.created.clear()
        if job.store_job is not None:
            job.store_job.discard()
        if job.replaced is not None and job.replaced[0] in self.viewer.layers:
            session.labels, session.memory, session.history = job.replaced
            if session.history is not None:
                session.history.attach()
        job.replaced = None

    def write(self, job: Job, then: Callable[[], None]) -> None:
        """Write ``job.outcomes`` over a few turns, then call ``then``."""
        session = job.session
        if job.store_job is not None:
            self._swap(job, then)
            return
        if not session.labels_alive(self.viewer.layers):  # deleted during the run
            self._new_labels(job)
        if job.policy == "overwrite":
            session.memory.forget(session.labels.data)
        before = session.snapshot(job.outcomes)
        planes = {plane: outcome.labels for plane, outcome in job.outcomes.items()}
        self._steps = write_steps(session.labels, session.memory, planes, fresh=session.labels in job.created)
        if result_layers.restyle_labels(session.labels, session.memory.names):  # a redraw: a turn of its own
            self._later(lambda: self._turn(job, before, then))
        else:
            self._turn(job, before, then)

    def _swap(self, job: Job, then: Callable[[], None]) -> None:
        """A large result: the job wrote a new generation of the store; show it (one turn)."""
        session, store = job.session, job.store_job.store
        if not session.labels_alive(self.viewer.layers) or session.store is not store:  # deleted during the run
            self._new_labels(job, store)
        before = session.snapshot(job.outcomes)
        store.generation = job.store_job.generation
        if job.policy == "overwrite":
            store.clear_edits()
        session.labels.data = store.levels()
        result_layers.restyle_labels(session.labels, session.memory.names)
        self._commit(job, before, 0 if session.labels in job.created else 1)  # a first result: nothing to undo to
        store.keep_only(session.history.generations() if session.history is not None else ())
        self._later(lambda: self._scores(job, then))

    def _turn(self, job: Job, before: Snapshot, then: Callable[[], None]) -> None:
        try:
            next(self._steps)
        except StopIteration as stop:
            self._steps = None
            self._commit(job, before, int(stop.value or 0))
            self._later(lambda: self._scores(job, then))
            return
        self._later(lambda: self._turn(job, before, then))

    def _commit(self, job: Job, before: Snapshot, changed: int) -> None:
        """The layer's undo item is in: cache, decision and the undo mirror follow."""
        session = job.session
        session.cache.update({plane: outcome.result for plane, outcome in job.outcomes.items()})
        session.decision = job.decision
        if changed and session.history is not None:
            session.history.push(PluginUpdate(tuple(job.outcomes), before, session.snapshot(job.outcomes)))

    def _scores(self, job: Job, then: Callable[[], None]) -> None:
        session = job.session
        if session.scores is not None and session.scores in self.viewer.layers:
            result_layers.show_scores(session.scores, session, None)
        then()

    def finish_now(self) -> None:
        """Complete a write in progress at once (the widget is closing: a half-written update
        would leave napari's undo group open)."""
        if self._steps is not None:
            drain(self._steps)
            self._steps = None
