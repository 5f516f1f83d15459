"""napari-sclip: open-vocabulary semantic segmentation with SCLIP (CLIP + correlative self-attention).

Public API: :func:`load_model`, :func:`segment`, :class:`Segmentation`, :class:`Vocabulary`,
:class:`SclipModel`, :class:`RunOptions`, :class:`ModelChoice`. Importing the package is cheap;
torch loads on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_LAZY = {
    "load_model": "weights",
    "SclipModel": "model",
    "segment": "segment",
    "segment_steps": "segment",
    "Segmentation": "result",
    "Progress": "steps",
    "Vocabulary": "vocabulary",
    "PAPER_BACKGROUND": "vocabulary",
    "RunOptions": "options",
    "ModelChoice": "options",
    "ClassTable": "stats",
}

__all__ = [
    "PAPER_BACKGROUND", "ClassTable", "ModelChoice", "Progress", "RunOptions", "SclipModel", "Segmentation",
    "Vocabulary", "__version__", "load_model", "segment", "segment_steps",
]  # fmt: skip

if TYPE_CHECKING:  # pragma: no cover
    from .model import SclipModel
    from .options import ModelChoice, RunOptions
    from .result import Segmentation
    from .segment import segment, segment_steps
    from .stats import ClassTable
    from .steps import Progress
    from .vocabulary import PAPER_BACKGROUND, Vocabulary
    from .weights import load_model


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'napari_sclip' has no attribute {name!r}")
