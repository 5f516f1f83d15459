"""The result layers: labels (class names as features, one palette colour per class) and the score
map, aligned with the image they came from. Built on the UI thread; napari imports stay lazy.

The score map shows ONE class at a time, with the labels' shape (no class axis: it never takes
over the dims sliders). Its data is a view of the cached probabilities (a dask stack of views for
stacks), never a copy.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np

from ..palette import class_colours
from .large import blank_levels, score_levels
from .session import Session
from .source import Plane

RESULT_TAG = "napari-sclip"  # metadata key: which of the plugin's layers this is
TOKEN_KEY = "napari-sclip session"  # metadata key: the session that wrote the layer


def features_table(names: Sequence[str]):
    """Features for a labels layer: ``index`` (label) and ``class`` (shown in the status bar)."""
    import pandas as pd

    return pd.DataFrame({"index": np.arange(len(names) + 1), "class": ["background", *names]})


def label_colormap(names: Sequence[str]):
    """A napari ``DirectLabelColormap``: label k gets its palette colour, 0 is clear."""
    from napari.utils.colormaps import DirectLabelColormap

    colours = class_colours(names)
    mapping: dict = {None: np.zeros(4, np.float32)}
    mapping.update({k: colours[k] for k in range(len(colours))})
    return DirectLabelColormap(color_dict=mapping)


def transform_kwargs(layer, dropped: Sequence[int] = (), last: int | None = None, plane: Plane = (),
                     corner: tuple[int, int] = (0, 0)) -> dict:  # fmt: skip
    """Keyword arguments that align a new layer with ``layer`` (scale, translate, rotate, shear,
    affine, units, axis labels), without its ``dropped`` axes; ``last=2`` keeps the two spatial
    axes only; ``plane`` shifts the leading axes to that plane (a one-plane layer), ``corner`` the
    rows and columns to that pixel (a region of the image)."""
    from napari.utils.transforms import Affine

    keep = [i for i in range(layer.ndim) if i not in dropped]
    if last is not None:
        keep = keep[-last:]
    physical = Affine(scale=layer.scale, translate=layer.translate, rotate=layer.rotate, shear=layer.shear)
    affine = Affine(affine_matrix=layer.affine.affine_matrix)
    if len(keep) != layer.ndim:
        physical, affine = physical.set_slice(keep), affine.set_slice(keep)
    translate = np.asarray(physical.translate, float)
    if plane or any(corner):
        offset = np.zeros(len(keep))
        offset[: len(plane)] = plane
        offset[-2:] += corner
        translate = translate + np.asarray(physical(offset)) - np.asarray(physical(np.zeros(len(keep))))
    shear = np.asarray(physical.shear)
    return {
        "scale": physical.scale, "translate": translate, "rotate": physical.rotate,
        "shear": shear if shear.ndim == 2 else None,  # napari gives a zero vector when diagonal
        "affine": affine.affine_matrix, "units": [str(layer.units[i]) for i in keep],
        "axis_labels": [str(layer.axis_labels[i]) for i in keep],
    }  # fmt: skip


def _aligned(session: Session) -> dict:
    geo = session.geometry
    return transform_kwargs(session.reference, () if geo.axis is None else (geo.axis,), corner=geo.corner)


#: Stores kept alive by their labels layer (a layer set aside by "new layer" keeps reading its own).
_STORES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def meta(session: Session, kind: str, **extra) -> dict:
    return {RESULT_TAG: kind, TOKEN_KEY: session.token, **extra}


def make_labels(session: Session):
    """An empty labels layer for the session's memory (its class names, colours, alignment); for a
    large result, the multiscale view of its store (read-only: edits go through an edit region)."""
    from napari.layers import Labels

    names, store = session.memory.names, session.store
    data = np.zeros(session.geometry.shape, session.memory.dtype) if store is None else store.levels()
    layer = Labels(
        data, name=f"{session.title} labels", features=features_table(names), colormap=label_colormap(names),
        opacity=0.6, metadata=meta(session, "labels"), multiscale=store is not None, **_aligned(session),
    )  # fmt: skip
    if store is not None:
        _STORES[layer] = store
    return layer


def restyle_labels(layer, names: Sequence[str]) -> bool:
    """New class names: extend the features table and the colours (old labels keep theirs);
    returns whether anything changed (napari then redraws the layer)."""
    if len(layer.features) == len(names) + 1:
        return False
    layer.features = features_table(names)
    layer.colormap = label_colormap(names)
    return True


def make_scores(session: Session):
    """A hidden score-map layer, all zeros until a class is shown (no memory used)."""
    from napari.layers import Image

    blank = np.broadcast_to(np.float32(0), session.geometry.shape)
    return Image(
        blank if session.store is None else blank_levels(session), multiscale=session.store is not None,
        name=f"{session.title} scores",
        colormap="inferno", contrast_limits=(0.0, 1.0), opacity=0.8, blending="translucent",
        visible=False, metadata=meta(session, "scores"), **_aligned(session),
    )  # fmt: skip


def score_map(session: Session, name: str):
    """The probability of class ``name`` over the session's planes: a view of the cache (2D), or
    a dask stack of views with zeros for planes without that class (stacks); for a large result, a
    lazy multiscale (:func:`.large.score_levels`)."""
    if session.store is not None:
        return score_levels(session, name)
    geo = session.geometry
    planes = geo.planes() if geo.plane_shape else [()]

    def view(plane):
        result = session.cache.get(plane)
        names = result.seg.class_names if result is not None else []
        return result.seg.probabilities[names.index(name)] if name in names else None

    if not geo.plane_shape:
        found = view(())
        return found if found is not None else np.broadcast_to(np.float32(0), geo.shape)
    import dask.array as da

    h, w = geo.shape[-2:]
    tiles = [view(p) for p in planes]
    stack = da.stack([da.zeros((h, w), np.float32, chunks=(h, w)) if t is None else da.from_array(t, chunks=(h, w))
                      for t in tiles])  # fmt: skip
    return stack.reshape(geo.shape)


def show_scores(layer, session: Session, name: str | None) -> None:
    """Point the score layer at class ``name`` (None: keep the shown class if it still exists)."""
    vocab = session.vocabulary()
    names = vocab.names if vocab is not None else []
    if name is None:
        name = session.scores_class if session.scores_class in names else (names[0] if names else None)
    if name is None:
        return
    session.scores_class = name
    layer.data = score_map(session, name)
    layer.name = f"{session.title} scores: {name}"
    layer.contrast_limits = (0.0, 1.0)
    layer.metadata = meta(session, "scores", **{"class": name})
