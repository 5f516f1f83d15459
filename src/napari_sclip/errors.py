"""Exceptions with messages meant for a person: what went wrong and what to do about it."""

from __future__ import annotations


class SclipError(Exception):
    """Base class of every error napari-sclip raises on purpose."""


class WeightsUnavailableError(SclipError):
    """Pretrained weights are neither cached nor downloadable (offline machine, firewall...)."""


class CheckpointError(SclipError):
    """A local checkpoint file cannot be read or is not a CLIP model."""


class UnsupportedModelError(SclipError):
    """The model architecture cannot run dense SCLIP inference (not an open_clip ViT)."""


class VocabularyError(SclipError, ValueError):
    """The vocabulary is empty, has an empty class or repeats a phrase."""


class OptionsError(SclipError, ValueError):
    """A run or model option is out of range or of the wrong kind (found before any work starts)."""


class InputImageError(SclipError, ValueError):
    """The image cannot be segmented as given (wrong shape, no pixels...)."""


class Cancelled(SclipError):
    """The run was cancelled by the caller's ``cancel()`` callback between two window batches."""


class NumericalError(SclipError):
    """The computation produced non-finite numbers; the result is refused rather than returned."""


class ResourceError(SclipError):
    """A run would need more memory than the machine has free; nothing was allocated."""
