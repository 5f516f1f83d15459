"""The Vocabulary section: presets, the class box (one class per line, it grows with its lines),
the background words, and Load / Save, all through :class:`~napari_sclip.vocabulary.Vocabulary`
(the one text format)."""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, LineEdit, PushButton
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QPlainTextEdit

from ..vocabulary import PRESET_TITLES, Vocabulary, load_preset, preset_names
from . import dialogs

DEFAULT = Vocabulary.parse("nuclei, nucleus\ncytoplasm, cell body", "background, black background")
PLACEHOLDER = "one class per line, synonyms after commas\nnuclei, nucleus\ncytoplasm"


class GrowingText(QPlainTextEdit):
    """A plain-text box as tall as its (wrapped) lines, between ``low`` and ``high`` lines; beyond,
    it scrolls."""

    def __init__(self, low: int = 3, high: int = 14) -> None:
        super().__init__()
        self.low, self.high = low, high
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.document().documentLayout().documentSizeChanged.connect(lambda _size: self._fit())
        self._fit()

    def _fit(self) -> None:
        lines = min(max(int(self.document().size().height()), self.low), self.high)  # lines, wraps counted
        margins = self.contentsMargins().top() + self.contentsMargins().bottom()
        self.setFixedHeight(int(lines * self.fontMetrics().lineSpacing() + 2 * self.document().documentMargin() + margins + 4))


class VocabularyPanel(QObject):
    """Classes and background words; ``changed`` when either changes."""

    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        presets = [("Presets…", None), *((PRESET_TITLES.get(n, n), n) for n in preset_names())]
        self.preset = ComboBox(choices=presets, tooltip="Fill the vocabulary with a bundled preset")
        self.classes = GrowingText()
        self.classes.setPlaceholderText(PLACEHOLDER)
        self.classes.setToolTip("One class per line. Synonyms after commas: the best-matching one counts. "
                                "Lines starting with # are comments.")  # fmt: skip
        self.background = LineEdit(label="Background",
                                   tooltip="Words that compete with the classes and become label 0 (comma-separated)")  # fmt: skip
        self.load_button = PushButton(text="Load…", tooltip="Read a vocabulary file")
        self.save_button = PushButton(text="Save…", tooltip="Save the vocabulary (as the presets are written)")
        buttons = Container(widgets=[self.load_button, self.save_button], layout="horizontal", labels=False)
        buttons.margins = (0, 0, 0, 0)
        self.container = Container(widgets=[self.preset, self.background, buttons], labels=True)
        self.container.margins = (0, 0, 0, 0)
        self.container.native.layout().insertWidget(1, self.classes)
        self.preset.changed.connect(self._on_preset)
        self.load_button.clicked.connect(self._load_dialog)
        self.save_button.clicked.connect(self._save_dialog)
        self.classes.textChanged.connect(self.changed.emit)
        self.background.changed.connect(lambda *_: self.changed.emit())
        self.set_vocabulary(DEFAULT)

    @property
    def native(self):
        return self.container.native

    def vocabulary(self) -> Vocabulary:
        """The vocabulary the fields hold (VocabularyError with a message when it is not valid)."""
        return Vocabulary.parse(self.classes.toPlainText(), self.background.value)

    def set_vocabulary(self, vocabulary: Vocabulary) -> None:
        self.set_text(vocabulary.classes_text(), vocabulary.background_text())

    def set_text(self, classes: str, background: str = "") -> None:
        self.classes.setPlainText(classes)
        self.background.value = background

    def set_classes(self, classes, background: str = "") -> None:
        """Text in the file format (shown as typed, checked on Run), or a list of names / synonym
        lists (checked now)."""
        if isinstance(classes, str):
            self.set_text(classes, background)
        else:
            self.set_vocabulary(Vocabulary.parse(classes, background or None))

    def _on_preset(self, name: str | None) -> None:
        if name:
            self.set_vocabulary(load_preset(name))
            self.preset.value = None

    def load(self, path) -> None:
        """Read a vocabulary file into the fields (comments kept)."""
        self.set_vocabulary(Vocabulary.from_file(path))

    def save(self, path):
        """Write the fields' vocabulary; a loaded file or preset comes back byte for byte."""
        return self.vocabulary().save(path)

    def _load_dialog(self) -> None:
        path = dialogs.open_path(self.native, "Load vocabulary", "Text (*.txt);;All files (*)")
        if path:
            self.load(path)

    def _save_dialog(self) -> None:
        path = dialogs.save_path(self.native, "Save vocabulary", "vocabulary.txt", "Text (*.txt)")
        if path:
            self.save(path)
