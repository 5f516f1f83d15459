"""Evaluation against ground-truth masks: mmseg's IoU metric, benchmark layouts as data, resumable runs.

``napari-sclip evaluate`` (:mod:`.command`) drives it; the pieces are usable from Python:
:class:`Counts` / :class:`Scores` (the metric), :func:`load_dataset` / :func:`dataset_names` (the
bundled benchmark definitions), :func:`method_names` (the methods whose published settings are
bundled), :func:`pair_folders` (pairing your own images and masks).
"""

from __future__ import annotations

from .datasets import Dataset, dataset_names, load_dataset, method_names
from .metric import Counts, Scores
from .pairs import Pair, Pairing, pair_folders

__all__ = ["Counts", "Dataset", "Pair", "Pairing", "Scores", "dataset_names", "load_dataset", "method_names",
           "pair_folders"]  # fmt: skip
