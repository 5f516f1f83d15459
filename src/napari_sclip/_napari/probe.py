"""The attention probe in the viewer (SCLIP Fig. 4), where the user clicked: SCLIP's last-block
attention of the clicked patch laid over the image (inferno, transparent where the patch does not
look, so the image shows through on dark and bright images alike), vanilla CLIP's on a second,
hidden layer at the same place to flick between, and a frame around the window the map was
computed in, with the clicked point. The layers sit on the clicked plane only, and are removed
when the session's features change."""

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


def corners(y0: float, x0: float, y1: float, x1: float) -> np.ndarray:
    """The four corners of a box, as napari's rectangles and ellipses take them in any dimension."""
    return np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], float)


def frame(map_: np.ndarray) -> np.ndarray | None:
    """The corners of the window a map was computed in: where it is non-zero."""
    rows, cols = np.flatnonzero(map_.any(axis=1)), np.flatnonzero(map_.any(axis=0))
    if not rows.size:
        return None
    return corners(rows[0] - 0.5, cols[0] - 0.5, rows[-1] + 0.5, cols[-1] + 0.5)


def see_through():
    """Inferno whose opacity grows with the value: no attention, no colour."""
    from napari.utils.colormaps import Colormap, ensure_colormap

    colours = np.array(ensure_colormap("inferno").colors, float)
    colours[:, 3] = np.clip(np.linspace(0.0, 1.6, len(colours)), 0.0, 0.9)
    return Colormap(colours, name="inferno, see-through")


def show(viewer, session: Session, point: ProbePoint, maps: dict[str, np.ndarray]) -> None:
    """Create or update the probe layers for ``maps`` (mode -> (H, W) attention)."""
    from napari.layers import Image, Shapes

    kw = transform_kwargs(session.reference, () if session.geometry.axis is None else (session.geometry.axis,),
                          plane=point.plane)  # fmt: skip
    lead = (1,) * len(point.plane)  # one plane: shown on the clicked plane only
    info = meta(session, "probe", point=(*point.plane, point.y, point.x))
    existing = {lay.metadata.get("mode"): lay for lay in probe_layers(viewer, session)}
    if any(tuple(lay.metadata.get("point", ())[:-2]) != point.plane for lay in existing.values()):
        clear(viewer, session)  # another plane: the layers sit elsewhere, make them anew
        existing = {}
    for mode, title in MODES.items():
        data = maps[mode].reshape(lead + maps[mode].shape)
        peak = float(np.max(data)) or 1.0
        layer = existing.get(mode)
        if layer is None:  # tagged from the start: the widget never offers it as an image to segment
            layer = Image(data, name=f"{session.name} attention ({title})", colormap=see_through(), blending="translucent",
                          visible=mode == "sclip", metadata={**info, "mode": mode}, **kw)  # fmt: skip
            viewer.add_layer(layer)
        else:
            layer.data = data
            layer.metadata = {**info, "mode": mode}
        layer.contrast_limits = (0.0, peak)
    box = frame(maps["sclip"])
    r = max(1.5, session.geometry.shape[-1] / 100)
    dot = corners(point.y - r, point.x - r, point.y + r, point.x + r)
    shapes = [np.hstack([np.zeros((4, len(point.plane))), c]) for c in ([box] if box is not None else []) + [dot]]
    kinds = ["rectangle"] * (len(shapes) - 1) + ["ellipse"]
    layer = existing.get("frame")
    if layer is None:
        layer = Shapes(shapes, shape_type=kinds, name=f"{session.name} probe", edge_color="cyan", face_color="transparent",
                       edge_width=max(1.0, session.geometry.shape[-1] / 300), metadata={**info, "mode": "frame"}, **kw)  # fmt: skip
        viewer.add_layer(layer)
    else:
        layer.data = []
        layer.add(shapes, shape_type=kinds, edge_color="cyan", face_color="transparent")
        layer.metadata = {**info, "mode": "frame"}
