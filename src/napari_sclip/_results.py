"""Finished results into napari layers, on the UI thread, in pieces short enough that the event
loop keeps breathing (large label updates are written over several turns as ONE undo step)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, QTimer

from . import _layers
from ._legend import LegendRow
from ._session import Cached, Session
from ._source import Plane

#: Pixels written per event-loop turn (a few tens of ms of napari's ``data_setitem`` + repaint).
CHUNK_PIXELS = 400_000
RESULT_TAG = "napari-sclip"  # metadata key marking the layers this plugin made

Turn = Callable[[Callable[[], None]], None]


def run_in_turns(turns: list[Turn], on_done: Callable[[], None], on_error: Callable[[BaseException], None]) -> None:
    """Run ``turns`` one per event-loop turn; each receives a continuation to call when done."""

    def go(i: int) -> None:
        if i == len(turns):
            on_done()
            return
        try:
            turns[i](lambda: QTimer.singleShot(0, lambda: go(i + 1)))
        except Exception as exc:  # noqa: BLE001 - reported to the user by on_error
            on_error(exc)

    QTimer.singleShot(0, lambda: go(0))


def sync(fn: Callable[[], Any]) -> Turn:
    """A turn that runs ``fn`` and continues."""

    def turn(then: Callable[[], None]) -> None:
        fn()
        then()

    return turn


class ChunkedWrite(QObject):
    """Write result planes into a labels layer over several event-loop turns, one row band per
    turn, inside one ``block_history()`` (one undo step). Painting is paused meanwhile (the layer
    goes to pan/zoom mode and back) so that no stroke mixes into the update."""

    def __init__(self, layer, memory, planes: dict, then: Callable[[], None], on_error) -> None:
        super().__init__()
        self.layer, self.memory, self.planes = layer, memory, planes
        self.then, self.on_error = then, on_error
        height, width = layer.data.shape[-2:]
        self._bands = iter(_layers.bands(planes, height, CHUNK_PIXELS // max(width, 1)))
        self._history = layer.block_history()
        self._mode = layer.mode
        layer.mode = "pan_zoom"
        memory.writing = True
        self._history.__enter__()
        QTimer.singleShot(0, self._step)

    def _step(self) -> None:
        try:
            region = next(self._bands)
        except StopIteration:
            self._close(None)
            return
        try:
            _layers.write_region(self.layer, self.memory, region, self.planes[region[:-1]][region[-1]])
        except Exception as exc:  # noqa: BLE001 - closes the undo group, then reports
            self._close(exc)
            return
        QTimer.singleShot(0, self._step)

    def _close(self, exc: BaseException | None) -> None:
        try:
            if exc is None:
                self._history.__exit__(None, None, None)
            else:
                self._history.__exit__(type(exc), exc, exc.__traceback__)
        finally:
            self.memory.writing = False
        self.layer.mode = self._mode
        if exc is None:
            self.then()
        else:
            self.on_error(exc)


def write_labels_turn(
    viewer, session: Session, planes: dict[Plane, np.ndarray], keep: list, on_error: Callable[[BaseException], None]
) -> Turn:
    """The turn that creates the labels layer, or writes ``planes`` into it (in bands if large)."""

    def turn(then: Callable[[], None]) -> None:
        from napari.layers import Labels

        memory, source = session.memory, session.source
        if session.labels_layer is None:
            data = _layers.new_labels_data(memory, planes)
            layer = Labels(
                data, name=f"{source.name} labels", features=_layers.features_table(memory.names),
                colormap=_layers.label_colormap(memory.names), opacity=0.6,
                metadata={RESULT_TAG: "class labels"}, **_layers.transform_kwargs(source),
            )  # fmt: skip
            viewer.add_layer(layer)
            session.labels_layer = layer  # our object: napari may hand widgets a proxy viewer
            then()
            return
        layer = session.labels_layer
        if layer.data.dtype != memory.dtype:  # more than 255 classes: widen (rare)
            layer.data = np.asarray(layer.data).astype(memory.dtype)
        if len(layer.features) != len(memory.names) + 1:
            layer.features = _layers.features_table(memory.names)
            layer.colormap = _layers.label_colormap(memory.names)
        if sum(p.size for p in planes.values()) <= CHUNK_PIXELS:
            _layers.write_planes(layer, memory, planes)
            then()
        else:
            keep.append(ChunkedWrite(layer, memory, planes, then, on_error))

    return turn


def scores_turn(viewer, session: Session, results: dict[Plane, Cached]) -> Turn:
    """The turn that shows the per-class probabilities (one image layer, class axis first)."""
    return sync(lambda: write_scores(viewer, session, results))


def write_scores(viewer, session: Session, results: dict[Plane, Cached]) -> None:
    """Per-class probabilities as one image layer with a leading class axis. A 2D image's layer
    shows the result's own array (no copy); a stack's layer gets each plane copied in."""
    from napari.layers import Image

    source = session.source
    names = tuple(next(iter(results.values())).seg.class_names)
    layer = session.scores_layer
    shape = (len(names), *source.shape)
    alive = layer is not None and layer in viewer.layers
    if not source.plane_shape:
        data = results[()].seg.probabilities
    elif alive and session.scores_classes == names and tuple(layer.data.shape) == shape:
        data = layer.data
        for plane, c in results.items():
            data[(slice(None), *plane)] = c.seg.probabilities
    else:
        data = np.zeros(shape, np.float32)  # pages stay untouched (free) for planes never run
        for plane, c in session.cache.items():
            if tuple(c.seg.class_names) == names:
                data[(slice(None), *plane)] = c.seg.probabilities
    session.scores_classes = names
    meta = {"classes": list(names), RESULT_TAG: "class probabilities, axis 0 = class"}
    if alive:
        if _same_memory(layer.data, data):
            if source.plane_shape:
                layer.refresh()  # planes were copied in place
        else:
            layer.data = data
            layer.contrast_limits = (0.0, 1.0)
        layer.metadata = meta
        return
    layer = Image(
        data, name=f"{source.name} scores", colormap="inferno", contrast_limits=(0.0, 1.0),
        opacity=0.7, blending="translucent", visible=False, metadata=meta,
        **_layers.transform_kwargs(source, class_axis=True),
    )  # fmt: skip
    viewer.add_layer(layer)
    session.scores_layer = layer


def _same_memory(a, b) -> bool:
    """Whether two arrays are the same view of the same buffer (nothing to update)."""
    a, b = np.asarray(a), np.asarray(b)
    return (
        a.shape == b.shape and a.strides == b.strides
        and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    )  # fmt: skip


def warm_up_layers() -> None:
    """Build (and drop) a tiny labels layer once, so napari's one-time imports and registries
    are paid when the widget opens rather than when the first result arrives."""
    from napari.layers import Labels

    Labels(np.zeros((2, 2), np.uint8), features=_layers.features_table(["a"]), colormap=_layers.label_colormap(["a"]))


def legend_inputs(session: Session) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]]:
    """(labels plane, probabilities, lut, class names) per cached plane, taken on the UI thread."""
    data = session.labels_layer.data
    return [
        (data[plane], c.seg.probabilities, session.memory.lut(c.seg.class_names), c.seg.class_names)
        for plane, c in session.cache.items()
    ]


def legend_rows(names: list[str], inputs, hidden: set[str]) -> list[LegendRow]:
    """Legend rows from :func:`legend_inputs` (safe to run in a worker thread): classes of the
    current vocabulary, plus painted classes that are no longer in it."""
    n = len(names) + 1
    counts, sums = np.zeros(n, np.int64), np.zeros(n)
    total = 0
    current: list[str] = []
    for labels, probs, lut, class_names in inputs:
        cnt, sm = _layers.class_statistics(labels, probs, lut)
        m = min(n, len(cnt))
        counts[:m] += cnt[:m]
        sums[:m] += sm[:m]
        total += labels.size
        current = class_names
    rows = []
    for k, name in enumerate(names, start=1):
        if name not in current and counts[k] == 0:
            continue
        frac = counts[k] / total if total else float("nan")
        conf = sums[k] / counts[k] if counts[k] and name in current else float("nan")
        rows.append(LegendRow(k, name, _layers.class_colour(name, k), frac, conf, name not in hidden))
    return rows


def show_probe(viewer, session: Session, point: tuple[float, float], maps) -> None:
    """SCLIP Fig. 4 in the viewer: the image, then SCLIP's attention map of the probed patch,
    then vanilla CLIP's, side by side to the right of the image; the point is marked in each."""
    from napari.layers import Image, Points

    source = session.source
    kw = _layers.transform_kwargs(source, last=2)
    width = source.shape[-1] * float(np.asarray(kw["scale"])[-1])
    shifts = {"SCLIP": 1.04 * width, "vanilla": 2.08 * width}
    meta = {RESULT_TAG: f"attention probe at (y, x) = ({point[0]:.0f}, {point[1]:.0f})"}
    for (mode, shift), data in zip(shifts.items(), maps):
        name = f"{source.name} attention ({mode})"
        peak = float(np.max(data)) or 1.0
        if name in viewer.layers:
            layer = viewer.layers[name]
            layer.data = data
            layer.contrast_limits = (0.0, peak)
            layer.metadata = meta
        else:
            shifted = dict(kw, translate=np.asarray(kw["translate"], float) + [0.0, shift])
            viewer.add_layer(
                Image(data, name=name, colormap="inferno", contrast_limits=(0.0, peak),
                      metadata=meta, **shifted)  # fmt: skip
            )
    marks = np.array([[point[0], point[1] + s / float(np.asarray(kw["scale"])[-1])] for s in (0.0, *shifts.values())])
    name = f"{source.name} probe point"
    size = max(3.0, 0.03 * source.shape[-1])
    if name in viewer.layers:
        viewer.layers[name].data = marks
    else:
        pkw = {k: kw[k] for k in ("scale", "translate", "rotate", "shear", "affine", "units", "axis_labels")}
        viewer.add_layer(
            Points(marks, name=name, size=size, face_color="cyan", border_color="black",
                   metadata=meta, **pkw)  # fmt: skip
        )
