"""The widget's dialogs and messages: files to open and save, the question a re-run over edits
asks, and napari notifications."""

from __future__ import annotations

from qtpy.QtWidgets import QFileDialog, QMessageBox


def open_path(parent, title: str, pattern: str) -> str:
    path, _ = QFileDialog.getOpenFileName(parent, title, "", pattern)
    return path


def save_path(parent, title: str, default: str, pattern: str) -> str:
    path, _ = QFileDialog.getSaveFileName(parent, title, default, pattern)
    return path


def ask_edit_policy(parent) -> str | None:
    """Keep my edits / New layer / Overwrite, or None when the user cancels."""
    box = QMessageBox(parent)
    box.setWindowTitle("napari-sclip")
    box.setText("You painted or erased pixels in the labels layer.\nWhat should this run do with them?")
    keep = box.addButton("Keep my edits", QMessageBox.ButtonRole.AcceptRole)
    new = box.addButton("New layer", QMessageBox.ButtonRole.ActionRole)
    over = box.addButton("Overwrite", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return {keep: "keep", new: "new", over: "overwrite"}.get(box.clickedButton())


def notify(level: str, message: str) -> None:
    """A napari notification: ``level`` is "info", "warning" or "error"."""
    from napari.utils import notifications

    {"info": notifications.show_info, "warning": notifications.show_warning,
     "error": notifications.show_error}[level](message)  # fmt: skip
