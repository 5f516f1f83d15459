"""Command line: ``napari-sclip segment IMAGE... --classes "..." -o OUTDIR`` (and ``napari-sclip
evaluate``, whose arguments and run live in :mod:`napari_sclip.evaluate.command`).

The run and model arguments are generated from :mod:`napari_sclip.options`; every argument,
the vocabulary, the inputs and the output folder are checked before the model loads.
Exit codes: 0 done; 2 bad arguments, vocabulary, inputs or outputs (nothing was done); 3 model or
weights unavailable; 4 some image could not be read or segmented (the others are still written);
130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from dataclasses import dataclass, fields
from pathlib import Path

from .options import ModelChoice, RunOptions, parse_value, spec_of

EXIT_OK, EXIT_USAGE, EXIT_MODEL, EXIT_IMAGE, EXIT_INTERRUPTED = 0, 2, 3, 4, 130
OUTPUTS_HELP = (
    "Writes per image, into the output folder: <name>_labels.tif, <name>_classes.csv, <name>_overlay.png "
    "(and <name>_probabilities.tif with --save-probabilities); 2D, RGB and stacks (each plane segmented) "
    "of PNG, JPEG or TIFF. Two inputs with the same name are refused (use separate output folders). "
    "Existing results are never replaced silently: the call stops before any work unless --overwrite "
    "(replace them; companions of the old result are removed) or --skip-existing (keep them, segment "
    "the rest). Files appear under their final name only when complete."
)


def _add_fields(group, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One argument per field of an options class, from its Spec; values stay strings here."""
    for f in fields(cls):
        spec = spec_of(cls, f.name)
        if f.name in skip or not spec.cli:
            continue
        flag = spec.flag or "--" + f.name.replace("_", "-")
        extra = {"pair": {"nargs": 2, "metavar": ("LOW", "HIGH")}, "ints": {"nargs": "+", "metavar": "N"}}.get(spec.kind, {})
        if spec.choices is not None:
            extra["metavar"] = "{" + ",".join(spec.choices()) + "}"
        shown = f.default if f.default is not None else spec.none_word
        shown = " ".join(map(str, shown)) if isinstance(shown, tuple) else shown
        default = f" [default: {shown}]" if shown not in (None, "") and spec.kind != "pair" and "[default" not in spec.help else ""
        group.add_argument(flag, dest=f.name, default=None, help=spec.help + default, **extra)


def _add_preset(group) -> None:
    from .methods import names

    group.add_argument("--preset", metavar="{" + ",".join(names()) + "}", choices=names(), default=None,
                       help="start from a published method's settings (mode, resize, window, stride, logit scale, "
                       "thresholds, refinement); options given here override them")  # fmt: skip


def _build(cls: type, args: argparse.Namespace):
    """An options object from the given arguments (defaults, or a ``--preset``'s values, for the
    others); may raise OptionsError."""
    values = {}
    for f in fields(cls):
        text = getattr(args, f.name, None)
        if text is None:
            continue
        kind = spec_of(cls, f.name).kind
        if kind in ("pair", "ints"):
            values[f.name] = tuple((float if kind == "pair" else int)(parse_value(cls, f.name, t)) for t in text)
        else:
            values[f.name] = parse_value(cls, f.name, text)
    preset = getattr(args, "preset", None) if cls is RunOptions else None
    return RunOptions.preset(preset, **values) if preset is not None else cls(**values)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-sclip", description="Open-vocabulary semantic segmentation with SCLIP (training-free CLIP)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    seg = sub.add_parser("segment", help="segment images into the classes you name", description=OUTPUTS_HELP)
    seg.add_argument("images", nargs="+", type=Path, help="PNG, JPEG or TIFF files")
    _add_vocabulary(seg, required=True)
    _add_fields(seg.add_argument_group("model"), ModelChoice)
    run = seg.add_argument_group("run options")
    _add_preset(run)
    _add_fields(run, RunOptions)
    out = seg.add_argument_group("outputs")
    out.add_argument("-o", "--output", type=Path, required=True, help="output folder (created if missing)")
    out.add_argument("--save-probabilities", action="store_true", help="also write the (K, H, W) float32 probabilities")
    out.add_argument("--no-overlay", action="store_true", help="do not write the overlay PNG")
    again = out.add_mutually_exclusive_group()
    again.add_argument("--overwrite", action="store_true", help="replace existing results of the same images")
    again.add_argument("--skip-existing", action="store_true", help="keep existing results, segment only the rest")
    seg.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    from .evaluate.command import add_parser

    add_parser(sub)
    return parser


def _add_vocabulary(parser: argparse.ArgumentParser, required: bool) -> None:
    """--classes | --classes-file, --background, --paper-background."""
    vocab = parser.add_mutually_exclusive_group(required=required)
    vocab.add_argument("--classes", help="'nucleus; cytoplasm, cell body; debris' (';' or new lines between "
                       "classes, ',' between synonyms; a '# background: ...' line adds background words)")  # fmt: skip
    vocab.add_argument("--classes-file", type=Path, help="vocabulary file: one class per line, synonyms after "
                       "commas, '# background: words' (as the widget saves them)")  # fmt: skip
    parser.add_argument("--background", default=None, help="words that mean background (label 0), separated by ',' or ';'")
    parser.add_argument("--paper-background", action="store_true", help="add the paper's 26 background words")


def _background_words(args: argparse.Namespace) -> list[str]:
    from .vocabulary import PAPER_BACKGROUND

    background = list(PAPER_BACKGROUND) if args.paper_background else []
    if args.background:
        background.append(args.background)
    return background


def _vocabulary(args: argparse.Namespace):
    """The vocabulary of --classes or --classes-file with the background words of the arguments."""
    from .vocabulary import Vocabulary

    background = ";".join(_background_words(args)) or None
    if args.classes is not None:
        return Vocabulary.parse(args.classes, background)
    return Vocabulary.from_file(args.classes_file, background)


@dataclass(frozen=True)
class Job:
    """A checked ``segment`` call: what to run on which files, and where each result goes."""

    vocabulary: object
    model: ModelChoice
    options: RunOptions
    work: list[tuple[Path, Path]]  # (input image, labels file)
    skipped: list[Path]


def plan(args: argparse.Namespace) -> Job:
    """Check everything that can be checked without the model; raise ValueError / OSError with a
    message for the user (exit 2)."""
    vocab = _vocabulary(args)
    model, options = _build(ModelChoice, args), _build(RunOptions, args)
    missing = [str(p) for p in args.images if not p.is_file()]
    if missing:
        raise ValueError(f"no such file: {', '.join(missing)}")
    by_name: dict[str, Path] = {}
    for p in args.images:
        if p.stem in by_name and by_name[p.stem].resolve() != p.resolve():
            raise ValueError(f"{by_name[p.stem]} and {p} would both write {p.stem}_labels.tif; "
                             "segment them into separate output folders (-o).")  # fmt: skip
        by_name[p.stem] = p
    _check_output_folder(args.output)
    work = [(p, args.output / f"{stem}_labels.tif") for stem, p in by_name.items()]
    existing = [w for w in work if w[1].exists()]
    if existing and not (args.overwrite or args.skip_existing):
        names = ", ".join(w[1].name for w in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise ValueError(f"{args.output} already holds results ({names}); add --overwrite to replace them "
                         "or --skip-existing to keep them and segment the rest.")  # fmt: skip
    skipped = [w[0] for w in existing] if args.skip_existing else []
    return Job(vocab, model, options, [w for w in work if w[0] not in skipped], skipped)


def _check_output_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"the output {folder} is a file, not a folder; give a folder with -o.")
    folder.mkdir(parents=True, exist_ok=True)
    from .atomic import sweep

    probe = folder / f".napari-sclip-write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()
    sweep(folder)  # temporary files of an earlier run that was killed


def _planes(image):
    """Yield (index or None, 2D/RGB plane) for a single image or each plane of a stack."""
    from .errors import InputImageError

    if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4)):
        yield None, image
    elif image.ndim == 3 or (image.ndim == 4 and image.shape[-1] in (3, 4)):
        for z in range(image.shape[0]):
            yield z, image[z]
    else:
        raise InputImageError(f"Shape {image.shape} is not 2D, RGB or a stack of those; split it into planes first.")


def segment_file(path: Path, labels_path: Path, job: Job, model, *, probabilities: bool, overlay: bool,
                 quiet: bool) -> list[Path]:  # fmt: skip
    """Segment every plane of one image file and write its result."""
    import numpy as np
    from tqdm import tqdm

    from . import io
    from .prepare import to_unit_range
    from .segment import segment

    image = io.read_image(path)
    planes = list(_planes(image))
    labels, probs, tally = [], [], None
    for z, plane in planes:
        name = path.name if z is None else f"{path.name}[{z}]"
        with tqdm(desc=name, total=1, unit="step", leave=False, disable=quiet or None, file=sys.stderr) as bar:
            def report(done: int, total: int, bar=bar) -> None:
                bar.total = total
                bar.update(done - bar.n)

            seg = segment(plane, job.vocabulary, model=model, options=job.options, progress=report)
        labels.append(seg.labels)
        tally = seg.tally() if tally is None else tally + seg.tally()
        if probabilities:
            probs.append(seg.probabilities)
    stack = planes[0][0] is not None
    mid = planes[len(planes) // 2][1]
    return io.write_result(
        labels_path, np.stack(labels) if stack else labels[0],
        tally.table(seg.class_names, seg.vocabulary.classes, seg.vocabulary.background),
        class_names=seg.class_names,
        probabilities=(np.stack(probs, axis=1) if stack else probs[0]) if probs else None,  # (K, Z, H, W)
        overlay=to_unit_range(mid, job.options.contrast_limits) if overlay else None,
    )  # fmt: skip


def load_checked(choice: ModelChoice, options: RunOptions):
    """``(model, 0)``, or ``(None, exit code)`` with the reason printed: the model cannot be
    loaded, or the window options do not fit it (checked before any image work)."""
    from .errors import CheckpointError, SclipError

    try:
        model = choice.load()
    except (SclipError, ValueError) as exc:
        kind = "checkpoint" if isinstance(exc, CheckpointError) else "model"
        print(f"napari-sclip: cannot load the {kind}: {exc}", file=sys.stderr)
        return None, EXIT_MODEL
    try:  # the window and stride defaults come from the model
        options.resolve(model.window, model.patch_size)
    except ValueError as exc:
        print(f"napari-sclip: {exc}", file=sys.stderr)
        return None, EXIT_USAGE
    return model, EXIT_OK


def planned(make_plan, args: argparse.Namespace):
    """``make_plan(args)``, or None with the reason printed (bad arguments, vocabulary or files)."""
    try:
        return make_plan(args)
    except (ValueError, OSError) as exc:
        print(f"napari-sclip: {exc}", file=sys.stderr)
        return None


def run_segment(args: argparse.Namespace) -> int:
    from .errors import SclipError

    job = planned(plan, args)
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
    for path, labels_path in job.work:
        try:
            written = segment_file(path, labels_path, job, model, probabilities=args.save_probabilities,
                                   overlay=not args.no_overlay, quiet=args.quiet)  # fmt: skip
        except (SclipError, ValueError, OSError) as exc:
            print(f"napari-sclip: skipped {path}: {exc}", file=sys.stderr)
            status = EXIT_IMAGE
            continue
        if not args.quiet:
            print(f"{path}: " + ", ".join(str(w) for w in written))
    return status


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends the run like Ctrl+C: partial files are removed


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() else None
    try:
        if args.command == "segment":
            return run_segment(args)
        if args.command == "evaluate":
            from .evaluate.command import run_evaluate

            return run_evaluate(args)
    except KeyboardInterrupt:
        print("\nnapari-sclip: interrupted; files already complete were kept, none is partial", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return EXIT_USAGE  # pragma: no cover - argparse requires a command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
