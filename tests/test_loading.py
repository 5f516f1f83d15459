"""Loading weights: checkpoint files the tests write, QuickGELU for OpenAI weights, clear failures."""

from __future__ import annotations

import pickle
import time

import numpy as np
import open_clip
import pytest
import torch
from torch import nn

from napari_sclip import load_model, segment
from napari_sclip.errors import CheckpointError, UnsupportedModelError, WeightsUnavailableError
from napari_sclip.model import resolve_precision


def _openai_like_clip(seed=0):
    """Tiny CLIP whose widths are multiples of 64, so its architecture can be read from the state dict."""
    torch.manual_seed(seed)
    return open_clip.CLIP(
        embed_dim=32,
        vision_cfg=dict(image_size=32, patch_size=8, width=64, layers=2),
        text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=1, layers=1),
        quick_gelu=True,
    ).eval()


def _features(model, seed=0):
    px = torch.randn(1, 3, model.window, model.window, generator=torch.Generator().manual_seed(seed))
    return model.dense_features(px)


def _uses_quick_gelu(clip) -> bool:
    return isinstance(clip.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)


def test_safetensors_with_architecture_metadata(tmp_path):
    from .conftest import make_tiny_clip, write_tiny_checkpoint

    path = write_tiny_checkpoint(tmp_path / "tiny.safetensors", seed=7)
    model = load_model(None, path, device="cpu", precision="fp32")
    assert model.name == "tiny" and model.identity.startswith("file:")
    from napari_sclip import SclipModel

    ref = SclipModel.from_open_clip(make_tiny_clip(seed=7))
    torch.testing.assert_close(_features(model), _features(ref))
    assert not _uses_quick_gelu(model.clip)


def test_openai_state_dict_infers_architecture_and_quick_gelu(tmp_path):
    clip = _openai_like_clip()
    sd = {k: v.half() for k, v in clip.state_dict().items()}
    sd.update(input_resolution=torch.tensor(32), context_length=torch.tensor(77), vocab_size=torch.tensor(49408))
    path = tmp_path / "weights.pt"
    torch.save(sd, path)
    model = load_model(None, path, device="cpu", precision="fp32")
    assert _uses_quick_gelu(model.clip)
    assert model.window == 32 and model.patch_size == 8


def test_plain_state_dict_with_a_name_and_bin_suffix(tmp_path):
    clip = open_clip.create_model("ViT-B-32", pretrained=None)
    path = tmp_path / "laion.bin"
    torch.save({"state_dict": {"module." + k: v for k, v in clip.state_dict().items()}}, path)
    model = load_model("ViT-B-32", path, device="cpu", precision="fp32")
    assert model.window == 224 and model.patch_size == 32
    assert not _uses_quick_gelu(model.clip)
    with pytest.raises(CheckpointError, match="does not match the architecture"):
        load_model("ViT-B-16", path, device="cpu", precision="fp32")


def test_openai_torchscript_archive(tmp_path):
    clip = _openai_like_clip(seed=2)
    root = nn.Module()
    for key, value in clip.state_dict().items():
        mod = root
        *parents, leaf = key.split(".")
        for p in parents:
            if not hasattr(mod, p):
                mod.add_module(p, nn.Module())
            mod = getattr(mod, p)
        mod.register_buffer(leaf, value.clone())
    path = tmp_path / "ViT-tiny.pt"
    torch.jit.save(torch.jit.script(root), str(path))
    model = load_model(None, path, device="cpu", precision="fp32")
    assert _uses_quick_gelu(model.clip)
    from napari_sclip import SclipModel

    ref = SclipModel.from_open_clip(_openai_like_clip(seed=2))
    torch.testing.assert_close(_features(model), _features(ref))


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_checkpoint_cannot_run_code(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"visual.conv1.weight": _Evil()}, fh)
    with pytest.raises(CheckpointError, match="For safety"):
        load_model("ViT-B-16", path)
    assert "code ran" not in capsys.readouterr().out


def test_not_a_clip_checkpoint(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save(nn.Linear(3, 4).state_dict(), path)
    with pytest.raises(CheckpointError, match="not a CLIP ViT checkpoint"):
        load_model(None, path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not really")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_model(None, junk)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(None, tmp_path / "missing.pt")


def test_missing_weights_fail_fast_with_the_cache_folder(tmp_path):
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as info:
        load_model("ViT-B-16", "openai", cache_dir=tmp_path / "weights")
    assert time.monotonic() - start < 30
    message = str(info.value)
    assert str(tmp_path / "weights") in message and "ViT-B-16.pt" in message and "local file" in message


def test_unknown_names_and_tags():
    with pytest.raises(UnsupportedModelError, match="Did you mean"):
        load_model("ViT-B-17", "openai")
    with pytest.raises(UnsupportedModelError, match="available tags"):
        load_model("ViT-B-16", "no-such-tag")


def test_precision_rules():
    assert resolve_precision("fp32", torch.device("cpu")) == torch.float32
    assert resolve_precision("auto", torch.device("cuda")) == torch.float16
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("int8", torch.device("cpu"))


def test_vit_b16_openai_weights_placed_by_hand_run_with_quick_gelu(tmp_path):
    """One ViT-B/16 run: random weights saved as OpenAI's ViT-B-16.pt in the cache folder."""
    clip = open_clip.create_model("ViT-B-16", pretrained=None)
    sd = {k: v.half() for k, v in clip.state_dict().items()}
    sd.update(input_resolution=torch.tensor(224), context_length=torch.tensor(77), vocab_size=torch.tensor(49408))
    torch.save(sd, tmp_path / "ViT-B-16.pt")
    del clip, sd
    model = load_model("ViT-B-16", "openai", cache_dir=tmp_path, device="cpu")
    assert _uses_quick_gelu(model.clip)
    assert model.window == 224 and model.patch_size == 16
    image = np.random.default_rng(0).integers(0, 255, (224, 300, 3), dtype=np.uint8)
    seg = segment(image, "cell; background noise", model=model, short_side=224)
    assert seg.labels.shape == (224, 300) and len(seg.boxes) == 2
    assert seg.features.shape[:2] == (14, 14) and seg.features.shape[-1] == 512
