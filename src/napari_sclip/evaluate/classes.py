"""The vocabulary of an evaluation and how the engine's labels map to the masks' labels.

The engine labels a pixel 0 (background words, or below the threshold) or 1..K (the K classes).

* Your own masks: label 0 is the background, k the k-th class; the engine's labels are the
  masks' labels as they are.
* A dataset: its classes are listed in label order; if one of them is the background (VOC21's
  0, Potsdam's 5 "clutter"), its words become the vocabulary's background words, the other classes
  its K classes in order, and engine label 0 maps to that class. A dataset without a background
  class has no label for the engine's 0 (a pixel below the threshold): it maps to "no class" and
  counts as wrong, as in the official code. A vocabulary given for a dataset has one line per
  dataset class in label order (as the official names files do), or one line per class but the
  background plus background words.

Background words that repeat a class phrase are dropped (COCO-Object's "bed", for one); the
notes say so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..vocabulary import Vocabulary, _parse_text
from .datasets import Dataset


@dataclass(frozen=True)
class LabelSpace:
    """The vocabulary, the masks' class names (label order) and the engine -> mask label map."""

    vocabulary: Vocabulary
    class_names: tuple[str, ...]
    to_masks: np.ndarray  # engine label -> mask label (len(class_names) means "no class")
    notes: tuple[str, ...] = ()

    def describe(self) -> dict:
        return {"queries": self.vocabulary.queries, "query_labels": self.vocabulary.query_labels.tolist(),
                "classes": list(self.class_names), "to_masks": self.to_masks.tolist()}  # fmt: skip


def own_masks(vocabulary: Vocabulary) -> LabelSpace:
    """Masks that hold 0 for background and k for the vocabulary's k-th class."""
    if len(vocabulary.classes) >= 255:
        raise ValueError("masks hold labels up to 254 (255 means ignore): give fewer than 255 classes")
    names = ("background", *vocabulary.names)
    return LabelSpace(vocabulary, names, np.arange(len(names)))


def _key(phrase: str) -> str:
    return " ".join(phrase.split()).casefold()


def _lines(dataset: Dataset, text: str | None, extra_background: tuple[str, ...]):
    """(classes as synonym tuples, background words) of ``text`` or the dataset's own names."""
    b, n = dataset.background_index, len(dataset.classes)
    if text is None:
        classes = [(c,) for c in dataset.classes]
        return [c for i, c in enumerate(classes) if i != b], [*dataset.background_words, *extra_background]
    classes, words, _ = _parse_text(text)
    if b is None and (words or extra_background):
        raise ValueError(f"{dataset.name} has no background class, so background words have no label to go to")
    if len(classes) == n and b is not None:
        return classes[:b] + classes[b + 1 :], [*classes[b], *words, *extra_background]
    if len(classes) == n or (b is not None and len(classes) == n - 1):
        return classes, [*words, *extra_background]
    bg = f" (or {n - 1} and background words)" if b is not None else ""
    raise ValueError(f"{dataset.name} has {n} classes; the vocabulary must list {n}{bg} in label order, "
                     f"one per line, but it has {len(classes)}")  # fmt: skip


def for_dataset(dataset: Dataset, text: str | None = None, extra_background: tuple[str, ...] = ()) -> LabelSpace:
    """The label space of a dataset with its own class names, or with vocabulary ``text``."""
    classes, words = _lines(dataset, text, extra_background)
    phrases = {_key(s) for syns in classes for s in syns}
    dropped = sorted({w for w in words if _key(w) in phrases})
    kept, seen = [], set()
    for w in words:
        if _key(w) not in phrases and _key(w) not in seen:
            seen.add(_key(w))
            kept.append(w)
    vocab = Vocabulary.parse([list(c) for c in classes], kept)
    b, n = dataset.background_index, len(dataset.classes)
    ids = [i for i in range(n) if i != b]
    to_masks = np.array([n if b is None else b, *ids], np.int64)
    notes = (f"background word(s) {', '.join(dropped)} dropped: they are also class names",) if dropped else ()
    return LabelSpace(vocab, dataset.classes, to_masks, notes)
