"""The class legend: colour, name, area fraction, mean confidence and a visibility toggle per class
(a Qt table: magicgui has none)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from .._napari.counts import LegendRow

COLUMNS = ("show", "", "class", "area", "conf.")


class Legend(QTableWidget):
    """A compact table; toggling "show" emits ``visibility_changed(name, visible)``,
    double-clicking a row emits ``activated(label)``."""

    visibility_changed = Signal(str, bool)
    activated = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.horizontalHeader()
        for col, mode in enumerate(
            (QHeaderView.ResizeMode.ResizeToContents, QHeaderView.ResizeMode.Fixed,
             QHeaderView.ResizeMode.Stretch, QHeaderView.ResizeMode.ResizeToContents,
             QHeaderView.ResizeMode.ResizeToContents)
        ):  # fmt: skip
            header.setSectionResizeMode(col, mode)
        self.setColumnWidth(1, 18)
        self._rows: list[LegendRow] = []
        self._updating = False
        self.itemChanged.connect(self._on_item_changed)
        self.cellDoubleClicked.connect(lambda r, _c: self.activated.emit(self._rows[r].label))

    @property
    def rows(self) -> list[LegendRow]:
        """The rows shown, in order."""
        return list(self._rows)

    def set_rows(self, rows: Sequence[LegendRow]) -> None:
        """Replace the table's content."""
        self._updating = True
        try:
            self._rows = list(rows)
            self.setRowCount(len(rows))
            for r, row in enumerate(rows):
                show = QTableWidgetItem()
                show.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
                show.setCheckState(Qt.CheckState.Checked if row.visible else Qt.CheckState.Unchecked)
                show.setToolTip("Uncheck to hide this class: its pixels go to the next best class")
                self.setItem(r, 0, show)
                swatch = QTableWidgetItem()
                swatch.setBackground(QColor.fromRgbF(*(float(c) for c in row.colour[:3])))
                swatch.setFlags(Qt.ItemFlag.ItemIsEnabled)
                self.setItem(r, 1, swatch)
                name = QTableWidgetItem(row.name)
                name.setToolTip(f"label {row.label}; double-click to paint with it and show its score map")
                self.setItem(r, 2, name)
                self.setItem(r, 3, _number(row.fraction, "{:.1%}"))
                self.setItem(r, 4, _number(row.confidence, "{:.2f}"))
                self.setRowHeight(r, 20)
        finally:
            self._updating = False
        shown = min(max(len(rows), 2), 8)  # grow with the classes, scroll beyond eight
        self.setFixedHeight(self.horizontalHeader().height() + 20 * shown + 2 * self.frameWidth())

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._updating or item.column() != 0:
            return
        row = self._rows[item.row()]
        visible = item.checkState() == Qt.CheckState.Checked
        self._rows[item.row()] = replace(row, visible=visible)
        self.visibility_changed.emit(row.name, visible)

    def set_visible(self, name: str, visible: bool) -> None:
        """Tick or untick a class (emits ``visibility_changed`` like a click)."""
        for r, row in enumerate(self._rows):
            if row.name == name:
                self.item(r, 0).setCheckState(Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked)


def _number(value: float, fmt: str) -> QTableWidgetItem:
    item = QTableWidgetItem("–" if not np.isfinite(value) else fmt.format(value))
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item
