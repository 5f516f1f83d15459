"""Per-image state: result layers, edit memory, cached segmentations, undo mirror, and the plan that
picks the cheapest path (relabel < re-score < full run) for each plane. No Qt here.

A :class:`Session` belongs to one :class:`~.source.Geometry` (reference layer, colour mode, channel
axis, result shape). A new image, colour mode, channel axis or shape finds or makes another
session: state is never patched to fit a new mapping.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..options import RunOptions
from ..vocabulary import Vocabulary
from .edits import EditMemory
from .source import Geometry, ImageSource, Plane

#: Live sessions by token (the npe2 writer finds a labels layer's session through its metadata).
REGISTRY: weakref.WeakValueDictionary[str, Session] = weakref.WeakValueDictionary()
STEP_KINDS = ("run", "rescore", "relabel")
#: Results with more pixels than this (all planes together) are *large*: computed lazily, their
#: labels kept in a :class:`~.store.ResultStore` on disk and shown as a multiscale layer.
LARGE_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class Decision:
    """What turns probabilities into labels: the decide-stage options and the hidden classes."""

    threshold: float
    area_threshold: float | None
    hidden: frozenset[str] = frozenset()

    def suppressed(self, class_names) -> list[int]:
        """Engine labels (1..K) of the hidden classes in a result's vocabulary."""
        return [k for k, name in enumerate(class_names, start=1) if name in self.hidden]


@dataclass(frozen=True)
class PlaneResult:
    """One plane's segmentation and the keys it was computed with."""

    seg: Any  # napari_sclip.Segmentation
    features_key: tuple
    score_key: tuple


@dataclass(frozen=True)
class Request:
    """Everything a run depends on, read from the widget once."""

    source: ImageSource
    options: RunOptions
    vocabulary: Vocabulary
    planes: tuple[Plane, ...]
    model_key: str | None

    def features_key(self, plane: Plane, model_key: str | None = None) -> tuple:
        """What the image features of ``plane`` depend on (with the request's model, or another)."""
        return (self.source.plane_key(plane), self.options.key("image"), model_key or self.model_key)

    def score_key(self) -> tuple:
        """What the probabilities depend on besides the image features."""
        return (self.vocabulary, self.options.key("score"))

    def decision(self, hidden: frozenset[str]) -> Decision:
        return Decision(self.options.threshold, self.options.area_threshold, hidden)


@dataclass(frozen=True)
class Snapshot:
    """The plugin's state for some planes (their cached results; None: none) and the decision."""

    results: dict[Plane, PlaneResult | None]
    decision: Decision | None
    generation: int | None = None  # a large result's store generation


@dataclass(eq=False)
class Session:
    """The widget's state for one source geometry."""

    geometry: Geometry
    reference: Any  # the image layer results are aligned with
    labels: Any = None
    memory: EditMemory | None = None
    history: Any = None  # .history.History of the labels layer
    scores: Any = None
    scores_class: str | None = None
    cache: dict[Plane, PlaneResult] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)
    decision: Decision | None = None  # what the labels layer shows now
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        REGISTRY[self.token] = self

    @property
    def name(self) -> str:
        return str(self.reference.name)

    @property
    def title(self) -> str:
        """The image's name, and the region for a result of part of it (layer names start so)."""
        box = self.geometry.box
        return self.name if box is None else f"{self.name} [rows {box[0]}-{box[1]}, columns {box[2]}-{box[3]}]"

    @property
    def large(self) -> bool:
        """Whether results are lazy and their labels live in a store (see :data:`LARGE_PIXELS`)."""
        return self.geometry.pixels > LARGE_PIXELS

    @property
    def store(self):
        """The labels layer's :class:`~.store.ResultStore` (large results), or None."""
        return getattr(self.memory, "store", None)

    def plan(self, request: Request) -> dict[Plane, str]:
        """``"relabel"``, ``"rescore"`` or ``"run"`` for each requested plane."""
        out = {}
        for plane in request.planes:
            hit = self.cache.get(plane)
            if hit is None or request.model_key is None or hit.features_key != request.features_key(plane):
                out[plane] = "run"
            elif hit.score_key != request.score_key():
                out[plane] = "rescore"
            else:
                out[plane] = "relabel"
        return out

    def labels_alive(self, layers) -> bool:
        """Whether our labels layer is still in the viewer with the expected shape."""
        return (
            self.labels is not None and self.labels in layers and self.memory is not None
            and tuple(self.labels.data.shape) == self.memory.shape
        )  # fmt: skip

    def has_edits(self, layers) -> bool:
        """Whether the user changed the labels layer the plugin wrote."""
        return self.labels_alive(layers) and self.memory.has_edits(self.labels.data)

    def snapshot(self, planes) -> Snapshot:
        """The current state of ``planes`` (to restore on undo)."""
        store = self.store
        return Snapshot({p: self.cache.get(p) for p in planes}, self.decision, store and store.generation)

    def restore(self, snap: Snapshot) -> None:
        """Put the cached results, the plugin's written labels and the decision back as they were
        (undo / redo of one of the plugin's updates)."""
        written = getattr(self.memory, "written", None)  # a large result's labels are its store's
        for plane, result in snap.results.items():
            if result is None:
                self.cache.pop(plane, None)
                if written is not None:
                    written[plane] = 0
                continue
            self.cache[plane] = result
            if written is not None:
                lut = self.memory.lut(result.seg.class_names)  # may widen the array: index it after
                self.memory.written[plane] = lut[result.seg.labels]
        if snap.decision is not None:
            self.hidden = set(snap.decision.hidden)
        self.decision = snap.decision
        if snap.generation is not None and self.store is not None:
            self.store.generation = snap.generation
            self.labels.data = self.store.levels()

    def settle(self, planes) -> None:
        """An old update was undone or redone and its state is no longer kept: the layer's labels
        of those planes count as the plugin's, and their cache is dropped (the next run redoes it)."""
        written = getattr(self.memory, "written", None)
        for plane in planes:
            self.cache.pop(plane, None)
            if written is not None and self.labels is not None:
                written[plane] = np.asarray(self.labels.data[plane])

    def vocabulary(self) -> Vocabulary | None:
        """The vocabulary of the newest cached result."""
        return next(reversed(self.cache.values())).seg.vocabulary if self.cache else None

    def forget_labels(self) -> None:
        """The labels layer is gone (or left to the user): stop managing it; the cache stays."""
        if self.history is not None:
            self.history.detach()
        self.labels = self.memory = self.history = None

    def forget_layers(self) -> None:
        """Both result layers are gone or abandoned."""
        self.forget_labels()
        self.scores = self.scores_class = None


class Sessions:
    """The sessions of one widget, by geometry."""

    def __init__(self) -> None:
        self._by_geometry: dict[Geometry, Session] = {}

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._by_geometry.values()))

    def get(self, geometry: Geometry | None) -> Session | None:
        return None if geometry is None else self._by_geometry.get(geometry)

    def for_source(self, source: ImageSource) -> Session:
        """The session of a source's geometry (made when first asked for)."""
        session = self._by_geometry.get(source.geometry)
        if session is None:
            session = self._by_geometry[source.geometry] = Session(source.geometry, source.layer)
        return session

    def with_labels(self, layer) -> Session | None:
        return next((s for s in self if s.labels is layer), None)

    def drop(self, session: Session) -> None:
        session.forget_layers()
        self._by_geometry.pop(session.geometry, None)

    def of_layer(self, layer) -> list[Session]:
        """The sessions whose image is ``layer``."""
        return [s for s in self if s.reference is layer]

    def layer_removed(self, layer) -> list[Session]:
        """A layer left the viewer: the sessions of that image are dropped (and returned); a
        session whose labels or score layer it was stops managing it."""
        dropped = []
        for session in self:
            if session.reference is layer:
                self.drop(session)
                dropped.append(session)
            elif session.labels is layer:
                session.forget_labels()
            elif session.scores is layer:
                session.scores = session.scores_class = None
        return dropped
