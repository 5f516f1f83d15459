"""Shared fixtures: tiny random open_clip models built in-process (no downloads) and an isolated cache."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Weights and text-embedding caches go to a temporary folder, never the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NAPARI_SCLIP_CACHE_DIR", str(tmp_path_factory.mktemp("sclip-cache")))
    mp.setenv("HF_HUB_OFFLINE", "1")
    yield
    mp.undo()


TINY_CONFIG = dict(
    embed_dim=32,
    vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=2, head_width=16),
    text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=1),
)


def make_tiny_clip(seed: int = 0, image_size: int = 32, patch_size: int = 8, width: int = 32, layers: int = 2):
    """A random-weights open_clip CLIP of a few hundred thousand parameters (milliseconds to build)."""
    import open_clip
    import torch

    torch.manual_seed(seed)
    vision = dict(TINY_CONFIG["vision_cfg"], image_size=image_size, patch_size=patch_size, width=width, layers=layers)
    return open_clip.CLIP(**dict(TINY_CONFIG, vision_cfg=vision)).eval()


def write_tiny_checkpoint(path, seed: int = 0):
    """Save the default tiny CLIP of ``seed`` as a self-describing safetensors checkpoint."""
    from napari_sclip.checkpoints import save_checkpoint

    save_checkpoint(make_tiny_clip(seed=seed), path, TINY_CONFIG, name="tiny")
    return path


@pytest.fixture
def tiny_clip():
    return make_tiny_clip()


@pytest.fixture
def tiny_model(tiny_clip):
    """A tiny SclipModel on the CPU in fp32, window 32 px, patch 8 px."""
    from napari_sclip import SclipModel

    return SclipModel.from_open_clip(tiny_clip, name="tiny-random", precision="fp32")


@pytest.fixture
def rgb_image():
    """A smooth 70 x 90 RGB uint8 image with a few regions."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:70, 0:90]
    img = np.stack([(xx * 2.8) % 256, (yy * 3.6) % 256, ((xx + yy) * 1.5) % 256], axis=-1)
    return (img + rng.normal(0, 5, img.shape)).clip(0, 255).astype(np.uint8)


def reference_merge(features, text, boxes, size):
    """The paper's merge, one window at a time in float64: upsample its logits to the window with
    F.interpolate, pad into the canvas, divide by the coverage count (an independent reference)."""
    import torch
    import torch.nn.functional as F

    q = text.shape[0]
    preds = torch.zeros(q, *size, dtype=torch.float64)
    count = torch.zeros(1, *size, dtype=torch.float64)
    for f, b in zip(features, boxes):
        logits = (f.double() @ text.double().T).permute(2, 0, 1)[None]
        up = F.interpolate(logits, size=(b.y1 - b.y0, b.x1 - b.x0), mode="bilinear", align_corners=False)[0]
        preds += F.pad(up, (b.x0, size[1] - b.x1, b.y0, size[0] - b.y1))
        count[:, b.y0 : b.y1, b.x0 : b.x1] += 1
    return preds / count


# ---------------------------------------------------------------- the napari widget (Xvfb)
@pytest.fixture(scope="session")
def _one_viewer(qapp):
    """One real viewer for the whole session (a viewer costs ~2 s to build and close)."""
    import napari

    v = napari.Viewer(show=False, show_welcome_screen=False)
    yield v
    v.close()


@pytest.fixture
def viewer(_one_viewer, qtbot):
    """The shared viewer, emptied after each test (docks, layers, size); the test fails if an
    exception reached napari's notification hook."""
    from napari.utils.notifications import ErrorNotification, notification_manager

    start = len(notification_manager.records)
    yield _one_viewer
    _one_viewer.window.remove_dock_widget("all")
    _one_viewer.layers.clear()
    _one_viewer.window.resize(1200, 800)
    qtbot.wait(10)
    errors = [r for r in notification_manager.records[start:] if isinstance(r, ErrorNotification)]
    assert not errors, [str(e.message) for e in errors]


@pytest.fixture
def widget(viewer, qtbot, tiny_model):
    """The widget as napari builds it from the manifest (napari hands it a public-API proxy)."""
    from .widget_support import CLASSES, register_manifest

    register_manifest()
    _dock, w = viewer.window.add_plugin_dock_widget("napari-sclip", "Open-vocabulary segmentation")
    w.set_model(tiny_model)
    w.set_vocabulary(CLASSES, "")
    w.set_options(short_side=64)
    w.panels.results.edit_policy.value = "keep"
    return w


@pytest.fixture
def large(monkeypatch):
    """Every result over 1000 pixels is large (lazy, in a store: see tests/test_widget_large.py)."""
    from napari_sclip._napari import session

    monkeypatch.setattr(session, "LARGE_PIXELS", 1000)
