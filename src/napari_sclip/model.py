"""Loading CLIP models (names + tags, local checkpoints, hub ids) and the :class:`SclipModel` wrapper.

Everything here fails fast with a message a person can act on: weights that are not cached on an
offline machine, a file that is not a CLIP checkpoint, an architecture SCLIP cannot patch.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import socket
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import encoder
from .attention import get_mode
from .errors import CheckpointError, UnsupportedModelError, WeightsUnavailableError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CACHE_ENV = "NAPARI_SCLIP_CACHE_DIR"
CHECKPOINT_FORMAT = "napari-sclip/open_clip-v1"
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_OPENAI_MARKERS = ("input_resolution", "context_length", "vocab_size")


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder for downloaded weights and text embeddings: argument, env var, or ~/.cache."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "napari-sclip"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must be available."""
    name = str(device).lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but no CUDA GPU is visible; use 'cpu' or 'auto'.")
    if dev.type == "mps" and not (torch.backends.mps.is_available()):
        raise ValueError("device='mps' was asked for but Apple MPS is not available; use 'cpu' or 'auto'.")
    return dev


def cpu_has_bf16_units() -> bool:
    """True on x86 CPUs with AMX or AVX-512 BF16, where bf16 matrix products are several times faster."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("amx_bf16", "avx512_bf16"))


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """``auto``: fp16 on cuda/mps, bf16 on a CPU with native bf16 units, fp32 otherwise."""
    if precision == "auto":
        if device.type in ("cuda", "mps"):
            return torch.float16
        return torch.bfloat16 if cpu_has_bf16_units() else torch.float32
    try:
        return _DTYPES[precision]
    except KeyError:
        raise ValueError(f"precision must be 'auto', 'fp32', 'bf16' or 'fp16', not {precision!r}.") from None


@dataclass
class SclipModel:
    """A CLIP ViT ready for dense inference: the open_clip module, its tokenizer and caches.

    Build one with :func:`load_model` or :meth:`from_open_clip`.
    """

    clip: nn.Module
    tokenizer: object
    name: str
    identity: str
    device: torch.device
    dtype: torch.dtype
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    disk_cache: Path | None = None
    image_batches_run: int = 0
    text_cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        encoder.check_dense_vision(self.clip.visual)
        self.clip = self.clip.to(device=self.device, dtype=self.dtype).eval()
        self.clip.requires_grad_(False)

    @classmethod
    def from_open_clip(
        cls,
        clip: nn.Module,
        *,
        name: str = "custom",
        tokenizer: object | None = None,
        device: str = "cpu",
        precision: str = "fp32",
        cache_dir: str | os.PathLike | None = None,
    ) -> SclipModel:
        """Wrap an in-process open_clip CLIP (random or your own weights); the module is moved to
        the device and cast to the precision in place.

        Text embeddings are cached on disk only when ``cache_dir`` is given, since an in-memory
        model has no stable identity across sessions beyond a fingerprint of its weights.
        """
        dev = resolve_device(device)
        return cls(
            clip=clip,
            tokenizer=tokenizer or _tokenizer_for(clip, None),
            name=name,
            identity=f"weights:{_fingerprint(clip)}",
            device=dev,
            dtype=resolve_precision(precision, dev),
            disk_cache=Path(cache_dir) if cache_dir is not None else None,
        )

    @property
    def window(self) -> int:
        """Native input size of the image tower, the default sliding-window size."""
        return int(self.clip.visual.image_size[0])

    @property
    def patch_size(self) -> int:
        return int(self.clip.visual.patch_size[0])

    @property
    def precision(self) -> str:
        return {v: k for k, v in _DTYPES.items()}[self.dtype]

    @property
    def default_batch(self) -> int:
        """Windows per forward pass: large enough to amortise, small enough for a laptop."""
        return 32 if self.device.type == "cuda" else 8

    def dense_features(self, pixels: torch.Tensor, attention: str = "sclip") -> torch.Tensor:
        """Normalised per-patch features ``(B, gh, gw, D)`` float32 for a batch of windows."""
        self.image_batches_run += 1
        pixels = pixels.to(device=self.device, dtype=self.dtype)
        return encoder.dense_features(self.clip.visual, pixels, get_mode(attention)).cpu()

    def patch_attention(self, pixels: torch.Tensor, attention: str = "sclip") -> torch.Tensor:
        """Head-averaged last-block attention among the patches of one batch of windows."""
        pixels = pixels.to(device=self.device, dtype=self.dtype)
        return encoder.last_block_attention(self.clip.visual, pixels, get_mode(attention)).cpu()

    def encode_prompts(self, prompts: list[str], batch: int = 512) -> torch.Tensor:
        """Raw text embeddings (float32) of already-filled prompts, batched."""
        out = []
        for start in range(0, len(prompts), batch):
            tokens = self.tokenizer(prompts[start : start + batch]).to(self.device)
            out.append(encoder.encode_tokens(self.clip, tokens).cpu())
        return torch.cat(out) if out else torch.zeros(0, 0)


def _fingerprint(clip: nn.Module) -> str:
    """A cheap identity of a module's weights: shapes plus a sample of every tensor's values."""
    h = hashlib.sha256()
    for key, value in clip.state_dict().items():
        flat = value.detach().reshape(-1)
        h.update(key.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(flat[:: max(1, flat.numel() // 64)][:64].float().cpu().numpy().tobytes())
    return h.hexdigest()[:24]


def _tokenizer_for(clip: nn.Module, name: str | None):
    import open_clip

    if name:
        try:
            return open_clip.get_tokenizer(name)
        except Exception:  # noqa: BLE001 - fall back to CLIP's BPE tokenizer, shipped with open_clip
            pass
    context = int(getattr(clip, "context_length", 77) or 77)
    return open_clip.tokenizer.SimpleTokenizer(context_length=context)


def _file_sha256(path: Path) -> str:
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
    needed = ("visual.conv1.weight", "visual.positional_embedding", "token_embedding.weight")
    missing = [k for k in needed if k not in sd]
    if missing:
        sample = ", ".join(list(sd)[:4]) or "no tensors"
        raise CheckpointError(
            f"{path.name} is not a CLIP ViT checkpoint (missing {', '.join(missing)}; its keys start "
            f"with {sample}). Pass an open_clip / OpenAI CLIP ViT checkpoint."
        )


def _build_from_file(path: Path, name: str | None, openai: bool = False) -> tuple[nn.Module, str]:
    import open_clip

    sd, meta, is_openai = read_checkpoint(path)
    openai = openai or is_openai or "openai" in path.name.lower()
    _check_clip_keys(sd, path)
    if meta.get("format") == CHECKPOINT_FORMAT:
        cfg = json.loads(meta["open_clip_config"])
        clip = open_clip.CLIP(**cfg)
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
        clip, _ = _build_from_file(cache / url_file, name, openai=openai)
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
    import open_clip

    cache = default_cache_dir(cache_dir)
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    file = Path(pretrained).expanduser() if pretrained is not None else None
    if name and str(name).startswith("hf-hub:"):
        if not _hub_reachable():
            raise _unavailable(name, cache)
        clip = open_clip.create_model(name, cache_dir=str(cache)).float()
        label, identity = name, name
    elif file is not None and (file.suffix in (".pt", ".pth", ".bin", ".safetensors") or file.exists()):
        clip, label = _build_from_file(file, name)
        identity = f"file:{_file_sha256(file)}"
    elif name and pretrained is None and Path(name).expanduser().is_file():
        file = Path(name).expanduser()
        clip, label = _build_from_file(file, None)
        identity = f"file:{_file_sha256(file)}"
        name = None
    elif name and pretrained is None:
        raise WeightsUnavailableError(
            f"No weights given for {name}: pass pretrained='openai' (or another tag) or a local file. "
            "Random weights are only for tests: use SclipModel.from_open_clip(open_clip.create_model(name))."
        )
    elif name:
        clip = _build_from_tag(str(name), str(pretrained), cache)
        label, identity = f"{name}/{pretrained}", f"tag:{name}/{pretrained}"
    else:
        raise ValueError("Give a model name, a pretrained tag or a checkpoint file.")
    mean = tuple(getattr(clip.visual, "image_mean", None) or CLIP_MEAN)
    std = tuple(getattr(clip.visual, "image_std", None) or CLIP_STD)
    return SclipModel(
        clip=clip,
        tokenizer=_tokenizer_for(clip, name if name and not Path(str(name)).exists() else None),
        name=label,
        identity=identity,
        device=dev,
        dtype=dtype,
        mean=mean,
        std=std,
        disk_cache=cache / "text",
    )
