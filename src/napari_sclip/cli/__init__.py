"""Command line: ``napari-sclip segment``, ``napari-sclip batch`` and ``napari-sclip evaluate``.

The run and model arguments are generated from :mod:`napari_sclip.options`; every argument,
the vocabulary, the inputs and the output folder are checked before the model loads.
Exit codes: 0 done; 2 bad arguments, vocabulary, inputs or outputs (nothing was done); 3 model or
weights unavailable; 4 some image could not be read or segmented (the others are still written);
130 interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .arguments import (
    EXIT_IMAGE,
    EXIT_INTERRUPTED,
    EXIT_MODEL,
    EXIT_OK,
    EXIT_USAGE,
    add_fields,
    add_vocabulary,
    background_words,
    build_options,
    load_checked,
    planned,
    vocabulary_of,
)  # fmt: skip

# names the evaluate command imports
_add_fields, _add_vocabulary, _build = add_fields, add_vocabulary, build_options
_background_words, _vocabulary = background_words, vocabulary_of

__all__ = ["EXIT_IMAGE", "EXIT_INTERRUPTED", "EXIT_MODEL", "EXIT_OK", "EXIT_USAGE", "build_parser", "load_checked",
           "main", "planned"]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from ..evaluate.command import add_parser as add_evaluate
    from . import batch, segment

    parser = argparse.ArgumentParser(
        prog="napari-sclip", description="Open-vocabulary semantic segmentation with SCLIP (training-free CLIP)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    segment.add_parser(sub)
    batch.add_parser(sub)
    add_evaluate(sub)
    return parser


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends the run like Ctrl+C: partial files are removed


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        if args.command == "segment":
            from .segment import run

            return run(args)
        if args.command == "batch":
            from .batch import run

            return run(args)
        if args.command == "evaluate":
            from ..evaluate.command import run_evaluate

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
