"""Seeded synthetic scenes: captioned training images and labelled held-out test scenes.

Each *concept* is a word with a look: eight colour words painted as noisy, shaded flat colour, and two
texture words painted in greys. Images are partitions of the canvas into wobbly Voronoi cells, each cell
painted with one concept.

* ``make_training_batch`` draws small images (64 px by default) and captions naming every concept they
  contain, written with the same 80 ImageNet templates the engine averages over at inference
  (``"a bad photo of a red and blue."``), so the text tower learns those templates.
* ``make_scene`` draws a larger labelled scene with several regions and its ground-truth mask.

Training images come from the stream ``default_rng([TRAIN_STREAM, seed])`` and scenes from
``default_rng([SCENE_STREAM, seed])``: different streams, so no test scene was seen in training.
Numpy only, deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..templates import imagenet_templates

CONCEPTS: tuple[str, ...] = (
    "red",
    "green",
    "blue",
    "yellow",
    "orange",
    "purple",
    "white",
    "black",
    "stripes",
    "dots",
)
"""The words the tiny CLIP knows, each with a distinct look; index i <-> ``CONCEPTS[i]``."""

_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (205, 35, 35),
    "green": (40, 170, 55),
    "blue": (40, 70, 215),
    "yellow": (235, 215, 40),
    "orange": (245, 135, 25),
    "purple": (140, 45, 175),
    "white": (238, 238, 238),
    "black": (22, 22, 22),
}

TRAIN_STREAM: int = 0
"""First entry of the seed sequence of training batches."""
SCENE_STREAM: int = 1
"""First entry of the seed sequence of held-out scenes."""


class Scene(NamedTuple):
    """A labelled scene: ``image`` (H, W, 3) uint8, ``mask`` (H, W) int32 with 1..K for
    ``class_names[0..K-1]`` (every pixel belongs to a class), and the class names."""

    image: np.ndarray
    mask: np.ndarray
    class_names: list[str]


def _paint(rng: np.random.Generator, concept: str, h: int, w: int) -> np.ndarray:
    """Return an (h, w, 3) float image of one concept's look, with random jitter, shading and noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if concept in _COLOURS:
        base = np.asarray(_COLOURS[concept], np.float32) + rng.uniform(-18, 18, 3)
        base = base * rng.uniform(0.85, 1.1)
        img = np.broadcast_to(base, (h, w, 3)).astype(np.float32)
    elif concept == "stripes":
        lo, hi = rng.uniform(35, 90), rng.uniform(165, 225)
        period, angle = rng.uniform(5.0, 9.0), rng.uniform(0, np.pi)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) * (2 * np.pi / period) + rng.uniform(0, 7)
        wave = np.clip(np.sin(phase) * 3.0, -1.0, 1.0) * 0.5 + 0.5
        img = np.repeat((lo + (hi - lo) * wave)[..., None], 3, axis=2)
    elif concept == "dots":
        lo, hi = rng.uniform(45, 90), rng.uniform(175, 230)
        spacing, radius = rng.uniform(6.0, 9.0), rng.uniform(1.4, 2.4)
        cy = np.round(yy / spacing) * spacing
        cx = np.round(xx / spacing) * spacing
        # jitter every dot centre by a hash of its grid cell, so the lattice is not perfect
        cell = (cy / spacing * 7919 + cx / spacing * 104729).astype(np.int64) % 997
        jitter = rng.uniform(-1.2, 1.2, (997, 2)).astype(np.float32)
        dist2 = (yy - cy - jitter[cell, 0]) ** 2 + (xx - cx - jitter[cell, 1]) ** 2
        dot = np.clip(radius + 0.5 - np.sqrt(dist2), 0.0, 1.0)
        img = np.repeat((lo + (hi - lo) * dot)[..., None], 3, axis=2)
    else:
        raise ValueError(f"unknown concept {concept!r}; known: {', '.join(CONCEPTS)}")
    # a gentle linear shading and per-pixel noise
    gy, gx = rng.uniform(-15, 15, 2) / max(h, w)
    img = img + (gy * (yy - h / 2) + gx * (xx - w / 2))[..., None]
    return img + rng.normal(0.0, rng.uniform(4.0, 14.0), (h, w, 3))


def _cells(rng: np.random.Generator, h: int, w: int, n: int) -> np.ndarray:
    """Partition an (h, w) canvas into ``n`` Voronoi cells with wobbly borders; return cell ids."""
    if n <= 1:
        return np.zeros((h, w), np.int64)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    amp = rng.uniform(0, max(h, w) / 14, 2)
    wl = rng.uniform(0.4, 1.0, 2) * max(h, w)
    ph = rng.uniform(0, 2 * np.pi, 2)
    y = yy + amp[0] * np.sin(2 * np.pi * xx / wl[0] + ph[0])
    x = xx + amp[1] * np.sin(2 * np.pi * yy / wl[1] + ph[1])
    seeds = rng.uniform(0, 1, (n, 2)) * (h, w)
    d2 = (y[None] - seeds[:, 0, None, None]) ** 2 + (x[None] - seeds[:, 1, None, None]) ** 2
    return np.argmin(d2, axis=0)


def _partition(
    rng: np.random.Generator, h: int, w: int, n_concepts: int, n_cells: int, min_fraction: float
) -> np.ndarray:
    """Return an (h, w) map of slot ids 0..n_concepts-1, every slot covering >= min_fraction."""
    for _ in range(50):
        cells = _cells(rng, h, w, n_cells)
        slot_of_cell = np.concatenate(
            [np.arange(n_concepts), rng.integers(0, n_concepts, n_cells - n_concepts)]
        )
        slots = slot_of_cell[cells]
        if np.bincount(slots.ravel(), minlength=n_concepts).min() >= min_fraction * h * w:
            return slots
    raise RuntimeError("could not draw a partition with large enough regions")  # pragma: no cover


def render_concepts(
    rng: np.random.Generator, slots: np.ndarray, concepts: Sequence[str]
) -> np.ndarray:
    """Paint slot ``i`` of the (H, W) int map ``slots`` with ``concepts[i]``; return (H, W, 3) uint8."""
    h, w = slots.shape
    out = np.zeros((h, w, 3), np.float32)
    for i, concept in enumerate(concepts):
        where = slots == i
        if where.any():
            out[where] = _paint(rng, concept, h, w)[where]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def caption_for(rng: np.random.Generator, concepts: Sequence[str]) -> str:
    """Caption naming ``concepts`` in random order ("red", "red and blue", "red, blue and dots"),
    put into one of the engine's 80 templates drawn at random."""
    names = [concepts[i] for i in rng.permutation(len(concepts))]
    phrase = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    templates = imagenet_templates()
    return templates[int(rng.integers(len(templates)))].format(phrase)


def make_training_batch(
    rng: np.random.Generator,
    n: int,
    size: int = 64,
    *,
    concept_count_weights: Sequence[float] = (0.4, 0.4, 0.2),
) -> tuple[np.ndarray, list[str], list[frozenset[int]]]:
    """Draw ``n`` captioned training images.

    Returns images (n, size, size, 3) uint8, their captions, and each image's set of concept indices
    (two images with the same set are positives for each other's captions in the contrastive loss).
    ``concept_count_weights[k-1]`` is the probability of an image showing k distinct concepts.
    """
    p = np.asarray(concept_count_weights, float)
    images = np.empty((n, size, size, 3), np.uint8)
    captions: list[str] = []
    sets: list[frozenset[int]] = []
    for i in range(n):
        k = int(rng.choice(len(p), p=p / p.sum())) + 1
        ids = rng.choice(len(CONCEPTS), size=k, replace=False)
        names = [CONCEPTS[j] for j in ids]
        slots = _partition(rng, size, size, k, k + int(rng.integers(0, 3)), 0.12)
        images[i] = render_concepts(rng, slots, names)
        captions.append(caption_for(rng, names))
        sets.append(frozenset(int(j) for j in ids))
    return images, captions, sets


def make_scene(
    seed: int,
    size: int | tuple[int, int] = 128,
    *,
    n_classes: int | None = None,
    n_cells: int | None = None,
) -> Scene:
    """Draw held-out labelled scene number ``seed``.

    ``size`` is the side (or (H, W)); by default 3 to 5 concepts over 4 to 7 wobbly Voronoi cells, each
    concept covering at least 4 % of the image. ``class_names`` lists the concepts present in
    ``CONCEPTS`` order and ``mask`` holds 1..K for them.
    """
    rng = np.random.default_rng([SCENE_STREAM, seed])
    h, w = (size, size) if isinstance(size, int) else size
    k = int(rng.integers(3, 6)) if n_classes is None else n_classes
    cells = max(k, int(rng.integers(4, 8))) if n_cells is None else max(k, n_cells)
    ids = np.sort(rng.choice(len(CONCEPTS), size=k, replace=False))
    names = [CONCEPTS[j] for j in ids]
    slots = _partition(rng, h, w, k, cells, 0.04)
    image = render_concepts(rng, slots, names)
    return Scene(image=image, mask=(slots + 1).astype(np.int32), class_names=names)
