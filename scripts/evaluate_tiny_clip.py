"""Held-out semantics of the committed tiny CLIP through the engine: sclip vs vanilla attention.

For ``--n`` held-out scenes (``napari_sclip.testing.make_scene``, seeds ``--first`` onwards) it runs
``napari_sclip.segment`` with the scene's own class names, the engine's default 80 templates, a window
equal to the model's input (64 px), stride half of it and no resizing, and prints the mean IoU
(accumulated over all scenes, per concept) and the pixel accuracy for each attention mode.

Usage::

    python scripts/evaluate_tiny_clip.py --n 50
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import napari_sclip
from napari_sclip.testing import CONCEPTS, TINY_CLIP_PATH, make_scene
from napari_sclip.testing.metrics import concept_ids, confusion_matrix, mean_iou, pixel_accuracy


def evaluate(
    model: napari_sclip.SclipModel,
    attention: str,
    seeds: range,
    size: int,
    stride: int | None,
) -> tuple[float, float, np.ndarray]:
    """Return (mIoU, pixel accuracy, confusion over 0..len(CONCEPTS)) for one attention mode."""
    n = len(CONCEPTS) + 1
    conf = np.zeros((n, n), np.int64)
    for seed in seeds:
        scene = make_scene(seed, size)
        seg = napari_sclip.segment(
            scene.image,
            scene.class_names,
            model=model,
            attention=attention,
            short_side=None,
            window=model.window,
            stride=stride,
        )
        pred = concept_ids(np.asarray(seg.labels), scene.class_names, CONCEPTS)
        conf += confusion_matrix(pred, concept_ids(scene.mask, scene.class_names, CONCEPTS), n)
    return mean_iou(conf), pixel_accuracy(conf), conf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=TINY_CLIP_PATH)
    parser.add_argument("--n", type=int, default=50, help="number of held-out scenes")
    parser.add_argument("--first", type=int, default=0, help="seed of the first scene")
    parser.add_argument("--size", type=int, default=128, help="scene side in pixels")
    parser.add_argument("--stride", type=int, default=None, help="window stride (default window/2)")
    parser.add_argument("--per-class", action="store_true", help="print per-concept IoU")
    args = parser.parse_args()

    model = napari_sclip.load_model(
        pretrained=str(args.model), name=None, device="cpu", precision="fp32"
    )
    stride = args.stride or model.window // 2
    seeds = range(args.first, args.first + args.n)
    print(
        f"model {args.model.name}, window {model.window}, stride {stride}, {args.n} scenes of {args.size} px"
    )
    for attention in ("sclip", "vanilla"):
        start = time.perf_counter()
        miou, acc, conf = evaluate(model, attention, seeds, args.size, stride)
        print(
            f"{attention:8s} mIoU {miou:.3f}  pixel accuracy {acc:.3f}  ({time.perf_counter() - start:.1f} s)"
        )
        if args.per_class:
            inter = np.diag(conf)[1:]
            union = conf.sum(0)[1:] + conf.sum(1)[1:] - inter
            print(
                "   ",
                "  ".join(
                    f"{c} {i / max(u, 1):.2f}"
                    for c, i, u in zip(CONCEPTS, inter, union, strict=True)
                ),
            )


if __name__ == "__main__":
    main()
