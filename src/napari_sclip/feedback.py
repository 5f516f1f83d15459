"""ResCLIP (Yang et al., CVPR 2025): residual cross-correlation and semantic feedback, per window.

Restated from the official code (yvhangyang/ResCLIP, ``clip/model.py``), with ViT-B/16 numbers:

1. RCS: ``A`` = the mean of blocks 6-9's own attention weights (per head, CLS included).
2. First pass through the last block, no residual, no FFN:
   ``W1 = tau_r [(1 - lam_r) softmax(s k k^T + G) + lam_r A]`` (G: NACLIP's Gaussian, sigma 5);
   its cosine logits against the queries, upsampled to the window, refined by PAMR (10 steps,
   dilations 8 and 16, guided by the window), softmax at the run's logit scale.
3. Labels: the best *query* per pixel, or query 0 below ``feedback_threshold``; per 16 x 16 patch
   the most frequent (ties to the smaller index; a remainder under a patch is dropped).
4. SFR: ``M_ij = [label_i == label_j]``, decayed by ``exp(-d_ij / D)`` (Chebyshev distance, D its
   maximum) where the straight path from i toward j leaves i's label: only the first ``d_ij / D``
   of the path is checked, as the official code does; each row blurred by a 1-D Gaussian
   (sigma 5, 31 taps) along the raster order; rows normalised; zero CLS row and column.
5. Final pass: ``S' = fp16(S / max S)``; ``Z = tau_s [(1 - lam_s) s k k^T + lam_s S'] + G``;
   ``W2 = tau_r [(1 - lam_r) softmax(Z) + lam_r A]``: rows sum to tau_r.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .attention import gaussian_bias
from .encoder import Trunk, at_least_float32, patch_features
from .refine import pamr

SIGMA = 5.0  # the Gaussian prior's and the blur's std, in patches (gaussian_std in every config)
PATH_ELEMENTS = 1 << 23  # pair x step elements of the path check held at once


def first_pass_labels(trunk: Trunk, logits: torch.Tensor) -> torch.Tensor:
    """Patch labels ``(B, gh, gw)`` (query indices) from first-pass token logits ``(B, Q, gh, gw)``."""
    pixels = at_least_float32(trunk.pixels)
    up = F.interpolate(logits, size=pixels.shape[-2:], mode="bilinear", align_corners=False)
    up = pamr(pixels, up, 10, (8, 16))
    probs = torch.softmax(up * trunk.inputs.logit_scale, dim=1)
    top, labels = probs.max(dim=1)
    labels[top < trunk.params["feedback_threshold"]] = 0
    (gh, gw), p = trunk.grid, trunk.tower.patch
    b = labels.shape[0]
    blocks = labels[:, : gh * p, : gw * p].reshape(b, gh, p, gw, p).permute(0, 1, 3, 2, 4).reshape(b * gh * gw, -1)
    counts = torch.zeros(blocks.shape[0], logits.shape[1], dtype=torch.long, device=blocks.device)
    counts.scatter_add_(1, blocks, torch.ones_like(blocks))
    return counts.argmax(dim=1).reshape(b, gh, gw)  # the first of equal counts: the smaller label


def _path_valid(labels: torch.Tensor, steps: torch.Tensor, longest: int) -> torch.Tensor:
    """``(N, N)``: the straight path from patch i toward j, sampled at ``t = k / longest`` for
    ``k = 0..d_ij`` (rounded half to even), keeps i's label throughout."""
    gh, gw = labels.shape
    n = gh * gw
    flat = labels.reshape(-1)
    idx = torch.arange(n, device=labels.device)
    r, c = (idx // gw).float(), (idx % gw).float()
    t = torch.linspace(0, 1, longest + 1, device=labels.device)
    k = torch.arange(longest + 1, device=labels.device)
    out = torch.empty(n, n, dtype=torch.bool, device=labels.device)
    chunk = max(1, PATH_ELEMENTS // max(1, n * (longest + 1)))
    for i0 in range(0, n, chunk):
        i = idx[i0 : i0 + chunk]
        pr = (r[i, None, None] * (1 - t) + r[None, :, None] * t).round().long()
        pc = (c[i, None, None] * (1 - t) + c[None, :, None] * t).round().long()
        same = labels[pr, pc] == flat[i, None, None]
        out[i0 : i0 + len(i)] = (same | (k > steps[i, :, None])).all(-1)
    return out


def feedback_matrix(labels: torch.Tensor) -> torch.Tensor:
    """The SFR matrix ``(1+N, 1+N)`` of one window's patch labels ``(gh, gw)`` (zero CLS row/column)."""
    gh, gw = labels.shape
    n = gh * gw
    flat = labels.reshape(-1)
    same = (flat[:, None] == flat[None, :]).float()
    idx = torch.arange(n, device=labels.device)
    r, c = idx // gw, idx % gw
    steps = torch.maximum((r[:, None] - r[None]).abs(), (c[:, None] - c[None]).abs())
    longest = int(steps.max())
    if longest > 0:
        decay = torch.exp(-steps / longest)
        same = torch.where(_path_valid(labels, steps, longest), same, same * decay)
    size = min(n, int(6 * SIGMA + 1))
    size += size % 2 == 0
    x = torch.arange(size, device=labels.device) - size // 2
    kernel = torch.exp(-(x**2) / (2 * SIGMA**2))
    kernel = kernel / kernel.sum()
    blurred = F.conv1d(same[:, None], kernel.view(1, 1, -1), padding=size // 2)[:, 0].relu()
    out = same.new_zeros(n + 1, n + 1)
    out[1:, 1:] = blurred / (blurred.sum(dim=1, keepdim=True) + 1e-8)
    return out


def resclip_features(trunk: Trunk) -> torch.Tensor:
    """ResCLIP's patch features ``(B, N, D)`` for a batch of windows (see the module doc)."""
    view, tower = trunk.last, trunk.tower
    tau_r, lam_r = trunk.params["rcs"]
    tau_s, lam_s = trunk.params["sfr"]
    rcs = torch.stack([trunk.attentions[b] for b in sorted(trunk.attentions)]).mean(dim=0)
    heads = view.qkv(trunk.x)
    kk = torch.bmm(heads.k, heads.k.transpose(1, 2)) * heads.scale
    prior = gaussian_bias(trunk.grid, SIGMA, kk)
    first = tau_r * ((1 - lam_r) * torch.softmax(kk + prior, dim=-1) + lam_r * rcs)
    feats = patch_features(tower.project(view.mix(first, heads)))
    text = trunk.text().to(feats.device, feats.dtype)
    logits = (feats @ text.T).transpose(1, 2).reshape(feats.shape[0], -1, *trunk.grid)
    labels = first_pass_labels(trunk, logits)
    sfr = torch.stack([feedback_matrix(lab) for lab in labels])
    sfr = (sfr / sfr.amax(dim=(1, 2), keepdim=True)).half()
    sfr = (lam_s * sfr).to(kk.dtype).repeat_interleave(view.heads, dim=0)
    z = tau_s * ((1 - lam_s) * kk + sfr) + prior
    final = tau_r * ((1 - lam_r) * torch.softmax(z, dim=-1) + lam_r * rcs)
    trunk.keep(final)
    return patch_features(tower.project(view.mix(final, heads)))
