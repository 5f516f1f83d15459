"""The layering, derived from the tree: nothing outside ``_qt/`` imports Qt, nothing in the core
(outside ``_qt/``, ``_napari/`` and ``testing/``) imports napari or vispy; importing the package does
not load torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import napari_sclip

PACKAGE = Path(napari_sclip.__file__).parent
QT = {"qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt"}
GUI = {"napari", "vispy"} | QT


def _imports(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add("napari_sclip" if node.level else (node.module or "").split(".")[0])
    return found


def _modules(where: Path = PACKAGE) -> dict[str, set[str]]:
    return {str(p.relative_to(PACKAGE)): _imports(p) for p in sorted(where.rglob("*.py"))}


def test_nothing_outside_qt_imports_qt():
    outside = {name: found & QT for name, found in _modules().items() if not name.startswith("_qt/")}
    assert len(outside) > 30  # the walk really saw the tree
    assert not {name: qt for name, qt in outside.items() if qt}


def test_the_core_imports_neither_napari_nor_vispy():
    glue = ("_qt/", "_napari/", "testing/")
    core = {name: found & GUI for name, found in _modules().items() if not name.startswith(glue)}
    assert "segment.py" in core and "io/__init__.py" in core and "cli/__init__.py" in core
    assert not {name: gui for name, gui in core.items() if gui}


def test_qt_lives_only_in_the_widget_package():
    qt = _modules(PACKAGE / "_qt")
    assert any(found & QT for found in qt.values())  # the check above is not vacuous


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return set(out.stdout.split())


def test_package_import_is_light():
    mods = _modules_after("import napari_sclip")
    assert "torch" not in mods and "open_clip" not in mods


def test_window_arithmetic_needs_no_torch():
    assert "torch" not in _modules_after("import napari_sclip.geometry")
