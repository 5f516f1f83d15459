"""``napari-sclip batch INPUTS... -o OUT``: files, folders or globs, resumable, on one machine or a
dask cluster, with a summary of class areas across the set."""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

from .. import atomic, io
from ..stats import ClassTable
from . import arguments as cli
from .segment import input_stem, plan_outputs

HELP = (
    "Segments every image of the inputs (files, folders, glob patterns; PNG, JPEG, TIFF incl. BigTIFF / "
    "OME-TIFF, Zarr / OME-Zarr) with one vocabulary into the output folder: per image the same files as "
    "'segment', plus summary.csv with the class areas of every image and of the whole set. Resumable: "
    "images whose result is complete are skipped (--redo computes them again), and an interrupted "
    "OME-Zarr result resumes from its finished chunks. --workers N runs on a local dask cluster of N "
    "processes (each loads the model once), --scheduler ADDRESS on an existing one."
)
SUMMARY = "summary.csv"


def add_parser(sub) -> None:
    p = sub.add_parser("batch", help="segment a whole set of images (resumable, optionally on a cluster)",
                       description=HELP)  # fmt: skip
    p.add_argument("inputs", nargs="+", help="image files, folders of images, or glob patterns")
    p.add_argument("--recursive", action="store_true", help="also look into sub-folders of folder inputs")
    cli.add_vocabulary(p, required=True)
    cli.add_model_and_run(p)
    cli.add_outputs(p, skip_default=True)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=0, help="run on a local dask cluster of this many processes")
    where.add_argument("--scheduler", default=None, help="address of a running dask scheduler (tcp://host:port)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def expand(inputs: list[str], recursive: bool) -> list[Path]:
    """The images named by files, folders and glob patterns, sorted, each once."""
    found: dict[Path, None] = {}
    for item in inputs:
        path = Path(item)
        candidates = [Path(p) for p in sorted(glob.glob(item, recursive=True))] if not path.exists() else [path]
        if not candidates:
            raise ValueError(f"no such file, folder or match: {item}")
        for c in candidates:
            if c.is_dir() and not io.is_zarr(c):
                pattern = "**/*" if recursive else "*"
                found.update(dict.fromkeys(sorted(x for x in c.glob(pattern) if _is_image(x))))
            elif _is_image(c):
                found[c] = None
    if not found:
        raise ValueError(f"no images found in {', '.join(inputs)} (looked for {', '.join(io.IMAGE_SUFFIXES)}, .zarr)")
    return list(found)


def _is_image(path: Path) -> bool:
    return (path.is_file() and path.suffix.lower() in io.IMAGE_SUFFIXES) or (path.is_dir() and io.is_zarr(path))


def run(args: argparse.Namespace) -> int:
    job = cli.planned(lambda a: plan_outputs(expand(a.inputs, a.recursive), a, skip_existing=True), args)
    if job is None:
        return cli.EXIT_USAGE
    flags = dict(probabilities=args.save_probabilities, overlay=not args.no_overlay)
    results, failed = {}, 0
    if job.work and (args.workers or args.scheduler):
        from ..cluster import open_client, run_files

        with open_client(args.workers, args.scheduler) as client:
            if len(job.work) < max(2, len(client.scheduler_info()["workers"])):  # few images: spread their windows
                model, code = cli.load_checked(job.model, job.options)
                if model is None:
                    return code
                stream = _local(job, model, args.quiet, flags, client)
            else:  # many images: one image per task
                stream = run_files(client, job.work, job.vocabulary, job.options, job.model, **flags)
            results, failed = _collect(stream, len(job.work), args.quiet)
    elif job.work:
        model, code = cli.load_checked(job.model, job.options)
        if model is None:
            return code
        results, failed = _collect(_local(job, model, args.quiet, flags), len(job.work), args.quiet)
    _write_summary(args.output, job, results)
    if not args.quiet:
        print(f"napari-sclip: {len(results)} segmented, {len(job.skipped)} kept from before, {failed} failed; "
              f"summary in {args.output / SUMMARY}", file=sys.stderr)  # fmt: skip
    return cli.EXIT_IMAGE if failed else cli.EXIT_OK


def _local(job, model, quiet: bool, flags, client=None):
    from ..errors import SclipError
    from ..runner import segment_file

    for path, output in job.work:
        try:
            yield path, segment_file(path, output, job.vocabulary, job.options, model, progress=cli.progress_bars(True),
                                     client=client, **flags)  # fmt: skip
        except (SclipError, ValueError, OSError) as exc:
            yield path, exc


def _collect(stream, total: int, quiet: bool):
    from tqdm import tqdm

    results, failed = {}, 0
    with tqdm(total=total, unit="image", disable=quiet or not sys.stderr.isatty(), file=sys.stderr) as bar:
        for path, outcome in stream:
            if isinstance(outcome, BaseException):
                print(f"napari-sclip: skipped {path}: {outcome}", file=sys.stderr)
                failed += 1
            else:
                results[path] = outcome.tables
            bar.update()
    return results, failed


def _write_summary(folder: Path, job, results: dict) -> None:
    """summary.csv: class areas of every result (new or kept from before) and of the whole set."""
    tables: list[tuple[str, str, ClassTable]] = []
    for path in sorted({*results, *job.skipped}, key=str):
        per_plane = results.get(path) or _tables_on_disk(folder, input_stem(path), job)
        for plane, table in sorted(per_plane.items(), key=lambda kv: kv[0] or ()):
            tables.append((str(path), "" if plane is None else ",".join(map(str, plane)), table))
    lines = ["image,plane,label,class,pixels,fraction,mean_probability"]
    totals: dict[tuple[int, str], list[float]] = {}
    for image, plane, table in tables:
        for r in table:
            mean = "" if r.mean_probability != r.mean_probability else f"{r.mean_probability:.6f}"
            lines.append(_csv_row(image, plane, r.label, r.name, r.pixels, f"{r.fraction:.6f}", mean))
            acc = totals.setdefault((r.label, r.name), [0, 0.0, 0])
            acc[0] += r.pixels
            if mean:
                acc[1] += r.mean_probability * r.pixels
                acc[2] += r.pixels
    everything = sum(v[0] for v in totals.values()) or 1
    for (label, name), (pixels, weighted, scored) in sorted(totals.items()):
        mean = f"{weighted / scored:.6f}" if scored else ""
        lines.append(_csv_row("(all)", "", label, name, int(pixels), f"{pixels / everything:.6f}", mean))
    atomic.write_text(folder / SUMMARY, "\n".join(lines) + "\n")


def _csv_row(*values) -> str:
    import csv
    import io as _io

    out = _io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def _tables_on_disk(folder: Path, stem: str, job) -> dict:
    """The class tables of a result kept from an earlier run (read back from its CSV files)."""
    out = {}
    for csv in sorted(folder.glob(f"{stem}_classes.csv")) + sorted(folder.glob(f"{stem}_z*_classes.csv")):
        plane = csv.name[len(stem) + 2 : -len("_classes.csv")] if csv.name.startswith(f"{stem}_z") else None
        out[None if plane is None else tuple(int(x) for x in plane.split("-"))] = io.read_class_table(csv)
    return out
