"""Vocabularies (classes, synonyms, background words) and their cached text embeddings.

Each phrase is embedded as in CLIP zero-shot: the 80 templates filled in, each embedding
L2-normalised, averaged, normalised again. Embeddings are cached per model in memory and on disk,
so a phrase is never encoded twice.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import VocabularyError
from .templates import imagenet_templates

#: The 26 "stuff" words the paper's VOC / COCO-Object setting uses as one background class.
PAPER_BACKGROUND: tuple[str, ...] = (
    "sky", "wall", "tree", "wood", "grass", "road", "sea", "river", "mountain", "sands", "desk",
    "bed", "building", "cloud", "lamp", "door", "window", "wardrobe", "ceiling", "shelf",
    "curtain", "stair", "floor", "hill", "rail", "fence",
)  # fmt: skip

ClassSpec = str | Sequence[str]


def _norm(phrase: str) -> str:
    return " ".join(phrase.split()).lower()


def _split_synonyms(text: str, where: str) -> tuple[str, ...]:
    parts = [p.strip() for p in text.split(",")]
    if parts and parts[-1] == "" and len(parts) > 1:
        parts = parts[:-1]  # a trailing comma is harmless
    if any(p == "" for p in parts):
        raise VocabularyError(f"{where} has an empty synonym ({text.strip()!r}); remove the extra comma.")
    return tuple(" ".join(p.split()) for p in parts)


def _parse_text(text: str) -> list[tuple[str, ...]]:
    classes: list[tuple[str, ...]] = []
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for line in lines:
        pieces = line.split(";")
        if len(pieces) > 1 and pieces[-1].strip() == "":
            pieces = pieces[:-1]  # trailing ';'
        for piece in pieces:
            where = f"Class {len(classes) + 1}"
            if not piece.strip():
                raise VocabularyError(f"{where} is empty (two ';' in a row?); give it a name or remove it.")
            classes.append(_split_synonyms(piece, where))
    return classes


def _parse_words(words: str | Sequence[str] | None) -> tuple[str, ...]:
    if words is None:
        return ()
    if isinstance(words, str):
        items = [w.strip() for w in re.split(r"[,;\n]", words)]
        return tuple(" ".join(w.split()) for w in items if w)
    out = []
    for w in words:
        if not isinstance(w, str) or not w.strip():
            raise VocabularyError(f"Background words must be non-empty strings, got {w!r}.")
        out.append(" ".join(w.split()))
    return tuple(out)


@dataclass(frozen=True)
class Vocabulary:
    """Classes (each a tuple of synonyms, the first is its name) and background words.

    Every synonym and every background word is its own text query; a class scores the max over
    its synonyms, and background words compete in the softmax and map to label 0.
    """

    classes: tuple[tuple[str, ...], ...]
    background: tuple[str, ...] = ()

    @classmethod
    def parse(
        cls, classes: str | Sequence[ClassSpec] | Vocabulary, background: str | Sequence[str] | None = None
    ) -> Vocabulary:
        """Build from ``"a; b, b2"`` / one class per line / a list of names or synonym lists."""
        if isinstance(classes, Vocabulary):
            return classes if background is None else cls(classes.classes, _parse_words(background))
        if isinstance(classes, str):
            parsed = _parse_text(classes)
        else:
            parsed = []
            for i, item in enumerate(classes):
                where = f"Class {i + 1}"
                if isinstance(item, str):
                    if not item.strip():
                        raise VocabularyError(f"{where} is empty; give it a name or remove it.")
                    parsed.append(_split_synonyms(item, where))
                else:
                    syns = tuple(" ".join(str(s).split()) for s in item)
                    if not syns or any(not s for s in syns):
                        raise VocabularyError(f"{where} has no name or an empty synonym: {item!r}.")
                    parsed.append(syns)
        if not parsed:
            raise VocabularyError(
                "The vocabulary is empty: type at least one class, e.g. 'nucleus; cytoplasm' "
                "(one class per line or ';'-separated, synonyms separated by commas)."
            )
        vocab = cls(tuple(parsed), _parse_words(background))
        vocab._check_duplicates()
        return vocab

    def _check_duplicates(self) -> None:
        seen: dict[str, str] = {}
        for label, phrase in self.iter_queries():
            key = _norm(phrase)
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

    def to_text(self) -> str:
        """One class per line, synonyms comma-separated: what :meth:`parse` reads back."""
        return "\n".join(", ".join(syns) for syns in self.classes) + "\n"


def _disk_dir(model) -> Path | None:
    if model.disk_cache is None:
        return None
    key = f"{model.identity}|{model.precision}|" + "\n".join(imagenet_templates())
    return Path(model.disk_cache) / hashlib.sha256(key.encode()).hexdigest()[:20]


def _phrase_file(folder: Path, phrase: str) -> Path:
    return folder / (hashlib.sha256(phrase.encode()).hexdigest()[:32] + ".npy")


def uncached(model, phrases: Sequence[str]) -> list[str]:
    """The phrases whose embedding is in neither the memory nor the disk cache (loads disk hits)."""
    folder = _disk_dir(model)
    missing = []
    for p in dict.fromkeys(phrases):
        if p in model.text_cache:
            continue
        if folder is not None:
            f = _phrase_file(folder, p)
            if f.is_file():
                try:
                    model.text_cache[p] = torch.from_numpy(np.load(f))
                    continue
                except (OSError, ValueError):
                    pass  # a damaged cache file is simply recomputed
        missing.append(p)
    return missing


def _store(model, phrase: str, emb: torch.Tensor) -> None:
    model.text_cache[phrase] = emb
    folder = _disk_dir(model)
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = _phrase_file(folder, phrase)
        tmp = target.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, emb.numpy())
        os.replace(tmp, target)
    except OSError:
        pass  # a read-only cache only costs speed


def embed_steps(model, phrases: Sequence[str], per_step: int = 4):
    """Generator: encode the uncached phrases a few at a time, yielding how many are done.

    Returns the ``(N, D)`` float32 embeddings of ``phrases`` (normalise-mean-normalise over the
    templates).
    """
    templates = imagenet_templates()
    todo = uncached(model, phrases)
    for start in range(0, len(todo), per_step):
        chunk = todo[start : start + per_step]
        prompts = [t.format(p) for p in chunk for t in templates]
        emb = torch.nn.functional.normalize(model.encode_prompts(prompts), dim=-1)
        emb = emb.reshape(len(chunk), len(templates), -1).mean(1)
        emb = torch.nn.functional.normalize(emb, dim=-1)
        for p, e in zip(chunk, emb, strict=True):
            _store(model, p, e.clone())
        yield min(start + per_step, len(todo)), len(todo)
    return torch.stack([model.text_cache[p] for p in phrases])


def embed(model, phrases: Sequence[str]) -> torch.Tensor:
    """Text embeddings ``(N, D)`` of ``phrases``, from the caches where possible."""
    steps = embed_steps(model, phrases)
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value
