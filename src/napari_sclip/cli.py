"""Command line: ``napari-sclip segment IMAGE... --classes "..." -o OUTDIR``.

Exit codes: 0 done; 2 bad arguments or vocabulary; 3 model or weights unavailable; 4 some image
could not be read or segmented (the others are still written); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_USAGE, EXIT_MODEL, EXIT_IMAGE, EXIT_INTERRUPTED = 0, 2, 3, 4, 130


def _short_side(text: str) -> int | None:
    if text.lower() in ("none", "native", "0"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels or 'none', got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive (or 'none' to keep the image size)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-sclip", description="Open-vocabulary semantic segmentation with SCLIP (training-free CLIP)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    seg = sub.add_parser(
        "segment",
        help="segment images into the classes you name",
        description="Writes per image: <name>_labels.tif, <name>_classes.csv, <name>_overlay.png "
        "(and <name>_probabilities.tif with --save-probabilities). 2D, RGB and stacks "
        "(each plane segmented) of PNG, JPEG or TIFF.",
    )
    seg.add_argument("images", nargs="+", type=Path, help="PNG, JPEG or TIFF files")
    vocab = seg.add_mutually_exclusive_group(required=True)
    vocab.add_argument("--classes", help="'nucleus; cytoplasm, cell body; debris' (';' between classes, ',' between synonyms)")
    vocab.add_argument("--classes-file", type=Path, help="text file, one class per line, synonyms separated by commas")
    seg.add_argument("--background", default=None, help="words that mean background (label 0), comma-separated")
    seg.add_argument("--paper-background", action="store_true", help="use the paper's 26 background words")
    seg.add_argument("--model", default=None, help="open_clip model name or hf-hub:id (default ViT-B-16; with --checkpoint, read from the file when omitted)")
    seg.add_argument("--pretrained", default="openai", help="pretrained tag (default openai)")
    seg.add_argument("--checkpoint", type=Path, help="local weights file (.safetensors/.pt/.bin/OpenAI .pt); replaces --pretrained")
    seg.add_argument("--short-side", type=_short_side, default=336, help="resize so the short side is this (default 336; 'none' keeps the size)")
    seg.add_argument("--window", type=int, default=None, help="window size in pixels (default: the model's input size)")
    seg.add_argument("--stride", type=int, default=None, help="window stride (default: half the window)")
    seg.add_argument("--attention", default="sclip", help="last-block attention: sclip (default), vanilla, clearclip, naclip")
    seg.add_argument("--logit-scale", type=float, default=40.0, help="softmax temperature (paper: 40; VOC 65)")
    seg.add_argument("--threshold", type=float, default=0.0, help="pixels whose best probability is below this get label 0")
    seg.add_argument("--area-threshold", type=float, default=None, help="drop classes covering at most this fraction of the foreground")
    seg.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    seg.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    seg.add_argument("--cache-dir", type=Path, default=None, help="where weights and text embeddings are cached")
    seg.add_argument("--save-probabilities", action="store_true", help="also write the (K, H, W) float32 probabilities")
    seg.add_argument("--no-overlay", action="store_true", help="do not write the overlay PNG")
    seg.add_argument("-o", "--output", type=Path, required=True, help="output folder (created if missing)")
    seg.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


class _Bar:
    """A one-line progress bar on stderr with time left, silent when not a terminal or quiet."""

    def __init__(self, label: str, quiet: bool) -> None:
        self.label, self.start = label, time.monotonic()
        self.quiet = quiet or not sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if self.quiet or total <= 0:
            return
        frac = done / total
        elapsed = time.monotonic() - self.start
        left = elapsed / frac - elapsed if frac > 0 else 0.0
        bar = "#" * int(frac * 30)
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\r{self.label} [{bar:<30}] {done}/{total}  {left:5.1f}s left{end}")
        sys.stderr.flush()


def _planes(image):
    """Yield (index or None, 2D/RGB plane) for a single image or each plane of a stack."""
    if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4)):
        yield None, image
        return
    if image.ndim == 3:
        for z in range(image.shape[0]):
            yield z, image[z]
        return
    if image.ndim == 4 and image.shape[-1] in (3, 4):
        for z in range(image.shape[0]):
            yield z, image[z]
        return
    from .errors import InputImageError

    raise InputImageError(
        f"Shape {image.shape} is not 2D, RGB or a stack of those; split it into planes first."
    )


def _segment_file(path: Path, args, vocab, model) -> list[Path]:
    import numpy as np

    from . import io
    from .prepare import to_unit_range
    from .segment import segment

    image = io.read_image(path)
    planes = list(_planes(image))
    labels, probs, tables, overlays = [], [], [], []
    for z, plane in planes:
        name = path.name if z is None else f"{path.name}[{z}]"
        seg = segment(
            plane, vocab, model=model, attention=args.attention, short_side=args.short_side,
            window=args.window, stride=args.stride, logit_scale=args.logit_scale,
            threshold=args.threshold, area_threshold=args.area_threshold,
            progress=_Bar(name, args.quiet),
        )  # fmt: skip
        labels.append(seg.labels)
        tables.append(seg.class_table())
        if args.save_probabilities:
            probs.append(seg.probabilities)
        if not args.no_overlay:
            overlays.append(io.overlay(to_unit_range(plane), seg.labels))
    stem = args.output / path.stem
    stack = len(planes) > 1 or planes[0][0] is not None
    written = [io.write_labels(np.stack(labels) if stack else labels[0], f"{stem}_labels.tif")]
    written.append(io.write_class_table(_sum_tables(tables), f"{stem}_classes.csv"))
    if probs:
        data = np.stack(probs, axis=1) if stack else probs[0]  # (K, Z, H, W) for stacks
        written.append(io.write_probabilities(data, vocab.names, f"{stem}_probabilities.tif"))
    if overlays:
        from skimage import io as skio

        mid = overlays[len(overlays) // 2]
        skio.imsave(f"{stem}_overlay.png", mid, check_contrast=False)
        written.append(Path(f"{stem}_overlay.png"))
    return written


def _sum_tables(tables: list[list[dict]]) -> list[dict]:
    """Class table over all planes of a stack (pixel counts summed, mean probability weighted)."""
    if len(tables) == 1:
        return tables[0]
    out = [dict(r) for r in tables[0]]
    total = sum(sum(r["pixels"] for r in t) for t in tables)
    for i, row in enumerate(out):
        px = sum(t[i]["pixels"] for t in tables)
        weighted = sum(t[i]["pixels"] * t[i]["mean_probability"] for t in tables if t[i]["pixels"])
        row["pixels"], row["fraction"] = px, px / max(total, 1)
        row["mean_probability"] = weighted / px if px else float("nan")
    return out


def _load(args):
    from .model import load_model

    options = dict(device=args.device, precision=args.precision, cache_dir=args.cache_dir)
    if args.checkpoint is not None:
        return load_model(args.model, args.checkpoint, **options)
    return load_model(args.model or "ViT-B-16", args.pretrained, **options)


def run_segment(args) -> int:
    from .errors import CheckpointError, InputImageError, SclipError, VocabularyError
    from .vocabulary import PAPER_BACKGROUND, Vocabulary

    try:
        text = args.classes if args.classes is not None else args.classes_file.read_text(encoding="utf-8")
        background = list(PAPER_BACKGROUND) if args.paper_background else None
        if args.background:
            background = (background or []) + [w.strip() for w in args.background.split(",") if w.strip()]
        vocab = Vocabulary.parse(text, background)
    except (VocabularyError, OSError) as exc:
        print(f"napari-sclip: {exc}", file=sys.stderr)
        return EXIT_USAGE
    missing = [p for p in args.images if not p.is_file()]
    if missing:
        print(f"napari-sclip: no such file: {', '.join(map(str, missing))}", file=sys.stderr)
        return EXIT_USAGE
    try:
        model = _load(args)
    except (SclipError, ValueError) as exc:
        kind = "checkpoint" if isinstance(exc, CheckpointError) else "model"
        print(f"napari-sclip: cannot load the {kind}: {exc}", file=sys.stderr)
        return EXIT_MODEL
    args.output.mkdir(parents=True, exist_ok=True)
    status = EXIT_OK
    for path in args.images:
        try:
            written = _segment_file(path, args, vocab, model)
        except (InputImageError, ValueError) as exc:
            print(f"napari-sclip: skipped {path}: {exc}", file=sys.stderr)
            status = EXIT_IMAGE
            continue
        if not args.quiet:
            print(f"{path}: " + ", ".join(str(w) for w in written))
    return status


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "segment":
            return run_segment(args)
    except KeyboardInterrupt:
        print("\nnapari-sclip: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_USAGE  # pragma: no cover - argparse requires a command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
