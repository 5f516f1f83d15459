"""Command-line arguments generated from the options classes, and the checks every command shares."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields
from pathlib import Path

from ..options import ModelChoice, RunOptions, parse_value, spec_of

EXIT_OK, EXIT_USAGE, EXIT_MODEL, EXIT_IMAGE, EXIT_INTERRUPTED = 0, 2, 3, 4, 130


def add_fields(group, cls: type, skip: tuple[str, ...] = ()) -> None:
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


def add_preset(group) -> None:
    """``--preset NAME``: a published method's run options, under the options given explicitly."""
    from ..methods import names

    group.add_argument("--preset", metavar="{" + ",".join(names()) + "}", choices=names(), default=None,
                       help="start from a published method's settings (mode, resize, window, stride, logit scale, "
                       "thresholds, refinement); options given here override them")  # fmt: skip


def build_options(cls: type, args: argparse.Namespace):
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


def add_vocabulary(parser: argparse.ArgumentParser, required: bool) -> None:
    """--classes | --classes-file, --background, --paper-background."""
    vocab = parser.add_mutually_exclusive_group(required=required)
    vocab.add_argument("--classes", help="'nucleus; cytoplasm, cell body; debris' (';' or new lines between "
                       "classes, ',' between synonyms; a '# background: ...' line adds background words)")  # fmt: skip
    vocab.add_argument("--classes-file", type=Path, help="vocabulary file: one class per line, synonyms after "
                       "commas, '# background: words' (as the widget saves them)")  # fmt: skip
    parser.add_argument("--background", default=None, help="words that mean background (label 0), separated by ',' or ';'")
    parser.add_argument("--paper-background", action="store_true", help="add the paper's 26 background words")


def background_words(args: argparse.Namespace) -> list[str]:
    from ..errors import VocabularyError
    from ..vocabulary import PAPER_BACKGROUND

    background = list(PAPER_BACKGROUND) if args.paper_background else []
    if args.background is not None:
        if not any(w.strip() for w in args.background.replace(";", ",").split(",")):
            raise VocabularyError(f"--background {args.background!r} holds no word; give words or leave it out.")
        background.append(args.background)
    return background


def vocabulary_of(args: argparse.Namespace):
    """The vocabulary of --classes or --classes-file with the background words of the arguments."""
    from ..vocabulary import Vocabulary

    background = ";".join(background_words(args)) or None
    if args.classes is not None:
        return Vocabulary.parse(args.classes, background)
    return Vocabulary.from_file(args.classes_file, background)


def add_model_and_run(parser: argparse.ArgumentParser) -> None:
    add_fields(parser.add_argument_group("model"), ModelChoice)
    run = parser.add_argument_group("run options")
    add_preset(run)
    add_fields(run, RunOptions)


def add_outputs(parser: argparse.ArgumentParser, skip_default: bool) -> None:
    """-o, --format, --save-probabilities, --no-overlay, --overwrite / --skip-existing."""
    out = parser.add_argument_group("outputs")
    out.add_argument("-o", "--output", type=Path, required=True, help="output folder (created if missing)")
    out.add_argument("--format", choices=("tiff", "zarr"), default="tiff",
                     help="tiff: <name>_labels.tif (tiled BigTIFF pyramid for large images); zarr: <name>.zarr "
                     "(OME-Zarr labels pyramid with class names, confidence map; resumable) [default: tiff]")  # fmt: skip
    out.add_argument("--save-probabilities", action="store_true", help="also write the class probabilities (float32)")
    out.add_argument("--no-overlay", action="store_true", help="do not write the overlay PNG")
    again = out.add_mutually_exclusive_group()
    again.add_argument("--overwrite", action="store_true", help="replace existing results of the same images")
    if skip_default:
        again.add_argument("--redo", dest="overwrite", action="store_true", help="same as --overwrite")
    else:
        again.add_argument("--skip-existing", action="store_true", help="keep existing results, segment only the rest")


def check_output_folder(folder: Path) -> None:
    """Create the output folder and make sure it can be written; clean what killed writers left."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"the output {folder} is a file, not a folder; give a folder with -o.")
    folder.mkdir(parents=True, exist_ok=True)
    from ..atomic import sweep

    probe = folder / f".napari-sclip-write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()
    sweep(folder)


def load_checked(choice: ModelChoice, options: RunOptions):
    """``(model, 0)``, or ``(None, exit code)`` with the reason printed: the model cannot be
    loaded, or the window options do not fit it (checked before any image work)."""
    from ..errors import CheckpointError, SclipError

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


def progress_bars(quiet: bool):
    """A progress factory for :func:`napari_sclip.runner.segment_file`: one tqdm bar per plane on a
    terminal, nothing in logs or with ``quiet``."""
    from tqdm import tqdm

    def make(name: str):
        if quiet or not sys.stderr.isatty():
            return None
        bar = tqdm(desc=name, total=1, unit="step", leave=False, file=sys.stderr)

        def report(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)
            if done >= total:
                bar.close()

        return report

    return make
