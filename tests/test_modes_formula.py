"""Each mode's dense features against its formula, re-implemented here in float64 from the papers'
official code as method.md and the mode docstrings state it (loops where they are clearest), on a
12-block tiny CLIP so that the block numbers are the papers' own."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_sclip.attention import get_mode
from napari_sclip.encoder import ModeInputs, dense_features

from .conftest import make_tiny_clip
from .test_csa_formula import _ln, _softmax

PATCH, SIZE = 8, 64  # an 8 x 8 grid of patches


@pytest.fixture(scope="module")
def clip64():
    return make_tiny_clip(seed=5, layers=12, image_size=SIZE, patch_size=PATCH).double().requires_grad_(False)


@pytest.fixture(scope="module")
def pixels():
    g = torch.Generator().manual_seed(2)
    coarse = torch.randn(1, 3, 4, 4, generator=g, dtype=torch.float64)
    img = F.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return img + 0.3 * torch.randn(1, 3, SIZE, SIZE, generator=g, dtype=torch.float64)


@pytest.fixture(scope="module")
def text():
    return F.normalize(torch.randn(5, 32, generator=torch.Generator().manual_seed(4), dtype=torch.float64), dim=-1)


def trunk64(clip, x):
    """Blocks 1..11: outputs X_b and each block's own attention softmax(s q k^T), per head."""
    v = clip.visual
    g = SIZE // PATCH
    patches = x.reshape(1, 3, g, PATCH, g, PATCH).permute(0, 2, 4, 1, 3, 5).reshape(1, g * g, -1)
    t = torch.cat([v.class_embedding.expand(1, 1, -1), patches @ v.conv1.weight.reshape(32, -1).T], 1)
    t = _ln(t + v.positional_embedding, v.ln_pre)
    outputs, attentions = {}, {}
    for b, blk in enumerate(v.transformer.resblocks[:-1], start=1):
        q, k, _ = heads(blk, t)
        attentions[b] = _softmax(q @ k.transpose(-1, -2) * 16**-0.5)
        t = blk(t)
        outputs[b] = t
    return t, outputs, attentions


def heads(blk, t):
    """q, k, v per head, (heads, L, 16), from ln_1 and the in-projection with its bias."""
    y = _ln(t, blk.ln_1)[0] @ blk.attn.in_proj_weight.T + blk.attn.in_proj_bias
    return [y[:, i * 32 : (i + 1) * 32].reshape(-1, 2, 16).transpose(0, 1) for i in range(3)]


def mix(blk, weights, v):
    """The heads' weights @ v, merged, through out_proj: (1, L, 32)."""
    o = (weights @ v).transpose(0, 1).reshape(1, v.shape[1], 32)
    return o @ blk.attn.out_proj.weight.T + blk.attn.out_proj.bias


def project(clip, t):
    return _ln(t, clip.visual.ln_post) @ clip.visual.proj


def unit(t):
    return t / t.norm(dim=-1, keepdim=True)


def gaussian(g, sigma=5.0, cls=True):
    n = g * g
    out = torch.zeros(n + cls, n + cls, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            d2 = (i // g - j // g) ** 2 + (i % g - j % g) ** 2
            out[i + cls, j + cls] = math.exp(-d2 / (2 * sigma**2))
    return out


def ours(clip, x, mode, **inputs):
    f = dense_features(clip.visual, x, get_mode(mode), ModeInputs(**inputs) if inputs else None)
    return f.reshape(1, -1, f.shape[-1])


def close(a, b, tol=1e-10):
    rel = ((a - b).norm() / b.norm()).item()
    assert rel < tol, f"relative error {rel:.2e}"


def test_clearclip(clip64, pixels):
    t, _, _ = trunk64(clip64, pixels)
    last = clip64.visual.transformer.resblocks[-1]
    q, _, v = heads(last, t)
    out = mix(last, _softmax(q @ q.transpose(-1, -2) * 0.25), v)  # no residual, no FFN
    close(ours(clip64, pixels, "clearclip"), unit(project(clip64, out)[:, 1:]))


def test_naclip(clip64, pixels):
    t, _, _ = trunk64(clip64, pixels)
    last = clip64.visual.transformer.resblocks[-1]
    _, k, v = heads(last, t)
    out = mix(last, _softmax(k @ k.transpose(-1, -2) * 0.25 + gaussian(8)), v)
    close(ours(clip64, pixels, "naclip"), unit(project(clip64, out)[:, 1:]))


def test_segearth_with_its_global_bias(clip64, pixels, text):
    t, _, _ = trunk64(clip64, pixels)
    last = clip64.visual.transformer.resblocks[-1]
    q, k, v = heads(last, t)
    w = sum(_softmax(a @ a.transpose(-1, -2) * 0.25) for a in (q, k, v))
    feats = unit(project(clip64, mix(last, w, v)))
    logits = feats[:, 1:] @ text.T - 0.3 * (feats[:, :1] @ text.T)  # the window's CLS logits, lambda -0.3
    close(ours(clip64, pixels, "segearth") @ text.T, logits)


def pamr64(img, m, steps=10, dil=(8, 16)):
    """PAMR by its definition: neighbours at clamped indices, std over the 3x3 samples of each dilation."""
    _, c, h, w = img.shape
    ys, xs = torch.arange(h), torch.arange(w)

    def at(t, dy, dx):
        return t[:, :, (ys + dy).clamp(0, h - 1)][:, :, :, (xs + dx).clamp(0, w - 1)]

    offs = [(dy * d, dx * d) for d in dil for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    samples = torch.stack([at(img, dy, dx) for dy, dx in offs])
    std = samples.std(dim=0, unbiased=True)
    nbrs = [o for o in offs if o != (0, 0)]
    aff = torch.stack([(-(img - at(img, dy, dx)).abs() / (1e-8 + 0.1 * std)).mean(1) for dy, dx in nbrs])
    aff = torch.softmax(aff, dim=0)
    for _ in range(steps):
        m = sum(aff[p][:, None] * at(m, dy, dx) for p, (dy, dx) in enumerate(nbrs))
    return m


def sfr64(labels, g, sigma=5.0):
    """The semantic-feedback matrix by its definition (partial path check, 1-D raster blur)."""
    n = g * g
    lab = labels.reshape(-1).tolist()
    steps = [[max(abs(i // g - j // g), abs(i % g - j % g)) for j in range(n)] for i in range(n)]
    longest = max(max(r) for r in steps)
    m = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            m[i, j] = float(lab[i] == lab[j])
            # the path from i toward j at t = k / longest, k = 0..d_ij (only its first d_ij / longest)
            path = [(round(i // g + (j // g - i // g) * k / longest), round(i % g + (j % g - i % g) * k / longest))
                    for k in range(steps[i][j] + 1)]  # fmt: skip
            if any(lab[r * g + c] != lab[i] for r, c in path):
                m[i, j] *= math.exp(-steps[i][j] / longest)
    size = min(n, int(6 * sigma + 1))
    size += size % 2 == 0
    x = np.arange(size) - size // 2
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    blurred = np.maximum(np.stack([np.convolve(row, kernel, mode="same") for row in m]), 0)
    s = np.zeros((n + 1, n + 1))
    s[1:, 1:] = blurred / (blurred.sum(1, keepdims=True) + 1e-8)
    return torch.from_numpy(s)


@pytest.mark.parametrize("dropped", [0.0, 0.3])
def test_resclip_two_passes(clip64, pixels, dropped):
    (tau_r, lam_r), (tau_s, lam_s), scale = (2.0, 0.3), (2.2, 0.7), 40.0
    t, _, att = trunk64(clip64, pixels)
    last = clip64.visual.transformer.resblocks[-1]
    _, k, v = heads(last, t)
    rcs = (att[6] + att[7] + att[8] + att[9]) / 4
    kk, g = k @ k.transpose(-1, -2) * 0.25, gaussian(8)
    first = tau_r * ((1 - lam_r) * _softmax(kk + g) + lam_r * rcs)
    feats = unit(project(clip64, mix(last, first, v)))[0, 1:]
    text = feats[[0, 7, 27, 36, 63]]  # queries that match different places, so the labels vary
    logits = (feats @ text.T).T.reshape(1, -1, 8, 8)
    logits = pamr64(pixels, F.interpolate(logits, size=(SIZE, SIZE), mode="bilinear", align_corners=False))
    probs = torch.softmax(scale * logits[0], dim=0)
    threshold = float(torch.quantile(probs.max(0).values, dropped)) if dropped else 0.0
    labels = probs.argmax(0)
    labels[probs.max(0).values < threshold] = 0
    blocks = labels.reshape(8, PATCH, 8, PATCH).permute(0, 2, 1, 3).reshape(64, -1)
    patch_labels = torch.stack([torch.bincount(b, minlength=5).argmax() for b in blocks])
    assert len(torch.unique(patch_labels)) >= 3
    s = sfr64(patch_labels, 8)
    s = (s / s.max()).half()
    z = tau_s * ((1 - lam_s) * kk + (lam_s * s).double()) + g
    final = tau_r * ((1 - lam_r) * _softmax(z) + lam_r * rcs)
    ref = unit(project(clip64, mix(last, final, v))[:, 1:])
    params = {"feedback_threshold": threshold, "rcs": (tau_r, lam_r), "sfr": (tau_s, lam_s)}
    # the engine builds the feedback matrix in float32 as the official code does (then fp16), hence 1e-5
    close(ours(clip64, pixels, "resclip", text=text, logit_scale=scale, params=params), ref, 1e-5)


def test_scclip(clip64, pixels):
    t, x, _ = trunk64(clip64, pixels)
    last = clip64.visual.transformer.resblocks[-1]
    p11, g = t[0, 1:], 8
    d = ((p11[:, None] - p11[None]) ** 2).sum(-1)
    order = d.argsort(dim=1)[:, 1:31]  # 30 nearest, self excluded
    kd = d.gather(1, order)[:, -1]
    lof = (kd[:, None] / kd[order]).mean(1)  # mean_j LRD_j / LRD_i with LRD = 30 / kd
    outliers = set(torch.nonzero(lof > torch.quantile(lof, 0.95)).flatten().tolist())
    assert outliers

    def repair(p):
        out = p.clone()
        for i in outliers:
            nb = [(i // g + dy) * g + i % g + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                  if (dy, dx) != (0, 0) and 0 <= i // g + dy < g and 0 <= i % g + dx < g
                  and (i // g + dy) * g + i % g + dx not in outliers]  # fmt: skip
            if nb:
                out[i] = p[nb].mean(0)
        return out

    def cos(p):
        return unit(p) @ unit(p).T

    def agg(z, s):
        return (s / (s.sum(-1, keepdim=True) + 1e-6)) @ z

    s9, s4 = cos(repair(x[9][0, 1:])), cos(x[4][0, 1:])
    b9, b4 = s9 * (s9 >= 0.4), s4 * (s4 >= 0.4)
    m = 3 * (s9 - s9.mean())
    prior = _softmax(torch.where(m < 0, torch.full_like(m, -math.inf), m))

    def attend(p):
        _, k, v = heads(last, p[None])
        return mix(last, (prior + _softmax(k @ k.transpose(-1, -2) * 0.25)) / 2, v)[0]

    main = agg(attend(agg(repair(p11), b9)) + 0.3 * t[0, 0], b4)
    fused = sum(x[b][0] for b in range(4, 11))
    extra = agg(attend(fused[1:]) + 0.3 * fused[0], b4)
    close(ours(clip64, pixels, "scclip"), unit(project(clip64, (main + extra)[None])))


def test_every_mode_differs_from_the_others(clip64, pixels, text):
    feats = {m: ours(clip64, pixels, m, text=text) for m in ("sclip", "vanilla", "clearclip", "naclip", "segearth",
                                                              "resclip", "scclip")}  # fmt: skip
    names = list(feats)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert (feats[a] - feats[b]).abs().max() > 1e-3, (a, b)
