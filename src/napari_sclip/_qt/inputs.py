"""Reading the widget's fields into typed values: the :class:`~.._napari.session.Request` of a
run, the model choice, the decision, the edit policy. Nothing is kept: every call reads anew."""

from __future__ import annotations

from dataclasses import dataclass

from .._napari.pixels import Box, pyramid_factor, snap
from .._napari.region import visible_box
from .._napari.session import Decision, Request, Session
from .._napari.source import ImageSource, geometry_of
from .._napari.steps import ModelSlot, window_count
from ..options import ModelChoice, RunOptions
from .fields import OptionsForm
from .image_panel import ImagePanel
from .model_panel import ModelPanel
from .results_panel import ResultsPanel
from .vocabulary_panel import VocabularyPanel


@dataclass
class Inputs:
    """The panels a run reads, and the viewer (for the plane on screen)."""

    viewer: object
    image: ImagePanel
    vocabulary: VocabularyPanel
    model: ModelPanel
    scale: OptionsForm
    refine: OptionsForm
    results: ResultsPanel

    def options(self) -> RunOptions:
        return RunOptions.build(**self.scale.values(), **self.refine.values())

    def planes(self, source: ImageSource) -> tuple:
        if not source.plane_shape:
            return ((),)
        if self.image.planes.value == "all":
            return tuple(source.planes())
        return (source.current_plane(self.viewer.dims.point),)

    def request(self, slot: ModelSlot) -> Request:
        """Everything a run needs; ValueError (SclipError) with a message for the user. For the
        visible region, the part of the image in view now (grown to whole pyramid tiles)."""
        if self.image.area.value == "visible" and not self.image.fixed_box and self.image.layer is not None:
            self.image.box = self.visible()
        source = self.image.source()
        options = self.options()
        vocabulary = self.vocabulary.vocabulary()
        key = slot.key if slot.ready(self.model_choice()) else None
        return Request(source, options, vocabulary, self.planes(source), key)

    def visible(self) -> Box:
        """The box of the image in view (level-0 pixels)."""
        layer = self.image.layer
        whole = geometry_of(layer, self.image.colour_from.value, self.image.axis.value).shape[-2:]
        return snap(visible_box(self.viewer, layer, whole), pyramid_factor(layer), whole)

    def model_choice(self) -> ModelChoice:
        return self.model.choice()

    def decision(self, session: Session) -> Decision:
        """The decide-stage fields and the session's hidden classes."""
        values = self.refine.values()
        return Decision(values["threshold"], values["area_threshold"], frozenset(session.hidden))

    def policy(self) -> str:
        return self.results.edit_policy.value

    def show_decision(self, decision: Decision) -> None:
        """Put a restored decision back into the fields without starting a relabel."""
        self.refine.set_values(quiet=True, threshold=decision.threshold, area_threshold=decision.area_threshold)

    def hint(self, slot: ModelSlot) -> str:
        """How many windows a run will encode (the progress bar counts the same ones)."""
        geo = self.image.geometry()
        if geo is None:
            return ""
        try:
            options = self.options()
        except ValueError as exc:
            return str(exc)
        window = options.window or slot.window
        n = window_count(*geo.shape[-2:], options.short_side, window, options.stride or max(1, window // 2),
                         options.long_side)  # fmt: skip
        planes = len(geo.planes()) if geo.plane_shape and self.image.planes.value == "all" else 1
        text = f"{n} windows of {window} px" + (f" × {planes} planes" if planes > 1 else "")
        if self.image.area.value == "visible":
            text += " (the last region; the one in view when you press Run)" if geo.box else " (the whole image; Run segments the part in view)"
        return text

    def set_options(self, **values) -> None:
        """Show run option values in the form (scripting); TypeError for an option it lacks."""
        for name, value in values.items():
            form = next((f for f in (self.scale, self.refine) if name in f), None)
            if form is None:
                raise TypeError(f"{name!r} is not a run option of the widget's form")
            form.set_values(**{name: value})
