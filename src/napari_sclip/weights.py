"""Loading CLIP models: open_clip names + pretrained tags, local checkpoint files, hub ids.

Everything here fails fast with a message a person can act on: weights that are not cached on an
offline machine, a file that is not a CLIP checkpoint, an architecture SCLIP cannot patch.
"""

from __future__ import annotations

import difflib
import os
import socket
import threading
from pathlib import Path

from torch import nn

from .checkpoints import build_from_file, file_sha256
from .errors import UnsupportedModelError, WeightsUnavailableError
from .model import CLIP_MEAN, CLIP_STD, SclipModel, resolve_device, resolve_precision, tokenizer_for

CACHE_ENV = "NAPARI_SCLIP_CACHE_DIR"


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder for downloaded weights and text embeddings: argument, env var, or ~/.cache."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "napari-sclip"



def _hub_reachable(host: str = "huggingface.co", timeout: float = 5.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    # name resolution ignores socket timeouts and can hang for long on a closed network: bound it
    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout + 1.0)
    return bool(result and result[0])


def _hub_cached(cfg: dict, cache: Path) -> bool:
    hub = cfg.get("hf_hub", "")
    if not hub:
        return False
    from huggingface_hub import try_to_load_from_cache

    repo, filename = hub.rstrip("/"), ""
    if not hub.endswith("/"):
        repo, filename = os.path.split(hub)
    names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    return any(
        isinstance(try_to_load_from_cache(repo, fname, cache_dir=cdir), str)
        for fname in names
        for cdir in (str(cache), None)
    )


def _unavailable(what: str, cache: Path, filename: str | None = None) -> WeightsUnavailableError:
    place = f"copy {filename} into {cache}" if filename else f"place them in {cache}"
    return WeightsUnavailableError(
        f"The weights for {what} are not cached and cannot be downloaded (no network). Either "
        f"{place} (the folder is set by cache_dir= or the environment variable {CACHE_ENV}), or "
        "pass a local file: load_model('ViT-B-16', pretrained='/path/to/weights.pt') in Python, "
        "--checkpoint FILE on the command line, or the checkpoint field in the napari widget."
    )


def _build_from_tag(name: str, tag: str, cache: Path) -> nn.Module:
    import open_clip

    if name not in open_clip.list_models():
        close = difflib.get_close_matches(name, open_clip.list_models(), n=6, cutoff=0.6)
        raise UnsupportedModelError(
            f"Unknown open_clip model {name!r}." + (f" Did you mean one of: {', '.join(close)}?" if close else "")
        )
    tags = open_clip.list_pretrained_tags_by_model(name)
    if tag not in tags:
        raise UnsupportedModelError(
            f"No pretrained weights {tag!r} for {name}; available tags: {', '.join(tags) or 'none'} "
            "(or pass a local file path as pretrained=)."
        )
    cfg = open_clip.get_pretrained_cfg(name, tag)
    openai = "openai" in tag.lower() or bool(cfg.get("quick_gelu"))
    url_file = os.path.basename(cfg.get("url", "")) or None
    if url_file and (cache / url_file).is_file():  # weights placed by hand under their usual name
        clip, _ = build_from_file(cache / url_file, name, openai=openai)
        return clip
    if not _hub_cached(cfg, cache) and not _hub_reachable():
        raise _unavailable(f"{name} / {tag}", cache, url_file)
    try:
        clip = open_clip.create_model(name, pretrained=tag, cache_dir=str(cache), force_quick_gelu=openai)
    except (OSError, RuntimeError) as exc:
        text = str(exc).lower()
        if any(w in text for w in ("connect", "resolve", "offline", "timed out", "unreachable")):
            raise _unavailable(f"{name} / {tag}", cache, url_file) from None
        raise
    return clip.float()


def _from_hub(name: str, cache: Path) -> nn.Module:
    """An ``hf-hub:`` model (QuiltNet, BiomedCLIP...): config and weights from the hub or its cache."""
    import open_clip

    if not _hub_reachable():
        raise _unavailable(name, cache)
    try:
        return open_clip.create_model(name, cache_dir=str(cache)).float()
    except (ImportError, RuntimeError) as exc:
        if "transformers" not in str(exc):
            raise
        raise UnsupportedModelError(
            f"{name} has a Hugging Face text tower (as BiomedCLIP's PubMedBERT), which needs the transformers "
            "package: pip install transformers"
        ) from None


def _looks_like_path(text: str) -> bool:
    """Pretrained tags never hold a path separator or start with '.' or '~'."""
    return os.sep in text or "/" in text or text.startswith((".", "~"))


def _build(name: str | None, pretrained, cache: Path) -> tuple[nn.Module, str, str, Path | None, str | None]:
    """``(clip, label, identity, checkpoint file or None, name)`` for every way to name weights."""

    file = Path(pretrained).expanduser() if pretrained is not None else None
    if name and str(name).startswith("hf-hub:"):
        return _from_hub(name, cache), name, name, None, name
    if file is not None and (file.suffix in (".pt", ".pth", ".bin", ".safetensors") or file.exists()
                             or _looks_like_path(str(pretrained))):  # fmt: skip
        clip, label = build_from_file(file, name)
        return clip, label, f"file:{file_sha256(file)}", file, name
    if name and pretrained is None and Path(name).expanduser().is_file():
        file = Path(name).expanduser()
        clip, label = build_from_file(file, None)
        return clip, label, f"file:{file_sha256(file)}", file, None
    if name and pretrained is None:
        raise WeightsUnavailableError(
            f"No weights given for {name}: pass pretrained='openai' (or another tag) or a local file. "
            "Random weights are only for tests: use SclipModel.from_open_clip(open_clip.create_model(name))."
        )
    if name:
        clip = _build_from_tag(str(name), str(pretrained), cache)
        return clip, f"{name}/{pretrained}", f"tag:{name}/{pretrained}", None, name
    raise ValueError("Give a model name, a pretrained tag or a checkpoint file.")


def load_model(
    name: str | None = "ViT-B-16",
    pretrained: str | os.PathLike | None = "openai",
    *,
    device: str = "auto",
    precision: str = "auto",
    cache_dir: str | os.PathLike | None = None,
) -> SclipModel:
    """Load a CLIP ViT for SCLIP inference.

    ``pretrained`` is an open_clip tag (``"openai"``, ``"laion2b_s34b_b88k"``...) or a local file
    (safetensors, ``.pt``/``.bin`` state dict, OpenAI archive); ``name`` is an open_clip model name,
    an ``hf-hub:`` id, or ``None`` to read the architecture from the file. OpenAI weights always
    run with QuickGELU.
    """
    from .options import ModelChoice

    cache = default_cache_dir(cache_dir)
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    clip, label, identity, file, name = _build(name, pretrained, cache)
    choice = ModelChoice(name=name, pretrained="openai" if file else str(pretrained), checkpoint=str(file) if file else None,
                         device=device, precision=precision, cache_dir=None if cache_dir is None else str(cache_dir))  # fmt: skip
    return SclipModel(
        clip=clip,
        tokenizer=tokenizer_for(clip, name if name and not Path(str(name)).exists() else None),
        name=label,
        identity=identity,
        device=dev,
        dtype=dtype,
        mean=tuple(getattr(clip.visual, "image_mean", None) or CLIP_MEAN),
        std=tuple(getattr(clip.visual, "image_std", None) or CLIP_STD),
        disk_cache=cache / "text",
        choice=choice,
    )
