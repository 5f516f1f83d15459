"""napari-aware glue without Qt: what an image layer gives CLIP (channels, planes), the per-image
session and its cache plan, edit memory and undo, layer building and writing, job steps, counts,
the npe2 reader / writer and sample data.

Nothing here imports Qt (``qtpy``, ``magicgui``, ``superqt``); napari is imported lazily where a
layer is built, so these modules load fast and test without a window.
"""


def unwrap(obj):
    """The real napari object behind the public-API proxy napari hands plugin widgets.

    The proxy forwards every public attribute, but identity checks (``layer is event.value``) and
    attribute access through it are unreliable or slow; the widget keeps the real objects and
    uses their public API only.
    """
    return getattr(obj, "__wrapped__", obj)
