"""The Results section: the legend, what a re-run does with the user's edits, Forget my edits,
the attention probe switch and Export."""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, Container, PushButton
from qtpy.QtWidgets import QVBoxLayout, QWidget

from .legend import Legend

EDIT_POLICIES = [("ask", "ask"), ("keep my edits", "keep"), ("new layer", "new"), ("overwrite", "overwrite")]


class ResultsPanel(QWidget):
    """Legend and result actions; the controller enables them when there is a result."""

    def __init__(self) -> None:
        super().__init__()
        self.legend = Legend()
        self.edit_policy = ComboBox(label="Re-run over edits", choices=EDIT_POLICIES, value="ask",
                                    tooltip="What a re-run does with pixels you painted or erased")  # fmt: skip
        self.forget_button = PushButton(text="Forget my edits",
                                        tooltip="Let the next update overwrite the pixels you painted")  # fmt: skip
        self.probe = CheckBox(text="Attention probe", tooltip="Click the image: the last-block attention of that "
                              "patch appears over it (SCLIP; vanilla CLIP on a hidden layer to compare)")  # fmt: skip
        self.edit_button = PushButton(text="Edit region in view", tooltip="Large results: open the labels in view "
                                      "(at most 2048 px a side) as a layer you can paint in")  # fmt: skip
        self.apply_button = PushButton(text="Apply edits", tooltip="Write the region's edits into the result "
                                       "(one undo step of the labels layer)")  # fmt: skip
        self.export_button = PushButton(text="Export…", tooltip="Labels TIFF + class table CSV (segmented planes)")
        self.with_probabilities = CheckBox(text="with probabilities")
        rows = [
            Container(widgets=[self.edit_policy], labels=True),
            Container(widgets=[self.forget_button, self.probe], layout="horizontal", labels=False),
            Container(widgets=[self.edit_button, self.apply_button], layout="horizontal", labels=False),
            Container(widgets=[self.export_button, self.with_probabilities], layout="horizontal", labels=False),
        ]
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.legend)
        for row in rows:
            row.margins = (0, 0, 0, 0)
            layout.addWidget(row.native)

    def set_has_result(self, has: bool, large: bool = False, editing: bool = False, busy: bool = False) -> None:
        """Export and Forget act on a result: disabled without one (Forget also while a job or a
        store write runs: they read the edit flags); edit regions are for large ones."""
        self.export_button.enabled = has
        self.forget_button.enabled = has and not busy
        self.edit_button.visible = self.apply_button.visible = large
        self.edit_button.enabled = has
        self.apply_button.enabled = has and editing
        self.export_button.tooltip = ("OME-Zarr store (.zarr): labels pyramid with your edits, confidence, class "
                                      "table CSV" if large else "Labels TIFF + class table CSV (segmented planes)")  # fmt: skip
