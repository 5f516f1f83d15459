"""The widget's form: every field, button and section, laid out, with no behaviour attached.

``SclipWidget`` (in ``_widget``) inherits this layout and connects the logic.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from . import _vocab_files
from ._legend import Legend
from ._session import RunSettings
from .geometry import axis_starts, inference_size

#: Last-block attention modes offered (kept equal to ``attention.MODES`` by a test).
ATTENTION_MODES = ("sclip", "vanilla", "clearclip", "naclip", "segearth", "resclip", "scclip")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
EDIT_POLICIES = {"ask": "ask", "keep": "keep my edits", "new": "new layer", "overwrite": "overwrite"}
RGB_MODES = {"as_is": "layer as it is", "axis": "channels of this layer", "layers": "separate layers"}
DEFAULT_CLASSES = "nuclei, nucleus\ncytoplasm, cell body"
DEFAULT_BACKGROUND = "background, black background"


def window_count(height: int, width: int, short_side: int | None, window: int, stride: int) -> int:
    """How many sliding windows the engine will run for an image (torch-free, for the hint)."""
    size = inference_size(height, width, short_side or None)
    return len(axis_starts(size[0], window, stride)) * len(axis_starts(size[1], window, stride))


def _combo(items, current=None) -> QComboBox:
    box = QComboBox()
    for key, text in items.items() if isinstance(items, dict) else ((i, i) for i in items):
        box.addItem(text, key)
    if current is not None:
        box.setCurrentIndex(max(0, box.findData(current)))
    return box


class _Section(QWidget):
    """A titled block that can be folded away."""

    def __init__(self, title: str, content: QWidget, expanded: bool = True) -> None:
        super().__init__()
        self.toggle = QToolButton(text=title, checkable=True, checked=expanded)
        self.toggle.setStyleSheet("QToolButton { border: none; font-weight: bold; }")
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.content = content
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 2)
        layout.setSpacing(2)
        layout.addWidget(self.toggle)
        layout.addWidget(content)
        self.toggle.toggled.connect(self._set_expanded)
        self._set_expanded(expanded)

    def _set_expanded(self, expanded: bool) -> None:
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.content.setVisible(expanded)

class SclipForm(QWidget):
    """All the widget's controls; ``settings()`` and ``model_spec()`` read them."""

    def __init__(self) -> None:
        super().__init__()
        self._build_ui()

    def _build_ui(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        root.setSpacing(4)

        # image and channels
        img = QWidget()
        form = QFormLayout(img)
        form.setContentsMargins(0, 0, 0, 0)
        self.image_combo = QComboBox()
        self.image_combo.setToolTip("The image layer to segment (it is never modified)")
        form.addRow("Image", self.image_combo)
        self.planes_combo = _combo({"current": "current plane", "all": "all planes"})
        self.planes_combo.setToolTip("For stacks (z, time): segment the plane on screen, or every plane")
        form.addRow("Planes", self.planes_combo)
        self.rgb_mode = _combo(RGB_MODES)
        self.rgb_mode.setToolTip("Which channels CLIP sees as red, green and blue")
        form.addRow("Colour from", self.rgb_mode)
        self.channel_axis = QSpinBox(minimum=0, maximum=8)
        self.channel_axis.setToolTip("Axis of the layer's data that holds the channels")
        form.addRow("Channel axis", self.channel_axis)
        self.channel_picks: list[QComboBox] = []
        self.layer_picks: list[QComboBox] = []
        picks = QWidget()
        grid = QGridLayout(picks)
        grid.setContentsMargins(0, 0, 0, 0)
        for i, colour in enumerate("RGB"):
            grid.addWidget(QLabel(colour), 0, 2 * i)
            ch = QComboBox()
            ch.setToolTip(f"Channel shown to CLIP as {colour}")
            self.channel_picks.append(ch)
            grid.addWidget(ch, 0, 2 * i + 1)
            lay = QComboBox()
            lay.setToolTip(f"Single-channel layer shown to CLIP as {colour}")
            self.layer_picks.append(lay)
            grid.addWidget(lay, 1, 2 * i + 1)
        form.addRow("R G B", picks)
        self._picks_row = picks
        self._image_form = form
        root.addWidget(_Section("Image", img))

        # vocabulary
        voc = QWidget()
        vl = QVBoxLayout(voc)
        vl.setContentsMargins(0, 0, 0, 0)
        self.preset_combo = QComboBox()
        self.preset_combo.addItem("Presets…", None)
        for name in _vocab_files.preset_names():
            self.preset_combo.addItem(_vocab_files.PRESET_TITLES.get(name, name), name)
        vl.addWidget(self.preset_combo)
        self.classes_edit = QPlainTextEdit(DEFAULT_CLASSES)
        self.classes_edit.setPlaceholderText("one class per line; synonyms after commas\nnuclei, nucleus\ncytoplasm")
        self.classes_edit.setToolTip("One class per line. Synonyms after commas: the best-matching one counts.")
        self.classes_edit.setFixedHeight(84)
        vl.addWidget(self.classes_edit)
        bg = QFormLayout()
        self.background_edit = QLineEdit(DEFAULT_BACKGROUND)
        self.background_edit.setToolTip("Words that compete with the classes and become label 0 (comma-separated)")
        bg.addRow("Background", self.background_edit)
        vl.addLayout(bg)
        row = QHBoxLayout()
        self.load_vocab_button = QPushButton("Load…")
        self.save_vocab_button = QPushButton("Save…")
        row.addWidget(self.load_vocab_button)
        row.addWidget(self.save_vocab_button)
        vl.addLayout(row)
        root.addWidget(_Section("Vocabulary", voc))

        # model
        mod = QWidget()
        mf = QFormLayout(mod)
        mf.setContentsMargins(0, 0, 0, 0)
        self.model_name = QLineEdit("ViT-B-16")
        self.model_name.setToolTip("open_clip model name or hf-hub:id; empty to read it from the checkpoint")
        mf.addRow("Model", self.model_name)
        self.pretrained = QLineEdit("openai")
        self.pretrained.setToolTip("open_clip pretrained tag (weights are cached after the first download)")
        mf.addRow("Pretrained", self.pretrained)
        ck = QHBoxLayout()
        self.checkpoint = QLineEdit()
        self.checkpoint.setPlaceholderText("local checkpoint file (optional)")
        self.checkpoint_button = QPushButton("…")
        self.checkpoint_button.setFixedWidth(28)
        ck.addWidget(self.checkpoint)
        ck.addWidget(self.checkpoint_button)
        mf.addRow("Checkpoint", ck)
        dp = QHBoxLayout()
        self.device_combo = _combo(DEVICES)
        self.precision_combo = _combo(PRECISIONS)
        dp.addWidget(self.device_combo)
        dp.addWidget(self.precision_combo)
        mf.addRow("Device", dp)
        self.model_label = QLabel("not loaded (loads on the first run)")
        self.model_label.setWordWrap(True)
        mf.addRow("", self.model_label)
        root.addWidget(_Section("Model", mod, expanded=False))

        # scale and advanced
        sc = QWidget()
        sf = QFormLayout(sc)
        sf.setContentsMargins(0, 0, 0, 0)
        self.short_side = QSpinBox(minimum=0, maximum=16384, singleStep=32, value=336)
        self.short_side.setSpecialValueText("native")
        self.short_side.setSuffix(" px")
        self.short_side.setToolTip("Resize so the short side has this many pixels (0 = native size). "
                                   "Larger finds smaller things, and costs more windows.")  # fmt: skip
        sf.addRow("Short side", self.short_side)
        self.hint_label = QLabel()
        sf.addRow("", self.hint_label)
        self.window_spin = QSpinBox(minimum=0, maximum=4096, specialValueText="model's")
        self.stride_spin = QSpinBox(minimum=0, maximum=4096, specialValueText="half window")
        self.logit_scale = QDoubleSpinBox(minimum=0.1, maximum=1000.0, value=40.0, decimals=1)
        self.logit_scale.setToolTip("Softmax temperature: higher = more decisive (the paper uses 40)")
        self.attention_combo = _combo(ATTENTION_MODES)
        self.attention_combo.setToolTip("Last-block attention: sclip = correlative self-attention")
        sf.addRow("Window", self.window_spin)
        sf.addRow("Stride", self.stride_spin)
        sf.addRow("Logit scale", self.logit_scale)
        sf.addRow("Attention", self.attention_combo)
        root.addWidget(_Section("Scale and advanced", sc, expanded=False))

        # decision
        dec = QWidget()
        df = QFormLayout(dec)
        df.setContentsMargins(0, 0, 0, 0)
        th = QHBoxLayout()
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100, value=0)
        self.threshold_slider.setToolTip("Pixels whose best class probability is below this become background")
        self.threshold_label = QLabel("0.00")
        self.threshold_label.setMinimumWidth(32)
        th.addWidget(self.threshold_slider)
        th.addWidget(self.threshold_label)
        df.addRow("Threshold", th)
        self.area_spin = QDoubleSpinBox(minimum=0.0, maximum=99.0, value=0.0, decimals=1, singleStep=0.5)
        self.area_spin.setSuffix(" %")
        self.area_spin.setSpecialValueText("off")
        self.area_spin.setToolTip("Drop classes covering at most this share of the foreground")
        df.addRow("Min. class area", self.area_spin)
        root.addWidget(_Section("Refine (instant)", dec))

        # run
        runrow = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Segment; reuses cached image features when only words or thresholds changed")
        self.cancel_button = QPushButton("Cancel")
        runrow.addWidget(self.run_button)
        runrow.addWidget(self.cancel_button)
        root.addLayout(runrow)
        self.progress_bar = QProgressBar(minimum=0, maximum=1000, value=0)
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setFixedHeight(10)
        root.addWidget(self.progress_bar)
        self.status_label = QLabel("ready")
        self.status_label.setWordWrap(True)
        root.addWidget(self.status_label)

        # results
        res = QWidget()
        rl = QVBoxLayout(res)
        rl.setContentsMargins(0, 0, 0, 0)
        self.legend = Legend()
        rl.addWidget(self.legend)
        pol = QFormLayout()
        self.edit_policy = _combo(EDIT_POLICIES, "ask")
        self.edit_policy.setToolTip("What a re-run does with pixels you painted or erased")
        pol.addRow("Re-run over edits", self.edit_policy)
        rl.addLayout(pol)
        er = QHBoxLayout()
        self.forget_button = QPushButton("Forget my edits")
        self.forget_button.setToolTip("Let the next update overwrite the pixels you painted")
        self.probe_check = QCheckBox("Attention probe")
        self.probe_check.setToolTip("Click the image: show the last-block attention of that patch, "
                                    "SCLIP next to vanilla CLIP, right of the image")  # fmt: skip
        er.addWidget(self.forget_button)
        er.addWidget(self.probe_check)
        rl.addLayout(er)
        ex = QHBoxLayout()
        self.export_button = QPushButton("Export…")
        self.export_probs = QCheckBox("with probabilities")
        ex.addWidget(self.export_button)
        ex.addWidget(self.export_probs)
        rl.addLayout(ex)
        root.addWidget(_Section("Results", res))
        root.addStretch(1)

    def settings(self) -> RunSettings:
        """The run settings from the fields."""
        area = self.area_spin.value() / 100.0
        return RunSettings(
            classes=self.classes_edit.toPlainText(),
            background=self.background_edit.text(),
            short_side=self.short_side.value() or None,
            window=self.window_spin.value() or None,
            stride=self.stride_spin.value() or None,
            attention=self.attention_combo.currentData(),
            logit_scale=float(self.logit_scale.value()),
            threshold=self.threshold_slider.value() / 100.0,
            area_threshold=area if area > 0 else None,
        )

    def model_spec(self) -> tuple:
        """(name, pretrained, checkpoint, device, precision) from the model fields."""
        return (
            self.model_name.text().strip(),
            self.pretrained.text().strip(),
            self.checkpoint.text().strip(),
            self.device_combo.currentData(),
            self.precision_combo.currentData(),
        )
