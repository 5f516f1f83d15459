"""napari-sclip: open-vocabulary semantic segmentation with SCLIP (CLIP + correlative self-attention).

Public API: :func:`load_model`, :func:`segment`, :class:`Segmentation`, :class:`Vocabulary`,
:class:`SclipModel`. Importing the package is cheap; torch loads on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_LAZY = {
    "load_model": "model",
    "SclipModel": "model",
    "segment": "segment",
    "segment_steps": "segment",
    "Segmentation": "segment",
    "Progress": "segment",
    "Vocabulary": "vocabulary",
    "PAPER_BACKGROUND": "vocabulary",
}

__all__ = [
    "PAPER_BACKGROUND",
    "Progress",
    "SclipModel",
    "Segmentation",
    "Vocabulary",
    "__version__",
    "load_model",
    "segment",
    "segment_steps",
]

if TYPE_CHECKING:  # pragma: no cover
    from .model import SclipModel, load_model
    from .segment import Progress, Segmentation, segment, segment_steps
    from .vocabulary import PAPER_BACKGROUND, Vocabulary


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'napari_sclip' has no attribute {name!r}")
