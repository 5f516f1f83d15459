"""Per-class statistics of a labelling (pixels, area fraction, mean probability), computed once here
for the API's class table, the widget's legend and every CSV file.

A :class:`Tally` counts one labelled plane (or block); tallies of several planes add up; a
:class:`ClassTable` names the counted labels and reads / writes the one CSV format.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

CSV_FIELDS = ("label", "class", "synonyms", "pixels", "fraction", "mean_probability")


def padded_channels(channels: np.ndarray, n: int) -> np.ndarray:
    """``channels`` (the probability channel of each label, -1: none) for ``n`` labels at least:
    label numbers beyond them (painted by hand) have none."""
    chan = np.full(max(n, len(channels)), -1, np.intp)
    chan[: len(channels)] = channels
    return chan


@dataclass(frozen=True)
class Tally:
    """Pixel count and summed winning probability per label value (index = label)."""

    counts: np.ndarray  # int64
    sums: np.ndarray  # float64; only labels with a probability channel contribute
    scored: np.ndarray  # bool: the label has a probability channel

    @classmethod
    def of(cls, labels: np.ndarray, probabilities: np.ndarray | None = None,
           channels: np.ndarray | None = None, n_labels: int = 0) -> Tally:  # fmt: skip
        """Count ``labels``; ``probabilities[channels[l]]`` is label l's probability map
        (``channels[l] = -1``: none). Without ``channels``, label l reads channel l."""
        labels = np.asarray(labels)
        n = max(int(labels.max(initial=0)) + 1, n_labels, 0 if channels is None else len(channels))
        counts = np.bincount(labels.ravel(), minlength=n).astype(np.int64)
        sums = np.zeros(n)
        scored = np.zeros(n, bool)
        if probabilities is not None:
            if channels is None:
                channels = np.arange(probabilities.shape[0])
            chan = padded_channels(channels, n)
            scored = chan >= 0
            pick = chan[labels]
            valid = pick >= 0
            if valid.any():
                p = np.take_along_axis(np.asarray(probabilities), np.clip(pick, 0, None)[None], axis=0)[0]
                sums = np.bincount(labels[valid], weights=p[valid], minlength=n)[:n]
        return cls(counts, sums, scored)

    def __add__(self, other: Tally) -> Tally:
        n = max(len(self.counts), len(other.counts))
        pad = lambda a, fill=0: np.concatenate([a, np.full(n - len(a), fill, a.dtype)])  # noqa: E731
        return Tally(pad(self.counts) + pad(other.counts), pad(self.sums) + pad(other.sums),
                     pad(self.scored, False) | pad(other.scored, False))  # fmt: skip

    def table(self, names: Sequence[str], synonyms: Sequence[Sequence[str]] = (),
              background: Sequence[str] = ()) -> ClassTable:  # fmt: skip
        """Rows for label 0 (background) and 1..len(names)."""
        n = len(names) + 1
        counts = np.zeros(n, np.int64)
        m = min(n, len(self.counts))
        counts[:m] = self.counts[:m]
        total = max(int(self.counts.sum()), 1)
        rows = []
        for k, name in enumerate(["background", *names]):
            syns = tuple(background) if k == 0 else tuple(synonyms[k - 1]) if k - 1 < len(synonyms) else (name,)
            scored = k < len(self.scored) and bool(self.scored[k]) and counts[k] > 0
            mean = float(self.sums[k] / counts[k]) if scored else math.nan
            rows.append(ClassRow(k, name, syns, int(counts[k]), float(counts[k] / total), mean))
        return ClassTable(tuple(rows))


@dataclass(frozen=True)
class ClassRow:
    """One label: its class name and synonyms, pixel count, area fraction, mean probability (NaN
    where unknown). Readable as a mapping too (``row["pixels"]``)."""

    label: int
    name: str
    synonyms: tuple[str, ...]
    pixels: int
    fraction: float
    mean_probability: float

    def __getitem__(self, key: str):
        return self.as_dict()[key]

    def as_dict(self) -> dict:
        return {"label": self.label, "class": self.name, "synonyms": ", ".join(self.synonyms),
                "pixels": self.pixels, "fraction": self.fraction, "mean_probability": self.mean_probability}  # fmt: skip


@dataclass(frozen=True)
class ClassTable:
    """The class table of a result: one :class:`ClassRow` per label, background first."""

    rows: tuple[ClassRow, ...]

    def __iter__(self) -> Iterator[ClassRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> ClassRow:
        return self.rows[index]

    def to_csv(self) -> str:
        """The CSV text: label, class, synonyms, pixels, fraction, mean_probability (6 decimals)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        for r in self.rows:
            mean = "" if math.isnan(r.mean_probability) else f"{r.mean_probability:.6f}"
            writer.writerow([r.label, r.name, ", ".join(r.synonyms), r.pixels, f"{r.fraction:.6f}", mean])
        return out.getvalue()

    @classmethod
    def from_csv(cls, text: str) -> ClassTable:
        """Read :meth:`to_csv` text back."""
        rows = []
        for r in csv.DictReader(io.StringIO(text)):
            syns = tuple(s.strip() for s in r["synonyms"].split(",") if s.strip())
            mean = float(r["mean_probability"]) if r["mean_probability"] else math.nan
            rows.append(ClassRow(int(r["label"]), r["class"], syns, int(r["pixels"]), float(r["fraction"]), mean))
        return cls(tuple(rows))
