"""The napari dock widget: everything that imports Qt (qtpy, magicgui, superqt) lives here.

One small part per file (sections, panels, the legend, the run bar), composed by a thin
controller (:mod:`.widget`); the logic they show lives in :mod:`napari_sclip._napari`.
"""

from .widget import SclipWidget

__all__ = ["SclipWidget"]
