"""Make the README screenshots of the napari-sclip widget at work (PNG, under docs/images/).

Run under an X server: ``xvfb-run -a python docs/widget_screenshots.py``. Uses the tiny CLIP the
tests ship (it knows colour and texture words) through the widget's checkpoint field, on a
held-out synthetic scene, so the result shown is a real segmentation, not random weights.
"""

from __future__ import annotations

import sys
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
    img.quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def main() -> None:
    import napari
    from napari_sclip._widget import SclipWidget
    from qtpy.QtWidgets import QApplication

    from napari_sclip.testing import make_scene, tiny_clip_path

    OUT.mkdir(parents=True, exist_ok=True)
    scene = make_scene(int(sys.argv[1]) if len(sys.argv) > 1 else 3, size=320)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1280, 860)
    app = QApplication.instance()
    viewer.add_image(scene.image, name="scene", rgb=True)
    widget = SclipWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Open-vocabulary segmentation", area="right")
    widget.model_name.setText("")
    widget.checkpoint.setText(str(tiny_clip_path()))
    widget.device_combo.setCurrentIndex(widget.device_combo.findData("cpu"))
    widget.set_vocabulary("\n".join(scene.class_names), "")
    widget.short_side.setValue(0)  # native size: the tiny model was trained at this scale
    widget.run()
    wait(widget, app)
    widget.update_legend(wait=True)
    app.processEvents()
    save_small(viewer.screenshot(canvas_only=False, flash=False), OUT / "widget.png", 1280)

    widget.short_side.setValue(128)  # two windows across: each probe map covers half the image
    widget.run()
    wait(widget, app)
    widget.labels_layer.visible = False
    h, w = scene.image.shape[:2]
    worker = widget.probe_attention(h * 0.3, w * 0.3)
    if worker is not None:
        while worker.is_running or "scene attention (vanilla)" not in viewer.layers:
            app.processEvents()
            time.sleep(0.01)
        wait(widget, app)
        viewer.reset_view()
        app.processEvents()
        save_small(viewer.screenshot(canvas_only=False, flash=False), OUT / "attention_probe.png", 1280)
    viewer.close()


if __name__ == "__main__":
    main()
