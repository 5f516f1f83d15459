"""The signals of the dock widget's parts connected to each other and to the controller's
reactions (:class:`~.widget.SclipWidget` builds the parts, this wires them)."""

from __future__ import annotations


def connect(w) -> None:
    """Fields, buttons, legend, jobs, edits and probe of the widget ``w`` to what they drive."""
    p = w.panels
    p.image.changed.connect(w._on_inputs)
    for form in (p.scale, p.model):
        form.changed.connect(w._on_inputs)
    p.refine.changed.connect(lambda *_: w._refine_timer.start())
    w._refine_timer.timeout.connect(w.refine)
    p.run_bar.run_button.clicked.connect(lambda: w.run(wait=False))
    p.run_bar.cancel_button.clicked.connect(w.cancel)
    p.results.legend.visibility_changed.connect(w.set_class_visible)
    p.results.legend.activated.connect(w.actions.paint_with)
    p.results.forget_button.clicked.connect(w.forget_edits)
    p.results.edit_button.clicked.connect(lambda: w.regions.open_clicked(w.session))
    p.results.apply_button.clicked.connect(lambda: w.apply_edits(wait=False))
    w.regions.changed.connect(w._on_inputs)
    p.results.probe.changed.connect(w.probe.set_enabled)
    p.results.export_button.clicked.connect(
        lambda: w.actions.export_dialog(w, p.results.with_probabilities.value))
    w.runs.started.connect(w._on_inputs)
    w.runs.finished.connect(w._on_finished)
    w.runs.progressed.connect(w.progressed.emit)
    w.runs.written.connect(w._on_written)
    w.runs.model_loaded.connect(w._on_inputs)
    w.tracker.edited.connect(w.legend.timer.start)
    w.tracker.restored.connect(w._on_restored)
    w.tracker.restored.connect(w.regions.on_restored)
    w.legend.updated.connect(w.legend_updated.emit)
    w.probe.said.connect(w._on_said)
