"""Gigapixel benchmark: a lazily generated RGB image segmented and saved to OME-Zarr in bounded memory.

Figures (ViT-B/16 architecture with random weights, no download; 10 classes):
  (a) native resolution (short_side=None): every 224-px window of the full image;
  (b) the default short side (336): the coarse pass, then 16k x 16k labels block by block;
  each saved to OME-Zarr: wall time, windows per second, and peak resident memory ABOVE the loaded,
  warmed-up model (VmHWM after a reset through /proc/self/clear_refs; Linux);
  (c) 8 images through ``napari-sclip batch`` with 1 and 2 local dask workers;
  (d) refinement on 2048 x 2048 (7 classes, 21 phrases): re-score with cached words, with one new
      phrase, and relabel.

    python benchmarks/bench_large.py                 # everything (about an hour on a 2-core CPU)
    python benchmarks/bench_large.py --size 4096 --parts ab   # a quick look
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES = ["building", "road", "water", "forest", "field", "grass", "bare soil", "car", "roof", "shadow"]
REFINE = "building, roof, house\nroad, street, parking lot\nwater, river, lake\nbarren, bare soil, sand\n" \
         "forest, trees, woodland\nagricultural, farmland, crop field\nbackground, clutter"  # fmt: skip


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Set VmHWM back to the current RSS (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def lazy_image(size: int, chunk: int = 1024):
    """A size x size RGB uint8 dask image made block by block from its coordinates (never whole)."""
    import dask.array as da

    def block(block_info=None):
        (y0, y1), (x0, x1), _ = block_info[None]["array-location"]
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        fields = (np.sin(xx / 97.0) + np.cos(yy / 131.0) > 0).astype(np.float32)
        roads = ((xx % 701) < 9) | ((yy % 887) < 9)
        rgb = np.stack([90 + 80 * fields, 110 + 60 * np.sin(yy / 53.0), 70 + 50 * np.cos(xx / 41.0)], axis=-1)
        rgb[roads] = 150
        noise = np.random.default_rng(y0 * 7919 + x0).normal(0, 6, rgb.shape)
        return np.clip(rgb + noise, 0, 255).astype(np.uint8)

    chunks = (tuple([chunk] * (size // chunk) + ([size % chunk] if size % chunk else [])),) * 2 + ((3,),)
    return da.map_blocks(block, chunks=chunks, dtype=np.uint8, meta=np.empty((0, 0, 0), np.uint8))


def model_vitb16(precision: str = "auto", layers: int = 12):
    """ViT-B/16 with random weights; ``layers`` < 12 keeps every shape the memory depends on (token
    grid, widths, text tower) and does 1/12 of the image tower's work per block left out."""
    import open_clip
    import torch

    from napari_sclip import SclipModel

    torch.manual_seed(0)
    config = open_clip.get_model_config("ViT-B-16")
    config["vision_cfg"]["layers"] = layers
    name = "ViT-B-16 (random)" if layers == 12 else f"ViT-B-16 with {layers} image blocks (random)"
    return SclipModel.from_open_clip(open_clip.CLIP(**config), name=name, precision=precision)


def stored_image(size: int, folder: Path):
    """The synthetic image written once to a zarr store (as a user's image would be on disk), then
    opened lazily: the figures measure napari-sclip, not the generator."""
    import dask.array as da

    path = folder / f"image{size}.zarr"
    if not path.exists():
        lazy_image(size).to_zarr(str(path))
    return da.from_zarr(str(path))


def one_image(model, size: int, short_side, out: Path) -> dict:
    from napari_sclip import segment

    image = stored_image(size, out.parent)
    reset_peak()
    base = rss_mb()
    t0 = time.perf_counter()
    seg = segment(image, CLASSES, model=model, short_side=short_side)
    t1 = time.perf_counter()
    seg.save(out)
    t2 = time.perf_counter()
    n = len(seg.boxes)
    return {"image": f"{size}x{size} RGB (zarr on disk, read lazily)", "short_side": short_side, "windows": n,
            "segment_s": round(t1 - t0, 1), "save_s": round(t2 - t1, 1), "wall_s": round(t2 - t0, 1),
            "windows_per_s": round(n / (t1 - t0), 2), "peak_above_model_mb": round(rss_mb("VmHWM") - base),
            "features_spilled_to_disk": bool(seg.features.spilled)}  # fmt: skip


def batch(workers: int, folder: Path, checkpoint: Path, out: Path) -> dict:
    cmd = [sys.executable, "-m", "napari_sclip.cli", "batch", str(folder), "--classes", "; ".join(CLASSES),
           "--checkpoint", str(checkpoint), "--no-overlay", "-q", "-o", str(out)]  # fmt: skip
    if workers > 1:
        cmd += ["--workers", str(workers)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return {f"batch_8_images_{workers}_worker_s": round(time.perf_counter() - t0, 1)}


def refine(model) -> dict:
    from napari_sclip import segment

    image = np.asarray(lazy_image(2048))
    seg = segment(image, REFINE, model=model, short_side=448)
    seg.rescore(REFINE)  # warm
    t0 = time.perf_counter()
    seg.rescore("\n".join(reversed(REFINE.split("\n"))))  # the same words, reordered: all cached
    cached = time.perf_counter() - t0
    t0 = time.perf_counter()
    seg.rescore(REFINE + "\nswimming pool")
    one_new = time.perf_counter() - t0
    times = {}
    for name, change in (("relabel_first_threshold_ms", {"threshold": 0.5}),  # computes the best probability
                         ("relabel_next_threshold_ms", {"threshold": 0.4}),  # reads it back
                         ("relabel_hide_a_class_ms", {"suppressed": [1]})):  # fmt: skip
        t0 = time.perf_counter()
        seg = seg.relabel(**change)
        times[name] = round(1000 * (time.perf_counter() - t0), 1)
    return {"rescore_7_classes_cached_s": round(cached, 3), "rescore_one_new_phrase_s": round(one_new, 3), **times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--parts", default="abcd", help="which figures: a, b, c, d")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--layers", type=int, default=12, help="image blocks (fewer: the same memory, less compute)")
    args = parser.parse_args()
    out: dict = {"image_blocks": args.layers}
    model = model_vitb16(layers=args.layers)
    model.embed(CLASSES)  # text and first-call warm-up outside the measured peak
    segment_warm = np.zeros((224, 224, 3), np.uint8)
    from napari_sclip import segment

    segment(segment_warm, CLASSES, model=model, short_side=None)
    out["model_rss_mb"] = round(rss_mb())
    out["precision"] = model.precision
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for part, short_side in (("a", None), ("b", 336)):
            if part in args.parts:
                out[f"{part}_{'native' if short_side is None else 'short_side_336'}"] = one_image(
                    model, args.size, short_side, tmp / f"{part}.zarr")
                print(json.dumps(out, indent=1), flush=True)
        if "c" in args.parts:
            from skimage import io as skio

            from napari_sclip.checkpoints import save_checkpoint

            folder = tmp / "images"
            folder.mkdir()
            for i in range(8):
                skio.imsave(folder / f"img{i}.png", np.asarray(lazy_image(1024 + 64 * i)), check_contrast=False)
            ckpt = tmp / "vitb16.safetensors"
            import open_clip

            config = open_clip.get_model_config("ViT-B-16")
            config["vision_cfg"]["layers"] = args.layers
            import copy

            save_checkpoint(copy.deepcopy(model.clip).float(), ckpt, config, name="ViT-B-16 (random)")
            for workers in (1, 2):
                out.update(batch(workers, folder, ckpt, tmp / f"batch{workers}"))
        if "d" in args.parts:
            out.update(refine(model))
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
