"""Engine benchmark: napari-sclip against a sequential pipeline run the way the official code runs.

Both run in this process, side by side, on ViT-B/16 with random weights (no download), a
672 x 896 image and 20 classes, with empty caches. The sequential reference encodes the 80
templates per class with the padded 77-token context, then runs one window at a time, all fp32.

    python benchmarks/bench_engine.py            # prints a table of figures
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from napari_sclip import SclipModel, segment
from napari_sclip.attention import get_mode
from napari_sclip.encoder import dense_features
from napari_sclip.prepare import inference_size, to_unit_range
from napari_sclip.templates import imagenet_templates
from napari_sclip.tiling import window_grid

CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "table", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa", "train", "monitor",
]  # fmt: skip
OTHER = "bicycle lane"  # replaces one class in the re-score measurement


def test_image(h: int = 672, w: int = 896, seed: int = 0) -> np.ndarray:
    """A smooth synthetic RGB image with regions and texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.zeros((h, w, 3))
    for _ in range(12):
        cy, cx, r = rng.random(3)
        blob = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (0.02 + 0.05 * r)))
        img += blob[..., None] * rng.random(3)
    img += 0.05 * rng.standard_normal(img.shape)
    return (255 * (img - img.min()) / np.ptp(img)).astype(np.uint8)


@torch.inference_mode()
def sequential_reference(clip, image: np.ndarray, classes: list[str], short_side: int = 336) -> np.ndarray:
    """The official code's order of work in fp32: per class 80 padded prompts, windows one by one."""
    tokenizer = open_clip.get_tokenizer("ViT-B-16")
    text = []
    for name in classes:
        feats = clip.encode_text(tokenizer([t.format(name) for t in imagenet_templates()]))
        feats = F.normalize(feats, dim=-1).mean(0)
        text.append(feats / feats.norm())
    text = torch.stack(text)
    unit = torch.from_numpy(to_unit_range(image)).permute(2, 0, 1)[None]
    size = inference_size(*image.shape[:2], short_side)
    unit = F.interpolate(unit, size=size, mode="bilinear", align_corners=False)[0]
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN)[:, None, None]
    pixels = (unit - mean) / torch.tensor(open_clip.OPENAI_DATASET_STD)[:, None, None]
    preds = torch.zeros(len(classes), *size)
    count = torch.zeros(1, *size)
    for b in window_grid(*size, 224, 112):
        crop = pixels[None, :, b.y0 : b.y1, b.x0 : b.x1]
        feats = dense_features(clip.visual, crop, get_mode("sclip"))[0]
        logits = (feats @ text.T).permute(2, 0, 1)[None]
        logits = F.interpolate(logits, size=(b.y1 - b.y0, b.x1 - b.x0), mode="bilinear", align_corners=False)
        preds += F.pad(logits, (b.x0, size[1] - b.x1, b.y0, size[0] - b.y1))[0]
        count[:, b.y0 : b.y1, b.x0 : b.x1] += 1
    logits = F.interpolate((preds / count)[None], size=image.shape[:2], mode="bilinear", align_corners=False)[0]
    return torch.softmax(40 * logits, 0).numpy()


def agreement(labels: np.ndarray, ref_probs: np.ndarray) -> tuple[float, float]:
    """Label agreement on all pixels and on the decisive tenth (largest top-two probability gap)."""
    ref = ref_probs.argmax(0) + 1
    top2 = np.sort(ref_probs, axis=0)[-2:]
    gap = top2[1] - top2[0]
    decisive = gap >= np.quantile(gap, 0.9)
    same = labels == ref
    return float(same.mean()), float(same[decisive].mean())


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    clip = open_clip.create_model("ViT-B-16", pretrained=None, force_quick_gelu=True).eval()
    image = test_image()
    print(f"ViT-B/16 random weights, image {image.shape[1]}x{image.shape[0]}, {len(CLASSES)} classes, "
          f"{torch.get_num_threads()} threads")  # fmt: skip

    ref, t_ref = timed(lambda: sequential_reference(clip, image, CLASSES))
    print(f"sequential fp32 reference (official order of work): {t_ref:7.2f} s")

    results = {}
    for precision in ("auto", "fp32"):
        with tempfile.TemporaryDirectory() as cache:  # empty caches: text encoding included
            model = SclipModel.from_open_clip(copy.deepcopy(clip), precision=precision, cache_dir=cache)
            seg, t = timed(lambda m=model: segment(image, CLASSES, model=m))
            all_px, decisive = agreement(seg.labels, ref)
            results[precision] = (model, seg, t)
            print(f"napari-sclip precision={precision:4s} ({model.precision}): {t:7.2f} s  "
                  f"speed-up {t_ref / t:5.1f}x  agreement all {100 * all_px:6.2f}%  decisive {100 * decisive:6.2f}%")  # fmt: skip

    model, seg, t_first = results["auto"]
    new_vocab = [OTHER if c == "bicycle" else c for c in CLASSES]
    _, t_one_new = timed(lambda: seg.rescore(new_vocab))
    _, t_cached = timed(lambda: seg.rescore(CLASSES[::-1]))
    _, t_relabel = timed(lambda: seg.relabel(threshold=0.3))
    print(f"re-score, 1 new phrase of 20: {t_one_new:6.3f} s = 1/{t_first / t_one_new:5.1f} of a first run")
    print(f"re-score, all phrases cached: {t_cached:6.3f} s = 1/{t_first / t_cached:5.1f} of a first run")
    print(f"relabel (threshold):          {t_relabel:6.3f} s = 1/{t_first / t_relabel:5.1f} of a first run")


if __name__ == "__main__":
    main()
