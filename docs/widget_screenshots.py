"""Make the README screenshots of the napari-sclip widget at work (PNG, under docs/images/).

Run under an X server: ``xvfb-run -a python docs/widget_screenshots.py``. Uses the tiny CLIP the
tests ship (it knows colour and texture words) through the widget's checkpoint field, on a
held-out synthetic scene, so the result shown is a real segmentation, not random weights. With
``--extra DIR`` it also shoots the states a reviewer checks (a colour-mode switch, an undo, the
probe, a score map, the widget with every section open at 1280 x 800) into DIR; with ``--large``
the large-image states (a 4800 x 4800 multiscale scene: the result over the store, an edit region,
a score map, a visible-region result) into docs/images/large_*.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

OUT = Path(__file__).with_name("images")


def wait(widget, app, timeout: float = 600.0) -> None:
    t0 = time.perf_counter()
    while widget.busy and time.perf_counter() - t0 < timeout:
        app.processEvents()
        time.sleep(0.01)
    for _ in range(30):
        app.processEvents()
        time.sleep(0.01)


def save_small(shot, path: Path, width: int) -> None:
    """Save a screenshot array as a palette PNG at most ``width`` px wide (small files)."""
    from PIL import Image

    img = Image.fromarray(shot[..., :3])
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    img.save(path, optimize=True)  # full colour: a palette would merge the legend's small swatches
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def shoot(viewer, app, path: Path, width: int = 1280) -> None:
    for _ in range(20):
        app.processEvents()
        time.sleep(0.01)
    save_small(viewer.screenshot(canvas_only=False, flash=False), path, width)


def open_widget(viewer, app):
    from napari_sclip._qt.widget import SclipWidget
    from napari_sclip.testing import tiny_clip_path

    widget = SclipWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Open-vocabulary segmentation", area="right")
    form = widget.panels.model.form
    form["checkpoint"].value = str(tiny_clip_path())
    form["device"].value = "cpu"
    return widget


def readme_shots(viewer, app, widget, scene) -> None:
    """widget.png (a result with its legend) and attention_probe.png (the probe over the image)."""
    widget.set_vocabulary("\n".join(scene.class_names), "")
    widget.set_options(short_side=None)  # native size: the tiny model was trained at this scale
    widget.run()
    widget.update_legend(wait=True)
    shoot(viewer, app, OUT / "widget.png")
    widget.set_options(short_side=128)  # two windows across: the probe map covers half the image
    widget.run()
    widget.labels_layer.visible = False
    h, w = scene.image.shape[:2]
    worker = widget.probe_attention(h * 0.3, w * 0.3)
    while worker.is_running or "scene probe" not in viewer.layers:
        app.processEvents()
        time.sleep(0.01)
    viewer.reset_view()
    shoot(viewer, app, OUT / "attention_probe.png")


def extra_shots(viewer, app, widget, folder: Path) -> None:
    """The fixed states of issue 8, for a reviewer's eyes (not committed)."""
    from napari_sclip._napari.samples import cells_timelapse

    folder.mkdir(parents=True, exist_ok=True)
    viewer.layers.clear()
    for section in widget.panels.sections.values():
        section.set_expanded(True)
    (nuc, nuc_meta, _), (cyto, cyto_meta, _) = cells_timelapse()
    a, b = viewer.add_image(nuc, **nuc_meta), viewer.add_image(cyto, **cyto_meta)
    widget.set_vocabulary("blue\ngreen", "black")  # words the tiny CLIP knows
    widget.set_options(short_side=None, window=64)
    widget.set_image(a, colour_from="channel_axis", channels=0)
    widget.run()
    widget.set_image(a, colour_from="layers", channels=(None, b, a), planes="all")
    widget.run()
    shoot(viewer, app, folder / "1_after_colour_switch.png")
    widget.set_threshold(0.9)
    wait(widget, app)
    widget.labels_layer.undo()
    widget.update_legend(wait=True)
    shoot(viewer, app, folder / "2_after_undo.png")
    widget.show_scores("green")
    viewer.dims.set_current_step(0, 2)
    shoot(viewer, app, folder / "3_score_map.png")
    widget.scores_layer.visible = False
    worker = widget.probe_attention(100, 120, (2,))
    while worker is not None and worker.is_running:
        app.processEvents()
        time.sleep(0.01)
    shoot(viewer, app, folder / "4_probe.png")
    widget.panels.scroll.verticalScrollBar().setValue(10_000)
    shoot(viewer, app, folder / "5_scrolled_to_results.png")


def large_shots(viewer, app, widget, extra: Path) -> None:
    """The large-image states: a 4800 x 4800 scene (a multiscale layer) segmented into a store,
    an edit region painted in, and a visible-region result (README, 960 px wide); the applied edit
    and a lazy score map into ``extra`` (for a reviewer's eyes)."""
    import numpy as np

    from napari_sclip.testing import make_scene

    scene = make_scene(11, size=4800, n_cells=40)
    levels = [scene.image[::f, ::f] for f in (1, 2, 4, 8)]
    viewer.layers.clear()
    image = viewer.add_image(levels, name="big scene", rgb=True, multiscale=True)
    widget.set_image(image)
    widget.set_vocabulary("\n".join(scene.class_names), "")
    widget.set_options(short_side=640)
    widget.run()
    widget.update_legend(wait=True)
    viewer.reset_view()
    shoot(viewer, app, OUT / "large_result.png", 960)
    camera = viewer.scene.camera
    camera.center, camera.zoom = (2400, 2400), 1.0
    edit = widget.edit_region()
    h, w = edit.data.shape[-2:]
    yy, xx = np.mgrid[0:h, 0:w]
    with edit.block_history():  # a thick diagonal stroke of the second class
        hit = np.abs((yy - h / 2) - (xx - w / 2) * 0.5) < 12
        edit.data_setitem(np.nonzero(hit), 2)
    edit.refresh()
    shoot(viewer, app, OUT / "large_edit_region.png", 960)
    widget.apply_edits()
    wait(widget, app)
    viewer.reset_view()
    extra.mkdir(parents=True, exist_ok=True)
    shoot(viewer, app, extra / "large_applied.png")
    widget.show_scores(scene.class_names[0])
    viewer.reset_view()
    shoot(viewer, app, extra / "large_score_map.png")
    widget.scores_layer.visible = False
    camera.center, camera.zoom = (1200, 3600), 0.5
    widget.set_image(image, region="visible")
    whole = widget.labels_layer
    widget.run()
    widget.update_legend(wait=True)
    whole.visible = False  # the region's result alone over the image
    viewer.reset_view()
    shoot(viewer, app, OUT / "large_visible_region.png", 960)


def main() -> None:
    import napari
    from qtpy.QtCore import QThreadPool
    from qtpy.QtWidgets import QApplication

    from napari_sclip.testing import make_scene

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seed", nargs="?", type=int, default=3)
    parser.add_argument("--extra", type=Path, default=None, help="also shoot the issue-8 states into this folder")
    parser.add_argument("--large", action="store_true", help="shoot the large-image states only")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    scene = make_scene(args.seed, size=320)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1280, 800)
    app = QApplication.instance()
    viewer.add_image(scene.image, name="scene", rgb=True)
    widget = open_widget(viewer, app)
    if args.large:
        large_shots(viewer, app, widget, args.extra or Path("large-shots"))
        viewer.close()
        QThreadPool.globalInstance().waitForDone(60_000)  # what napari.run() does at exit: workers end before Qt
        return
    readme_shots(viewer, app, widget, scene)
    if args.extra is not None:
        extra_shots(viewer, app, widget, args.extra)
    viewer.close()
    QThreadPool.globalInstance().waitForDone(60_000)  # what napari.run() does at exit: workers end before Qt


if __name__ == "__main__":
    main()
