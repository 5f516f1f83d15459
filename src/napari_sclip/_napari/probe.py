"""The attention probe in the viewer (SCLIP Fig. 4), where the user clicked: SCLIP's last-block
attention of the clicked patch laid over the image (additive, so the image shows through where the
patch does not look), vanilla CLIP's on a second, hidden layer at the same place to flick between,
and a frame around the window the map was computed in, with the clicked point. The layers sit on
the clicked plane only, and are removed when the session's features change."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layers import RESULT_TAG, TOKEN_KEY, meta, transform_kwargs
from .session import Session
from .source import Plane

MODES = {"sclip": "SCLIP", "vanilla": "vanilla CLIP"}


@dataclass(frozen=True)
class ProbePoint:
    """A probed patch: the plane and the image pixel (y, x)."""

    plane: Plane
    y: float
    x: float


def probe_layers(viewer, session: Session) -> list:
    """The probe layers of a session in the viewer."""
    return [lay for lay in viewer.layers
            if lay.metadata.get(RESULT_TAG) == "probe" and lay.metadata.get(TOKEN_KEY) == session.token]  # fmt: skip


def clear(viewer, session: Session) -> None:
    """Remove a session's probe layers (stale after a run at another scale, or gone image)."""
    for layer in probe_layers(viewer, session):
        viewer.layers.remove(layer)


def frame(map_: np.ndarray) -> np.ndarray | None:
    """Corners (y0, x0), (y1, x1) of the window a map was computed in: where it is non-zero."""
    rows, cols = np.flatnonzero(map_.any(axis=1)), np.flatnonzero(map_.any(axis=0))
    if not rows.size:
        return None
    return np.array([[rows[0] - 0.5, cols[0] - 0.5], [rows[-1] + 0.5, cols[-1] + 0.5]])


def show(viewer, session: Session, point: ProbePoint, maps: dict[str, np.ndarray]) -> None:
    """Create or update the probe layers for ``maps`` (mode -> (H, W) attention)."""
    from napari.layers import Image, Shapes

    kw = transform_kwargs(session.reference, () if session.geometry.axis is None else (session.geometry.axis,),
                          plane=point.plane)  # fmt: skip
    lead = (1,) * len(point.plane)  # one plane: shown on the clicked plane only
    info = meta(session, "probe", point=(*point.plane, point.y, point.x))
    existing = {lay.metadata.get("mode"): lay for lay in probe_layers(viewer, session)}
    for mode, title in MODES.items():
        data = maps[mode].reshape(lead + maps[mode].shape)
        peak = float(np.max(data)) or 1.0
        layer = existing.get(mode)
        if layer is None:
            layer = Image(data, name=f"{session.name} attention ({title})", colormap="inferno",
                          blending="additive", visible=mode == "sclip", **kw)  # fmt: skip
            viewer.add_layer(layer)
        else:
            layer.data = data
        layer.contrast_limits = (0.0, peak)
        layer.metadata = {**info, "mode": mode}
    corners = frame(maps["sclip"])
    radius = max(1.5, session.geometry.shape[-1] / 100)
    dot = np.array([[point.y, point.x], [radius, radius]])  # an ellipse as (centre, radii)
    shapes = [np.hstack([np.zeros((2, len(point.plane))), c]) for c in ([corners] if corners is not None else []) + [dot]]
    kinds = ["rectangle"] * (len(shapes) - 1) + ["ellipse"]
    layer = existing.get("frame")
    if layer is None:
        layer = Shapes(shapes, shape_type=kinds, name=f"{session.name} probe", edge_color="cyan", face_color="transparent",
                       edge_width=max(1.0, session.geometry.shape[-1] / 300), **kw)  # fmt: skip
        viewer.add_layer(layer)
    else:
        layer.data = []
        layer.add(shapes, shape_type=kinds, edge_color="cyan", face_color="transparent")
    layer.metadata = {**info, "mode": "frame"}
