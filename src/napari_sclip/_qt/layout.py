"""The widget's layout: folding sections in a scroll area, so that the dock fits a 1280 x 800
screen with every section open, and long layer names never widen it."""

from __future__ import annotations

from dataclasses import dataclass

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from ..options import RunOptions
from .fields import OptionsForm
from .image_panel import ImagePanel
from .model_panel import ModelPanel
from .results_panel import ResultsPanel
from .run_bar import RunBar
from .section import Section
from .vocabulary_panel import VocabularyPanel

WIDTH = 330  # the dock's preferred width: a third of a 1000-px-wide window, as napari's own panels


@dataclass
class Panels:
    """Every part of the widget, built and laid out by :func:`build`."""

    image: ImagePanel
    vocabulary: VocabularyPanel
    model: ModelPanel
    scale: OptionsForm
    hint: QLabel
    refine: OptionsForm
    run_bar: RunBar
    results: ResultsPanel
    sections: dict[str, Section]
    scroll: QScrollArea


def _stack(*widgets) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    for widget in widgets:
        layout.addWidget(widget)
    return box


def build(parent: QWidget) -> Panels:
    """Build the panels and put them, in sections, into a scroll area filling ``parent``."""
    image, vocabulary, model = ImagePanel(), VocabularyPanel(), ModelPanel()
    scale, refine = OptionsForm(RunOptions, "scale"), OptionsForm(RunOptions, "refine")
    hint = QLabel()
    hint.setToolTip("Windows the image encoder will run (the progress bar counts the same)")
    run_bar, results = RunBar(), ResultsPanel()
    sections = {
        "image": Section("Image", image.native),
        "vocabulary": Section("Vocabulary", vocabulary.native),
        "model": Section("Model", model.native, expanded=False),
        "scale": Section("Scale and advanced", _stack(scale.native, hint), expanded=False),
        "refine": Section("Refine (instant)", refine.native),
    }
    content = QWidget()
    layout = QVBoxLayout(content)
    layout.setContentsMargins(4, 4, 4, 4)
    layout.setSpacing(4)
    for section in sections.values():
        layout.addWidget(section)
    layout.addWidget(run_bar)
    sections["results"] = Section("Results", results)
    layout.addWidget(sections["results"])
    layout.addStretch(1)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    scroll.setWidget(content)
    content.setMinimumWidth(WIDTH - 30)
    outer = QVBoxLayout(parent)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    parent.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
    parent.setMinimumWidth(WIDTH)
    return Panels(image, vocabulary, model, scale, hint, refine, run_bar, results, sections, scroll)
