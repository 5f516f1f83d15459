"""The evaluation loop: for each image/mask pair, segment, map labels, count, keep the counts.

An image is compared at its mask's resolution: the engine returns labels at the image's own size
(whatever size it was segmented at), so an image and its mask must have the same height and width;
a pair that does not is refused (listed as failed, the others go on), never resized.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import io
from ..errors import SclipError
from ..steps import Progress, Steps
from .classes import LabelSpace
from .masks import LabelRule, read_mask
from .metric import Counts, Scores
from .pairs import Pair
from .protocol import Protocol, image_options
from .store import Store


@dataclass(frozen=True)
class Task:
    """What to evaluate: the pairs, the label space, the mask rule and the protocol."""

    pairs: tuple[Pair, ...]
    labels: LabelSpace
    rule: LabelRule
    protocol: Protocol

    def setup(self, model, data: dict[str, Any]) -> dict[str, Any]:
        """Everything a count depends on (the results store's key)."""
        from .. import __version__

        return {
            "version": __version__, "data": data, "protocol": self.protocol.describe(),
            "model": {"identity": model.identity, "dtype": str(model.dtype), "device": model.device.type,
                      "window": model.window, "patch": model.patch_size},
            "labels": self.labels.describe(), "rule": self.rule.describe(),
        }  # fmt: skip


def score_pair(task: Task, model, pair: Pair) -> tuple[Counts, dict[str, Any]]:
    """Counts of one pair, and what was done (sizes). Raises SclipError / ValueError / OSError."""
    from ..segment import segment

    truth = task.rule.labels(read_mask(pair.mask), pair.mask.name)
    image = io.read_image(pair.image)
    h, w = image.shape[:2]
    if truth.shape != (h, w):
        raise ValueError(f"the image is {h} x {w} pixels but its mask {pair.mask.name} is "
                         f"{truth.shape[0]} x {truth.shape[1]}; an image and its mask must have the same size")  # fmt: skip
    options, size = image_options(task.protocol, h, w)
    seg = segment(image, task.labels.vocabulary, model=model, options=options)
    pred = task.labels.to_masks[seg.labels]
    counts = Counts.of(pred, truth, len(task.labels.class_names), task.rule.ignore_index)
    return counts, {"size": [h, w], "segmented_at": list(size)}


@dataclass
class Evaluation:
    """One run over a task; :meth:`steps` fills ``totals`` and the tallies as it goes."""

    task: Task
    model: Any
    store: Store
    totals: Counts = field(init=False)
    done: int = 0
    resumed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.totals = Counts.zeros(len(self.task.labels.class_names))

    def steps(self) -> Steps[Scores]:
        """Yield :class:`Progress` after each image; return the scores of the whole set."""
        n = len(self.task.pairs)
        for i, pair in enumerate(self.task.pairs):
            stored = self.store.load(pair.name)
            if stored is not None:
                counts, info = stored
                self.resumed += 1
            else:
                try:
                    counts, info = score_pair(self.task, self.model, pair)
                except (SclipError, ValueError, OSError) as exc:
                    self.failed.append((pair.name, str(exc)))
                    yield Progress(i + 1, n, pair.name)
                    continue
                self.store.save(pair.name, counts, info)
            self.totals = self.totals + counts
            self.done += 1
            yield Progress(i + 1, n, pair.name)
        return Scores.of(self.totals)
