"""A method's published settings for a dataset, turned into run options image by image.

Settings are layered: the method's preset (:mod:`napari_sclip.methods`), then the dataset's settings
for every method (``"*"``), then its settings for this method; options given explicitly win over all.
All of them are run options, the official resize rules included (``short_side`` with ``long_side`` is
mmcv's keep-ratio rescale). One rule of the official pipelines is not a run option, so it is applied
here, per image: **window 0** (the official ``slide_crop=0``: one forward pass over the whole resized
image) becomes window = stride = the longer side of the resized image. An explicit ``window``
replaces it (and the method's stride: half the window unless a stride is given too); an explicit
``short_side`` replaces the resize rule (the method's long side too, unless one is given).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..geometry import inference_size
from ..methods import ABOUT
from ..options import OptionsError, RunOptions
from .datasets import Dataset, load_methods


@dataclass(frozen=True)
class Protocol:
    """Run options plus the per-image whole-image rule (see the module doc)."""

    method: str | None
    options: RunOptions
    whole_image: bool = False
    notes: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        opts = self.options.as_dict()
        opts.pop("batch_size")
        opts["mode_params"] = dict(opts["mode_params"])
        return {"method": self.method, **opts, "whole_image": self.whole_image}

    def summary(self) -> str:
        """The settings in a line."""
        o = self.options
        size = f"short side {o.short_side or 'native'}" + (f", long side at most {o.long_side}" if o.long_side else "")
        window = "whole image" if self.whole_image else f"window {o.window or 'model'} / stride {o.stride or 'half'}"
        area = f", area threshold {o.area_threshold:g}" if o.area_threshold is not None else ""
        refine = f", PAMR {o.pamr_steps} x {tuple(o.pamr_dilations)}" if o.refine == "pamr" else ""
        params = "".join(f", {k} {v}" for k, v in o.mode_params)
        return (f"{self.method or 'engine defaults'}: attention {o.attention}{params}, {size}, {window}, "
                f"logit scale {o.logit_scale:g}, threshold {o.threshold:g}{area}{refine}")


def method_settings(method: str, dataset: Dataset | None) -> tuple[dict[str, Any], list[str]]:
    """The layered settings of ``method`` on ``dataset`` and the notes that go with them."""
    methods = load_methods()
    if method not in methods:
        raise ValueError(f"no method {method!r}; choose one of: {', '.join(methods)}")
    entry = methods[method]
    settings = {k: v for k, v in entry.items() if k not in ABOUT}
    notes = list(entry.get("notes", []))
    if dataset is not None:
        of = entry.get("settings_of", method)
        if of not in dataset.settings and "*" not in dataset.settings:
            notes.append(f"no published settings of {method} for {dataset.name}: using the method's defaults")
        settings.update(dataset.settings.get("*", {}))
        settings.update(dataset.settings.get(of, {}))
    return settings, notes


def build(method: str | None, dataset: Dataset | None, explicit: dict[str, Any]) -> Protocol:
    """The protocol of ``method`` (None: the engine's defaults) with ``explicit`` options on top.
    Raises ValueError naming the method when its settings cannot run."""
    settings, notes = method_settings(method, dataset) if method else ({}, [])
    window = settings.pop("window", None)
    whole = window == 0 and "window" not in explicit
    if window:
        settings["window"] = window
    known = {f.name for f in fields(RunOptions)}
    missing = sorted(set(settings) - known)
    if missing:
        raise ValueError(f"{method}'s published settings need the run option(s) {', '.join(missing)}, which "
                         "this version of napari-sclip does not have.")  # fmt: skip
    if "short_side" in explicit and "long_side" not in explicit:
        settings.pop("long_side", None)  # a short side of your own replaces the resize rule
    if whole or ("window" in explicit and "stride" not in explicit):
        settings.pop("stride", None)  # a window of your own gets half of it as stride, unless you give one
    try:  # in two steps, so that a mode of your own drops the method's mode parameters
        options = RunOptions.build(RunOptions.build(None, **settings), **explicit)
    except OptionsError as exc:
        raise ValueError(f"{method}'s settings cannot run here: {exc}" if method else str(exc)) from None
    return Protocol(method, options, whole, tuple(notes))


def image_options(protocol: Protocol, height: int, width: int) -> tuple[RunOptions, tuple[int, int]]:
    """The run options for one image and the size it is segmented at."""
    opts = protocol.options
    size = inference_size(height, width, opts.short_side, opts.long_side)
    if protocol.whole_image:
        return RunOptions.build(opts, window=max(size), stride=max(size)), size
    return opts, size
