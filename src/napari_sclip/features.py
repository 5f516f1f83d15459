"""Per-window image features, kept so a new vocabulary never runs the image encoder again.

They stay in memory up to a budget; beyond it they are spilled to a temporary file on disk (float32,
removed when the store is dropped), so re-scoring a gigapixel image stays possible. The file is
written and read with plain file operations, not mapped, so its pages never count as the
process's memory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator

import numpy as np
import torch

from .atomic import sweep_folders

MEMORY_BUDGET = 1 << 29  # features above 512 MB go to disk
PREFIX = "napari-sclip-features-"


class FeatureStore:
    """``n`` windows of ``(gh, gw, D)`` float32 features."""

    def __init__(self, n: int, shape: tuple[int, int, int], budget: int = MEMORY_BUDGET,
                 folder: str | os.PathLike | None = None) -> None:  # fmt: skip
        self.n, self.shape = n, tuple(shape)
        nbytes = 4 * n * int(np.prod(shape))
        self.spilled = nbytes > budget
        if self.spilled:
            sweep_folders(PREFIX, folder)  # features of killed processes
            self.folder = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=folder)
            weakref.finalize(self, shutil.rmtree, self.folder, True)
            self._file = open(os.path.join(self.folder, "features.f32"), "w+b")  # noqa: SIM115 - closed in close()
            weakref.finalize(self, self._file.close)
            self._window_bytes = 4 * int(np.prod(shape))
        else:
            self._data = torch.empty(n, *shape)

    @property
    def nbytes(self) -> int:
        return 4 * self.n * int(np.prod(self.shape))

    def put(self, start: int, features: torch.Tensor) -> None:
        """Store the features of windows ``start ...``."""
        if self.spilled:
            self._file.seek(start * self._window_bytes)
            self._file.write(features.to(torch.float32).contiguous().numpy().tobytes())
        else:
            self._data[start : start + len(features)] = features

    def get(self, start: int, stop: int) -> torch.Tensor:
        if self.spilled:
            self._file.seek(start * self._window_bytes)
            data = np.frombuffer(self._file.read((stop - start) * self._window_bytes), np.float32)
            return torch.from_numpy(data.reshape(stop - start, *self.shape).copy())
        return self._data[start:stop]

    def batches(self, batch: int) -> Iterator[tuple[int, torch.Tensor]]:
        for start in range(0, self.n, batch):
            yield start, self.get(start, min(start + batch, self.n))

    def tensor(self) -> torch.Tensor:
        """All features as one tensor (read from disk when spilled)."""
        return self.get(0, self.n)

    def close(self) -> None:
        """Drop a spilled file now (it is also removed when the store is garbage collected)."""
        if self.spilled:
            self._file.close()
            with contextlib.suppress(OSError):
                shutil.rmtree(self.folder)
