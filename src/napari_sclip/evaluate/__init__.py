"""Evaluation against ground-truth masks: mmseg's IoU metric, mask reading, image/mask pairing."""

from __future__ import annotations

from .metric import Counts, Scores
from .pairs import Pair, Pairing, pair_folders

__all__ = ["Counts", "Pair", "Pairing", "Scores", "pair_folders"]
