"""``napari-sclip evaluate``: measure a mode and its settings against ground-truth masks.

Your own folders (``--images DIR --masks DIR`` with ``--classes``) or a benchmark (``--dataset NAME
--root DIR``, optionally ``--method NAME`` for that method's published settings). Every model and
run option of ``segment`` is accepted and wins over the method's settings. Exit codes as
``segment``'s: 0 done; 2 bad arguments or data (nothing was run); 3 model unavailable; 4 some pairs
could not be scored (listed; the others are); 130 interrupted (finished images are kept).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..options import ModelChoice, RunOptions
from . import classes, protocol
from .datasets import Dataset, dataset_names, load_dataset, method_names
from .masks import LabelRule
from .pairs import Pairing, pair_folders
from .runner import Evaluation, Task

DESCRIPTION = (
    "Scores the segmentation of images against their masks: per-class IoU summed over the whole set as "
    "mmseg does, mIoU over the classes present, pixel accuracy. Your folders: an image and a mask pair when "
    "their names have the same stem (any of .png .jpg .tif .tiff .bmp); masks hold 0 for background, k for "
    "the k-th class, 255 for pixels to ignore, at the image's size. A dataset: --dataset NAME --root DIR "
    "reads its standard layout; --method NAME takes that method's published settings. Finished images are "
    "kept under --work (default: beside --json) and a re-run with the same settings resumes."
)


def add_parser(sub) -> None:
    from ..cli import _add_fields, _add_vocabulary

    ev = sub.add_parser("evaluate", help="measure mIoU against masks (your folders or a benchmark)",
                        description=DESCRIPTION)  # fmt: skip
    data = ev.add_argument_group("data: your folders, or a dataset")
    data.add_argument("--images", type=Path, help="folder of images")
    data.add_argument("--masks", type=Path, help="folder of masks (same file stem as their image)")
    data.add_argument("--dataset", metavar="NAME", help="one of: " + ", ".join(dataset_names()))
    data.add_argument("--root", type=Path, help="the dataset's folder (e.g. VOCdevkit/VOC2012 for voc21)")
    data.add_argument("--limit", type=int, help="score only the first N pairs (a quick look)")
    _add_vocabulary(ev, required=False)
    ev.add_argument("--method", choices=method_names(), help="take this method's published settings for the "
                    "dataset (or its defaults on your folders) [default with --dataset: sclip]")  # fmt: skip
    _add_fields(ev.add_argument_group("model"), ModelChoice)
    _add_fields(ev.add_argument_group("run options (override the method's)"), RunOptions)
    out = ev.add_argument_group("results")
    out.add_argument("--json", type=Path, help="write the results as JSON to this file")
    out.add_argument("--work", type=Path, help="folder of per-image counts for resuming [default: <json>.counts "
                     "beside --json; without --json nothing is kept]")  # fmt: skip
    ev.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


@dataclass(frozen=True)
class Plan:
    """A checked ``evaluate`` call."""

    task: Task
    model: ModelChoice
    data: dict[str, Any]
    dataset: Dataset | None
    pairing: Pairing
    work: Path | None
    json: Path | None
    notes: tuple[str, ...] = ()


def _explicit(args: argparse.Namespace) -> dict[str, Any]:
    """The run options given on the command line (checked), and only those."""
    from ..cli import _build

    given = _build(RunOptions, args)
    return {f.name: getattr(given, f.name) for f in fields(RunOptions) if getattr(args, f.name, None) is not None}


def _source(args: argparse.Namespace):
    """(dataset or None, pairing, data description, label space) from the data arguments."""
    from ..cli import _background_words, _vocabulary

    if args.dataset is not None:
        if args.images or args.masks or args.root is None:
            raise ValueError("--dataset takes --root (the dataset's folder), not --images / --masks")
        dataset = load_dataset(args.dataset)
        text = args.classes if args.classes is not None else None
        if args.classes_file is not None:
            text = args.classes_file.read_bytes().decode("utf-8-sig")
        labels = classes.for_dataset(dataset, text, tuple(_background_words(args)))
        data = {"dataset": dataset.key, "root": str(args.root.resolve())}
        return dataset, dataset.pairs(args.root), data, labels
    if args.images is None or args.masks is None or args.root is not None:
        raise ValueError("give --images DIR and --masks DIR (your folders), or --dataset NAME and --root DIR")
    if args.classes is None and args.classes_file is None:
        raise ValueError("name the classes of your masks with --classes or --classes-file (label k = k-th class)")
    labels = classes.own_masks(_vocabulary(args))
    data = {"images": str(args.images.resolve()), "masks": str(args.masks.resolve())}
    return None, pair_folders(args.images, args.masks), data, labels


def plan(args: argparse.Namespace) -> Plan:
    """Check everything that can be checked without the model; ValueError / OSError (exit 2)."""
    from ..cli import _build

    if args.limit is not None and args.limit <= 0:
        raise ValueError("--limit must be a positive number of pairs")
    dataset, pairing, data, labels = _source(args)
    method = args.method or ("sclip" if dataset is not None else None)
    proto = protocol.build(method, dataset, _explicit(args))
    pairs = pairing.pairs[: args.limit]
    if not pairs:
        raise ValueError("no image has a mask to go with it; " + " ".join(pairing.unpaired_lines()))
    rule = dataset.rule if dataset is not None else LabelRule(n_classes=len(labels.class_names))
    work = args.work
    if args.json is not None:
        if args.json.is_dir():
            raise ValueError(f"--json {args.json} is a folder; give a file name")
        args.json.parent.mkdir(parents=True, exist_ok=True)
        work = work or args.json.with_name(args.json.name.removesuffix(".json") + ".counts")
    notes = [*pairing.unpaired_lines(), *proto.notes, *labels.notes]
    expected = dataset.images_expected if dataset is not None else None
    if expected and len(pairing.pairs) != expected:
        notes.append(f"{dataset.name}'s evaluation set has {expected} images, this one {len(pairing.pairs)}: "
                     "the result is not comparable with the published numbers")  # fmt: skip
    return Plan(Task(tuple(pairs), labels, rule, proto), _build(ModelChoice, args), data, dataset, pairing, work,
                args.json, tuple(notes))  # fmt: skip


def run_evaluate(args: argparse.Namespace) -> int:
    from ..cli import EXIT_IMAGE, EXIT_OK, EXIT_USAGE, planned

    job = planned(plan, args)
    if job is None:
        return EXIT_USAGE
    result = execute(job, quiet=args.quiet)
    if isinstance(result, int):
        return result
    if job.json is not None:
        from .. import atomic

        atomic.write_text(job.json, json.dumps(result, indent=1) + "\n")
    return EXIT_IMAGE if result["counts"]["failed"] else EXIT_OK


def _drive(evaluation: Evaluation, quiet: bool):
    """Run the evaluation with a progress bar; report each failed pair as it happens."""
    from tqdm import tqdm

    steps, seen = evaluation.steps(), 0
    with tqdm(total=len(evaluation.task.pairs), unit="image", disable=quiet or None, file=sys.stderr) as bar:
        while True:
            try:
                next(steps)
            except StopIteration as stop:
                return stop.value
            bar.update(1)
            for name, message in evaluation.failed[seen:]:
                tqdm.write(f"napari-sclip: skipped {name}: {message}", file=sys.stderr)
            seen = len(evaluation.failed)


def _published(job: Plan) -> dict[str, Any] | None:
    if job.dataset is None or job.task.protocol.method is None:
        return None
    return job.dataset.published.get(job.task.protocol.method)


def execute(job: Plan, quiet: bool = False) -> dict[str, Any] | int:
    """Load the model, score every pair, print the table; the JSON document, or an exit code."""
    from ..cli import load_checked
    from . import report
    from .store import Store

    for line in job.notes:
        print(f"napari-sclip: {line}", file=sys.stderr)
    model, code = load_checked(job.model, job.task.protocol.options)
    if model is None:
        return code
    task = job.task
    store = Store(job.work, task.setup(model, job.data), len(task.labels.class_names))
    evaluation = Evaluation(task, model, store)
    scores = _drive(evaluation, quiet)
    what = job.dataset.name if job.dataset is not None else "your masks"
    kept = f", {evaluation.resumed} read back from {store.folder}" if evaluation.resumed else ""
    print(f"{what}: {evaluation.done} of {len(task.pairs)} images scored{kept}; {task.protocol.summary()}")
    print(report.table(scores, task.labels.class_names))
    published = _published(job)
    if published:
        print(f"published: {published['miou']} ({published['source']})")
    for hint in _hints(job, scores):
        print(f"napari-sclip: {hint}", file=sys.stderr)
    counts = {"pairs": len(task.pairs), "scored": evaluation.done, "resumed": evaluation.resumed,
              "failed": [{"image": n, "error": m} for n, m in evaluation.failed],
              "unpaired_images": [str(p) for p in job.pairing.images_without_mask],
              "unpaired_masks": [str(p) for p in job.pairing.masks_without_image],
              "valid_pixels": int(scores.counts.truth.sum())}  # fmt: skip
    return report.document(
        scores, task.labels.class_names, counts=counts, settings=task.protocol.describe(),
        model={"name": model.name, "identity": model.identity, "dtype": str(model.dtype).removeprefix("torch."),
               "device": str(model.device), "window": model.window, "patch": model.patch_size},
        data={**job.data, **({"name": job.dataset.name} if job.dataset else {})},
        vocabulary=task.labels.vocabulary.to_text(), published=published, notes=list(job.notes),
        store={"folder": str(store.folder) if store.folder else None, "key": store.key},
    )  # fmt: skip


def _hints(job: Plan, scores) -> list[str]:
    """Advice the numbers call for."""
    vocab, opts = job.task.labels.vocabulary, job.task.protocol.options
    if job.dataset is None and scores.counts.truth[0] > 0 and not vocab.background and opts.threshold == 0:
        return ["the masks have background (0) pixels, but with no background words and no threshold nothing "
                "is labelled 0: add --background words (or a --threshold)"]  # fmt: skip
    return []
