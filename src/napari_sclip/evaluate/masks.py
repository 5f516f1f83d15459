"""Ground-truth masks: read the stored values, turn them into label ids, refuse what cannot be one.

A PNG is read with Pillow as it is stored (a palette PNG gives its palette indices, as mmseg's
loader does, which is what PASCAL VOC's masks need); a TIFF with tifffile. A colour (RGB) mask is
mapped through the dataset's colour table; one whose three channels are equal is a grey mask.
Then ``reduce_zero_label`` (0 -> ignore, k -> k-1) when the dataset asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import TIFF_SUFFIXES


class MaskError(ValueError):
    """A mask cannot be read or holds values that are not labels of the class list."""


def read_mask(path: Path) -> np.ndarray:
    """The stored values: ``(H, W)`` integers, or ``(H, W, 3)`` for a colour mask."""
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            data = np.asarray(tifffile.imread(path))
        else:
            from PIL import Image

            with Image.open(path) as img:
                data = np.asarray(img)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's problem
        raise MaskError(f"could not read the mask {path.name} ({type(exc).__name__}: {exc})") from None
    if data.ndim == 3 and data.shape[-1] == 1:  # (H, W, 1)
        data = data[..., 0]
    elif data.ndim == 3 and data.shape[0] == 1 and data.shape[-1] not in (2, 3, 4):  # one TIFF page
        data = data[0]
    if data.ndim == 3 and data.shape[-1] in (2, 4):  # grey + alpha, RGBA: the alpha is not a label
        data = data[..., :1] if data.shape[-1] == 2 else data[..., :3]
        data = np.squeeze(data, axis=-1) if data.shape[-1] == 1 else data
    if data.ndim not in (2, 3) or (data.ndim == 3 and data.shape[-1] != 3):
        raise MaskError(f"the mask {path.name} has shape {data.shape}; expected one 2D label image")
    if not np.issubdtype(data.dtype, np.integer) and data.dtype != bool:
        if not np.all(np.mod(data, 1) == 0):
            raise MaskError(f"the mask {path.name} holds non-integer values ({data.dtype})")
    return data.astype(np.int64)


@dataclass(frozen=True)
class LabelRule:
    """How a dataset's stored masks become label ids ``0..n_classes-1`` plus ``ignore_index``."""

    n_classes: int
    reduce_zero_label: bool = False
    ignore_index: int = 255
    colours: dict[tuple[int, int, int], int] = field(default_factory=dict)  # RGB -> stored id
    colour_default: int | None = None  # stored id of an unlisted colour; None: refuse it

    def describe(self) -> dict:
        """The rule as plain values (part of the results' key)."""
        return {"classes": self.n_classes, "reduce_zero_label": self.reduce_zero_label,
                "ignore_index": self.ignore_index, "colour_default": self.colour_default,
                "colours": sorted([list(c), v] for c, v in self.colours.items())}  # fmt: skip

    def _from_colours(self, rgb: np.ndarray, name: str) -> np.ndarray:
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return rgb[..., 0]
        if not self.colours:
            raise MaskError(f"{name} is a colour mask, but this class list has no colour table; "
                            "give masks whose pixel values are the labels (0, 1, 2, ...).")  # fmt: skip
        code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        found, inverse = np.unique(code, return_inverse=True)
        table = {(r << 16) | (g << 8) | b: v for (r, g, b), v in self.colours.items()}
        ids = [table.get(int(c), self.colour_default) for c in found]
        unknown = [int(c) for c, v in zip(found, ids) if v is None]
        if unknown:
            shown = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in unknown[:5])
            raise MaskError(f"{name} has colours that are in no class's colour: {shown}")
        return np.asarray(ids, np.int64)[inverse.reshape(code.shape)]

    def labels(self, stored: np.ndarray, name: str) -> np.ndarray:
        """Label ids of a mask as read by :func:`read_mask`; raises :class:`MaskError`."""
        out = self._from_colours(stored, name) if stored.ndim == 3 else stored
        if self.reduce_zero_label:
            out = np.where(out == 0, self.ignore_index, np.where(out == self.ignore_index, out, out - 1))
        bad = np.unique(out[(out != self.ignore_index) & ((out < 0) | (out >= self.n_classes))])
        if bad.size:
            shift = " after reduce_zero_label (stored value - 1)" if self.reduce_zero_label else ""
            raise MaskError(
                f"{name} holds label(s) {', '.join(map(str, bad[:5].tolist()))}{shift}, but there are only "
                f"{self.n_classes} classes (labels 0..{self.n_classes - 1}, {self.ignore_index} = ignore)"
            )
        return out
