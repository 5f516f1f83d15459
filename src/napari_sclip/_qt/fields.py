"""Form fields generated from the options' :class:`~napari_sclip.options.Spec` (magicgui widgets,
napari's convention): a new option in ``options.py`` with a form section appears in the form.

The spec decides the widget: choices -> combo box; a probability (0..1, no "none") -> slider;
other numbers -> spin box, whose lowest value shows the spec's ``none_word`` and means None;
``percent`` shows fractions as percentages; text -> line edit (a file picker for paths).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any

from magicgui.widgets import ComboBox, Container, FileEdit, FloatSlider, FloatSpinBox, LineEdit

from ..options import Spec, spec_of

#: Option fields that name files or folders: (file dialog mode, filter).
PATHS = {"checkpoint": ("r", "Checkpoints (*.safetensors *.pt *.pth *.bin);;All files (*)"), "cache_dir": ("d", "")}


@dataclass
class Field:
    """One option's widget and the conversion between its value and the option's."""

    name: str
    spec: Spec
    widget: Any  # a magicgui value widget
    decode: Callable[[Any], Any]  # the widget's value (its text for paths) -> the option's
    encode: Callable[[Any], Any]

    @property
    def value(self) -> Any:
        raw = self.widget.line_edit.value if isinstance(self.widget, FileEdit) else self.widget.value
        return self.decode(raw)

    @value.setter
    def value(self, value: Any) -> None:
        target = self.widget.line_edit if isinstance(self.widget, FileEdit) else self.widget
        target.value = self.encode(value)


def make_field(cls: type, name: str, default: Any) -> Field:
    """The widget for field ``name`` of an options class, showing ``default``."""
    spec = spec_of(cls, name)
    if spec.choices is not None:
        field = Field(name, spec, ComboBox(choices=list(spec.choices())), _same, _same)
    elif spec.kind == "str":
        field = _text_field(name, spec)
    elif spec.kind in ("int", "float"):
        field = _number_field(name, spec)
    else:
        raise TypeError(f"option {name!r} of kind {spec.kind!r} has no form widget")
    field.widget.label = spec.label or name.replace("_", " ").capitalize()
    field.widget.tooltip = spec.help[:1].upper() + spec.help[1:]
    field.value = default
    return field


def _same(value: Any) -> Any:
    return value


def _text_field(name: str, spec: Spec) -> Field:
    if name in PATHS:
        mode, pattern = PATHS[name]
        widget = FileEdit(mode=mode, filter=pattern or None)
        widget.line_edit.native.setPlaceholderText(spec.none_word or "")
        return Field(name, spec, widget, lambda v: v.strip() or None, lambda v: v or "")
    widget = LineEdit()
    widget.native.setPlaceholderText(spec.none_word or "")
    return Field(name, spec, widget, lambda v: v.strip() or None, lambda v: v or "")


def _number_field(name: str, spec: Spec) -> Field:
    scale = 100.0 if spec.percent else 1.0
    low, high = spec.low * scale, spec.high * scale
    step = (spec.step or 1.0) * scale
    if spec.kind == "float" and spec.none_word is None and (spec.low, spec.high) == (0.0, 1.0):
        widget = FloatSlider(min=low, max=high, step=step)  # a probability: a slider with its value
        return Field(name, spec, widget, float, float)
    none_at = low - 1 if spec.kind == "int" else low  # the lowest value shows the none word
    widget = FloatSpinBox(min=none_at if spec.none_word else low, max=high, step=step)
    widget.native.setDecimals(0 if spec.kind == "int" else max(1, -math.floor(math.log10(step))))
    if spec.percent:
        widget.native.setSuffix(" %")
    if spec.none_word:
        widget.native.setSpecialValueText(spec.none_word)
    number = int if spec.kind == "int" else float

    def decode(v: float) -> Any:
        if spec.none_word and v <= none_at + 1e-9:
            return None
        return number(round(v) if spec.kind == "int" else v / scale)

    return Field(name, spec, widget, decode, lambda v: none_at if v is None else float(v) * scale)


class OptionsForm:
    """The fields of an options class (those of one form ``section``, or all), in a magicgui
    ``Container`` with labels. ``changed`` fires when any field changes."""

    def __init__(self, cls: type, section: str | None = None) -> None:
        chosen = [f for f in fields(cls) if section is None or spec_of(cls, f.name).form == section]
        self.fields = {f.name: make_field(cls, f.name, None if f.default is MISSING else f.default) for f in chosen}
        self.container = Container(widgets=[f.widget for f in self.fields.values()], labels=True)
        self.container.margins = (0, 0, 0, 0)
        self.changed = self.container.changed

    @property
    def native(self):
        return self.container.native

    def __getitem__(self, name: str) -> Field:
        return self.fields[name]

    def __contains__(self, name: str) -> bool:
        return name in self.fields

    def values(self) -> dict[str, Any]:
        """Option values as the options class takes them (None where the none word shows)."""
        return {name: f.value for name, f in self.fields.items()}

    def set_values(self, quiet: bool = False, **values: Any) -> None:
        """Show ``values``; ``quiet``: without emitting ``changed`` (restoring state, not a user change)."""
        for name, value in values.items():
            field = self.fields[name]
            if quiet:
                with field.widget.changed.blocked():
                    field.value = value
            else:
                field.value = value
