"""SC-CLIP (Bai et al., 2025): self-calibrated CLIP, per window.

Restated from the official code (SuleBai/SC-CLIP, ``clip/model.py``), with X_b the output of block
b (CLS first) and ViT-B/16 numbers:

1. Outliers: a local outlier factor over block 11's patch tokens (squared distances, 30 neighbours,
   each point's reach distance its own 30th-neighbour distance, so ``LOF_i = mean_j kd_i / kd_j``);
   tokens above the 95 % quantile are outliers.
2. Repair: each outlier patch of X_11 and of X_9 becomes the mean of its non-outlier 8-neighbours
   (kept when it has none). The CLS token leaves the main stream here.
3. Similarities: ``S9`` = cosines of the repaired block-9 patches, ``S4`` of block 4's; ``B = S`` with
   entries under 0.4 set to 0; ``agg(Z, B) = (B / (rowsum B + 1e-6)) Z``.
4. Main stream: ``P = agg(X_11 patches, B9)``; the last block's attention on P alone,
   ``W = [softmax(M) + softmax(s k k^T)] / 2`` with ``M = 3 (S9 - mean S9)``, negatives masked; output
   projection, no residual, no FFN; plus 0.3 x block 11's CLS; then ``agg(., B4)``.
5. Multi-level: ``F = X_4 + ... + X_10``; the same attention on F's patches plus 0.3 x F's CLS,
   ``agg(., B4)``, added to the main stream. Final norm and projection; no CLS is output.

The official code handles one window at a time and maps an outlier's index to (row, col) as if the
grid were square (it fails on other grids); here windows are batched and the mapping is row-major.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .encoder import Trunk, at_least_float32

NEIGHBOURS, CONTAMINATION, BETA, CLS_WEIGHT = 30, 0.05, 0.4, 0.3


def lof_outliers(tokens: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` bool: the patch tokens ``(B, N, width)`` whose local outlier factor is above the 95 % quantile."""
    n = tokens.shape[1]
    k = min(NEIGHBOURS, n - 1)
    if k < 1:
        return torch.zeros(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    x = at_least_float32(tokens)
    dist = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist") ** 2
    near, index = torch.topk(dist, k + 1, dim=-1, largest=False)
    near, index = near[..., 1:], index[..., 1:]
    reach = torch.maximum(near, near[..., -1:])
    lrd = k / torch.nan_to_num(reach.mean(dim=-1), nan=1e-6)
    lof = (torch.gather(lrd, 1, index.reshape(index.shape[0], -1)).reshape(index.shape) / lrd[..., None]).mean(-1)
    return lof > torch.quantile(lof, 1 - CONTAMINATION, dim=1, keepdim=True)


def repair(tokens: torch.Tensor, outliers: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Outlier patches ``(B, N, width)`` replaced by the mean of their non-outlier 8-neighbours."""
    (b, n, width), (gh, gw) = tokens.shape, grid
    maps = tokens.transpose(1, 2).reshape(b, width, gh, gw)
    keep = (~outliers).to(tokens.dtype).reshape(b, 1, gh, gw)
    kernel = tokens.new_ones(width, 1, 3, 3)
    kernel[:, :, 1, 1] = 0
    total = F.conv2d(F.pad(maps * keep, (1, 1, 1, 1)), kernel, groups=width)
    count = F.conv2d(F.pad(keep, (1, 1, 1, 1)), kernel[:1])
    mean = total / count.clamp(min=1)
    update = (1 - keep) * (count > 0).to(tokens.dtype)
    out = maps * (1 - update) + mean * update
    return out.reshape(b, width, n).transpose(1, 2)


def _cosines(tokens: torch.Tensor) -> torch.Tensor:
    f = tokens / tokens.norm(dim=-1, keepdim=True)
    return f @ f.transpose(1, 2)


def _aggregate(z: torch.Tensor, sim: torch.Tensor) -> torch.Tensor:
    return (sim / (sim.sum(dim=-1, keepdim=True) + 1e-6)) @ z


def _kept(sim: torch.Tensor) -> torch.Tensor:
    return torch.where(sim < BETA, torch.zeros_like(sim), sim)


def scclip_features(trunk: Trunk) -> torch.Tensor:
    """SC-CLIP's patch features ``(B, N, D)`` for a batch of windows (see the module doc)."""
    x11, out = trunk.x, trunk.outputs
    outliers = lof_outliers(x11[:, 1:])
    s9 = _cosines(repair(out[9][:, 1:], outliers, trunk.grid))
    s4 = _kept(_cosines(out[4][:, 1:]))
    prior = 3.0 * (s9 - s9.mean(dim=(1, 2), keepdim=True))
    prior = prior.masked_fill(prior < 0, float("-inf")).softmax(dim=-1)
    view = trunk.last

    def attend(tokens: torch.Tensor) -> torch.Tensor:
        heads = view.qkv(tokens)
        kk = torch.softmax(torch.bmm(heads.k, heads.k.transpose(1, 2)) * heads.scale, dim=-1)
        weights = (prior.repeat_interleave(view.heads, dim=0) + kk) / 2
        trunk.keep(weights)
        return view.mix(weights, heads)

    fused = 0
    for b in range(4, 11):
        fused = fused + out[b]
    extra = _aggregate(attend(fused[:, 1:]) + CLS_WEIGHT * fused[:, :1], s4)
    main = _aggregate(repair(x11[:, 1:], outliers, trunk.grid), _kept(s9))
    main = _aggregate(attend(main) + CLS_WEIGHT * x11[:, :1], s4)
    return F.normalize(at_least_float32(trunk.tower.project(main + extra)), dim=-1)
