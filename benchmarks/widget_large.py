"""The large-image mode of ``widget_responsiveness.py`` (``--large``): every event-loop stall while a
user works on a 16k x 16k RGB scene shown as a lazily generated multiscale layer.

Steps: the first run (the engine reads the pyramid level that covers the inference size; the labels
go into the result's store chunk by chunk in the worker), a relabel, a re-score, opening an edit
region, painting in it and applying it, panning over the lazy labels and over a lazy score map, and a
visible-region run. Each is reported as its wall time and its longest stall (the click included).
"""

from __future__ import annotations

import time

import numpy as np


def lazy_pyramid(size: int, chunk: int = 1024, levels: int = 7) -> list:
    """A ``size`` x ``size`` RGB uint8 scene as dask levels, each generated block by block from its
    coordinates (level i: every 2**i-th pixel of level 0), nothing held in memory."""
    import dask.array as da

    def level(step: int):
        n = -(-size // step)

        def block(block_info=None):
            (y0, y1), (x0, x1), _ = block_info[None]["array-location"]
            yy, xx = (np.mgrid[y0:y1, x0:x1] * step).astype(np.float32)
            fields = (np.sin(xx / 797.0) + np.cos(yy / 1131.0) > 0).astype(np.float32)
            water = np.hypot(yy - size * 0.3, xx - size * 0.6) < size * 0.12
            roads = ((xx % 2701) < 40) | ((yy % 3187) < 40)
            rgb = np.stack([90 + 80 * fields, 110 + 60 * fields, 70 + 20 * np.cos(xx / 41.0)], axis=-1)
            rgb[water] = (40, 70, 160)
            rgb[roads] = 150
            noise = np.random.default_rng(y0 * 7919 + x0 + step).normal(0, 6, rgb.shape)
            return np.clip(rgb + noise, 0, 255).astype(np.uint8)

        chunks = (tuple(min(chunk, n - s) for s in range(0, n, chunk)),) * 2 + ((3,),)
        return da.map_blocks(block, chunks=chunks, dtype=np.uint8, meta=np.empty((0, 0, 0), np.uint8))

    return [level(2**i) for i in range(levels)]


def scene_store(size: int, folder: str) -> list:
    """The scene of :func:`lazy_pyramid` written once to a zarr pyramid under ``folder`` (reused by
    later runs), opened as zarr arrays: panning then reads stored chunks, as a real scene would."""
    import os

    import zarr

    path = os.path.join(folder, f"scene-{size}.zarr")
    levels = lazy_pyramid(size)
    if not os.path.isdir(os.path.join(path, str(len(levels) - 1))):
        for i, level in enumerate(levels):
            level.rechunk((512, 512, 3)).to_zarr(path, component=str(i), overwrite=True, zarr_format=2)
    group = zarr.open_group(path, mode="r")
    return [group[str(i)] for i in range(len(levels))]


def timed(meter, app, action, settle_s: float = 0.3, widget=None) -> dict:
    """Run ``action()`` (and the job it starts), then let paints happen; wall time and largest stall."""
    from widget_responsiveness import settle, wait

    meter.start()
    t0 = time.perf_counter()
    action()
    clicked = time.perf_counter()
    if widget is not None:
        wait(widget, app)
    settle(app, settle_s)
    meter.stop()
    return {"wall_s": time.perf_counter() - t0, "click_ms": 1000 * (clicked - t0), "stall_max_ms": meter.max_ms(clicked)}


def pan(viewer, app, meter, steps: int = 6) -> dict:
    """Pan across the view ``steps`` times (half a canvas each), waiting for each draw."""
    from widget_responsiveness import settle

    camera = viewer.scene.camera
    meter.start()
    t0 = time.perf_counter()
    for _ in range(steps):
        centre = list(camera.center)
        centre[-1] += viewer.canvas.size[1] / 2 / camera.zoom
        camera.center = tuple(centre)
        settle(app, 0.4)
    meter.stop()
    return {"wall_s": time.perf_counter() - t0, "stall_max_ms": meter.max_ms()}


def paint_and_apply(widget, viewer, app, meter) -> dict:
    """Open an edit region, paint ten dabs through the layer's undoable API, apply."""
    out = {f"open_{k}": v for k, v in timed(meter, app, widget.edit_region).items()}
    layer = viewer.layers.selection.active

    def strokes():
        h, w = layer.data.shape[-2:]
        for i in range(10):
            layer.paint((h // 2, w // 4 + 20 * i), 2)  # a brush dab, in the edit layer's data coordinates

    out.update({f"paint_{k}": v for k, v in timed(meter, app, strokes).items()})
    out.update({f"apply_{k}": v for k, v in timed(meter, app, lambda: widget.apply_edits(wait=False), 1.0).items()})
    return out


def main(args, build_model) -> tuple[dict, list]:
    import napari
    from qtpy.QtCore import QThreadPool
    from qtpy.QtWidgets import QApplication
    from widget_responsiveness import StallMeter, docked_widget, settle

    model = build_model(args.model, args.precision)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1280, 800)
    app = QApplication.instance()
    image = viewer.add_image(scene_store(args.size, args.scene_folder), name="scene", rgb=True, multiscale=True)
    widget = docked_widget(viewer, image, model, args.short_side)
    settle(app, 3.0)
    meter = StallMeter(explain_ms=args.explain_ms)
    out: dict[str, object] = {"mode": "large", "model": args.model, "image": f"{args.size}x{args.size} RGB, 7 lazy levels",
                              "short_side": args.short_side, "windows": widget.panels.hint.text()}  # fmt: skip
    run = lambda: widget.run(wait=False)  # noqa: E731
    out.update({f"run1_{k}": v for k, v in timed(meter, app, run, widget=widget).items()})
    out["store_MB"] = widget.session.store.nbytes_on_disk / 1e6
    widget.set_threshold(0.5)
    out.update({f"relabel_{k}": v for k, v in timed(meter, app, widget.refine, widget=widget).items()})
    vocab = widget.panels.vocabulary.vocabulary()
    widget.set_vocabulary(vocab.classes_text() + "greenhouse", vocab.background_text())
    out.update({f"rescore_{k}": v for k, v in timed(meter, app, run, widget=widget).items()})
    camera = viewer.scene.camera
    camera.center, camera.zoom = (args.size * 0.3, args.size * 0.55), 1.0  # one screen of level 0
    settle(app, 1.0)
    out.update(paint_and_apply(widget, viewer, app, meter))
    out.update({f"pan_labels_{k}": v for k, v in pan(viewer, app, meter).items()})
    widget.show_scores(widget.session.memory.names[0])
    settle(app, 1.0)
    out.update({f"pan_scores_{k}": v for k, v in pan(viewer, app, meter).items()})
    widget.scores_layer.visible = False
    camera.center, camera.zoom = (args.size * 0.5, args.size * 0.5), 0.25  # a quarter of level 0's resolution
    settle(app, 1.0)
    widget.set_image(image, region="visible")
    out.update({f"visible_{k}": v for k, v in timed(meter, app, run, widget=widget).items()})
    viewer.close()
    QThreadPool.globalInstance().waitForDone(60_000)  # what napari.run() does at exit: workers end before Qt
    return out, meter.explained
