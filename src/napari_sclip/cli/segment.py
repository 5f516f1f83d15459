"""``napari-sclip segment IMAGE... --classes ... -o OUT``: the given files, one result each."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from ..options import ModelChoice, RunOptions
from .arguments import (
    EXIT_IMAGE,
    EXIT_OK,
    EXIT_USAGE,
    add_model_and_run,
    add_outputs,
    add_vocabulary,
    build_options,
    check_output_folder,
    load_checked,
    planned,
    progress_bars,
    vocabulary_of,
)  # fmt: skip

HELP = (
    "Writes per image, into the output folder: <name>_labels.tif (or <name>.zarr with --format zarr), "
    "<name>_classes.csv, <name>_overlay.png (and the probabilities with --save-probabilities); 2D, RGB and "
    "stacks (each plane segmented) of PNG, JPEG, TIFF (BigTIFF, OME-TIFF pyramids) or Zarr / OME-Zarr; large "
    "images are read window by window. Two inputs with the same name are refused (use separate output "
    "folders). Existing results are never replaced silently: the call stops before any work unless "
    "--overwrite (replace them; companions of the old result are removed) or --skip-existing (keep them, "
    "segment the rest). Files appear under their final name only when complete."
)


def add_parser(sub) -> None:
    seg = sub.add_parser("segment", help="segment images into the classes you name", description=HELP)
    seg.add_argument("images", nargs="+", type=Path, help="image files (PNG, JPEG, TIFF) or .zarr folders")
    add_vocabulary(seg, required=True)
    add_model_and_run(seg)
    add_outputs(seg, skip_default=False)
    seg.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def input_stem(path: Path) -> str:
    name = path.name.rstrip("/")
    for ext in (".ome.zarr", ".zarr", ".ome.tiff", ".ome.tif"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return Path(name).stem


@dataclass(frozen=True)
class Job:
    """A checked call: what to run on which inputs, and where each result goes."""

    vocabulary: object
    model: ModelChoice
    options: RunOptions
    work: list  # (input path, runner.Output)
    skipped: list[Path]


def plan_outputs(images: list[Path], args: argparse.Namespace, skip_existing: bool) -> Job:
    """Check the vocabulary, options, inputs and outputs (raise ValueError / OSError: exit 2)."""
    from ..io import is_zarr
    from ..runner import Output

    vocab = vocabulary_of(args)
    model, options = build_options(ModelChoice, args), build_options(RunOptions, args)
    missing = [str(p) for p in images if not (p.is_file() or (p.is_dir() and is_zarr(p)))]
    if missing:
        raise ValueError(f"no such file: {', '.join(missing)}")
    if getattr(args, "save_probabilities", False) and args.format == "tiff":
        from ..io.images import reads_lazily

        large = [str(p) for p in images if reads_lazily(p)]
        if large:
            raise ValueError(f"the probabilities of large images ({', '.join(large[:3])}{' ...' if len(large) > 3 else ''})"
                             " are written as OME-Zarr only: add --format zarr, or leave out --save-probabilities.")  # fmt: skip
    by_name: dict[str, Path] = {}
    for p in images:
        stem = input_stem(p)
        if stem in by_name and by_name[stem].resolve() != p.resolve():
            raise ValueError(f"{by_name[stem]} and {p} would both write {stem}_labels.tif; "
                             "segment them into separate output folders (-o).")  # fmt: skip
        by_name[stem] = p
    check_output_folder(args.output)
    work = [(p, Output(args.output, stem, args.format)) for stem, p in by_name.items()]
    existing = [w for w in work if w[1].done()]
    if existing and not (args.overwrite or skip_existing):
        names = ", ".join(w[1].labels_path().name for w in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise ValueError(f"{args.output} already holds results ({names}); add --overwrite to replace them "
                         "or --skip-existing to keep them and segment the rest.")  # fmt: skip
    skipped = [w[0] for w in existing] if skip_existing and not args.overwrite else []
    return Job(vocab, model, options, [w for w in work if w[0] not in skipped], skipped)


def run(args: argparse.Namespace) -> int:
    from ..errors import SclipError
    from ..runner import segment_file

    job = planned(lambda a: plan_outputs(a.images, a, a.skip_existing), args)
    if job is None:
        return EXIT_USAGE
    for path in job.skipped:
        print(f"napari-sclip: {path}: kept the existing result (--skip-existing)", file=sys.stderr)
    if not job.work:
        return EXIT_OK
    model, code = load_checked(job.model, job.options)
    if model is None:
        return code
    status = EXIT_OK
    for path, output in job.work:
        try:
            result = segment_file(path, output, job.vocabulary, job.options, model, probabilities=args.save_probabilities,
                                  overlay=not args.no_overlay, progress=progress_bars(args.quiet))  # fmt: skip
        except (SclipError, ValueError, OSError) as exc:
            print(f"napari-sclip: skipped {path}: {exc}", file=sys.stderr)
            status = EXIT_IMAGE
            continue
        if not args.quiet:
            print(f"{path}: " + ", ".join(str(w) for w in result.written))
    return status
