"""Test support: synthetic captioned scenes and the tiny CLIP trained on them.

No real CLIP weights can be fetched in the test environment, so the project trains a tiny CLIP
(``scripts/train_tiny_clip.py``) on procedurally generated images whose captions name the colours and
textures they show, and ships its weights as ``tiny_shapes_clip.safetensors`` next to this file. Tests
then check *meaning*: that the right word lands on the right region of a held-out scene.
"""

from __future__ import annotations

from pathlib import Path

from .scenes import (
    CONCEPTS,
    SCENE_STREAM,
    TRAIN_STREAM,
    Scene,
    caption_for,
    make_scene,
    make_training_batch,
    render_concepts,
)

TINY_CLIP_PATH: Path = Path(__file__).with_name("tiny_shapes_clip.safetensors")
"""The committed tiny CLIP (fp16 safetensors with its open_clip config in the metadata)."""


def tiny_clip_path() -> Path:
    """Return the path of the committed tiny CLIP; raise ``FileNotFoundError`` if it is missing."""
    if not TINY_CLIP_PATH.is_file():
        raise FileNotFoundError(f"tiny test CLIP not found at {TINY_CLIP_PATH}")
    return TINY_CLIP_PATH


__all__ = [
    "CONCEPTS",
    "SCENE_STREAM",
    "TRAIN_STREAM",
    "TINY_CLIP_PATH",
    "Scene",
    "caption_for",
    "make_scene",
    "make_training_batch",
    "render_concepts",
    "tiny_clip_path",
]
