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


_signalled: list[int] = []


def _interrupt(signum, frame):
    """SIGINT and SIGTERM end the run like Ctrl+C (partial files are removed); remembered, so that
    an interrupt Python swallows (raised inside a finalizer) still ends the call as interrupted."""
    _signalled.append(signum)
    raise KeyboardInterrupt


def _run(args: argparse.Namespace) -> int:
    if args.command == "segment":
        from .segment import run

        return run(args)
    if args.command == "batch":
        from .batch import run

        return run(args)
    from ..evaluate.command import run_evaluate

    return run_evaluate(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    _signalled.clear()
    try:
        code = _run(args)
        if not _signalled:
            return code
    except KeyboardInterrupt:
        pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    print("\nnapari-sclip: interrupted; files already complete were kept, none is partial", file=sys.stderr)
    return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
