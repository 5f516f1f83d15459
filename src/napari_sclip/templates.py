"""The 80 OpenAI ImageNet prompt templates, stored as data in ``data/templates.txt``."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def imagenet_templates() -> tuple[str, ...]:
    """Return the 80 templates; each has one ``{}`` where the phrase goes."""
    text = resources.files("napari_sclip").joinpath("data/templates.txt").read_text("utf-8")
    templates = tuple(line for line in text.splitlines() if line.strip())
    assert all(t.count("{}") == 1 for t in templates)
    return templates
