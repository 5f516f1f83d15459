"""Measure the widget in a real napari viewer: every Qt event-loop stall of a first run into a fresh
viewer, a relabel, a re-score and a second run, on a large image.

Run under an X server: ``xvfb-run -a python benchmarks/widget_responsiveness.py``. A QTimer ticks
every 10 ms on the UI thread; the largest gap between two ticks is the longest stall a user would
feel. Each job is split into: the Run click itself (``click_ms``: the result layers are built then,
empty), the inference phase (worker running), the layer-update phase (results written into
layers) and what follows (repaints, legend), from the widget's ``last_timings`` stamps. Models:
``tiny`` (a random CLIP, fast) or ``vit-b-16`` (random ViT-B/16 weights: the compute of the default
model, no download). Prints a table; ``--json PATH`` also writes it.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import traceback

import numpy as np


def _stacks(main_only: bool) -> str:
    """Where the UI thread (or every other thread) is now."""
    main = threading.main_thread().ident
    frames = sys._current_frames().items()
    picked = [f for i, f in frames if (i == main) == main_only]
    return "\n".join("".join(traceback.format_stack(f)[-6:]) for f in picked)


class StallMeter:
    """Gaps between ticks of a 10 ms QTimer on the UI thread, with their end times."""

    def __init__(self, interval_ms: int = 10, explain_ms: float | None = None) -> None:
        from qtpy.QtCore import QTimer

        self.timer = QTimer(interval=interval_ms)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[tuple[float, float]] = []  # (end time, gap seconds)
        self.explain_ms = explain_ms
        self.explained: list[tuple[float, str]] = []
        self._last = time.perf_counter()
        self._sample: list[str] = []
        if explain_ms is not None:  # a watchdog samples the UI thread while it is stuck
            threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(0.02)
            try:
                active = self.timer.isActive()
            except RuntimeError:  # the application is shutting down
                return
            if active and (time.perf_counter() - self._last) * 1000 > self.explain_ms:
                self._sample.append(_stacks(main_only=True))

    def _tick(self) -> None:
        now = time.perf_counter()
        gap = now - self._last
        self._last = now
        self.gaps.append((now, gap))
        if self.explain_ms is not None and gap * 1000 > self.explain_ms:
            ui = self._sample[len(self._sample) // 2] if self._sample else "(not sampled)"
            self.explained.append((gap, "UI thread:\n" + ui + "\nothers:\n" + _stacks(main_only=False)))
        self._sample = []

    def start(self) -> None:
        self.gaps.clear()
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> None:
        self._tick()
        self.timer.stop()

    def max_ms(self, t0: float = -np.inf, t1: float = np.inf) -> float:
        """Largest gap (ms) that began at or after t0 and ended by t1: the work that blocked the UI
        thread ran then (the gap around the Run click itself is ``click_ms``)."""
        gaps = [g for end, g in self.gaps if end - g >= t0 - 1e-3 and end <= t1]
        return 1000 * max(gaps, default=0.0)


def build_model(kind: str, precision: str):
    """A random-weight model: ``tiny`` or the ViT-B/16 architecture."""
    import open_clip
    import torch

    from napari_sclip import SclipModel

    torch.manual_seed(0)
    if kind == "tiny":
        clip = open_clip.CLIP(
            embed_dim=32,
            vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=2, head_width=16),
            text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=1),
        )
    else:
        clip = open_clip.create_model("ViT-B-16", pretrained=None)
    return SclipModel.from_open_clip(clip, name=kind, precision=precision)


def big_image(size: int) -> np.ndarray:
    """The aerial sample scaled up to ``size`` x ``size`` (uint8 RGB)."""
    from napari_sclip._napari.samples import aerial_rgb

    base = aerial_rgb()[0][0]
    reps = -(-size // base.shape[0])
    return np.ascontiguousarray(np.kron(base, np.ones((reps, reps, 1), np.uint8))[:size, :size])


def wait(widget, app, timeout: float = 1800.0) -> float:
    """Process events until the widget's job (and its layer writes) end; return the wall time."""
    t0 = time.perf_counter()
    while widget.busy and time.perf_counter() - t0 < timeout:
        app.processEvents()
        time.sleep(0.002)
    return time.perf_counter() - t0


def settle(app, seconds: float = 0.3) -> None:
    """Let pending paints happen (they count as stalls too)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        app.processEvents()
        time.sleep(0.005)


def measured(widget, app, meter: StallMeter, start) -> dict[str, float]:
    """Run ``start()`` (a widget job), wait for it, and split its stalls by phase."""
    meter.start()
    t0 = time.perf_counter()
    start()
    clicked = time.perf_counter()
    wall = wait(widget, app) + (clicked - t0)
    settle(app)
    meter.stop()
    t = widget.last_timings
    return {
        "wall_s": wall,
        "click_ms": 1000 * (clicked - t0),
        "stall_max_ms": meter.max_ms(clicked),  # every stall after the click, whatever its phase
        "stall_inference_ms": meter.max_ms(clicked, t["write_start"]),
        "stall_layers_ms": meter.max_ms(t["write_start"] - 0.012, t["end"]),
        "stall_after_ms": meter.max_ms(t["end"] - 0.012),
        "layers_ms": 1000 * (t["end"] - t["write_start"]),
    }


def docked_widget(viewer, image, model, short_side: int):
    """The widget docked and set up as the measured user has it: ``image``, the LoveDA preset,
    ``short_side``, re-runs keeping edits."""
    from napari_sclip._qt.widget import SclipWidget

    widget = SclipWidget(viewer, model=model)
    viewer.window.add_dock_widget(widget)
    widget.set_image(image)
    widget.apply_preset("loveda")
    widget.set_options(short_side=short_side)
    widget.panels.results.edit_policy.value = "keep"
    return widget


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "vit-b-16"], default="vit-b-16")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--short-side", type=int, default=448)
    parser.add_argument("--json", default=None)
    parser.add_argument("--explain-ms", type=float, default=None, help="print stacks of stalls above this")
    parser.add_argument("--large", action="store_true", help="the large-image mode (widget_large.py): a lazily "
                        "generated multiscale scene (--size 16384), labels in a store, edit regions, panning")  # fmt: skip
    parser.add_argument("--scene-folder", default="/tmp", help="--large: where the scene's zarr pyramid is kept")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    if args.large:
        from widget_large import main as large_main

        if args.size <= 4096:  # the widget keeps results up to 4096 x 4096 in memory, not in a store
            sys.exit("--large needs --size above 4096 (results up to 4096 x 4096 are not stored on disk)")

        report(*large_main(args, build_model), path=args.json)
        return
    import napari
    from qtpy.QtCore import QThreadPool
    from qtpy.QtWidgets import QApplication

    model = build_model(args.model, args.precision)
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    image = viewer.add_image(big_image(args.size), name="aerial", rgb=True)
    widget = docked_widget(viewer, image, model, args.short_side)
    settle(app, 3.0)  # a user types words for a few seconds before the first Run
    meter = StallMeter(explain_ms=args.explain_ms)
    out: dict[str, object] = {
        "model": args.model,
        "precision": str(model.dtype).replace("torch.", ""),
        "image": f"{args.size}x{args.size} RGB",
        "short_side": args.short_side,
        "windows": widget.panels.hint.text(),
        "classes": len(widget.panels.vocabulary.vocabulary().classes),
    }

    first = measured(widget, app, meter, lambda: widget.run(wait=False))
    out.update({f"run1_{k}": v for k, v in first.items()})
    seg = widget.session.cache[()].seg
    batches = model.image_batches_run

    t = time.perf_counter()
    seg.relabel(threshold=0.5)
    out["relabel_engine_ms"] = 1000 * (time.perf_counter() - t)
    widget.set_threshold(0.5)
    relabel = measured(widget, app, meter, widget.refine)
    out.update({f"relabel_{k}": v for k, v in relabel.items()})

    vocab = widget.panels.vocabulary.vocabulary()
    t = time.perf_counter()
    seg.rescore(vocab.classes_text() + "swimming pool", vocab.background)  # one new phrase to embed
    out["rescore_engine_ms"] = 1000 * (time.perf_counter() - t)
    widget.set_vocabulary(vocab.classes_text() + "greenhouse", vocab.background_text())
    rescore = measured(widget, app, meter, lambda: widget.run(wait=False))
    out.update({f"rescore_{k}": v for k, v in rescore.items()})
    out["image_encoder_batches_during_refinement"] = model.image_batches_run - batches

    widget.set_options(short_side=args.short_side + 32)  # new scale: a full run over existing layers
    second = measured(widget, app, meter, lambda: widget.run(wait=False))
    out.update({f"run2_{k}": v for k, v in second.items()})
    viewer.close()
    QThreadPool.globalInstance().waitForDone(60_000)  # what napari.run() does at exit: workers end before Qt
    report(out, meter.explained, args.json)


def report(out: dict, explained=(), path: str | None = None) -> None:
    """Print the figures (and the stacks of explained stalls); write them as JSON to ``path``."""
    width = max(len(k) for k in out)
    for k, v in out.items():
        print(f"{k:<{width}}  {v:.1f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    for gap, stacks in explained:
        print(f"--- stall {1000 * gap:.0f} ms; other threads:\n{stacks}")
    if path:
        with open(path, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
