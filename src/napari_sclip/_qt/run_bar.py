"""Run and Cancel, the progress bar and the status line (Qt where magicgui has no progress bar)."""

from __future__ import annotations

from magicgui.widgets import Container, PushButton
from qtpy.QtWidgets import QLabel, QProgressBar, QVBoxLayout, QWidget

from .._napari.jobs import JobProgress, Timer, format_seconds


class RunBar(QWidget):
    """Buttons, bar and status; it shows what it is told (the controller decides)."""

    def __init__(self) -> None:
        super().__init__()
        self.run_button = PushButton(text="Run", tooltip="Segment; reuses cached image features when only "
                                     "words or thresholds changed")  # fmt: skip
        self.cancel_button = PushButton(text="Cancel", tooltip="Stop at the next window batch; nothing is changed")
        buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False)
        buttons.margins = (0, 0, 0, 0)
        self.bar = QProgressBar(minimum=0, maximum=1000, value=0)
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(10)
        self.status = QLabel("ready")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        for widget in (buttons.native, self.bar, self.status):
            layout.addWidget(widget)
        self.set_state("idle")

    def set_state(self, state: str) -> None:
        """``idle``, ``running`` (Cancel works) or ``writing`` (layers are being updated: too
        late to cancel, the update is one undo step)."""
        self.run_button.enabled = state == "idle"
        self.cancel_button.enabled = state == "running"
        self.cancel_button.tooltip = ("Too late to cancel: the layers are being updated (Ctrl+Z undoes it)"
                                      if state == "writing" else "Stop at the next window batch; nothing is changed")  # fmt: skip

    def say(self, text: str, tooltip: str = "") -> None:
        self.status.setText(text)
        self.status.setToolTip(tooltip)

    def show_progress(self, p: JobProgress, timer: Timer) -> None:
        self.bar.setValue(int(1000 * p.fraction))
        left = format_seconds(timer.left(p.fraction))
        parts = [p.label + (f": {p.detail}" if p.detail else ""), left]
        self.say(" · ".join(x for x in parts if x))
