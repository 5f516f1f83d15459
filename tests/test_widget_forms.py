"""The widget's forms are generated from the options: every option with a form section has a field,
every command-line flag is an option, the choices come from the engine's tables, and the values
round-trip through the fields; the window hint counts the engine's windows."""

from __future__ import annotations

from dataclasses import fields

import pytest

pytest.importorskip("magicgui")
pytest.importorskip("pytestqt")

from napari_sclip.options import ModelChoice, RunOptions, spec_of  # noqa: E402


@pytest.fixture
def forms(qtbot):
    from napari_sclip._qt.fields import OptionsForm

    return {section: OptionsForm(RunOptions, section) for section in ("scale", "refine")}


def test_every_run_option_with_a_form_section_is_in_the_form(forms):
    for f in fields(RunOptions):
        section = spec_of(RunOptions, f.name).form
        if section is not None:
            assert f.name in forms[section], f.name
            assert forms[section][f.name].widget.label == spec_of(RunOptions, f.name).label
        else:
            assert all(f.name not in form for form in forms.values())
    options = RunOptions.build(**forms["scale"].values(), **forms["refine"].values())
    assert options == RunOptions()  # the fields start at the defaults


def test_every_command_line_flag_is_an_option_field():
    from napari_sclip.cli import build_parser

    parser = build_parser()
    segment = parser._subparsers._group_actions[0].choices["segment"]
    groups = {g.title: g for g in segment._action_groups}
    for title, cls in (("model", ModelChoice), ("run options", RunOptions)):
        dests = {a.dest for a in groups[title]._group_actions} - {"preset"}  # --preset: a method's option values
        assert dests == {f.name for f in fields(cls) if spec_of(cls, f.name).cli}, title


def test_choices_come_from_the_engine_tables(forms, qtbot):
    from napari_sclip._qt.fields import OptionsForm
    from napari_sclip.attention import MODES
    from napari_sclip.options import DEVICES, PRECISIONS

    assert tuple(forms["scale"]["attention"].widget.choices) == tuple(MODES)
    model = OptionsForm(ModelChoice)
    assert set(model.fields) == {f.name for f in fields(ModelChoice)}
    assert tuple(model["device"].widget.choices) == DEVICES and tuple(model["precision"].widget.choices) == PRECISIONS
    assert ModelChoice(**model.values()) == ModelChoice()


@pytest.mark.parametrize("values", [
    dict(short_side=None, window=64, stride=16, logit_scale=65.0, attention="naclip", long_side=448, refine="pamr",
         pamr_steps=5),
    dict(short_side=448, window=None, stride=None, logit_scale=40.0, attention="vanilla"),
])  # fmt: skip
def test_values_round_trip_through_the_fields(forms, values):
    forms["scale"].set_values(**values)
    assert {k: v for k, v in forms["scale"].values().items() if k in values} == values
    for area in (None, 0.05, 0.25):
        forms["refine"].set_values(threshold=0.37, area_threshold=area)
        got = forms["refine"].values()
        assert got["threshold"] == pytest.approx(0.37)
        assert got["area_threshold"] == (None if area is None else pytest.approx(area))
    assert forms["scale"]["short_side"].widget.native.specialValueText() == "native"
    assert forms["refine"]["area_threshold"].widget.native.suffix() == " %"


def test_window_hint_matches_the_engine_grid():
    from napari_sclip._napari.steps import window_count
    from napari_sclip.prepare import inference_size
    from napari_sclip.tiling import window_grid

    for short, win, stride in [(64, 32, 16), (336, 224, 112), (None, 32, 32), (100, 32, 10)]:
        h, w = inference_size(70, 90, short)
        assert window_count(70, 90, short, win, stride) == len(window_grid(h, w, win, stride))
