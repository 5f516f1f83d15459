"""Dense forward passes of an open_clip CLIP: per-patch image features with a mode's last stage, and
text embeddings cut to the prompts' real length.

The image side is one path for every mode and every tower: embed the windows, run blocks 1..L-1 as
they are (keeping what the mode declared it needs: block outputs, block attention), then the mode's
last stage (:class:`~napari_sclip.attention.Mode`), which returns normalised patch features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Mode, block_number
from .towers import BlockView, Tower, tower_of


def check_dense_vision(visual: nn.Module) -> Tower:
    """The tower of ``visual``; raises UnsupportedModelError if it is not a ViT the modes can run."""
    return tower_of(visual)


def names_order(query_labels) -> list[int]:
    """The queries in the official names-file order: the background words first, then each class's
    synonyms in label order (a stable sort by label). Modes that label pixels by query index read
    the text in this order, so that "query 0" is the one the official code means."""
    labels = [int(v) for v in query_labels]
    return sorted(range(len(labels)), key=labels.__getitem__)


@dataclass
class ModeInputs:
    """What a mode may use beyond the pixels: the query embeddings ``(Q, D)`` (normalised, in
    :func:`names_order`), the logit scale, and the mode's parameters (see :meth:`Mode.param_values`)."""

    text: torch.Tensor | None = None
    logit_scale: float = 40.0
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Trunk:
    """A batch of windows after blocks 1..L-1, with everything its mode asked for.

    ``x`` is the residual stream ``(B, 1+N, width)`` (CLS first); ``outputs`` and ``attentions`` map
    the mode's declared block numbers to that block's output / own attention weights."""

    tower: Tower
    mode: Mode
    x: torch.Tensor
    grid: tuple[int, int]
    pixels: torch.Tensor
    inputs: ModeInputs
    params: dict[str, Any]
    outputs: dict[int, torch.Tensor]
    attentions: dict[int, torch.Tensor]
    record: bool = False
    last_attention: torch.Tensor | None = None

    @property
    def last(self) -> BlockView:
        return self.tower.views[-1]

    def keep(self, weights: torch.Tensor) -> None:
        """Keep the final attention weights when the caller asked for them (the attention probe)."""
        if self.record:
            self.last_attention = weights

    def text(self) -> torch.Tensor:
        if self.inputs.text is None:
            from .errors import OptionsError

            raise OptionsError(f"The {self.mode.name} mode needs the text embeddings of the vocabulary.")
        return self.inputs.text


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32, or float64 when it is float64 (the formula tests run in float64)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def patch_features(tokens: torch.Tensor, cls_weight: float = 0.0) -> torch.Tensor:
    """Normalised patch features ``(B, N, D)`` float32 from projected tokens (CLS first). A non-zero
    ``cls_weight`` adds that multiple of the normalised CLS feature to every patch, so that each
    patch's cosine logits carry ``cls_weight`` x the CLS's (SegEarth-OV's global bias, folded in)."""
    tokens = at_least_float32(tokens)
    feats = F.normalize(tokens[:, 1:], dim=-1)
    if cls_weight:
        feats = feats + cls_weight * F.normalize(tokens[:, :1], dim=-1)
    return feats


def last_block(trunk: Trunk, x: torch.Tensor, weights_fn=None) -> torch.Tensor:
    """The last block on ``x`` with the mode's attention weights, residual and FFN."""
    mode, view = trunk.mode, trunk.last
    heads = view.qkv(x)
    weights = (weights_fn or mode.weights)(heads.q, heads.k, heads.v, heads.scale, trunk.grid)
    trunk.keep(weights)
    out = view.mix(weights, heads)
    x = x + out if mode.residual else out
    return view.ffn(x) if mode.ffn else x


def standard_features(trunk: Trunk, cls_weight: float = 0.0) -> torch.Tensor:
    """The last block with the mode's weights, ``final norm @ proj`` on every token, CLS dropped."""
    return patch_features(trunk.tower.project(last_block(trunk, trunk.x)), cls_weight)


def run_trunk(tower: Tower, pixels: torch.Tensor, mode: Mode, inputs: ModeInputs | None = None,
              cache: dict | None = None) -> Trunk:  # fmt: skip
    """Embed ``pixels`` and run blocks 1..L-1, keeping the block outputs and attention the mode needs."""
    inputs = inputs or ModeInputs()
    params = mode.param_values(inputs.params)
    x, grid = tower.embed(pixels, cache)
    depth = tower.depth
    want_out = {b: block_number(b, depth) for b in mode.block_outputs}
    want_att = {b: block_number(b, depth) for b in mode.block_attention}
    out: dict[int, torch.Tensor] = {}
    att: dict[int, torch.Tensor] = {}
    if not want_out and not want_att:
        x = tower.run(x, 0, depth - 1)
    else:
        for i in range(depth - 1):  # block number i + 1
            if i + 1 in want_att.values():
                att[i + 1] = tower.views[i].attention(x)
            x = tower.run(x, i, i + 1)
            if i + 1 in want_out.values():
                out[i + 1] = x
    return Trunk(tower, mode, x, grid, pixels, inputs, params, {b: out[n] for b, n in want_out.items()},
                 {b: att[n] for b, n in want_att.items()})  # fmt: skip


def _tower(visual: nn.Module | Tower) -> Tower:
    return visual if isinstance(visual, Tower) else tower_of(visual)


def padded(pixels: torch.Tensor, mode: Mode, patch: int) -> torch.Tensor:
    """Windows zero-padded (in normalised values) to whole patches, centred, when the mode pads."""
    h, w = pixels.shape[-2:]
    gh, gw = mode.grid(h, w, patch)
    dh, dw = gh * patch - h, gw * patch - w
    if dh <= 0 and dw <= 0:
        return pixels
    return F.pad(pixels, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


@torch.inference_mode()
def dense_features(visual: nn.Module | Tower, pixels: torch.Tensor, mode: Mode, inputs: ModeInputs | None = None,
                   cache: dict | None = None) -> torch.Tensor:  # fmt: skip
    """Per-patch embeddings ``(B, gh, gw, D)`` (float32) of a batch of windows.

    ``pixels`` is ``(B, 3, h, w)``, CLIP-normalised. Normalised, except in modes that fold a
    per-window bias into them (segearth).
    """
    tower = _tower(visual)
    trunk = run_trunk(tower, padded(pixels, mode, tower.patch), mode, inputs, cache)
    feats = (mode.finish or standard_features)(trunk)
    return feats.reshape(feats.shape[0], trunk.grid[0], trunk.grid[1], -1)


@torch.inference_mode()
def last_block_attention(visual: nn.Module | Tower, pixels: torch.Tensor, mode: Mode, inputs: ModeInputs | None = None,
                         cache: dict | None = None) -> torch.Tensor:  # fmt: skip
    """Head-averaged final attention among patches, ``(B, gh*gw, gh*gw)`` float32 (CLS dropped)."""
    tower = _tower(visual)
    trunk = run_trunk(tower, padded(pixels, mode, tower.patch), mode, inputs, cache)
    trunk.record = True
    (mode.finish or standard_features)(trunk)
    weights = trunk.last_attention.float()
    n = trunk.grid[0] * trunk.grid[1]
    weights = weights.reshape(pixels.shape[0], -1, *weights.shape[-2:]).mean(1)
    return weights[:, -n:, -n:]


def _fast_text_path(clip: nn.Module) -> bool:
    return (
        all(hasattr(clip, a) for a in ("token_embedding", "positional_embedding", "transformer", "ln_final"))
        and getattr(clip, "text_pool_type", "argmax") == "argmax"
        and getattr(clip, "attn_mask", None) is not None
    )


@torch.inference_mode()
def encode_tokens(clip: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Text embeddings (float32, not normalised) of token ids ``(N, context)``.

    With CLIP's causal mask and end-of-text pooling, the padding after the longest prompt's end
    token cannot influence any pooled feature, so the sequence is cut there (about 9x less work
    than the padded 77-token context; equal up to float rounding).
    """
    if not _fast_text_path(clip):
        return clip.encode_text(tokens).float()
    eot = tokens.argmax(dim=-1)
    length = int(eot.max()) + 1
    tokens = tokens[:, :length]
    cast = clip.token_embedding.weight.dtype
    x = clip.token_embedding(tokens).to(cast) + clip.positional_embedding[:length].to(cast)
    x = clip.transformer(x, attn_mask=clip.attn_mask[:length, :length].to(cast))
    x = clip.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), eot]
    proj = clip.text_projection
    x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
    return x.float()
