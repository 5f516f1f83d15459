"""Attention modes: how a CLIP ViT is run for dense prediction, as data.

Each mode is a :class:`Mode` record. Most change only the last block: a function computing its
attention weights from q, k, v, and whether the block keeps its residual and FFN. Modes that need
more declare it in the record, and the encoder provides it: the outputs of intermediate blocks
(``block_outputs``), their own attention weights (``block_attention``), the text embeddings and the
logit scale (``needs_text``), and their own last stage (``finish``); ``params`` are their tunable
constants with the official defaults. New modes slot in by adding an entry to ``MODES``.

Block numbers are 1-based as in the papers, for a 12-block ViT-B; :func:`block_number` maps them
onto a tower of another depth. The weight functions use tensor methods only and the finishing
functions import their modules when called, so the table can be read (form choices, option checks)
without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .encoder import Trunk

# weights(q, k, v, scale, grid) -> (B*heads, L, L); q, k, v are (B*heads, L, head_dim), CLS first.
WeightsFn = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor", float, tuple[int, int]], "torch.Tensor"]
# finish(trunk) -> (B, gh*gw, D) float32 patch features
FinishFn = Callable[["Trunk"], "torch.Tensor"]


@dataclass(frozen=True)
class Param:
    """A tunable constant of a mode: a number or a pair of numbers, with its official name."""

    name: str
    default: float | tuple[float, float]
    help: str
    official: str = ""

    def check(self, value: Any) -> float | tuple[float, float]:
        from .errors import OptionsError

        pair = isinstance(self.default, tuple)
        try:
            out = tuple(float(v) for v in value) if pair else float(value)
        except (TypeError, ValueError):
            out = None
        if out is None or (pair and len(out) != 2):
            raise OptionsError(f"{self.name} must be {'two numbers' if pair else 'a number'}, not {value!r}.")
        return out


@dataclass(frozen=True)
class Mode:
    """How the ViT runs for dense features (see the module doc)."""

    name: str
    description: str
    weights: WeightsFn | None = None
    residual: bool = True
    ffn: bool = True
    finish: FinishFn | None = None
    block_outputs: tuple[int, ...] = ()
    block_attention: tuple[int, ...] = ()
    needs_text: bool = False
    params: tuple[Param, ...] = ()
    pad: bool = False

    def grid(self, height: int, width: int, patch: int) -> tuple[int, int]:
        """The token grid of a ``height x width`` window: a remainder under a patch is dropped, or,
        for modes that ``pad`` (ClearCLIP, SegEarth-OV), the window is zero-padded to whole patches
        (centred: the extra half, rounded down, before) and its logits are cut back after upsampling."""
        if self.pad:
            return -(-height // patch), -(-width // patch)
        return height // patch, width // patch

    def parse_params(self, value: Any) -> tuple[tuple[str, Any], ...]:
        """Parameters given as a mapping, ``(name, value)`` pairs or the text ``"name=value; name=a,b"``,
        checked: sorted ``(name, value)`` pairs of the ones given."""
        from .errors import OptionsError

        if value is None or (isinstance(value, str | tuple | list | dict) and not value):
            return ()
        if isinstance(value, str):
            pairs = {}
            for item in filter(None, (part.strip() for part in value.split(";"))):
                name, eq, text = item.partition("=")
                if not eq:
                    raise OptionsError(f"mode_params: write name=value (pairs as name=a,b), separated by ';', not {item!r}.")
                numbers = [t.strip() for t in text.split(",")]
                pairs[name.strip()] = numbers[0] if len(numbers) == 1 else tuple(numbers)
            value = pairs
        given = dict(value.items() if hasattr(value, "items") else value)
        checked = self.param_values(given)
        return tuple(sorted((k, checked[k]) for k in given))

    def param_values(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The mode's parameters: official defaults, with ``given`` (checked) on top."""
        from .errors import OptionsError

        known = {p.name: p for p in self.params}
        unknown = sorted(set(given or {}) - set(known))
        if unknown:
            have = ", ".join(known) or "none"
            raise OptionsError(f"The {self.name} mode has no parameter {', '.join(unknown)} (its parameters: {have}).")
        return {name: p.check((given or {}).get(name, p.default)) for name, p in known.items()}


def block_number(block: int, depth: int) -> int:
    """Block ``block`` (1-based, of 12) on a tower of ``depth`` blocks: the same number when the
    tower has at least 12 (as the official code indexes), else scaled onto its first depth-1 blocks."""
    if depth >= 12:
        return block
    return max(1, min(depth - 1, round(block * (depth - 1) / 11)))


def _self_softmax(t: torch.Tensor, scale: float) -> torch.Tensor:
    return (t.bmm(t.transpose(1, 2)) * scale).softmax(dim=-1)


def _vanilla(q, k, v, scale, grid):
    return (q * scale).bmm(k.transpose(1, 2)).softmax(dim=-1)


def _csa(q, k, v, scale, grid):
    # SCLIP: the SUM of two row-softmaxes (rows sum to 2); not averaged, not renormalised.
    return _self_softmax(q, scale) + _self_softmax(k, scale)


def _qq(q, k, v, scale, grid):
    return _self_softmax(q, scale)


def _qkv_sum(q, k, v, scale, grid):
    # SegEarth-OV: three row-softmaxes summed (rows sum to 3), one scale for all.
    return _self_softmax(q, scale) + _self_softmax(k, scale) + _self_softmax(v, scale)


def gaussian_bias(grid: tuple[int, int], sigma: float, like: torch.Tensor) -> torch.Tensor:
    """NACLIP's neighbourhood prior over patch positions, exp(-d^2 / 2 sigma^2) with d in patches;
    zero on the CLS row and column. ``(1 + gh*gw)^2`` in ``like``'s dtype (computed in float64)."""
    gh, gw = grid
    index = like.new_empty(0).double().new_ones(gh * gw).cumsum(0) - 1  # 0..n-1 in float64
    ys, xs = (index // gw)[:, None], (index % gw)[:, None]
    d2 = (ys - ys.T) ** 2 + (xs - xs.T) ** 2
    bias = index.new_zeros(gh * gw + 1, gh * gw + 1)
    bias[1:, 1:] = (-d2 / (2 * sigma**2)).exp()
    return bias.to(dtype=like.dtype)


def _naclip(q, k, v, scale, grid):
    logits = k.bmm(k.transpose(1, 2)) * scale
    return (logits + gaussian_bias(grid, 5.0, logits)).softmax(dim=-1)


def _cls_bias(trunk: Trunk) -> torch.Tensor:
    from .encoder import standard_features

    return standard_features(trunk, cls_weight=trunk.params["cls_weight"])


def _feedback(trunk: Trunk) -> torch.Tensor:
    from .feedback import resclip_features

    return resclip_features(trunk)


def _calibrated(trunk: Trunk) -> torch.Tensor:
    from .calibrate import scclip_features

    return scclip_features(trunk)


MODES: dict[str, Mode] = {
    m.name: m
    for m in (
        Mode("sclip", "SCLIP correlative self-attention (q-q + k-k)", _csa),
        Mode("vanilla", "plain CLIP attention (q-k)", _vanilla),
        Mode("clearclip", "ClearCLIP: q-q attention, no residual, no FFN", _qq, residual=False, ffn=False, pad=True),
        Mode("naclip", "NACLIP: k-k attention + Gaussian neighbourhood, no residual, no FFN", _naclip,
             residual=False, ffn=False),
        Mode("segearth", "SegEarth-OV: q-q + k-k + v-v attention, no residual, no FFN, minus 0.3 x the "
             "window's CLS logits (global bias)", _qkv_sum, residual=False, ffn=False, finish=_cls_bias, pad=True,
             params=(Param("cls_weight", -0.3, "weight of the window's CLS logits added to every patch's",
                           "cls_token_lambda"),)),
        Mode("resclip", "ResCLIP: NACLIP's attention blended with blocks 6-9's attention (RCS) and a "
             "semantic-feedback matrix from a first pass (SFR), no residual, no FFN", residual=False, ffn=False,
             finish=_feedback, block_attention=(6, 7, 8, 9), needs_text=True,
             params=(Param("feedback_threshold", 0.25, "first-pass probability below which a pixel joins query 0",
                           "temp_thd"),
                     Param("rcs", (2.0, 0.4), "tau and lambda of the residual cross-correlation blend",
                           "attn_rcs_weights"),
                     Param("sfr", (1.8, 0.7), "tau and lambda of the semantic feedback blend", "attn_sfr_weights"))),
        Mode("scclip", "SC-CLIP: outlier tokens repaired, features aggregated by block 4/9 similarity, blocks "
             "4-10 fused through the last block, no residual, no FFN", residual=False, ffn=False,
             finish=_calibrated, block_outputs=(4, 5, 6, 7, 8, 9, 10, 11)),
    )  # fmt: skip
}


def get_mode(name: str) -> Mode:
    """Look up an attention mode by name, with a message listing the valid ones."""
    try:
        return MODES[name]
    except KeyError:
        from .errors import OptionsError

        raise OptionsError(
            f"Unknown attention mode {name!r}; choose one of: {', '.join(MODES)}."
        ) from None
