"""One image file in, its result files out: the unit of work of ``segment``, ``batch`` and cluster workers.

A file's planes (one for a 2D or RGB image, several for a stack) are segmented one after another;
in-memory planes of a stack share one stacked TIFF, large (lazy) planes and Zarr outputs get one
result each (``<stem>_z<i>``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import io
from .options import RunOptions
from .stats import ClassTable, Tally
from .vocabulary import Vocabulary

FORMATS = ("tiff", "zarr")


@dataclass(frozen=True)
class Output:
    """Where one input's result goes: the output folder, the stem, the format."""

    folder: Path
    stem: str
    format: str = "tiff"

    def labels_path(self, plane: tuple[int, ...] | None = None) -> Path:
        stem = self.stem if plane is None else f"{self.stem}_z{'-'.join(map(str, plane))}"
        return self.folder / (f"{stem}.zarr" if self.format == "zarr" else f"{stem}_labels.tif")

    def done(self) -> bool:
        """Whether a complete result is there (labels are written last)."""
        return self.labels_path().exists() or any(self.folder.glob(f"{self.stem}_z*{'.zarr' if self.format == 'zarr' else '_labels.tif'}"))


@dataclass(frozen=True)
class FileResult:
    """What one input produced: the files, and the class table of each result (plane index or None)."""

    written: list[Path]
    tables: dict[tuple[int, ...] | None, ClassTable]


ProgressFactory = Callable[[str], Callable[[int, int], None] | None]


def segment_file(path: str | os.PathLike, output: Output, vocabulary: Vocabulary, options: RunOptions, model, *,
                 probabilities: bool = False, overlay: bool = True,
                 progress: ProgressFactory = lambda name: None, client=None) -> FileResult:  # fmt: skip
    """Segment every plane of one image file (read lazily when large) and write its results;
    with a dask ``client``, the windows of each plane are encoded on its workers."""
    from .segment import segment

    path = Path(path)
    planes = io.open_image(path)
    stack = planes[0].index is not None
    together = output.format == "tiff" and all(isinstance(p.image, np.ndarray) for p in planes)
    written: list[Path] = []
    tables: dict = {}
    segs = []
    for plane in planes:
        name = path.name if plane.index is None else f"{path.name}[{','.join(map(str, plane.index))}]"
        seg = segment(plane.image, vocabulary, model=model, options=options, progress=progress(name), client=client)
        if together:
            segs.append((plane, seg))
            continue
        target = output.labels_path(plane.index)
        written += seg.save(target, probabilities=probabilities, overlay=plane.image if overlay else None)
        tables[plane.index] = _read_table(target)
    if together:
        written += _write_stack(output.labels_path(), segs, stack, probabilities, overlay, options)
        tables[None] = _read_table(output.labels_path())
    return FileResult(written, tables)


def _read_table(labels_path: Path) -> ClassTable:
    return io.read_class_table(io.companion(labels_path, "classes"))


def _write_stack(target: Path, segs, stack: bool, probabilities: bool, overlay: bool, options: RunOptions) -> list[Path]:
    """In-memory planes as one (stacked) labels TIFF with the class table over all planes."""
    from .prepare import to_unit_range

    tally: Tally | None = None
    for _, seg in segs:
        tally = seg.tally() if tally is None else tally + seg.tally()
    seg = segs[-1][1]
    labels = np.stack([s.labels for _, s in segs]) if stack else seg.labels
    probs = None
    if probabilities:
        probs = np.stack([s.probabilities for _, s in segs], axis=1) if stack else seg.probabilities  # (K, Z, H, W)
    mid = segs[len(segs) // 2][0].image
    return io.write_result(
        target, labels, tally.table(seg.class_names, seg.vocabulary.classes, seg.vocabulary.background),
        class_names=seg.class_names, probabilities=probs,
        overlay=to_unit_range(mid, options.contrast_limits) if overlay else None,
    )  # fmt: skip
