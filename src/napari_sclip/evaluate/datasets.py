"""Benchmark datasets, defined as data: one JSON file per dataset under ``data/datasets/``.

Each file gives the layout mmseg reads after the standard preparation (folders under the root,
split file, suffixes), how stored masks become labels (``reduce_zero_label``, ignore 255, a colour
table for colour masks), the class names in label order as the dataset defines them, which class
is the background and the words that stand for it (``"@paper"``: the paper's 26 background
words), each method's published settings for it (run options layered on the method's preset, see
:mod:`napari_sclip.methods`), and the published mIoU.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from .. import methods
from ..vocabulary import PAPER_BACKGROUND
from .masks import LabelRule
from .pairs import Pairing, layout_pairs


def _data(*parts: str):
    return resources.files("napari_sclip.evaluate").joinpath("data", *parts)


def normalise(name: str) -> str:
    """``"COCO-Object"``, ``"coco_object"`` and ``"cocoobject"`` are the same name."""
    return re.sub(r"[^a-z0-9+]", "", name.lower())


@dataclass(frozen=True)
class Dataset:
    """A benchmark's layout, labels, vocabulary and published settings (see the module doc)."""

    key: str
    name: str
    title: str
    root_hint: str
    images: str
    masks: str
    split: str | None
    image_suffix: str
    mask_suffix: str
    images_expected: int | None
    preparation: str
    classes: tuple[str, ...]
    background_index: int | None
    background_words: tuple[str, ...]
    rule: LabelRule
    settings: dict[str, dict[str, Any]]
    published: dict[str, dict[str, Any]]
    names_file: str
    builtin_matches_names_file: bool

    def pairs(self, root: Path) -> Pairing:
        """The image/mask pairs under ``root`` (the folder that holds :attr:`images`)."""
        return layout_pairs(Path(root), self.images, self.masks, self.image_suffix, self.mask_suffix, self.split)

    @classmethod
    def from_json(cls, key: str, data: dict[str, Any]) -> Dataset:
        bg = data.get("background")
        words: list[str] = []
        for w in (bg or {}).get("words", []):
            words.extend(PAPER_BACKGROUND if w == "@paper" else [w])
        colours = data.get("colours") or {}
        rule = LabelRule(
            n_classes=len(data["classes"]),
            reduce_zero_label=bool(data["reduce_zero_label"]),
            ignore_index=int(data.get("ignore_index", 255)),
            colours={tuple(c): int(v) for c, v in colours.get("table", [])},
            colour_default=colours.get("default"),
        )
        return cls(
            key=key, name=data["name"], title=data["title"], root_hint=data["root"], images=data["images"],
            masks=data["masks"], split=data.get("split"), image_suffix=data["image_suffix"],
            mask_suffix=data["mask_suffix"], images_expected=data.get("images_expected"),
            preparation=data.get("preparation", ""), classes=tuple(data["classes"]),
            background_index=None if bg is None else int(bg["index"]), background_words=tuple(words), rule=rule,
            settings=data.get("settings", {}), published=data.get("published", {}), names_file=data.get("names_file", ""),
            builtin_matches_names_file=bool(data.get("builtin_matches_names_file")),
        )  # fmt: skip


@cache
def _dataset_files() -> dict[str, str]:
    folder = _data("datasets")
    return {normalise(p.name[:-5]): p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json")}


def dataset_names() -> list[str]:
    """The keys of the bundled datasets (``voc21``, ``coco-object``, ``potsdam``...)."""
    return sorted(_dataset_files().values())


@cache
def load_dataset(name: str) -> Dataset:
    """A bundled dataset by name (case, ``-`` and ``_`` do not matter)."""
    key = _dataset_files().get(normalise(name))
    if key is None:
        raise ValueError(f"no dataset {name!r}; choose one of: {', '.join(dataset_names())}")
    return Dataset.from_json(key, json.loads(_data("datasets", key + ".json").read_text("utf-8")))


def load_methods() -> dict[str, dict[str, Any]]:
    """Each method's defaults: the run-option presets (:mod:`napari_sclip.methods`), by name."""
    return methods.load()


def method_names() -> list[str]:
    return methods.names()
