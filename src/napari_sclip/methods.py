"""Published methods as presets of run options: one file, ``data/methods.json``, for the API
(:meth:`RunOptions.preset <napari_sclip.RunOptions.preset>`), the command line (``--preset``), the
widget's preset chooser (:func:`preset_options`) and ``napari-sclip evaluate --method`` (which layers a
benchmark's own settings on top). Reading it needs neither torch nor the model.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

#: Keys of a method's entry that describe it rather than set an option.
ABOUT = ("title", "source", "settings_of", "notes")


@cache
def load() -> dict[str, dict[str, Any]]:
    """Every method's entry, by name, in the file's order."""
    text = resources.files("napari_sclip").joinpath("data", "methods.json").read_text("utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def names() -> list[str]:
    """The preset names: ``sclip``, ``vanilla``, ``clearclip``, ``naclip``, ``naclip-pamr``..."""
    return list(load())


def entry(name: str) -> dict[str, Any]:
    """A method's whole entry (title, source, notes and options); OptionsError names the choices."""
    methods = load()
    if name not in methods:
        from .errors import OptionsError

        raise OptionsError(f"No preset {name!r}; choose one of: {', '.join(methods)}.")
    return methods[name]


def preset_options(name: str) -> dict[str, Any]:
    """The run-option values of preset ``name`` (for ``RunOptions(**...)`` or a form to fill in)."""
    values = {k: v for k, v in entry(name).items() if k not in ABOUT}
    if "pamr_dilations" in values:
        values["pamr_dilations"] = tuple(values["pamr_dilations"])
    return values


def title(name: str) -> str:
    return entry(name)["title"]
