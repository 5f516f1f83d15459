"""Last-block attention modes: how the final ViT block mixes tokens for dense prediction.

Each mode is data (a :class:`LastBlock` record) plus one function computing the attention
weights from q, k, v; the encoder applies it. New modes slot in by adding an entry to ``MODES``.
The functions use tensor methods only, so the table can be read (form choices, option checks)
without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

# weights(q, k, v, scale, grid) -> (B*heads, L, L); q, k, v are (B*heads, L, head_dim), CLS first.
WeightsFn = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor", float, tuple[int, int]], "torch.Tensor"]


@dataclass(frozen=True)
class LastBlock:
    """How the last residual block runs: its attention weights and whether residual / FFN are kept."""

    name: str
    weights: WeightsFn
    residual: bool = True
    ffn: bool = True
    description: str = ""


def _self_softmax(t: torch.Tensor, scale: float) -> torch.Tensor:
    return (t.bmm(t.transpose(1, 2)) * scale).softmax(dim=-1)


def _vanilla(q, k, v, scale, grid):
    return (q * scale).bmm(k.transpose(1, 2)).softmax(dim=-1)


def _csa(q, k, v, scale, grid):
    # SCLIP: the SUM of two row-softmaxes (rows sum to 2); not averaged, not renormalised.
    return _self_softmax(q, scale) + _self_softmax(k, scale)


def _qq(q, k, v, scale, grid):
    return _self_softmax(q, scale)


def _gaussian_bias(grid: tuple[int, int], sigma: float, like: torch.Tensor) -> torch.Tensor:
    """NACLIP's neighbourhood prior over patch positions; zero on the CLS row and column."""
    gh, gw = grid
    index = like.new_empty(0).double().new_ones(gh * gw).cumsum(0) - 1  # 0..n-1 in float64
    ys, xs = (index // gw)[:, None], (index % gw)[:, None]
    d2 = (ys - ys.T) ** 2 + (xs - xs.T) ** 2
    bias = index.new_zeros(gh * gw + 1, gh * gw + 1)
    bias[1:, 1:] = (-d2 / (2 * sigma**2)).exp()
    return bias.to(dtype=like.dtype)


def _naclip(q, k, v, scale, grid):
    logits = k.bmm(k.transpose(1, 2)) * scale
    return (logits + _gaussian_bias(grid, 5.0, logits)).softmax(dim=-1)


MODES: dict[str, LastBlock] = {
    m.name: m
    for m in (
        LastBlock("sclip", _csa, description="SCLIP correlative self-attention (q-q + k-k)"),
        LastBlock("vanilla", _vanilla, description="plain CLIP attention (q-k)"),
        LastBlock("clearclip", _qq, residual=False, ffn=False,
                  description="ClearCLIP: q-q attention, no residual, no FFN"),
        LastBlock("naclip", _naclip, residual=False, ffn=False,
                  description="NACLIP: k-k attention + Gaussian neighbourhood, no residual, no FFN"),
    )
}


def get_mode(name: str) -> LastBlock:
    """Look up an attention mode by name, with a message listing the valid ones."""
    try:
        return MODES[name]
    except KeyError:
        from .errors import OptionsError

        raise OptionsError(
            f"Unknown attention mode {name!r}; choose one of: {', '.join(MODES)}."
        ) from None
