"""Undo that means undo: a mirror of a labels layer's undo and redo stacks.

napari keeps one undo stack per labels layer, fed by paint events (every history item is announced
by ``layer.events.paint``), and emits nothing when ``undo()`` / ``redo()`` replay an item. The
:class:`History` therefore mirrors the stacks entry for entry (a :class:`UserEdit` for each user
change, a :class:`PluginUpdate` for each of the plugin's writes) and wraps the layer's own
``undo`` / ``redo`` methods, which napari's Ctrl+Z and Ctrl+Shift+Z call: after napari replays an
item, the session replays the mirrored entry (un-flags the user's pixels, or puts the plugin's
cached results, written labels and decision back). A plugin update is therefore never mistaken
for user edits after an undo, and the widget's slider and legend follow.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .edits import EditMark
from .session import Snapshot


@dataclass
class UserEdit:
    """A user change (paint, erase, fill...): the pixels it flagged as edits."""

    marks: list[EditMark] = field(default_factory=list)


@dataclass
class PluginUpdate:
    """One write of the plugin: the state of the planes it wrote before and after (None once
    the entry is old: see :data:`KEPT_STATES`)."""

    planes: tuple
    before: Snapshot | None
    after: Snapshot | None


#: Plugin updates whose before / after states are kept (each may hold a result's probabilities);
#: undoing an older one keeps its labels as the plugin's and forgets those planes' cache.
KEPT_STATES = 8


@dataclass
class RegionCommit:
    """An edit region's changes committed into a large result's store: the changed pixels (flat
    indices into the region ``rows`` x ``cols`` of ``plane``) with their labels and edit flags
    before and after (only what changed is kept)."""

    plane: tuple
    rows: slice
    cols: slice
    index: np.ndarray
    before: tuple[np.ndarray, np.ndarray]
    after: tuple[np.ndarray, np.ndarray]


Entry = UserEdit | PluginUpdate | RegionCommit


class History:
    """The mirror of one labels layer's undo / redo stacks; ``on_step(entry, undone)`` replays."""

    def __init__(self, layer, on_step: Callable[[Entry, bool], None], blocked: Callable[[], bool],
                 holds: Callable[[Entry], bool] = lambda entry: False) -> None:  # fmt: skip
        limit = int(getattr(type(layer), "_history_limit", 100))  # napari's stack length
        self.layer = layer
        self.undo_stack: deque[Entry] = deque(maxlen=limit)
        self.redo_stack: deque[Entry] = deque(maxlen=limit)
        self._on_step = on_step
        self._blocked = blocked  # no undo / redo at all now
        self._holds = holds  # this entry cannot be undone / redone now
        self._attached = False

    def attach(self) -> None:
        """Route the layer's undo / redo (and so napari's key bindings) through this mirror."""
        if not self._attached:
            self.layer.undo, self.layer.redo = self.undo, self.redo
            self._attached = True

    def detach(self) -> None:
        """Give the layer its own undo / redo back."""
        if self._attached:
            for name in ("undo", "redo"):
                self.layer.__dict__.pop(name, None)
            self._attached = False

    def push(self, entry: Entry) -> None:
        """A new history item: napari clears its redo stack, so does the mirror. Only the newest
        :data:`KEPT_STATES` plugin updates keep their states (memory stays bounded)."""
        self.undo_stack.append(entry)
        self.redo_stack.clear()
        updates = [e for e in self.undo_stack if isinstance(e, PluginUpdate) and e.before is not None]
        for old in updates[:-KEPT_STATES]:
            old.before = old.after = None

    def discard(self, entry: Entry) -> None:
        """Forget an entry that did not happen after all (an edit region whose write failed)."""
        for stack in (self.undo_stack, self.redo_stack):
            for i, e in enumerate(stack):
                if e is entry:
                    del stack[i]
                    return

    def generations(self) -> set[int]:
        """Store generations an undo or redo can still reach (large results)."""
        out = set()
        for entry in (*self.undo_stack, *self.redo_stack):
            if isinstance(entry, PluginUpdate) and entry.before is not None:
                out.update(g for g in (entry.before.generation, entry.after.generation) if g is not None)
        return out

    @property
    def top(self) -> Entry | None:
        return self.undo_stack[-1] if self.undo_stack else None

    def undo(self) -> None:
        self._replay(self.undo_stack, self.redo_stack, undone=True)

    def redo(self) -> None:
        self._replay(self.redo_stack, self.undo_stack, undone=False)

    def _replay(self, source: deque, target: deque, undone: bool) -> None:
        if self._blocked() or (source and self._holds(source[-1])):  # the plugin is writing
            return
        method = type(self.layer).undo if undone else type(self.layer).redo
        method(self.layer)
        if source:
            entry = source.pop()
            target.append(entry)
            self._on_step(entry, undone)
