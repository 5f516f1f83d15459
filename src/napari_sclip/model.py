"""The :class:`SclipModel` wrapper: an open_clip CLIP ViT ready for dense inference, with the
caches it owns (text embeddings, resampled position tables). Loading lives in :mod:`weights`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import encoder
from .attention import get_mode
from .errors import OptionsError
from .steps import Progress, Steps, drain
from .templates import imagenet_templates
from .text_cache import TextCache
from .towers import Tower

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must be available."""
    name = str(device).lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise OptionsError(f"Unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionsError("device='cuda' was asked for but no CUDA GPU is visible; use 'cpu' or 'auto'.")
    if dev.type == "mps" and not (torch.backends.mps.is_available()):
        raise OptionsError("device='mps' was asked for but Apple MPS is not available; use 'cpu' or 'auto'.")
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
        raise OptionsError(f"precision must be 'auto', 'fp32', 'bf16' or 'fp16', not {precision!r}.") from None


@dataclass(eq=False)
class SclipModel:
    """A CLIP ViT ready for dense inference: the open_clip module, its tokenizer and caches.

    Build one with :func:`~napari_sclip.load_model` or :meth:`from_open_clip`. Text embeddings are
    cached in ``text`` (in memory, and on disk under ``disk_cache`` when given).
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
    choice: object = field(default=None, repr=False)  # the ModelChoice it was loaded from, if any
    text: TextCache = field(init=False, repr=False)
    tower: Tower = field(init=False, repr=False)
    _positions: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        encoder.check_dense_vision(self.clip.visual)  # refuse before moving anything
        self.clip = self.clip.to(device=self.device, dtype=self.dtype).eval()
        self.clip.requires_grad_(False)
        self.tower = encoder.check_dense_vision(self.clip.visual)
        key = f"{self.identity}|{self.precision}|" + "\n".join(imagenet_templates())
        self.text = TextCache(key, self.disk_cache)

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
            tokenizer=tokenizer or tokenizer_for(clip, None),
            name=name,
            identity=f"weights:{fingerprint(clip)}",
            device=dev,
            dtype=resolve_precision(precision, dev),
            disk_cache=Path(cache_dir) if cache_dir is not None else None,
        )

    @property
    def window(self) -> int:
        """Native input size of the image tower, the default sliding-window size."""
        return self.tower.native_size

    @property
    def patch_size(self) -> int:
        return self.tower.patch

    @property
    def embed_dim(self) -> int:
        """Length of the image and text embeddings."""
        return self.tower.dim

    @property
    def precision(self) -> str:
        return {v: k for k, v in _DTYPES.items()}[self.dtype]

    @property
    def default_batch(self) -> int:
        """Windows per forward pass: large enough to amortise, small enough for a laptop."""
        return 32 if self.device.type == "cuda" else 8

    def _inputs(self, text: torch.Tensor | None, logit_scale: float, params) -> encoder.ModeInputs:
        text = None if text is None else text.to(device=self.device, dtype=torch.float32)
        return encoder.ModeInputs(text, float(logit_scale), dict(params or {}))

    def dense_features(self, pixels: torch.Tensor, attention: str = "sclip", *, text: torch.Tensor | None = None,
                       logit_scale: float = 40.0, params=None) -> torch.Tensor:  # fmt: skip
        """Per-patch features ``(B, gh, gw, D)`` float32 for a batch of windows. Modes that read the
        vocabulary (resclip) take its query embeddings ``text`` and the run's ``logit_scale``;
        ``params`` are the mode's parameters (its official defaults otherwise)."""
        self.image_batches_run += 1
        pixels = pixels.to(device=self.device, dtype=self.dtype)
        inputs = self._inputs(text, logit_scale, params)
        return encoder.dense_features(self.tower, pixels, get_mode(attention), inputs, self._positions).cpu()

    def patch_attention(self, pixels: torch.Tensor, attention: str = "sclip", *, text: torch.Tensor | None = None,
                        logit_scale: float = 40.0, params=None) -> torch.Tensor:  # fmt: skip
        """Head-averaged final attention among the patches of one batch of windows."""
        pixels = pixels.to(device=self.device, dtype=self.dtype)
        inputs = self._inputs(text, logit_scale, params)
        return encoder.last_block_attention(self.tower, pixels, get_mode(attention), inputs, self._positions).cpu()

    def encode_prompts(self, prompts: list[str], batch: int = 512) -> torch.Tensor:
        """Raw text embeddings (float32) of already-filled prompts, batched."""
        out = []
        for start in range(0, len(prompts), batch):
            tokens = self.tokenizer(prompts[start : start + batch]).to(self.device)
            out.append(encoder.encode_tokens(self.clip, tokens).cpu())
        return torch.cat(out) if out else torch.zeros(0, 0)

    def uncached(self, phrases: Sequence[str]) -> list[str]:
        """The phrases whose embedding is in neither the memory nor the disk cache."""
        return self.text.missing(phrases)

    def embed_steps(self, phrases: Sequence[str], per_step: int = 4) -> Steps[torch.Tensor]:
        """Generator: encode the uncached phrases a few at a time, yielding progress over them.

        Returns ``(N, D)`` float32 embeddings of ``phrases``: each phrase through the 80 templates,
        each embedding L2-normalised, averaged, normalised again (CLIP's zero-shot rule).
        """
        templates = imagenet_templates()
        todo = self.uncached(phrases)
        self._check_lengths(todo, max(templates, key=len))
        for start in range(0, len(todo), per_step):
            chunk = todo[start : start + per_step]
            prompts = [t.format(p) for p in chunk for t in templates]
            emb = torch.nn.functional.normalize(self.encode_prompts(prompts), dim=-1)
            emb = torch.nn.functional.normalize(emb.reshape(len(chunk), len(templates), -1).mean(1), dim=-1)
            for phrase, e in zip(chunk, emb, strict=True):
                self.text.put(phrase, e)
            yield Progress(min(start + per_step, len(todo)), len(todo), "text")
        return self.text.stack(phrases)

    def _check_lengths(self, phrases: Sequence[str], template: str) -> None:
        """Refuse a phrase that would not fit the text encoder's context inside the longest prompt
        template (the tokenizer would cut it silently)."""
        if not phrases:
            return
        tokens = self.tokenizer([template.format(p) for p in phrases])
        full = [p for p, row in zip(phrases, tokens, strict=True) if int(row[-1]) != 0]
        if full:
            from .errors import VocabularyError

            raise VocabularyError(
                f"{full[0]!r} is too long for the model's text encoder ({tokens.shape[-1]} tokens with the "
                "prompt templates, which would cut it); use a shorter phrase or split it into synonyms."
            )

    def embed(self, phrases: Sequence[str]) -> torch.Tensor:
        """Text embeddings ``(N, D)`` of ``phrases``, from the caches where possible."""
        return drain(self.embed_steps(phrases))


def fingerprint(clip: nn.Module) -> str:
    """A cheap identity of a module's weights: shapes plus a sample of every tensor's values."""
    h = hashlib.sha256()
    for key, value in clip.state_dict().items():
        flat = value.detach().reshape(-1)
        h.update(key.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(flat[:: max(1, flat.numel() // 64)][:64].float().cpu().numpy().tobytes())
    return h.hexdigest()[:24]


def tokenizer_for(clip: nn.Module, name: str | None):
    import open_clip

    if name:
        try:
            return open_clip.get_tokenizer(name)
        except Exception:  # noqa: BLE001 - fall back to CLIP's BPE tokenizer, shipped with open_clip
            pass
    context = int(getattr(clip, "context_length", 77) or 77)
    return open_clip.tokenizer.SimpleTokenizer(context_length=context)

