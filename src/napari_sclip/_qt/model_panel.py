"""The Model section: fields generated from :class:`~napari_sclip.options.ModelChoice`, and a line
saying which model is actually in use (loaded from the fields, or given by a script)."""

from __future__ import annotations

from magicgui.widgets import Container, Label

from .._napari.steps import ModelSlot
from ..options import ModelChoice, defaults
from .fields import OptionsForm


class ModelPanel:
    """Model fields; ``changed`` when one changes."""

    def __init__(self) -> None:
        self.form = OptionsForm(ModelChoice)
        self.in_use = Label(value="not loaded (loads on the first run)")
        self.in_use.native.setWordWrap(True)
        self.container = Container(widgets=[self.form.container, self.in_use], labels=False)
        self.container.margins = (0, 0, 0, 0)
        self.changed = self.form.changed

    @property
    def native(self):
        return self.container.native

    def choice(self) -> ModelChoice:
        """The model the fields describe (OptionsError with a message when they cannot)."""
        return ModelChoice(**self.form.values())

    def show_given(self, model) -> None:
        """Fill the fields with a model given by a script, so that they describe it."""
        values = defaults(ModelChoice)
        values.update(name=model.name, pretrained=None, device=model.device.type, precision=model.precision)
        self.form.set_values(quiet=True, **values)

    def describe(self, slot: ModelSlot) -> str:
        """The model in use, in a few words (also shown in the section title)."""
        model = slot.model
        if model is None:
            return ""
        how = "given by a script" if slot.given else (slot.choice.describe() if slot.choice else "")
        return f"{model.name} ({how}; {model.device.type}, {model.precision})"

    def show(self, slot: ModelSlot) -> None:
        text = self.describe(slot)
        if not text:
            self.in_use.value = "not loaded (loads on the first run)"
        elif slot.ready(self._choice_or_none()):
            self.in_use.value = f"in use: {text}"
        else:
            self.in_use.value = f"in use: {text}; the fields now name another model, loaded on the next run"

    def _choice_or_none(self) -> ModelChoice | None:
        try:
            return self.choice()
        except ValueError:
            return None
