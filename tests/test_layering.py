"""The core never imports napari or Qt, and importing the package does not load torch."""

from __future__ import annotations

import subprocess
import sys

CORE = ["attention", "cli", "decide", "encoder", "errors", "geometry", "io", "model", "prepare", "segment",
        "templates", "tiling", "vocabulary"]  # fmt: skip


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return set(out.stdout.split())


def test_core_imports_neither_napari_nor_qt():
    mods = _modules_after("; ".join(f"import napari_sclip.{m}" for m in CORE))
    gui = {m for m in mods if m.split(".")[0] in {"napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy"}}
    assert not gui, f"core modules pulled in {sorted(gui)[:5]}"
    assert "torch" in mods  # sanity: the imports above really ran


def test_package_import_is_light():
    mods = _modules_after("import napari_sclip")
    assert "torch" not in mods and "open_clip" not in mods


def test_window_arithmetic_needs_no_torch():
    mods = _modules_after("import napari_sclip.geometry")
    assert "torch" not in mods
