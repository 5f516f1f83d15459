"""Per-image state of the widget: result layers, edit memory, cached segmentations, and the plan
that picks the cheapest path (relabel < re-score < full run) for each plane. No Qt here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._layers import EditMemory
from ._source import Plane, Source


@dataclass(frozen=True)
class RunSettings:
    """Everything a run depends on, split by what it invalidates."""

    classes: str
    background: str
    short_side: int | None
    window: int | None
    stride: int | None
    attention: str
    logit_scale: float
    threshold: float
    area_threshold: float | None

    def vocabulary_key(self) -> tuple:
        """What a re-score depends on (besides the cached image features)."""
        lines = tuple(" ".join(ln.split()) for ln in self.classes.splitlines() if ln.strip())
        words = tuple(w.strip() for w in self.background.replace(";", ",").split(",") if w.strip())
        return lines, words, float(self.logit_scale)

    def image_key(self) -> tuple:
        """What the cached image features depend on (besides the image plane and the model)."""
        return self.short_side, self.window, self.stride, self.attention


@dataclass
class Cached:
    """One plane's segmentation and the keys it was computed with."""

    seg: Any  # napari_sclip.Segmentation
    features_key: tuple
    vocabulary_key: tuple


@dataclass
class Session:
    """The widget's state for one source image."""

    source: Source
    labels_layer: Any = None
    scores_layer: Any = None
    memory: EditMemory | None = None
    cache: dict[Plane, Cached] = field(default_factory=dict)
    scores_classes: tuple[str, ...] = ()

    def features_key(self, plane: Plane, settings: RunSettings, model_identity: str | None) -> tuple:
        """Key of the image features for ``plane`` under ``settings`` and a model."""
        return (self.source.key(plane), settings.image_key(), model_identity)

    def plan(self, planes: list[Plane], settings: RunSettings, model_identity: str | None) -> dict[Plane, str]:
        """``"relabel"``, ``"rescore"`` or ``"run"`` for each plane: the cheapest correct path."""
        out = {}
        for plane in planes:
            hit = self.cache.get(plane)
            if hit is None or model_identity is None or hit.features_key != self.features_key(
                plane, settings, model_identity
            ):
                out[plane] = "run"
            elif hit.vocabulary_key != settings.vocabulary_key():
                out[plane] = "rescore"
            else:
                out[plane] = "relabel"
        return out

    def labels_alive(self, layers) -> bool:
        """Whether our labels layer is still in the viewer with the expected shape."""
        return (
            self.labels_layer is not None
            and self.labels_layer in layers
            and self.memory is not None
            and tuple(self.labels_layer.data.shape) == self.memory.written.shape
        )

    def has_edits(self, layers) -> bool:
        """Whether the user changed the labels layer the plugin wrote."""
        return self.labels_alive(layers) and self.memory.has_edits(np.asarray(self.labels_layer.data))
