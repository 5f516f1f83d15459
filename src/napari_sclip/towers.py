"""The image towers napari-sclip runs densely, each seen through the same few steps.

Three kinds of ViT are accepted: open_clip's own ViT with ``nn.MultiheadAttention`` blocks (open_clip
3.x), the same ViT with open_clip's ``Attention`` class (its main branch after 3.3.0; recognised by its
attributes), and a timm ViT inside open_clip's ``TimmModel`` (BiomedCLIP). A :class:`Tower` embeds
windows, runs blocks as they are, and projects tokens; a :class:`BlockView` gives an attention mode
what it needs of one block (q, k, v per head, the block's own output projection, its FFN), so every
mode is written once for every architecture. Anything else (ResNet, ConvNeXt...) is refused with a
message naming what to use instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .errors import UnsupportedModelError

_USE_INSTEAD = (
    "Use a CLIP ViT: an open_clip ViT (e.g. ViT-B-16 with pretrained='openai', ViT-L-14, RemoteCLIP, "
    "GeoRSCLIP, SkyCLIP or QuiltNet checkpoints) or a timm ViT tower such as BiomedCLIP."
)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class Heads(NamedTuple):
    """q, k, v of one block, per head: ``(B*heads, L, head_dim)`` (row ``b*heads + h``), q/k norms applied."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    scale: float
    batch: int


@dataclass(frozen=True)
class BlockView:
    """One transformer block as an attention mode needs it, whatever its class."""

    block: nn.Module
    norm1: Callable
    weight: torch.Tensor  # fused in-projection (3 * inner, width): rows q, k, v
    bias: torch.Tensor | None
    heads: int
    head_dim: int
    scale: float
    q_norm: Callable
    k_norm: Callable
    head_scale: torch.Tensor | None
    inner_norm: Callable  # on the merged heads, before the output projection
    out_proj: nn.Module
    post_norm: Callable  # after the output projection (open_clip's ln_attn)
    ls1: Callable
    norm2: Callable
    mlp: Callable
    ls2: Callable

    def qkv(self, x: torch.Tensor) -> Heads:
        """q, k, v of the block's first norm of ``x`` (batch-first tokens)."""
        b, length, _ = x.shape
        q, k, v = F.linear(self.norm1(x), self.weight, self.bias).chunk(3, dim=-1)

        def split(t: torch.Tensor, norm: Callable) -> torch.Tensor:
            t = norm(t.reshape(b, length, self.heads, self.head_dim).transpose(1, 2))
            return t.reshape(b * self.heads, length, self.head_dim)

        return Heads(split(q, self.q_norm), split(k, self.k_norm), split(v, _identity), self.scale, b)

    def mix(self, weights: torch.Tensor, heads: Heads) -> torch.Tensor:
        """``weights @ v`` through the block's own head merge and output projection (and layer scale)."""
        out = torch.bmm(weights.to(heads.v.dtype), heads.v)
        b, length = heads.batch, out.shape[1]
        out = out.reshape(b, self.heads, length, self.head_dim)
        if self.head_scale is not None:
            out = out * self.head_scale
        out = out.transpose(1, 2).reshape(b, length, self.heads * self.head_dim)
        return self.ls1(self.post_norm(self.out_proj(self.inner_norm(out))))

    def ffn(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` plus the block's FFN branch."""
        return x + self.ls2(self.mlp(self.norm2(x)))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The block's own attention weights ``softmax(s q k^T)``, ``(B*heads, L, L)``."""
        h = self.qkv(x)
        return (h.q * h.scale).bmm(h.k.transpose(1, 2)).softmax(dim=-1)


def _open_clip_view(block: nn.Module) -> BlockView:
    attn = block.attn
    if getattr(attn, "logit_scale", None) is not None:
        raise UnsupportedModelError("This ViT uses scaled-cosine attention, which the attention modes do not define.")
    weight = getattr(attn, "in_proj_weight", None)
    if weight is None:
        parts = [getattr(attn, f"{n}_proj_weight", None) for n in "qkv"]
        if any(p is None for p in parts):
            raise UnsupportedModelError(f"The ViT block's attention ({type(attn).__name__}) has no q/k/v projections.")
        weight = torch.cat(parts)
    heads = int(attn.num_heads)
    head_dim = int(getattr(attn, "head_dim", None) or weight.shape[0] // 3 // heads)
    return BlockView(
        block=block, norm1=block.ln_1, weight=weight, bias=getattr(attn, "in_proj_bias", None), heads=heads,
        head_dim=head_dim, scale=float(getattr(attn, "scale", None) or head_dim**-0.5),
        q_norm=getattr(attn, "ln_q", None) or _identity, k_norm=getattr(attn, "ln_k", None) or _identity,
        head_scale=getattr(attn, "head_scale", None), inner_norm=getattr(attn, "ln_inner", None) or _identity,
        out_proj=attn.out_proj, post_norm=getattr(block, "ln_attn", None) or _identity,
        ls1=getattr(block, "ls_1", None) or _identity, norm2=block.ln_2, mlp=block.mlp,
        ls2=getattr(block, "ls_2", None) or _identity,
    )  # fmt: skip


def _timm_view(block: nn.Module) -> BlockView:
    attn = block.attn
    if getattr(attn, "gate", None) is not None or getattr(attn, "q_bias", None) is not None:
        raise UnsupportedModelError(f"The timm block's attention ({type(attn).__name__}) has gates or split biases, "
                                    "which the attention modes do not handle. " + _USE_INSTEAD)  # fmt: skip
    heads = int(attn.num_heads)
    head_dim = int(getattr(attn, "head_dim", None) or attn.qkv.weight.shape[0] // 3 // heads)
    return BlockView(
        block=block, norm1=block.norm1, weight=attn.qkv.weight, bias=attn.qkv.bias, heads=heads, head_dim=head_dim,
        scale=float(getattr(attn, "scale", None) or head_dim**-0.5), q_norm=getattr(attn, "q_norm", None) or _identity,
        k_norm=getattr(attn, "k_norm", None) or _identity, head_scale=None,
        inner_norm=getattr(attn, "norm", None) or _identity, out_proj=attn.proj, post_norm=_identity,
        ls1=getattr(block, "ls1", None) or _identity, norm2=block.norm2, mlp=block.mlp,
        ls2=getattr(block, "ls2", None) or _identity,
    )  # fmt: skip


def patch_tokens(conv: nn.Conv2d, pixels: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """The patch embedding as a matrix product: ``(B, gh*gw, width)`` and the grid ``(gh, gw)``.

    Equal to ``conv(pixels)`` (kernel = stride = patch; a remainder smaller than a patch is
    dropped), but it avoids oneDNN's bf16 convolution kernel on AMX CPUs, which returns garbage
    (NaN or wrong values) when the output is one patch wide, and it is faster there too.
    """
    p = conv.kernel_size[0]
    b, c, h, w = pixels.shape
    gh, gw = h // p, w // p
    patches = pixels[:, :, : gh * p, : gw * p].reshape(b, c, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5)
    weight = conv.weight.reshape(conv.weight.shape[0], -1)
    tokens = patches.reshape(b, gh * gw, c * p * p) @ weight.T
    if conv.bias is not None:
        tokens = tokens + conv.bias
    return tokens, (gh, gw)


def position_table(table: torch.Tensor, native: tuple[int, int], grid: tuple[int, int], cls: bool,
                   cache: dict | None = None) -> torch.Tensor:  # fmt: skip
    """Position embeddings for a ``grid`` of patches: ``table`` (CLS row first when ``cls``) as is at
    the ``native`` grid, else its patch part bicubically resampled with the official code's scale
    factors ``(g + 0.1) / n`` (CLS row kept). ``cache`` (the caller's) keeps the last resampled table."""
    if tuple(grid) == tuple(native):
        return table
    cache = {} if cache is None else cache
    key = (tuple(grid), table.dtype, table.device, table.data_ptr())
    if key not in cache:
        (nh, nw), (gh, gw) = native, grid
        head = table[:1].float() if cls else table[:0].float()
        patch = table[int(cls) :].float().reshape(1, nh, nw, -1).permute(0, 3, 1, 2)
        patch = F.interpolate(patch, scale_factor=((gh + 0.1) / nh, (gw + 0.1) / nw), mode="bicubic", align_corners=False)
        if patch.shape[-2:] != (gh, gw):  # pragma: no cover - guarded by the formula above
            raise RuntimeError(f"position table resampled to {tuple(patch.shape[-2:])}, wanted {grid}")
        cache.clear()
        cache[key] = torch.cat([head, patch.permute(0, 2, 3, 1).reshape(gh * gw, -1)]).to(table.dtype)
    return cache[key]


class Tower:
    """A ViT image tower: embed windows, run blocks, view a block, project tokens."""

    blocks: Sequence[nn.Module]
    views: list[BlockView]
    patch: int
    native_grid: tuple[int, int]

    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def native_size(self) -> int:
        return self.native_grid[0] * self.patch

    def run(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Blocks ``start .. stop-1`` (0-based) as they are, on batch-first tokens."""
        for blk in self.blocks[start:stop]:
            x = blk(x)
        return x


class OpenClipTower(Tower):
    """open_clip's VisionTransformer (``nn.MultiheadAttention`` or open_clip's ``Attention``)."""

    def __init__(self, visual: nn.Module) -> None:
        self.visual = visual
        self.blocks = list(visual.transformer.resblocks)
        self.views = [_open_clip_view(b) for b in self.blocks]
        self.patch = int(visual.conv1.kernel_size[0])
        self.native_grid = tuple(int(g) for g in visual.grid_size)
        self.dim = int(visual.proj.shape[-1])
        self.batch_first = getattr(visual.transformer, "batch_first", True)

    def embed(self, pixels: torch.Tensor, cache: dict | None) -> tuple[torch.Tensor, tuple[int, int]]:
        v = self.visual
        tokens, grid = patch_tokens(v.conv1, pixels)
        cls = v.class_embedding.to(tokens.dtype).expand(tokens.shape[0], 1, -1)
        pos = position_table(v.positional_embedding, self.native_grid, grid, True, cache)
        return v.ln_pre(torch.cat([cls, tokens], dim=1) + pos.to(tokens.dtype)), grid

    def run(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        if self.batch_first:
            return super().run(x, start, stop)
        return super().run(x.transpose(0, 1), start, stop).transpose(0, 1)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual.ln_post(x) @ self.visual.proj


class TimmTower(Tower):
    """A timm VisionTransformer inside open_clip's TimmModel: patch conv with bias, no ln_pre
    unless the model has one (``norm_pre``), final ``trunk.norm``, then open_clip's head."""

    def __init__(self, visual: nn.Module) -> None:
        self.visual, trunk = visual, visual.trunk
        self.trunk = trunk
        if getattr(trunk, "global_pool", "token") != "token" or getattr(trunk, "attn_pool", None) is not None:
            raise UnsupportedModelError("This timm ViT pools its tokens without the CLS token "
                                        f"(global_pool={trunk.global_pool!r}); the dense path needs CLS pooling.")  # fmt: skip
        if getattr(trunk, "num_prefix_tokens", 1) != 1 or getattr(trunk, "cls_token", None) is None:
            raise UnsupportedModelError("This timm ViT has register tokens or no CLS token; the attention modes "
                                        "need exactly one CLS token.")  # fmt: skip
        if "pool" in dict(visual.head.named_children()):
            raise UnsupportedModelError("This timm tower pools with attention in its head; " + _USE_INSTEAD)
        self.blocks = list(trunk.blocks)
        self.views = [_timm_view(b) for b in self.blocks]
        self.patch = int(trunk.patch_embed.proj.kernel_size[0])
        self.native_grid = tuple(int(g) for g in trunk.patch_embed.grid_size)
        with torch.no_grad():
            self.dim = int(self.project(torch.zeros(1, 1, trunk.embed_dim, dtype=trunk.cls_token.dtype)).shape[-1])

    def embed(self, pixels: torch.Tensor, cache: dict | None) -> tuple[torch.Tensor, tuple[int, int]]:
        t = self.trunk
        tokens, grid = patch_tokens(t.patch_embed.proj, pixels)
        tokens = t.patch_embed.norm(tokens)
        table = t.pos_embed[0]
        pos = position_table(table, self.native_grid, grid, not t.no_embed_class, cache).to(tokens.dtype)
        cls = t.cls_token.to(tokens.dtype).expand(tokens.shape[0], 1, -1)
        x = torch.cat([cls, tokens + pos], dim=1) if t.no_embed_class else torch.cat([cls, tokens], dim=1) + pos
        return t.norm_pre(x), grid

    def project(self, x: torch.Tensor) -> torch.Tensor:
        t = self.trunk
        return self.visual.head(t.head(t.fc_norm(t.norm(x))))


def tower_of(visual: nn.Module) -> Tower:
    """The :class:`Tower` of an open_clip image tower; raises UnsupportedModelError (saying what to
    use instead) for a ResNet, a ConvNeXt or anything else that is not a ViT of the known kinds."""
    if hasattr(visual, "trunk"):
        if not all(hasattr(visual.trunk, a) for a in ("patch_embed", "blocks", "norm", "pos_embed")):
            raise UnsupportedModelError(f"The image tower is a timm {type(visual.trunk).__name__}, not a ViT; "
                                        "the attention modes patch a ViT's attention blocks. " + _USE_INSTEAD)  # fmt: skip
        return TimmTower(visual)
    needed = ("conv1", "class_embedding", "positional_embedding", "ln_pre", "transformer", "ln_post")
    if not all(hasattr(visual, a) for a in needed):
        kind = "ResNet" if hasattr(visual, "attnpool") else type(visual).__name__
        raise UnsupportedModelError(f"The image tower is a {kind}, not a ViT; the attention modes patch a ViT's "
                                    "attention blocks. " + _USE_INSTEAD)  # fmt: skip
    if getattr(visual, "attn_pool", None) is not None or getattr(visual, "proj", None) is None:
        raise UnsupportedModelError(
            "This CLIP ViT uses attentional pooling or has no projection; the dense path needs the plain "
            "CLS-token ViT of CLIP / OpenCLIP. " + _USE_INSTEAD
        )
    for blk in visual.transformer.resblocks:
        attn = getattr(blk, "attn", None)
        if attn is None or not hasattr(attn, "out_proj") or not hasattr(attn, "num_heads"):
            raise UnsupportedModelError(f"A ViT block's attention ({type(attn).__name__}) is not multi-head attention "
                                        "with an output projection. " + _USE_INSTEAD)  # fmt: skip
    return OpenClipTower(visual)
