"""The Image section: which layer, which planes, and how its data becomes the R, G, B CLIP sees
(magicgui fields). It only reads and shows choices; :mod:`.._napari.source` checks them."""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, Label
from qtpy.QtCore import QObject, Signal

from .._napari import unwrap
from .._napari.channels import (
    axis_choices,
    compatible_layers,
    default_layer_picks,
    describe,
    labelled_channel_axis,
)
from .._napari.source import COLOUR_FROM, Geometry, ImageSource, Mapping, geometry_of

PLANES = [("current plane", "current"), ("all planes", "all")]
AREAS = [("whole image", "whole"), ("visible region", "visible")]
COLOUR_WORDS = ("layer as it is", "channels of this layer", "separate layers")
CHOOSE = ("— choose —", None)


def _narrow(widget) -> None:
    """Long layer names must not widen the dock: the combo box elides them."""
    box = widget.native
    box.setSizeAdjustPolicy(box.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(8)


class ImagePanel(QObject):
    """Image, planes, colour mode, channel axis and R, G, B picks; ``changed`` on any change
    (after the dependent choices are updated)."""

    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._images: list = []
        self._mode_key: tuple | None = None
        self._picks_key: tuple | None = None
        self.image = ComboBox(label="Image", choices=lambda _w: [(lay.name, lay) for lay in self._images],
                              tooltip="The image layer to segment (it is never modified)")  # fmt: skip
        self.planes = ComboBox(label="Planes", choices=PLANES,
                               tooltip="For stacks (z, time): segment the plane on screen, or every plane")  # fmt: skip
        self.area = ComboBox(label="Area", choices=AREAS, tooltip="Segment the whole image, or only the part of "
                             "it in view when Run is pressed (a quick look at one area of a huge scene)")  # fmt: skip
        self.box = None  # the region of the last "visible region" run (level-0 pixels), or a fixed one
        self.fixed_box = False
        self.colour_from = ComboBox(label="Colour from", choices=list(zip(COLOUR_WORDS, COLOUR_FROM)),
                                    tooltip="What CLIP sees as red, green and blue")  # fmt: skip
        self.axis = ComboBox(label="Channel axis", choices=self._axis_choices,
                             tooltip="The axis of the layer's data whose entries are channels")  # fmt: skip
        self.picks = [ComboBox(label=colour, choices=self._pick_choices, tooltip=f"What CLIP sees as {colour.lower()}")
                      for colour in ("Red", "Green", "Blue")]  # fmt: skip
        self.note = Label()
        self.note.native.setWordWrap(True)
        self.container = Container(widgets=[self.image, self.planes, self.area, self.colour_from, self.axis, *self.picks, self.note],
                                   labels=True)  # fmt: skip
        self.container.margins = (0, 0, 0, 0)
        for widget in (self.image, self.axis, *self.picks):
            _narrow(widget)
        for widget in (self.image, self.colour_from, self.axis):
            widget.changed.connect(self._on_mapping_changed)
        for widget in (self.planes, self.area, *self.picks):
            widget.changed.connect(lambda *_: self.changed.emit())
        self._on_mapping_changed()

    @property
    def native(self):
        return self.container.native

    @property
    def layer(self):
        return self.image.value

    def _axis_choices(self, _widget) -> list:
        choices = axis_choices(self.image.value if self._images else None)
        return [CHOOSE, *((c.text, c.axis) for c in choices)]

    def _pick_choices(self, _widget) -> list:
        layer = self.image.value if self._images else None
        mode = self.colour_from.value
        if mode == "channel_axis" and layer is not None and self.axis.value is not None:
            n = next(c.size for c in axis_choices(layer) if c.axis == self.axis.value)
            return [("—", None), *((str(c), c) for c in range(n))]
        if mode == "layers":
            return [("—", None), *((lay.name, lay) for lay in compatible_layers(layer, self._images))]
        return [("—", None)]

    def reset(self, images: list, prefer=None) -> None:
        """New candidate layers: keep the current image if it is still there, else ``prefer``."""
        current = self.image.value if self._images else None
        self._images = list(images)
        keep = current if current in self._images else (prefer if prefer in self._images else None)
        with self.image.changed.blocked():
            self.image.reset_choices()
            if keep is not None:
                self.image.value = keep
            elif self._images:
                self.image.value = self._images[-1]
        self._on_mapping_changed()

    def _on_mapping_changed(self, *_: object) -> None:
        """Choices and visibility follow the image, mode and axis; defaults when they change."""
        layer = self.image.value if self._images else None
        mode = self.colour_from.value
        fresh = self._mode_key != (id(layer), mode)
        if self._mode_key is None or self._mode_key[0] != id(layer):
            self.box, self.fixed_box = None, False  # a region belongs to its image
        self._mode_key = (id(layer), mode)
        with self.axis.changed.blocked():
            self.axis.reset_choices()
            if fresh and mode == "channel_axis":  # never a silent guess: only an axis named as channels
                self.axis.value = labelled_channel_axis(layer)
        for pick in self.picks:
            with pick.changed.blocked():
                pick.reset_choices()
        if self._picks_key != (*self._mode_key, self.axis.value):
            self._picks_key = (*self._mode_key, self.axis.value)
            self._default_picks(layer, mode)
        self.axis.visible = mode == "channel_axis"
        for pick in self.picks:
            pick.visible = mode != "layer"
        geo = self.geometry()
        self.planes.enabled = bool(geo and geo.plane_shape)
        self.note.value = describe(layer, mode, self.axis.value) if mode != "layer" else ""
        self.note.visible = bool(self.note.value)
        self.changed.emit()

    def _default_picks(self, layer, mode: str) -> None:
        if mode == "layers":
            values = default_layer_picks(layer, compatible_layers(layer, self._images))
        else:
            values = tuple(v for _label, v in self._pick_choices(None)[1:4]) + (None, None, None)
        for pick, value in zip(self.picks, values):
            with pick.changed.blocked():
                pick.value = value

    def geometry(self) -> Geometry | None:
        """The result geometry of the current choices (no R, G, B needed), or None."""
        layer = self.image.value if self._images else None
        try:
            return None if layer is None else geometry_of(layer, self.colour_from.value, self.axis.value, self.region())
        except ValueError:
            return None

    def region(self):
        """The box a run segments (level-0 pixels), or None for the whole image."""
        return self.box if self.area.value == "visible" else None

    def mapping(self) -> Mapping:
        picks = tuple(p.value for p in self.picks)
        mode = self.colour_from.value
        if mode == "layers":
            return Mapping(mode, layers=picks, box=self.region())
        return Mapping(mode, axis=self.axis.value, channels=picks if mode == "channel_axis" else (0, 1, 2), box=self.region())

    def source(self) -> ImageSource:
        """What will be segmented; ValueError with a message for the user."""
        if not self._images:
            raise ValueError("Open an image first: there is no image layer to segment.")
        return ImageSource(self.image.value, self.mapping())

    def select(self, layer, planes: str = "current", colour_from: str = "layer", channels=None, rgb=None,
               region=None) -> None:  # fmt: skip
        """Set every field at once (the widget's ``set_image``); ValueError for a choice the
        fields do not offer."""
        if layer not in self._images:
            raise ValueError(f"{getattr(layer, 'name', layer)!r} is not an image layer of this viewer.")
        if planes not in dict((v, k) for k, v in PLANES) or colour_from not in COLOUR_FROM:
            raise ValueError(f"planes must be 'current' or 'all', colour_from one of {', '.join(COLOUR_FROM)}.")
        self.image.value = layer
        self.colour_from.value = colour_from
        picks = rgb
        if colour_from == "channel_axis":
            if channels not in [v for _label, v in self._axis_choices(None)[1:]]:
                raise ValueError(f"Axis {channels!r} cannot hold channels of {layer.name!r}; choose one of "
                                 f"{[c.axis for c in axis_choices(layer)]}.")  # fmt: skip
            self.axis.value = channels
        elif colour_from == "layers":
            picks = tuple(unwrap(c) if c is not None else None for c in (channels or (None, None, None)))
        for pick, value in zip(self.picks, picks or ()):
            if value not in [v for _label, v in self._pick_choices(None)]:
                raise ValueError(f"{getattr(value, 'name', value)!r} is not a choice for {pick.label}.")
            pick.value = value
        self.planes.value = planes
        if not (region in (None, "visible") or (isinstance(region, tuple | list) and len(region) == 4)):
            raise ValueError("region must be None, 'visible' or a box (y0, y1, x0, x1) of image pixels.")
        self.area.value = "whole" if region is None else "visible"
        self.box, self.fixed_box = (tuple(int(v) for v in region), True) if isinstance(region, tuple | list) else (None, False)
