"""A method's published settings for a dataset, turned into run options image by image.

Settings are layered: the method's defaults (``methods.json``), then the dataset's settings for
every method (``"*"``), then its settings for this method; options given explicitly win over all.

Two rules of the official pipelines are not run options of the engine, so they are applied here,
per image, through the engine's own options:

* **resize** ``[long, short]`` (mmcv's keep-ratio rescale, factor
  ``min(long / longer side, short / shorter side)``, sizes rounded as ``int(x + 0.5)``): the
  engine is given the short side of that size. Its long side then comes out the same (every
  image of the bundled benchmarks), or a few pixels off when the short side's rounding is
  magnified by a long aspect ratio or the long-side cap is what limits (counted and reported as
  ``resize_inexact``).
* **window 0** (the official ``slide_crop=0``: one forward pass over the whole resized image):
  window = stride = the longer side of the resized image.

An explicit ``short_side`` replaces the resize rule, an explicit ``window`` the whole-image rule
(and the method's stride: half the window unless a stride is given too).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..geometry import inference_size
from ..options import OptionsError, RunOptions
from .datasets import Dataset, load_methods

#: Keys of a method entry that are descriptions, not settings.
_ABOUT = ("title", "source", "settings_of", "notes")


@dataclass(frozen=True)
class Protocol:
    """Run options plus the two per-image rules (see the module doc)."""

    method: str | None
    options: RunOptions
    resize: tuple[int, int] | None = None
    whole_image: bool = False
    notes: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        opts = self.options.as_dict()
        opts.pop("batch_size")
        return {"method": self.method, **opts, "resize": list(self.resize) if self.resize else None,
                "whole_image": self.whole_image}  # fmt: skip

    def summary(self) -> str:
        """The settings in a line."""
        o = self.options
        size = f"resize {tuple(self.resize)}" if self.resize else f"short side {o.short_side or 'native'}"
        window = "whole image" if self.whole_image else f"window {o.window or 'model'} / stride {o.stride or 'half'}"
        area = f", area threshold {o.area_threshold:g}" if o.area_threshold is not None else ""
        return (f"{self.method or 'engine defaults'}: attention {o.attention}, {size}, {window}, "
                f"logit scale {o.logit_scale:g}, threshold {o.threshold:g}{area}")


def method_settings(method: str, dataset: Dataset | None) -> tuple[dict[str, Any], list[str]]:
    """The layered settings of ``method`` on ``dataset`` and the notes that go with them."""
    methods = load_methods()
    if method not in methods:
        raise ValueError(f"no method {method!r}; choose one of: {', '.join(methods)}")
    entry = methods[method]
    settings = {k: v for k, v in entry.items() if k not in _ABOUT}
    notes = list(entry.get("notes", []))
    if dataset is not None:
        of = entry.get("settings_of", method)
        if of not in dataset.settings and "*" not in dataset.settings:
            notes.append(f"no published settings of {method} for {dataset.name}: using the method's defaults")
        settings.update(dataset.settings.get("*", {}))
        settings.update(dataset.settings.get(of, {}))
        internals = dataset.internals.get(method)
        if internals:
            shown = ", ".join(f"{k} {v}" for k, v in internals.items())
            notes.append(f"{method}'s published {dataset.name} setup also sets internals ({shown}); "
                         f"napari-sclip's {method} mode uses its own defaults")  # fmt: skip
    return settings, notes


def build(method: str | None, dataset: Dataset | None, explicit: dict[str, Any]) -> Protocol:
    """The protocol of ``method`` (None: the engine's defaults) with ``explicit`` options on top.
    Raises ValueError naming the method when its settings need what this version lacks."""
    settings, notes = method_settings(method, dataset) if method else ({}, [])
    resize = settings.pop("resize", None)
    window = settings.pop("window", None)
    whole = window == 0 and "window" not in explicit
    if window:
        settings["window"] = window
    if "short_side" in explicit:
        resize = None
    elif resize is not None:
        settings["short_side"] = None  # set per image from the resize rule
    known = {f.name for f in fields(RunOptions)}
    missing = sorted(set(settings) - known)
    if missing:
        raise ValueError(f"{method}'s published settings need the run option(s) {', '.join(missing)}, which "
                         "this version of napari-sclip does not have.")  # fmt: skip
    if whole or ("window" in explicit and "stride" not in explicit):
        settings.pop("stride", None)  # a window of your own gets half of it as stride, unless you give one
    try:
        options = RunOptions.build(None, **{**settings, **explicit})
    except OptionsError as exc:
        raise ValueError(f"{method}'s settings cannot run here: {exc}" if method else str(exc)) from None
    return Protocol(method, options, tuple(resize) if resize else None, whole, tuple(notes))


def rescale_size(height: int, width: int, scale: tuple[int, int]) -> tuple[int, int]:
    """mmcv's keep-ratio rescale of ``height x width`` to ``scale`` (long, short)."""
    f = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(height * f + 0.5), int(width * f + 0.5)


def image_options(protocol: Protocol, height: int, width: int) -> tuple[RunOptions, tuple[int, int], bool]:
    """The run options for one image, the size it is segmented at, and whether that size is the
    protocol's exactly (False: a few pixels off in the long side)."""
    opts, exact = protocol.options, True
    size = inference_size(height, width, opts.short_side)
    changes: dict[str, Any] = {}
    if protocol.resize is not None:
        target = rescale_size(height, width, protocol.resize)
        changes["short_side"] = min(target)
        size = inference_size(height, width, min(target))
        exact = size == target
    if protocol.whole_image:
        changes["window"] = changes["stride"] = max(size)
    return (RunOptions.build(opts, **changes) if changes else opts), size, exact
