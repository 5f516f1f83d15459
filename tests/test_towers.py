"""Every tower kind with random weights, offline: open_clip's ViT, the same ViT with open_clip's newer
``Attention`` class (a stand-in with its attributes, as 3.3.0 lacks it), a timm ViT inside open_clip
(BiomedCLIP's structure); every mode on each; ResNet and ConvNeXt refused with what to use instead."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from napari_sclip import SclipModel
from napari_sclip.attention import MODES, get_mode
from napari_sclip.encoder import ModeInputs, dense_features, last_block, run_trunk
from napari_sclip.errors import UnsupportedModelError
from napari_sclip.towers import tower_of

from .conftest import TINY_CONFIG, make_tiny_clip

TEXT = TINY_CONFIG["text_cfg"]


class StandInAttention(nn.Module):
    """open_clip main's ``Attention``: fused in-projection, per-head q/k norms, merge, out_proj; (N, L, C)."""

    def __init__(self, mha: nn.MultiheadAttention, qk_norm: bool = False):
        super().__init__()
        self.num_heads, self.head_dim = mha.num_heads, mha.head_dim
        self.scale = self.head_dim**-0.5
        self.in_proj_weight, self.in_proj_bias = mha.in_proj_weight, mha.in_proj_bias
        self.ln_q = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.ln_k = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        if qk_norm:
            for ln in (self.ln_q, self.ln_k):
                nn.init.normal_(ln.weight, 1.0, 0.2)
        self.logit_scale, self.head_scale, self.ln_inner = None, None, nn.Identity()
        self.out_proj = mha.out_proj

    def forward(self, x, k_x=None, v_x=None, attn_mask=None):
        n, length, c = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(n, length, self.num_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        q, k = self.ln_q(q), self.ln_k(k)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.out_proj(self.ln_inner(out.transpose(1, 2).reshape(n, length, c)))


class StandInBlock(nn.Module):
    """open_clip main's ResidualAttentionBlock around the stand-in attention."""

    def __init__(self, block, qk_norm: bool = False):
        super().__init__()
        self.ln_1, self.ls_1, self.ln_2, self.mlp, self.ls_2 = block.ln_1, block.ls_1, block.ln_2, block.mlp, block.ls_2
        self.attn = StandInAttention(block.attn, qk_norm)

    def forward(self, q_x, k_x=None, v_x=None, attn_mask=None):
        x = q_x + self.ls_1(self.attn(self.ln_1(q_x)))
        return x + self.ls_2(self.mlp(self.ln_2(x)))


def with_stand_in_attention(clip, qk_norm=False):
    clip = copy.deepcopy(clip)
    blocks = clip.visual.transformer.resblocks
    for i, blk in enumerate(blocks):
        blocks[i] = StandInBlock(blk, qk_norm)
    return clip


def timm_clip(seed=0):
    """An open_clip CLIP whose image tower is timm's (BiomedCLIP's structure: TimmModel, CLS pooling,
    a linear head without bias), its trunk made small after building from a timm_model_name config."""
    import open_clip
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(seed)
    clip = open_clip.CLIP(embed_dim=32, vision_cfg=dict(timm_model_name="vit_tiny_patch16_224", timm_pool="",
                          timm_proj="linear", image_size=224), text_cfg=TEXT)  # fmt: skip
    clip.visual.trunk = VisionTransformer(img_size=32, patch_size=8, embed_dim=24, depth=12, num_heads=2,
                                          num_classes=0, global_pool="token")  # fmt: skip
    clip.visual.head.proj = nn.Linear(24, 32, bias=False)
    clip.visual.image_size = (32, 32)
    return clip.eval()


def cls_of_vanilla(clip, pixels):
    """The CLS token of the dense path in vanilla mode, before normalisation."""
    tower = tower_of(clip.visual)
    trunk = run_trunk(tower, pixels, get_mode("vanilla"))
    return tower.project(last_block(trunk, trunk.x))[:, 0]


@pytest.mark.parametrize("make", ["open_clip", "stand-in", "stand-in qk-norm", "timm"])
def test_vanilla_cls_equals_encode_image_and_every_mode_runs(make):
    clip = timm_clip() if make == "timm" else make_tiny_clip(seed=1, layers=12)
    if make.startswith("stand-in"):
        clip = with_stand_in_attention(clip, qk_norm=make.endswith("qk-norm"))
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(cls_of_vanilla(clip, pixels), clip.encode_image(pixels), rtol=1e-5, atol=1e-5)
    model = SclipModel.from_open_clip(clip, precision="fp32")
    assert (model.window, model.patch_size, model.embed_dim) == (32, 8, 32)
    text = F.normalize(torch.randn(3, 32), dim=-1)
    for mode in MODES:
        feats = model.dense_features(torch.randn(1, 3, 40, 32), mode, text=text)  # a non-native window: 5 x 4
        assert feats.shape[:3] == (1, *get_mode(mode).grid(40, 32, 8)) and torch.isfinite(feats).all()


def test_the_stand_in_attention_gives_the_same_features():
    clip = make_tiny_clip(seed=2, layers=12)
    other = with_stand_in_attention(clip)
    pixels = torch.randn(1, 3, 64, 64)  # 64 patches: SC-CLIP's 30 neighbours are not all the others
    text = F.normalize(torch.randn(3, 32), dim=-1)
    for mode in MODES:
        a = dense_features(clip.visual, pixels, get_mode(mode), ModeInputs(text=text))
        b = dense_features(other.visual, pixels, get_mode(mode), ModeInputs(text=text))
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_biomedclip_config_builds_offline_and_runs():
    import open_clip

    cfg = {"embed_dim": 32, "vision_cfg": {"timm_model_name": "vit_tiny_patch16_224", "timm_model_pretrained": False,
           "timm_pool": "", "timm_proj": "linear", "image_size": 224},
           "text_cfg": TEXT}  # fmt: skip
    clip = open_clip.CLIP(**cfg).eval()
    pixels = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(cls_of_vanilla(clip, pixels), clip.encode_image(pixels), rtol=1e-5, atol=1e-5)
    assert json.dumps(cfg)  # the BiomedCLIP hub config has this shape, with vit_base_patch16_224 and a BERT text tower


def test_resnet_and_convnext_towers_are_refused_with_what_to_use():
    import open_clip
    from open_clip.timm_model import TimmModel

    resnet = open_clip.CLIP(embed_dim=32, vision_cfg=dict(layers=[1, 1, 1, 1], width=8, image_size=64, head_width=8),
                            text_cfg=TEXT)  # fmt: skip
    convnext = TimmModel("convnext_atto", embed_dim=32, pool="avg", proj="linear")
    for visual, kind in ((resnet.visual, "ResNet"), (convnext, "ConvNeXt")):
        with pytest.raises(UnsupportedModelError, match=f"{kind}.*not a ViT.*ViT-B-16.*BiomedCLIP"):
            tower_of(visual)


def test_a_timm_tower_checkpoint_loads_from_its_file(tmp_path):
    from napari_sclip import load_model
    from napari_sclip.checkpoints import save_checkpoint

    cfg = dict(embed_dim=32, vision_cfg=dict(timm_model_name="vit_tiny_patch16_224", timm_pool="", timm_proj="linear",
                                             image_size=224), text_cfg=TEXT)  # fmt: skip
    import open_clip

    torch.manual_seed(0)
    save_checkpoint(open_clip.CLIP(**cfg), tmp_path / "biomed-like.safetensors", cfg, name="biomed-like")
    model = load_model(None, tmp_path / "biomed-like.safetensors", device="cpu", precision="fp32")
    assert (model.window, model.patch_size, model.embed_dim) == (224, 16, 32)
    assert model.dense_features(torch.randn(1, 3, 224, 224), "naclip").shape == (1, 14, 14, 32)


def test_a_hub_model_without_transformers_says_what_to_install(monkeypatch, tmp_path):
    import open_clip

    from napari_sclip import load_model, weights

    def create_model(name, **kw):
        raise RuntimeError("Please `pip install transformers` to use pre-trained HuggingFace models")

    monkeypatch.setattr(weights, "_hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(open_clip, "create_model", create_model)
    with pytest.raises(UnsupportedModelError, match="BiomedCLIP's PubMedBERT.*pip install transformers"):
        load_model("hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", cache_dir=tmp_path)
