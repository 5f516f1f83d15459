"""The run and model options as typed values, validated once, here.

:class:`RunOptions` (how an image is segmented) and :class:`ModelChoice` (which CLIP runs where)
are frozen dataclasses. The API builds them from keywords, the CLI generates its arguments from
their fields, and the widget generates its form fields from them: a new option is added here only.
Each field carries an :class:`Spec` (help text, command-line flag, form hints) and a ``stage`` that
says which cached work a change of it invalidates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from .errors import OptionsError

#: What a changed option invalidates, cheapest last: image features, probabilities, labels, nothing.
STAGES = ("image", "score", "decide", "none")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
REFINERS = ("none", "pamr")


@dataclass(frozen=True)
class Spec:
    """How one option is presented: help text, parsing kind, command line and form hints."""

    help: str
    kind: str  # "int", "float", "str", "pair" (two floats), "ints" (one or more whole numbers), "params" (name=value; ...)
    stage: str = "none"
    none_word: str | None = None  # what None is called (command line word, form's special text)
    choices: Callable[[], Sequence[str]] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    form: str | None = None  # form section: "scale", "refine", or None (not in the form)
    label: str = ""
    percent: bool = False  # shown as a percentage in the form
    cli: bool = True
    flag: str | None = None  # command-line flag when not --<field-name>


def option(default: Any, **spec: Any) -> Any:
    """A dataclass field with its :class:`Spec`."""
    return field(default=default, metadata={"spec": Spec(**spec)})


def spec_of(cls: type, name: str) -> Spec:
    """The :class:`Spec` of field ``name`` of an options class."""
    return next(f.metadata["spec"] for f in fields(cls) if f.name == name)


def _mode(name: str):
    from .attention import get_mode

    return get_mode(name)


def _modes() -> tuple[str, ...]:
    from .attention import MODES  # torch: only when choices are asked for

    return tuple(MODES)


def _positive_int(name: str, value: Any, none_word: str | None) -> int | None:
    if value is None and none_word is not None:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()
    if not ok or int(value) <= 0:
        alt = f", or None ({none_word})" if none_word else ""
        raise OptionsError(f"{name} must be a positive whole number{alt}, not {value!r}.")
    return int(value)


def _number(name: str, value: Any, low: float, high: float, closed_high: bool, what: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))
    if not ok or not (low <= float(value) and (float(value) <= high if closed_high else float(value) < high)):
        raise OptionsError(f"{name} is {what}, not {value!r}.")
    return float(value)


def _dilations(value: Any) -> tuple[int, ...]:
    out = tuple(_positive_int("pamr_dilations", v, None) for v in ([value] if isinstance(value, int) else value or ()))
    if not out:
        raise OptionsError(f"pamr_dilations must be one or more positive whole numbers, not {value!r}.")
    return out


def check_contrast_limits(limits: Any) -> tuple[float, float] | None:
    """``(low, high)`` finite with low < high, or None (the image's own range)."""
    if limits is None:
        return None
    try:
        lo, hi = (float(v) for v in limits)
    except (TypeError, ValueError):
        raise OptionsError(f"contrast_limits must be two numbers (low, high), not {limits!r}.") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise OptionsError(
            f"contrast_limits must be two finite numbers with low < high, not ({lo:g}, {hi:g}); "
            "pass None to use the image's own range."
        )
    return lo, hi


@dataclass(frozen=True)
class RunOptions:
    """How an image is segmented. Defaults are the paper's (short side 336, 224-px windows with
    stride 112 for ViT-B/16, logit scale 40, no threshold)."""

    attention: str = option(
        "sclip", kind="str", stage="image", choices=_modes, form="scale", label="Attention",
        help="attention mode: sclip (SCLIP's correlative self-attention), vanilla, clearclip, naclip, segearth, "
        "resclip, scclip (see the README's table of modes)",
    )  # fmt: skip
    short_side: int | None = option(
        336, kind="int", stage="image", none_word="native", low=1, high=16384, step=32, form="scale",
        label="Short side", help="resize so the short side has this many pixels; 'native' keeps the image's size",
    )  # fmt: skip
    long_side: int | None = option(
        None, kind="int", stage="image", none_word="no limit", low=1, high=65536, step=32, form="scale",
        label="Long side", help="at most this many pixels on the long side (mmcv's keep-ratio resize: the smaller "
        "scale wins; official: 336 with 2048, SegEarth-OV 448 with 448); alone, it sets the long side")  # fmt: skip
    window: int | None = option(
        None, kind="int", stage="image", none_word="model's", low=1, high=4096, form="scale",
        label="Window", help="sliding-window size in pixels ('model's': the model's input size)",
    )  # fmt: skip
    stride: int | None = option(
        None, kind="int", stage="image", none_word="half window", low=1, high=4096, form="scale",
        label="Stride", help="window stride in pixels ('half window' by default)",
    )  # fmt: skip
    contrast_limits: tuple[float, float] | None = option(
        None, kind="pair", stage="image", help="intensities mapped to black and white; default: 0-255 "
        "for uint8 images, the 0.5 and 99.5 percentiles for others",
    )  # fmt: skip
    logit_scale: float = option(
        40.0, kind="float", stage="score", low=0.1, high=1000.0, step=1.0, form="scale", label="Logit scale",
        help="softmax temperature: higher is more decisive (the paper's VOC setting: 65)",
    )  # fmt: skip
    refine: str = option(
        "none", kind="str", stage="score", choices=lambda: REFINERS, form="scale", label="Refinement",
        help="none, or pamr: pixel-adaptive mask refinement of the full-resolution logits, guided by the image")  # fmt: skip
    pamr_steps: int = option(10, kind="int", stage="score", low=1, high=200, form="scale", label="PAMR steps",
                             help="refinement iterations (with --refine pamr)")  # fmt: skip
    pamr_dilations: tuple[int, ...] = option((8, 16), kind="ints", stage="score", low=1, high=512,
                                             label="PAMR dilations", help="neighbour distances in pixels, 8 "
                                             "neighbours each (with --refine pamr)")  # fmt: skip
    threshold: float = option(
        0.0, kind="float", stage="decide", low=0.0, high=1.0, step=0.01, form="refine", label="Threshold",
        help="pixels whose best class probability is below this become label 0",
    )  # fmt: skip
    area_threshold: float | None = option(
        None, kind="float", stage="decide", none_word="off", low=0.0, high=0.99, step=0.005, form="refine",
        label="Min. class area", percent=True,
        help="drop classes covering at most this fraction of the foreground (paper's VOC rule: 0.1)",
    )  # fmt: skip
    mode_params: tuple[tuple[str, Any], ...] = option(
        (), kind="params", stage="image", label="Mode parameters",
        help="the attention mode's parameters as 'name=value; name=a,b' (resclip: feedback_threshold, rcs, sfr; "
        "segearth: cls_weight); the others keep the mode's published defaults")  # fmt: skip
    batch_size: int | None = option(
        None, kind="int", none_word="auto", low=1, high=4096,
        help="windows per forward pass ('auto': 8 on a CPU, 32 on a GPU); does not change results",
    )  # fmt: skip

    def __post_init__(self) -> None:
        put = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        if not isinstance(self.attention, str) or self.attention not in _modes():
            raise OptionsError(f"Unknown attention mode {self.attention!r}; choose one of: {', '.join(_modes())}.")
        for name in ("short_side", "long_side", "window", "stride", "batch_size", "pamr_steps"):
            put(name, _positive_int(name, getattr(self, name), spec_of(RunOptions, name).none_word))
        if self.window is not None and self.stride is not None and self.stride > self.window:
            raise OptionsError(f"stride ({self.stride}) larger than the window ({self.window}) would leave gaps.")
        put("contrast_limits", check_contrast_limits(self.contrast_limits))
        if self.refine not in REFINERS:
            raise OptionsError(f"refine must be one of {', '.join(REFINERS)}, not {self.refine!r}.")
        put("pamr_dilations", _dilations(self.pamr_dilations))
        put("mode_params", _mode(self.attention).parse_params(self.mode_params))
        put("logit_scale", _number("logit_scale", self.logit_scale, 1e-6, math.inf, False,
                                   "a positive number (the paper uses 40)"))  # fmt: skip
        put("threshold", _number("threshold", self.threshold, 0.0, 1.0, True, "a probability between 0 and 1"))
        if self.area_threshold is not None:
            put("area_threshold", _number("area_threshold", self.area_threshold, 0.0, 1.0, False,
                                          "a fraction of the foreground, at least 0 and below 1"))  # fmt: skip

    @classmethod
    def preset(cls, name: str, **changes: Any) -> RunOptions:
        """A published method's settings (``sclip``, ``naclip``, ``naclip-pamr``, ``segearth``...:
        :func:`napari_sclip.methods.names`) with ``changes`` on top."""
        from .methods import preset_options

        return cls.build(cls(**preset_options(name)), **changes)

    @classmethod
    def build(cls, options: RunOptions | None = None, **changes: Any) -> RunOptions:
        """``options`` (or the defaults) with ``changes`` applied; unknown names are refused. A change
        of ``attention`` without ``mode_params`` drops the old mode's parameters."""
        unknown = sorted(set(changes) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(f.name for f in fields(cls))}")
        options = options or cls()
        if changes.get("attention", options.attention) != options.attention and "mode_params" not in changes:
            changes = {**changes, "mode_params": ()}
        return replace(options, **changes)

    def key(self, stage: str) -> tuple:
        """The values of the options that invalidate ``stage`` ("image", "score" or "decide")."""
        return tuple(getattr(self, f.name) for f in fields(self) if f.metadata["spec"].stage == stage)

    def resolve(self, window: int, patch: int) -> tuple[int, int]:
        """``(window, stride)`` in pixels for a model with this native ``window`` and ``patch`` size."""
        win = self.window or int(window)
        step = self.stride or max(1, win // 2)
        if step > win:
            raise OptionsError(f"stride ({step}) larger than the window ({win}) would leave gaps.")
        if win < patch:
            raise OptionsError(f"window ({win}) is smaller than one patch ({patch} px).")
        return win, step

    def as_dict(self) -> dict[str, Any]:
        """The options as plain values (for metadata and logs)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class ModelChoice:
    """Which CLIP to load and where: an open_clip name with a pretrained tag, or a checkpoint file."""

    name: str | None = option(
        None, kind="str", label="Model", flag="--model",
        help="open_clip model name or hf-hub:id [default: ViT-B-16; with --checkpoint, read from the file]",
    )  # fmt: skip
    pretrained: str = option("openai", kind="str", label="Pretrained", help="open_clip pretrained tag")
    checkpoint: str | None = option(
        None, kind="str", label="Checkpoint",
        help="local weights file (.safetensors/.pt/.bin/OpenAI .pt); replaces the pretrained tag",
    )  # fmt: skip
    device: str = option("auto", kind="str", choices=lambda: DEVICES, label="Device",
                         help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")  # fmt: skip
    precision: str = option("auto", kind="str", choices=lambda: PRECISIONS, label="Precision",
                            help="auto (fp16 on a GPU, bf16 on a CPU with bf16 units, else fp32), fp32, bf16, fp16")  # fmt: skip
    cache_dir: str | None = option(None, kind="str", label="Cache", none_word="~/.cache/napari-sclip",
                                   help="where weights and text embeddings are cached")  # fmt: skip

    def __post_init__(self) -> None:
        put = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        for name in ("name", "checkpoint", "cache_dir"):
            value = getattr(self, name)
            put(name, str(value).strip() or None if value is not None else None)
        put("pretrained", str(self.pretrained or "").strip() or "openai")
        device = str(self.device).strip().lower()
        if not _DEVICE.match(device):
            raise OptionsError(f"Unknown device {self.device!r}; use auto, cpu, cuda, cuda:N or mps.")
        put("device", device)
        if self.precision not in PRECISIONS:
            raise OptionsError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}.")

    def describe(self) -> str:
        """What will be loaded, in a few words."""
        if self.checkpoint:
            from pathlib import Path

            return f"{self.name + ' / ' if self.name else ''}{Path(self.checkpoint).name}"
        return f"{self.name or 'ViT-B-16'} / {self.pretrained}"

    def load(self):
        """Load the model (see :func:`napari_sclip.load_model`)."""
        from .weights import load_model

        kw = dict(device=self.device, precision=self.precision, cache_dir=self.cache_dir)
        if self.checkpoint:
            return load_model(self.name, self.checkpoint, **kw)
        return load_model(self.name or "ViT-B-16", self.pretrained, **kw)


def parse_value(cls: type, name: str, text: str) -> Any:
    """A command-line word for field ``name`` as its value (ranges are checked by the class)."""
    spec = spec_of(cls, name)
    if spec.none_word is not None and text.strip().lower() in ("none", spec.none_word.lower()):
        return None
    if spec.kind in ("str", "params"):
        return text
    try:
        return int(text) if spec.kind in ("int", "ints") else float(text)
    except ValueError:
        none = f" or '{spec.none_word}'" if spec.none_word else ""
        raise OptionsError(f"{name} must be a number{none}, not {text!r}.") from None


def defaults(cls: type) -> dict[str, Any]:
    """Default value of every field of an options class."""
    return {f.name: f.default for f in fields(cls) if f.default is not MISSING}
