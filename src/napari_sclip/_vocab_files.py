"""Vocabulary files and bundled presets: classes one per line (synonyms after commas), plus an
optional ``# background: words`` line. Engine parsers read the same files (``#`` lines are
comments to them)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

BACKGROUND_TAG = "# background:"

#: Preset file stem -> title shown in the widget.
PRESET_TITLES: dict[str, str] = {
    "fluorescence": "Fluorescence: nuclei / cytoplasm / background",
    "histology": "Brightfield histology / IHC",
    "loveda": "Aerial: LoveDA land cover",
    "openearthmap": "Aerial: OpenEarthMap land cover",
}


def parse_vocabulary_file(text: str) -> tuple[str, str]:
    """(classes text, background words) from a vocabulary file's text."""
    classes, background = [], []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.lower().startswith(BACKGROUND_TAG):
            background.append(stripped[len(BACKGROUND_TAG) :].strip())
        elif stripped and not stripped.startswith("#"):
            classes.append(stripped)
    return "\n".join(classes), ", ".join(w for w in background if w)


def format_vocabulary_file(classes: str, background: str = "") -> str:
    """File text for a vocabulary; :func:`parse_vocabulary_file` reads it back."""
    lines = ["# napari-sclip vocabulary: one class per line, synonyms after commas"]
    lines += [ln.strip() for ln in classes.splitlines() if ln.strip()]
    if background.strip():
        lines.append(f"{BACKGROUND_TAG} {background.strip()}")
    return "\n".join(lines) + "\n"


def read_vocabulary_file(path: str | os.PathLike) -> tuple[str, str]:
    """(classes text, background words) from a file."""
    return parse_vocabulary_file(Path(path).read_text(encoding="utf-8"))


def write_vocabulary_file(path: str | os.PathLike, classes: str, background: str = "") -> Path:
    """Save a vocabulary so that :func:`read_vocabulary_file` gives it back."""
    path = Path(path)
    path.write_text(format_vocabulary_file(classes, background), encoding="utf-8")
    return path


def preset_names() -> list[str]:
    """Stems of the bundled presets, in :data:`PRESET_TITLES` order, then any others."""
    folder = resources.files("napari_sclip").joinpath("presets")
    found = sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".txt"))
    return [n for n in PRESET_TITLES if n in found] + [n for n in found if n not in PRESET_TITLES]


def load_preset(name: str) -> tuple[str, str]:
    """(classes text, background words) of a bundled preset."""
    text = resources.files("napari_sclip").joinpath(f"presets/{name}.txt").read_text("utf-8")
    return parse_vocabulary_file(text)
