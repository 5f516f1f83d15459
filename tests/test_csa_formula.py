"""The patched last block against SCLIP's formula, re-implemented here in float64 from method.md §1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sclip import SclipModel
from napari_sclip.attention import get_mode
from napari_sclip.encoder import dense_features

from .conftest import make_tiny_clip


def _ln(x, mod):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + mod.eps) * mod.weight + mod.bias


def _softmax(a):
    a = a - a.max(-1, keepdim=True).values
    e = torch.exp(a)
    return e / e.sum(-1, keepdim=True)


def reference_dense(clip, pixels: torch.Tensor, mode: str) -> torch.Tensor:
    """Float64 dense features by the formula: blocks 1..L-1 unchanged, last block per the mode."""
    v = clip.visual.double()
    x = pixels.double()
    p = v.patch_size[0]
    b, _, h, w = x.shape
    gh, gw = h // p, w // p
    patches = x[:, :, : gh * p, : gw * p].reshape(b, 3, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5).reshape(b, gh * gw, -1)
    tokens = patches @ v.conv1.weight.reshape(v.conv1.weight.shape[0], -1).T
    cls = v.class_embedding.expand(b, 1, -1)
    t = torch.cat([cls, tokens], 1) + v.positional_embedding
    t = _ln(t, v.ln_pre)
    blocks = v.transformer.resblocks
    for blk in blocks[:-1]:
        t = blk(t)
    last = blocks[-1]
    y = _ln(t, last.ln_1)
    attn = last.attn
    qkv = y @ attn.in_proj_weight.T + attn.in_proj_bias
    q, k, val = qkv.split(attn.embed_dim, dim=-1)
    heads, d = attn.num_heads, attn.embed_dim // attn.num_heads
    s = d**-0.5
    outs = []
    for hh in range(heads):
        sl = slice(hh * d, (hh + 1) * d)
        qh, kh, vh = q[..., sl], k[..., sl], val[..., sl]
        if mode == "sclip":
            a = _softmax(qh @ qh.transpose(1, 2) * s) + _softmax(kh @ kh.transpose(1, 2) * s)
        else:
            a = _softmax(qh @ kh.transpose(1, 2) * s)
        outs.append(a @ vh)
    o = torch.cat(outs, -1) @ attn.out_proj.weight.T + attn.out_proj.bias
    t = t + o
    hidden = _ln(t, last.ln_2) @ last.mlp.c_fc.weight.T + last.mlp.c_fc.bias
    hidden = torch.nn.functional.gelu(hidden)
    t = t + hidden @ last.mlp.c_proj.weight.T + last.mlp.c_proj.bias
    feats = _ln(t, v.ln_post) @ v.proj
    feats = feats[:, 1:]
    feats = feats / feats.norm(dim=-1, keepdim=True)
    return feats.reshape(b, gh, gw, -1)


@pytest.mark.parametrize("mode", ["sclip", "vanilla"])
def test_last_block_matches_formula_in_float64(mode):
    clip = make_tiny_clip(seed=3, layers=3)
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ours = dense_features(clip.visual.float(), pixels.float(), get_mode(mode)).double()
    ref = reference_dense(make_tiny_clip(seed=3, layers=3), pixels, mode)
    rel = (ours - ref).norm() / ref.norm()
    assert rel <= 1e-6, f"relative error {rel:.2e}"


def test_sclip_differs_from_vanilla():
    """The two modes must not silently coincide (a test that could not fail otherwise)."""
    clip = make_tiny_clip(seed=4)
    pixels = torch.randn(1, 3, 32, 32)
    a = dense_features(clip.visual, pixels, get_mode("sclip"))
    b = dense_features(clip.visual, pixels, get_mode("vanilla"))
    assert (a - b).abs().max() > 1e-3


def test_csa_rows_sum_to_two():
    q = torch.randn(3, 5, 4, dtype=torch.float64)
    k = torch.randn(3, 5, 4, dtype=torch.float64)
    w = get_mode("sclip").weights(q, k, k, 0.5, (2, 2))
    assert torch.allclose(w.sum(-1), torch.full((3, 5), 2.0, dtype=torch.float64))


def test_model_wrapper_runs_the_same_forward(tiny_clip):
    model = SclipModel.from_open_clip(tiny_clip, precision="fp32")
    pixels = torch.randn(1, 3, 32, 32)
    before = model.image_batches_run
    out = model.dense_features(pixels, "sclip")
    assert model.image_batches_run == before + 1
    np.testing.assert_allclose(out.numpy(), dense_features(model.clip.visual, pixels, get_mode("sclip")).numpy(), atol=1e-6)


def test_positional_table_kept_at_native_grid_and_resampled_otherwise(tiny_clip):
    from napari_sclip.towers import position_table

    v = tiny_clip.visual
    assert position_table(v.positional_embedding, (4, 4), (4, 4), True) is v.positional_embedding
    t = position_table(v.positional_embedding, (4, 4), (3, 6), True)
    assert t.shape == (1 + 18, v.positional_embedding.shape[1])
    torch.testing.assert_close(t[0], v.positional_embedding[0])
