"""Text embeddings of phrases for one model, kept in memory and (optionally) on disk.

Owned by :class:`~napari_sclip.model.SclipModel`. A disk entry records the phrase and the model
key it was computed for; an entry that does not load, does not match, or holds non-finite or
non-unit values is recomputed and replaced. Entries are written atomically under unique
temporary names, so processes sharing a cache folder cannot corrupt it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from . import atomic


class TextCache:
    """Phrase -> L2-normalised embedding (float32 ``(D,)``), in memory and under ``folder``."""

    def __init__(self, key: str, folder: Path | None = None) -> None:
        self.key = key  # what the embeddings depend on: model identity, precision, templates
        self.folder = None if folder is None else Path(folder) / hashlib.sha256(key.encode()).hexdigest()[:20]
        self.memory: dict[str, torch.Tensor] = {}

    def __contains__(self, phrase: str) -> bool:
        return phrase in self.memory

    def __len__(self) -> int:
        return len(self.memory)

    def _file(self, phrase: str) -> Path:
        assert self.folder is not None
        return self.folder / (hashlib.sha256(phrase.encode()).hexdigest()[:32] + ".npz")

    def _load(self, phrase: str) -> torch.Tensor | None:
        """The disk entry of ``phrase`` if it is whole and right; a bad entry is removed."""
        path = self._file(phrase)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as entry:
                ok = str(entry["phrase"]) == phrase and str(entry["key"]) == self.key
                emb = np.asarray(entry["embedding"], np.float32)
        except Exception:  # noqa: BLE001 - any unreadable entry is simply recomputed
            ok, emb = False, None
        if ok and emb.ndim == 1 and np.isfinite(emb).all() and abs(float(np.linalg.norm(emb)) - 1.0) < 1e-3:
            return torch.from_numpy(emb)
        with contextlib.suppress(OSError):
            path.unlink()
        return None

    def get(self, phrase: str) -> torch.Tensor | None:
        """The embedding from memory or disk, or None."""
        if phrase not in self.memory and self.folder is not None:
            emb = self._load(phrase)
            if emb is not None:
                self.memory[phrase] = emb
        return self.memory.get(phrase)

    def missing(self, phrases: Iterable[str]) -> list[str]:
        """The phrases (once each, in order) that are in neither cache."""
        return [p for p in dict.fromkeys(phrases) if self.get(p) is None]

    def put(self, phrase: str, embedding: torch.Tensor) -> None:
        """Keep an embedding in memory and write it to disk (a read-only cache only costs speed)."""
        emb = embedding.detach().float().cpu().clone()
        self.memory[phrase] = emb
        if self.folder is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic.atomic_path(self._file(phrase)) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, embedding=emb.numpy(), phrase=np.str_(phrase), key=np.str_(self.key))
                    fh.flush()
                    os.fsync(fh.fileno())
        except OSError:
            pass

    def stack(self, phrases: Iterable[str]) -> torch.Tensor:
        """``(N, D)`` embeddings of phrases that are all cached."""
        return torch.stack([self.memory[p] for p in phrases])
