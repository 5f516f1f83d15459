"""Class statistics of a labels layer, through :class:`~napari_sclip.stats.Tally` only, so the
legend and every exported CSV agree. Only segmented planes count; the user's edits count (the
labels are read from the layer); a painted class without a probability map has no confidence.

:func:`count_inputs` takes views on the UI thread; :func:`tally` may run in a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..palette import class_colours
from ..stats import ClassTable, Tally
from ..vocabulary import Vocabulary
from .session import Session


@dataclass(frozen=True)
class CountInput:
    """One segmented plane: the layer's labels, the result's probabilities ``(K + 1, H, W)``
    (channel 0: background words; or a function giving them, called where the count runs: an
    in-memory result computes them on first use), and the channel of each layer label (-1: none)."""

    labels: np.ndarray
    probs: Any
    channels: np.ndarray


@dataclass(frozen=True)
class LegendRow:
    """One class in the legend (``fraction`` and ``confidence`` may be NaN when unknown)."""

    label: int
    name: str
    colour: np.ndarray  # RGBA 0..1
    fraction: float
    confidence: float
    visible: bool = True


def channels_of(memory, seg) -> np.ndarray:
    """The probability channel of each layer label in a result (-1: none)."""
    lut = memory.lut(seg.class_names)
    channels = np.full(len(memory.names) + 1, -1, np.intp)
    channels[lut[1:]] = np.arange(1, len(lut))
    channels[0] = 0 if seg.vocabulary.background else -1
    return channels


def count_inputs(session: Session) -> list[CountInput]:
    """Per cached plane, in plane order: views of the layer's labels and the result (UI thread);
    a large result's at a coarse pyramid level (see :mod:`.large`)."""
    if session.store is not None:
        from .large import count_inputs as large_inputs

        return large_inputs(session, lambda seg: channels_of(session.memory, seg))
    data = session.labels.data
    segs = [(plane, session.cache[plane].seg) for plane in sorted(session.cache)]
    return [CountInput(data[plane], lambda seg=seg: seg.all_probabilities, channels_of(session.memory, seg)) for plane, seg in segs]


#: Rows counted at once: short numpy calls, so a counting thread never holds the GIL for long.
BAND_ROWS = 256


def tally(inputs: Sequence[CountInput], band_rows: int | None = BAND_ROWS) -> Tally | None:
    """The planes' tallies added up (None without planes). The legend counts row band by row band;
    files count whole planes (``band_rows=None``), summing exactly as the engine's own table does."""
    total = None
    for item in inputs:
        probs = item.probs() if callable(item.probs) else item.probs
        step = band_rows or item.labels.shape[0]
        if hasattr(probs, "chunks"):  # lazy probabilities: whole chunks at a time
            step = max(step, probs.chunks[1][0])
        for r0 in range(0, item.labels.shape[0], step):
            rows = slice(r0, r0 + step)
            t = Tally.of(np.asarray(item.labels[rows]), probs[:, rows], item.channels)
            total = t if total is None else total + t
    return total


def class_table(names: Sequence[str], vocabulary: Vocabulary | None, counted: Tally) -> ClassTable:
    """The class table of a layer's classes (``names`` in label order; synonyms and background
    words from ``vocabulary``, the newest)."""
    synonyms = {syns[0]: syns for syns in vocabulary.classes} if vocabulary is not None else {}
    background = vocabulary.background if vocabulary is not None else ()
    return counted.table(names, [synonyms.get(n, (n,)) for n in names], background)


def legend_rows(names: Sequence[str], vocabulary: Vocabulary | None, hidden, table: ClassTable) -> list[LegendRow]:
    """The classes of the newest vocabulary, and painted classes no longer in it."""
    current = set(vocabulary.names) if vocabulary is not None else set()
    colours = class_colours(names)
    rows = []
    for row in table.rows[1:]:
        if row.name in current or row.pixels:
            rows.append(LegendRow(row.label, row.name, colours[row.label], row.fraction, row.mean_probability,
                                  row.name not in hidden))  # fmt: skip
    return rows
