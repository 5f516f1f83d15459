"""Vocabularies: classes with synonyms, background words, and their one text format.

The format (typed in the widget, given to ``--classes`` / ``--classes-file``, saved as presets)::

    # a comment
    nuclei, nucleus            <- one class per line, synonyms after commas (the first is the name)
    cytoplasm; debris          <- or several classes on one line, separated by ';'
    # background: background, black background

Every synonym and every background word is its own text query; a class scores the max over its
synonyms, and background words compete in the softmax and become label 0. This module is the only
place that reads or writes the format.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from . import atomic
from .errors import VocabularyError

#: The 26 "stuff" words the paper's VOC / COCO-Object setting uses as one background class.
PAPER_BACKGROUND: tuple[str, ...] = (
    "sky", "wall", "tree", "wood", "grass", "road", "sea", "river", "mountain", "sands", "desk",
    "bed", "building", "cloud", "lamp", "door", "window", "wardrobe", "ceiling", "shelf",
    "curtain", "stair", "floor", "hill", "rail", "fence",
)  # fmt: skip

BACKGROUND_TAG = "# background:"

#: Preset file stem -> title shown in the widget.
PRESET_TITLES: dict[str, str] = {
    "fluorescence": "Fluorescence: nuclei / cytoplasm / background",
    "histology": "Brightfield histology / IHC",
    "loveda": "Aerial: LoveDA land cover",
    "openearthmap": "Aerial: OpenEarthMap land cover",
}

ClassSpec = str | Sequence[str]
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))


def _clean(phrase: str) -> str:
    """Whitespace collapsed, invisible characters (zero-width spaces, BOM, soft hyphen) removed."""
    text = unicodedata.normalize("NFC", phrase).translate(_INVISIBLE)
    return " ".join("".join(c if unicodedata.category(c)[0] != "C" else " " for c in text).split())


def _key(phrase: str) -> str:
    return _clean(phrase).casefold()


def _synonyms(text: str, where: str) -> tuple[str, ...]:
    parts = [_clean(p) for p in text.split(",")]
    if len(parts) > 1 and parts[-1] == "":
        parts = parts[:-1]  # a trailing comma is harmless
    if not any(parts):
        raise VocabularyError(f"{where} is empty (two ';' in a row, or only invisible characters?); "
                              "give it a name or remove it.")  # fmt: skip
    if "" in parts:
        raise VocabularyError(f"{where} has an empty synonym ({text.strip()!r}); remove the extra comma.")
    return tuple(parts)


def _words(words: str | Sequence[str] | None) -> tuple[str, ...]:
    """Background words from text (split on ',', ';' and new lines) or a list."""
    if words is None:
        return ()
    if isinstance(words, str):
        return tuple(w for w in (_clean(x) for x in re.split(r"[,;\n]", words)) if w)
    if not isinstance(words, Sequence):
        raise VocabularyError(f"Background words must be text or a list of words, not {type(words).__name__}.")
    out = []
    for w in words:
        if not isinstance(w, str) or not _clean(w):
            raise VocabularyError(f"Background words must be non-empty strings, got {w!r}.")
        out.append(_clean(w))
    return tuple(out)


def _parse_text(text: str) -> tuple[list[tuple[str, ...]], list[str], list[str]]:
    """(classes, background words, comment lines) of a vocabulary text."""
    classes: list[tuple[str, ...]] = []
    background: list[str] = []
    notes: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.lower().startswith(BACKGROUND_TAG):
            background.extend(_words(stripped[len(BACKGROUND_TAG) :]))
            continue
        if stripped.startswith("#"):
            notes.append(stripped)
            continue
        if not _clean(stripped):
            continue
        pieces = stripped.split(";")
        if len(pieces) > 1 and not _clean(pieces[-1]):
            pieces = pieces[:-1]  # trailing ';'
        for piece in pieces:
            classes.append(_synonyms(piece, f"Class {len(classes) + 1}"))
    return classes, background, notes


def _from_list(items: Sequence[ClassSpec]) -> list[tuple[str, ...]]:
    parsed = []
    for i, item in enumerate(items):
        where = f"Class {i + 1}"
        if isinstance(item, str):
            parsed.append(_synonyms(item, where))
        elif isinstance(item, Sequence) and all(isinstance(s, str) for s in item):
            syns = tuple(_clean(s) for s in item)
            if not syns or not all(syns):
                raise VocabularyError(f"{where} has no name or an empty synonym: {item!r}.")
            parsed.append(syns)
        else:
            raise VocabularyError(f"{where} must be a name or a list of synonyms, not {item!r}.")
    return parsed


@dataclass(frozen=True)
class Vocabulary:
    """Classes (each a tuple of synonyms, the first is its name) and background words.

    ``notes`` keeps the comment lines of a text, so a file read and written again is unchanged;
    they take no part in comparisons.
    """

    classes: tuple[tuple[str, ...], ...]
    background: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(
        cls, classes: str | Sequence[ClassSpec] | Vocabulary, background: str | Sequence[str] | None = None
    ) -> Vocabulary:
        """From vocabulary text, a list of names / synonym lists, or a Vocabulary; ``background``
        words are added to any the text names (repeats between the two are dropped)."""
        notes: list[str] = []
        if isinstance(classes, Vocabulary):
            parsed, words, notes = list(classes.classes), list(classes.background), list(classes.notes)
        elif isinstance(classes, str):
            parsed, words, notes = _parse_text(classes)
        elif isinstance(classes, Sequence):
            parsed, words = _from_list(classes), []
        else:
            raise VocabularyError(
                f"The vocabulary must be text such as 'nucleus; cytoplasm' or a list of class names, "
                f"not {type(classes).__name__}."
            )
        if not parsed:
            raise VocabularyError(
                "The vocabulary is empty: type at least one class, e.g. 'nucleus; cytoplasm' "
                "(one class per line or ';'-separated, synonyms separated by commas)."
            )
        seen = {_key(w) for w in words}
        words += [w for w in _words(background) if _key(w) not in seen and not seen.add(_key(w))]
        vocab = cls(tuple(parsed), tuple(words), tuple(notes))
        vocab._check_duplicates()
        return vocab

    @classmethod
    def from_file(cls, path: str | os.PathLike, background: str | Sequence[str] | None = None) -> Vocabulary:
        """Read a vocabulary file (UTF-8 text in the format above)."""
        path = Path(path)
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except FileNotFoundError:
            raise VocabularyError(f"Vocabulary file not found: {path}") from None
        except IsADirectoryError:
            raise VocabularyError(f"{path} is a folder, not a vocabulary file.") from None
        except UnicodeDecodeError as exc:
            raise VocabularyError(
                f"{path.name} is not UTF-8 text (byte {exc.start}); save it as UTF-8 and try again."
            ) from None
        return cls.parse(text, background)

    def _check_duplicates(self) -> None:
        seen: dict[str, str] = {}
        for label, phrase in self.iter_queries():
            key = _key(phrase)
            where = "background" if label == 0 else f"class {label} ({self.classes[label - 1][0]!r})"
            if key in seen:
                raise VocabularyError(
                    f"{phrase!r} appears twice (in {seen[key]} and in {where}); each phrase may be "
                    "used once. Merge the classes or drop one of them."
                )
            seen[key] = where

    @property
    def names(self) -> list[str]:
        """Class names (first synonym of each class), in label order 1..K."""
        return [syns[0] for syns in self.classes]

    def iter_queries(self) -> Iterator[tuple[int, str]]:
        """(label, phrase) for every text query: class synonyms first, then background words (label 0)."""
        for label, syns in enumerate(self.classes, start=1):
            for s in syns:
                yield label, s
        for w in self.background:
            yield 0, w

    @property
    def queries(self) -> list[str]:
        return [p for _, p in self.iter_queries()]

    @property
    def query_labels(self) -> np.ndarray:
        return np.array([lab for lab, _ in self.iter_queries()], dtype=np.int64)

    def classes_text(self) -> str:
        """Comment lines, then one class per line with its synonyms (the widget's box)."""
        return "\n".join([*self.notes, *(", ".join(syns) for syns in self.classes)]) + "\n"

    def background_text(self) -> str:
        """The background words, comma-separated."""
        return ", ".join(self.background)

    def to_text(self) -> str:
        """The whole vocabulary in the file format; :meth:`parse` reads it back unchanged."""
        tail = f"{BACKGROUND_TAG} {self.background_text()}\n" if self.background else ""
        return self.classes_text() + tail

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_text` to ``path`` (atomically)."""
        return atomic.write_text(path, self.to_text())


def preset_names() -> list[str]:
    """Stems of the bundled presets, in :data:`PRESET_TITLES` order, then any others."""
    folder = resources.files("napari_sclip").joinpath("presets")
    found = sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".txt"))
    return [n for n in PRESET_TITLES if n in found] + [n for n in found if n not in PRESET_TITLES]


def load_preset(name: str) -> Vocabulary:
    """A bundled preset (``preset_names()``)."""
    if name not in preset_names():
        raise VocabularyError(f"No preset {name!r}; choose one of: {', '.join(preset_names())}.")
    return Vocabulary.parse(resources.files("napari_sclip").joinpath(f"presets/{name}.txt").read_text("utf-8"))
