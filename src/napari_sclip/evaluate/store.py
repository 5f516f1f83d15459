"""Per-image counts kept on disk, so that an interrupted evaluation resumes where it stopped.

The folder holds one subfolder per setup: its name is a hash of everything that can change a
count (model identity and precision, run options and per-image rules, vocabulary, label map,
mask rule, data folders, format version), and ``setup.json`` in it says what that was. Each
finished image is one small JSON file written atomically (whole or absent). A re-run with the
same setup reads them instead of segmenting again; any other setup gets its own subfolder, so
results of different settings never mix.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .. import atomic
from .metric import Counts

FORMAT = 1


def setup_key(setup: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able setup."""
    text = json.dumps({"format": FORMAT, **setup}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class Store:
    """The counts of one setup under ``folder`` (None: nothing is kept, nothing resumes)."""

    def __init__(self, folder: Path | None, setup: dict[str, Any], n_classes: int) -> None:
        self.key = setup_key(setup)
        self.n_classes = n_classes
        self.folder = Path(folder) / self.key if folder is not None else None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic.sweep(self.folder)  # temporary files of a run that was killed
            info = self.folder / "setup.json"
            if not info.is_file():
                atomic.write_text(info, json.dumps({"format": FORMAT, **setup}, indent=1, default=str) + "\n")

    def _path(self, name: str) -> Path:
        assert self.folder is not None
        return self.folder / (hashlib.sha1(name.encode("utf-8")).hexdigest()[:20] + ".json")

    def load(self, name: str) -> tuple[Counts, dict[str, Any]] | None:
        """The stored counts of image ``name`` and its record, or None (not done, or unreadable:
        redo it)."""
        if self.folder is None:
            return None
        try:
            record = json.loads(self._path(name).read_text(encoding="utf-8"))
            if record.get("image") != name:
                return None
            return Counts.from_dict(record, self.n_classes), record
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, name: str, counts: Counts, info: dict[str, Any]) -> None:
        if self.folder is not None:
            record = {"image": name, **info, **counts.to_dict()}
            atomic.write_text(self._path(name), json.dumps(record) + "\n")
