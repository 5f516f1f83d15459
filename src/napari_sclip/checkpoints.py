"""Checkpoint files: read tensors without running code, write self-describing safetensors, and
rebuild an open_clip CLIP from a file (architecture from its metadata, a name, or its keys)."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError

CHECKPOINT_FORMAT = "napari-sclip/open_clip-v1"
_OPENAI_MARKERS = ("input_resolution", "context_length", "vocab_size")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()[:24]


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as fh:
        head = fh.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str], bool]:
    """Read tensors from a checkpoint without running code: (state dict, metadata, is_openai).

    safetensors, ``weights_only`` torch pickles (``.pt`` / ``.bin``) and OpenAI TorchScript
    archives (TorchScript holds no Python code) are accepted.
    """
    if not path.is_file():
        raise CheckpointError(f"Checkpoint file not found: {path}")
    if _is_safetensors(path):
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                sd = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"{path.name} is not a readable safetensors file: {exc}") from None
        return sd, meta, False
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            try:
                scripted = torch.jit.load(str(path), map_location="cpu")
            except Exception as exc:  # noqa: BLE001
                raise CheckpointError(f"{path.name} looks like a TorchScript archive but failed to load: {exc}") from None
            return dict(scripted.state_dict()), {}, True
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(
            f"{path.name} could not be read as a plain tensor checkpoint ({type(exc).__name__}). "
            "For safety only safetensors files, weights-only PyTorch state dicts (.pt/.bin) and "
            "OpenAI CLIP archives are loaded. Re-save the weights with "
            "torch.save(model.state_dict(), path) or safetensors."
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise CheckpointError(f"{path.name} does not hold a state dict (found {type(obj).__name__}).")
    openai = all(k in obj for k in _OPENAI_MARKERS)
    sd = {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return sd, {}, openai


def save_checkpoint(
    clip: nn.Module,
    path: str | os.PathLike,
    config: dict,
    *,
    name: str,
    description: str = "",
    half: bool = False,
    extra: dict[str, str] | None = None,
) -> dict[str, torch.Tensor]:
    """Write an open_clip CLIP as a safetensors file that carries its architecture, so that
    ``load_model(None, path)`` rebuilds it (``config`` holds ``open_clip.CLIP``'s arguments).
    ``extra`` adds string metadata (seed, versions...). Returns the tensors written."""
    from safetensors.torch import save_file

    tensors = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in clip.state_dict().items()}  # fmt: skip
    meta = {**(extra or {}), "format": CHECKPOINT_FORMAT, "open_clip_config": json.dumps(config),
            "name": name, "description": description}  # fmt: skip
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return tensors


def _check_clip_keys(sd: dict, path: Path) -> None:
    """An image tower (open_clip's ViT, or timm's inside open_clip) and a text tower (CLIP's, or a
    Hugging Face one under ``text.``) must be there."""
    vision = ("visual.conv1.weight", "visual.positional_embedding") if "visual.conv1.weight" in sd else (
        "visual.trunk.patch_embed.proj.weight", "visual.trunk.pos_embed")  # fmt: skip
    missing = [k for k in vision if k not in sd]
    if "token_embedding.weight" not in sd and not any(k.startswith("text.") for k in sd):
        missing.append("token_embedding.weight")
    if missing:
        sample = ", ".join(list(sd)[:4]) or "no tensors"
        raise CheckpointError(
            f"{path.name} is not a CLIP ViT checkpoint (missing {', '.join(missing)}; its keys start "
            f"with {sample}). Pass an open_clip / OpenAI CLIP ViT checkpoint."
        )


def build_from_file(path: Path, name: str | None, openai: bool = False) -> tuple[nn.Module, str]:
    import open_clip

    sd, meta, is_openai = read_checkpoint(path)
    openai = openai or is_openai or "openai" in path.name.lower()
    _check_clip_keys(sd, path)
    if meta.get("format") == CHECKPOINT_FORMAT:
        try:
            clip = open_clip.CLIP(**json.loads(meta["open_clip_config"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{path.name} says it is a {CHECKPOINT_FORMAT} checkpoint but its architecture metadata "
                f"is damaged ({type(exc).__name__}: {str(exc)[:120]}). Re-save the model with "
                "napari_sclip.checkpoints.save_checkpoint."
            ) from None
        label = meta.get("name") or path.stem
    elif name:
        clip = open_clip.create_model(name, pretrained=None, force_quick_gelu=openai)
        label = f"{name} ({path.name})"
    else:
        from open_clip.model import build_model_from_openai_state_dict

        # open_clip infers the architecture but casts weights to fp16; reload them at full precision
        clip = build_model_from_openai_state_dict(dict(sd), quick_gelu=openai, cast_dtype=None).float()
        label = path.stem
    try:
        clip.load_state_dict({k: v for k, v in sd.items() if k not in _OPENAI_MARKERS}, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise CheckpointError(
            f"{path.name} does not match the architecture {name or label!r}: {' '.join(first)[:300]} "
            "Pass the model name the weights were trained with (e.g. name='ViT-B-16')."
        ) from None
    return clip.float(), label

