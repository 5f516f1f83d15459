"""The npe2 manifest: valid, named like the distribution, every python_name importable, the
widget in the Segment menu, sample data that opens offline, a writer; widget glue stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest

npe2 = pytest.importorskip("npe2")

MANIFEST = resources.files("napari_sclip").joinpath("napari.yaml")


@pytest.fixture(scope="module")
def manifest():
    return npe2.PluginManifest.from_file(str(MANIFEST))


def test_manifest_is_valid_and_named_like_the_distribution(manifest):
    assert manifest.name == "napari-sclip"
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", str(MANIFEST)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _resolve(python_name: str):
    module, _, attr = python_name.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def test_every_python_name_imports(manifest):
    names = [c.python_name for c in manifest.contributions.commands if c.python_name]
    assert len(names) >= 5
    for name in names:
        assert callable(_resolve(name)), name


def test_widget_is_in_the_segment_menu(manifest):
    widget_cmds = {w.command for w in manifest.contributions.widgets}
    menu = manifest.contributions.menus.get("napari/layers/segment", [])
    assert widget_cmds & {item.command for item in menu}


def test_sample_data_opens_offline(manifest):
    by_id = {c.id: c.python_name for c in manifest.contributions.commands}
    keys = set()
    for sample in manifest.contributions.sample_data:
        keys.add(sample.key)
        layers = _resolve(by_id[sample.command])()
        assert layers, sample.key
        for data, meta, kind in layers:
            assert kind == "image" and isinstance(meta.get("name"), str)
            assert np.asarray(data).size > 0 and np.ptp(np.asarray(data)) > 0
    assert {"cells", "aerial"} <= keys  # one microscopy-like, one aerial-like


def test_writer_is_declared_for_labels(manifest):
    writers = manifest.contributions.writers
    assert any("labels" in [str(t) for t in w.layer_types] and ".tif" in w.filename_extensions for w in writers)


def test_reader_is_declared_for_the_labels_files_it_writes(manifest):
    readers = manifest.contributions.readers
    assert any("*_labels.tif" in r.filename_patterns for r in readers)


def test_napari_glue_imports_neither_qt_nor_torch():
    """Every module of the Qt-free glue (and so the manifest's sample, reader and writer
    functions) loads neither Qt nor torch: discovering the plugin costs nothing."""
    from pathlib import Path

    import napari_sclip._napari as glue

    mods = sorted(p.stem for p in Path(glue.__file__).parent.glob("*.py") if p.stem != "__init__")
    assert {"source", "session", "writer", "files", "samples"} <= set(mods)
    code = "; ".join(f"import napari_sclip._napari.{m}" for m in mods) + "\nimport sys; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    heavy = {m for m in out if m.split(".")[0] in {"qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "torch"}}
    assert not heavy, sorted(heavy)[:5]


def test_widget_module_imports_without_torch():
    """Opening the widget must not load torch (it loads in the worker on the first run)."""
    code = "import napari_sclip._qt.widget\nimport sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
