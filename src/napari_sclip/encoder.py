"""Dense forward passes of an open_clip CLIP: per-patch image features with a patched last block,
and text embeddings cut to the prompts' real length.

These functions take the raw open_clip modules, so they can be read and tested on their own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import LastBlock
from .errors import UnsupportedModelError


def check_dense_vision(visual: nn.Module) -> None:
    """Raise if ``visual`` is not an open_clip ViT whose last block SCLIP can patch."""
    needed = ("conv1", "class_embedding", "positional_embedding", "ln_pre", "transformer", "ln_post")
    if not all(hasattr(visual, a) for a in needed):
        raise UnsupportedModelError(
            f"{type(visual).__name__} is not an open_clip VisionTransformer; SCLIP needs a CLIP ViT "
            "(e.g. ViT-B-16, ViT-L-14). ResNet, ConvNeXt and timm towers are not supported."
        )
    if getattr(visual, "attn_pool", None) is not None or getattr(visual, "proj", None) is None:
        raise UnsupportedModelError(
            "This CLIP ViT uses attentional pooling or has no projection; SCLIP needs the plain "
            "CLS-token ViT of CLIP / OpenCLIP."
        )
    last = visual.transformer.resblocks[-1]
    if not isinstance(getattr(last, "attn", None), nn.MultiheadAttention):
        raise UnsupportedModelError(
            "The last ViT block does not use standard multi-head attention (custom attention "
            "variants are not supported by SCLIP's correlative self-attention)."
        )


def _native_grid(visual: nn.Module) -> tuple[int, int]:
    return tuple(int(g) for g in visual.grid_size)


def position_table(visual: nn.Module, grid: tuple[int, int], cache: dict | None = None) -> torch.Tensor:
    """Position embeddings for a ``grid`` of patches: the table as is at the native grid, else its
    patch part bicubically resampled (CLS position kept), with the official code's scale factors.
    ``cache`` (owned by the caller, e.g. the model wrapper) keeps the last resampled table."""
    table = visual.positional_embedding
    if tuple(grid) == _native_grid(visual):
        return table
    cache = {} if cache is None else cache
    key = (tuple(grid), table.dtype, table.device, table.data_ptr())
    if key not in cache:
        n = int(round((table.shape[0] - 1) ** 0.5))
        gh, gw = grid
        patch = table[1:].float().reshape(1, n, n, -1).permute(0, 3, 1, 2)
        # The official code asks for scale factors (g + 0.1) / n, which fixes both the output size
        # and the sampling positions; reproduce that exactly.
        patch = F.interpolate(
            patch, scale_factor=((gh + 0.1) / n, (gw + 0.1) / n), mode="bicubic", align_corners=False
        )
        if patch.shape[-2:] != (gh, gw):  # pragma: no cover - guarded by the formula above
            raise RuntimeError(f"position table resampled to {tuple(patch.shape[-2:])}, wanted {grid}")
        patch = patch.permute(0, 2, 3, 1).reshape(gh * gw, -1)
        cache.clear()
        cache[key] = torch.cat([table[:1].float(), patch], dim=0).to(table.dtype)
    return cache[key]


def _run_blocks(transformer: nn.Module, x: torch.Tensor, blocks) -> torch.Tensor:
    batch_first = getattr(transformer, "batch_first", True)
    if not batch_first:
        x = x.transpose(0, 1)
    for blk in blocks:
        x = blk(x)
    return x if batch_first else x.transpose(0, 1)


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


def _embed(visual: nn.Module, pixels: torch.Tensor, cache: dict | None) -> tuple[torch.Tensor, tuple[int, int]]:
    tokens, grid = patch_tokens(visual.conv1, pixels)
    cls = visual.class_embedding.to(tokens.dtype).expand(tokens.shape[0], 1, -1)
    tokens = torch.cat([cls, tokens], dim=1) + position_table(visual, grid, cache).to(tokens.dtype)
    return visual.ln_pre(tokens), grid


def _attention_weights(block: nn.Module, y: torch.Tensor, mode: LastBlock, grid) -> tuple:
    attn: nn.MultiheadAttention = block.attn
    b, length, width = y.shape
    heads = attn.num_heads
    head_dim = width // heads
    q, k, v = F.linear(y, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(b, length, heads, head_dim).transpose(1, 2).reshape(b * heads, length, head_dim)

    q, k, v = split(q), split(k), split(v)
    weights = mode.weights(q, k, v, head_dim**-0.5, grid)
    return weights, v, (b, length, width, heads, head_dim)


def last_block(block: nn.Module, x: torch.Tensor, mode: LastBlock, grid: tuple[int, int]) -> torch.Tensor:
    """Run the final residual block with ``mode``'s attention (batch-first tokens, CLS first)."""
    weights, v, (b, length, width, heads, head_dim) = _attention_weights(block, block.ln_1(x), mode, grid)
    out = torch.bmm(weights, v).reshape(b, heads, length, head_dim).transpose(1, 2).reshape(b, length, width)
    out = block.attn.out_proj(out)
    out = block.ls_1(out) if hasattr(block, "ls_1") else out
    x = x + out if mode.residual else out
    if mode.ffn:
        mlp = block.mlp(block.ln_2(x))
        x = x + (block.ls_2(mlp) if hasattr(block, "ls_2") else mlp)
    return x


@torch.inference_mode()
def dense_features(visual: nn.Module, pixels: torch.Tensor, mode: LastBlock, cache: dict | None = None) -> torch.Tensor:
    """Per-patch embeddings ``(B, gh, gw, D)`` (float32, L2-normalised) of a batch of windows.

    ``pixels`` is ``(B, 3, h, w)``, CLIP-normalised. CLS takes part in the last block and is
    dropped only after ``ln_post @ proj``, as in the paper's code.
    """
    x, grid = _embed(visual, pixels, cache)
    blocks = visual.transformer.resblocks
    x = _run_blocks(visual.transformer, x, blocks[:-1])
    x = last_block(blocks[-1], x, mode, grid)
    feats = (visual.ln_post(x) @ visual.proj)[:, 1:].float()
    feats = F.normalize(feats, dim=-1)
    return feats.reshape(feats.shape[0], grid[0], grid[1], -1)


@torch.inference_mode()
def last_block_attention(visual: nn.Module, pixels: torch.Tensor, mode: LastBlock, cache: dict | None = None) -> torch.Tensor:
    """Head-averaged last-block attention among patches, ``(B, gh*gw, gh*gw)`` float32 (CLS dropped)."""
    x, grid = _embed(visual, pixels, cache)
    blocks = visual.transformer.resblocks
    x = _run_blocks(visual.transformer, x, blocks[:-1])
    weights, _, (b, length, _, heads, _) = _attention_weights(blocks[-1], blocks[-1].ln_1(x), mode, grid)
    weights = weights.float().reshape(b, heads, length, length).mean(1)
    return weights[:, 1:, 1:]


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
