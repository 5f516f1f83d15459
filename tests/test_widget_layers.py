"""The widget's Qt-free glue (napari_sclip._napari): sources and channels, edit memory, writing as
one undo step, the undo mirror, the cache plan, jobs, counts and the result layers."""

from __future__ import annotations

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from napari.layers import Image, Labels  # noqa: E402

from napari_sclip._napari import channels, counts, history, layers, writer  # noqa: E402
from napari_sclip._napari.edits import EditMemory, stroke_footprint  # noqa: E402
from napari_sclip._napari.jobs import JobProgress, Step, StepDone, Tick, call, drive, format_seconds  # noqa: E402
from napari_sclip._napari.session import Decision, PlaneResult, Request, Session, Snapshot  # noqa: E402
from napari_sclip._napari.source import ImageSource, Mapping, compose_rgb, geometry_of  # noqa: E402
from napari_sclip.options import RunOptions  # noqa: E402
from napari_sclip.palette import class_colours  # noqa: E402
from napari_sclip.vocabulary import Vocabulary  # noqa: E402


# ---------------------------------------------------------------- sources
def test_source_grayscale_stack_planes_and_read():
    data = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    src = ImageSource(Image(data, contrast_limits=(0, 50)))
    assert src.shape == (3, 4, 5) and src.plane_shape == (3,) and src.planes() == [(0,), (1,), (2,)]
    image, limits = src.read((2,))
    np.testing.assert_array_equal(image, data[2])
    assert limits == (0.0, 50.0)


def test_source_rgb_layer_drops_colour_axis():
    src = ImageSource(Image(np.zeros((2, 6, 7, 3), np.uint8), rgb=True))
    assert src.shape == (2, 6, 7) and src.read((1,))[0].shape == (6, 7, 3)


@pytest.mark.parametrize("axis", [0, 1])
def test_source_channel_axis_composes_rgb_through_contrast_limits(axis):
    data = np.zeros((2, 3, 4, 5), np.uint16) if axis == 1 else np.zeros((3, 2, 4, 5), np.uint16)
    index = [slice(None)] * 4
    for c, value in ((0, 100), (2, 300)):
        index[axis] = c
        data[tuple(index)] = value
    src = ImageSource(Image(data, contrast_limits=(0, 400)), Mapping("channel_axis", axis=axis, channels=(2, None, 0)))
    assert src.shape == (2, 4, 5) and src.dropped_axes() == (axis,)
    image, limits = src.read((1,))
    assert limits == (0.0, 1.0) and image.shape == (4, 5, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image[0, 0], [0.75, 0.0, 0.25])  # channel 2 -> R, none -> G, channel 0 -> B


def test_source_separate_layers_shape_check_and_geometry_without_picks():
    a = Image(np.full((2, 4, 5), 10, np.uint16), contrast_limits=(0, 20))
    b = Image(np.full((2, 4, 5), 5, np.uint16), contrast_limits=(0, 10))
    src = ImageSource(a, Mapping("layers", layers=(None, a, b)))
    image, limits = src.read((0,))
    np.testing.assert_allclose(image[0, 0], [0.0, 0.5, 0.5])
    assert src.inputs() == [a, a, b]
    assert geometry_of(a, "layers").plane_shape == (2,)  # planes known before any pick
    with pytest.raises(ValueError, match="same shape"):
        ImageSource(a, Mapping("layers", layers=(Image(np.zeros((4, 5))), None, None)))
    with pytest.raises(ValueError, match="rows and columns"):
        geometry_of(a, "channel_axis", 2)
    with pytest.raises(ValueError, match="Choose the axis"):
        geometry_of(a, "channel_axis", None)


def test_current_plane_follows_world_point_with_scale():
    src = ImageSource(Image(np.zeros((5, 4, 4)), scale=(2.0, 1.0, 1.0)))
    assert src.current_plane((6.0, 0.0, 0.0)) == (3,) and src.current_plane((100.0, 0.0, 0.0)) == (4,)


def test_compose_rgb_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        compose_rgb([np.zeros((2, 2)), np.zeros((3, 3)), None], [None, None, None])


def test_channel_choices_defaults_and_words():
    t = Image(np.zeros((5, 4, 4)), axis_labels=("t", "y", "x"))
    red, green = Image(np.zeros((5, 4, 4)), colormap="red"), Image(np.zeros((5, 4, 4)), colormap="green")
    assert [c.axis for c in channels.axis_choices(t)] == [0] and channels.labelled_channel_axis(t) is None
    assert channels.labelled_channel_axis(Image(np.zeros((2, 3, 4, 4)), axis_labels=("z", "c", "y", "x"))) == 1
    assert channels.default_layer_picks(t, [t, red, green]) == (red, green, None)
    assert channels.default_layer_picks(t, [t]) == (t, t, t)
    assert "time or depth" in channels.describe(t, "channel_axis", 0)
    assert "no planes" in channels.describe(t, "channel_axis", 0)


# ------------------------------------------------------- layers and edits
def test_transform_kwargs_copy_drop_and_plane_offset():
    layer = Image(np.zeros((3, 10, 12)), scale=(2, 0.5, 0.25), translate=(1, 5, 7), rotate=30)
    lab = Labels(np.zeros((3, 10, 12), np.uint8), **layers.transform_kwargs(layer))
    point = (1.0, 3.0, 4.0)
    np.testing.assert_allclose(lab.data_to_world(point), layer.data_to_world(point), atol=1e-9)
    one = Image(np.zeros((1, 10, 12)), **layers.transform_kwargs(layer, plane=(2,)))
    np.testing.assert_allclose(one.data_to_world((0, 3, 4)), layer.data_to_world((2, 3, 4)), atol=1e-9)
    four = Image(np.zeros((2, 3, 10, 12)), scale=(4, 1, 0.5, 0.5), translate=(0, 0, 3, 9))
    kw = layers.transform_kwargs(four, dropped=(1,))
    np.testing.assert_allclose(kw["scale"], (4, 0.5, 0.5))
    np.testing.assert_allclose(kw["translate"], (0, 3, 9))


def test_colormap_and_features_come_from_the_palette():
    names = ["nuclei", "mitochondria", "cytoplasm", "membrane"]
    cmap = layers.label_colormap(names)
    for k, colour in enumerate(class_colours(names)):
        np.testing.assert_allclose(cmap.map(k), colour, atol=1e-6)
    table = layers.features_table(names)
    assert list(table["index"]) == [0, 1, 2, 3, 4] and list(table["class"]) == ["background", *names]
    from skimage.color import deltaE_ciede2000, rgb2lab

    lab = rgb2lab(class_colours(names)[None, 1:, :3])[0]  # issue 8, item 11: no two near-identical
    assert min(deltaE_ciede2000(lab[i], lab[j]) for i in range(4) for j in range(i + 1, 4)) > 20


def test_edit_memory_lut_keeps_numbers_by_name_and_widens():
    mem = EditMemory((4, 4))
    np.testing.assert_array_equal(mem.lut(["a", "b"]), [0, 1, 2])
    np.testing.assert_array_equal(mem.lut(["b", "c"]), [0, 2, 3])
    assert mem.names == ["a", "b", "c"]
    lut = mem.lut([f"c{i}" for i in range(300)])
    assert mem.dtype == np.uint16 and lut.dtype == np.uint16


def test_user_changes_are_marked_and_unmarked():
    mem = EditMemory((2, 10, 12), ["a", "b"])
    data = np.zeros((2, 10, 12), np.uint8)
    data[1, 3:5, 4:6] = 2
    mark = mem.record_change(data, 2)
    assert mark.box == (slice(1, 2), slice(3, 5), slice(4, 6)) and mem.edited.sum() == 4
    mem.apply(mark, False)
    assert not mem.edited.any()
    mem.apply(mark, True)
    footprint = stroke_footprint([(3, 2), (3, 9)], 1.5, (10, 12))
    claimed = mem.claim(data, (0,), footprint, 0)
    assert claimed.box[0] == slice(0, 1) and mem.edited[0].sum() == footprint.sum()


def test_stroke_footprint_covers_napari_s_brush():
    points = [(20.0, 5.0), (22.0, 30.0), (40.0, 31.0)]
    blank = Labels(np.zeros((60, 60), np.uint8))
    blank.brush_size, blank.selected_label = 7, 1
    for a, b in zip(points[:-1], points[1:]):
        blank.paint(a, 1)
        blank.paint(b, 1)
    footprint = stroke_footprint(points, 3.5, (60, 60))
    assert footprint[blank.data == 1].all() and footprint.sum() < 2.5 * (blank.data == 1).sum() + 400


def test_write_keeps_user_edits_and_is_one_undo_step():
    mem = EditMemory((6, 6), ["a", "b"])
    layer = Labels(mem.planes_written({(): np.ones((6, 6), np.uint8)}))
    with layer.block_history():  # the user paints a 2 x 2 square with label 2, erases one pixel
        layer.data_setitem((np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])), 2)
    with layer.block_history():
        layer.data_setitem((np.array([5]), np.array([5])), 0)
    before = np.array(layer.data)
    new = np.full((6, 6), 2, np.uint8)
    new[3:, :] = 1
    changed = writer.drain(writer.write_steps(layer, mem, {(): new}))
    expected = new.copy()
    expected[:2, :2], expected[5, 5] = 2, 0
    np.testing.assert_array_equal(layer.data, expected)
    assert changed == int((expected != before).sum())
    np.testing.assert_array_equal(mem.written, new)  # the plugin's own decision
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)
    layer.redo()
    writer.drain(writer.write_steps(layer, mem, {(): np.ones((6, 6), np.uint8)}))
    assert layer.data[5, 5] == 0 and (layer.data[:2, :2] == 2).all() and layer.data[3, 3] == 1
    mem.forget(layer.data)
    writer.drain(writer.write_steps(layer, mem, {(): np.ones((6, 6), np.uint8)}))
    assert (layer.data == 1).all()


def test_writing_in_bands_equals_one_write_and_yields(monkeypatch):
    new = np.random.default_rng(0).integers(0, 3, (2, 9, 7)).astype(np.uint8)
    results = []
    for band in (14, 1 << 20):
        monkeypatch.setattr(writer, "BAND_PIXELS", band)
        mem = EditMemory((2, 9, 7), ["a", "b"])
        layer = Labels(mem.planes_written({}))
        painted = (np.array([1, 1]), np.array([4, 8]), np.array([3, 3]))
        with layer.block_history():
            layer.data_setitem(painted, 2)
        steps = writer.write_steps(layer, mem, {(0,): new[0], (1,): new[1]})
        turns = 0
        while True:
            try:
                next(steps)
            except StopIteration:
                break
            turns += 1
        assert (turns > 1) == (band == 14)
        results.append(np.array(layer.data))
        assert (layer.data[painted] == 2).all()
        layer.undo()
        assert (layer.data[0] == 0).all()  # the banded write was one undo step
    np.testing.assert_array_equal(results[0], results[1])


# ----------------------------------------------------- undo mirror
def test_history_mirrors_napari_s_stack_and_replays():
    layer = Labels(np.zeros((4, 4), np.uint8))
    replayed = []
    h = history.History(layer, lambda entry, undone: replayed.append((entry, undone)), lambda: False)
    h.attach()
    first, second = history.UserEdit(), history.UserEdit()
    for entry, value in ((first, 1), (second, 2)):
        with layer.block_history():
            layer.data_setitem((np.array([0]), np.array([value])), value)
        h.push(entry)
    layer.undo()
    assert replayed == [(second, True)] and layer.data[0, 2] == 0
    layer.redo()
    assert replayed[-1] == (second, False) and layer.data[0, 2] == 2
    h.detach()
    layer.undo()
    assert len(replayed) == 2 and layer.data[0, 2] == 0  # napari's own undo again
    snap = Snapshot({}, None)
    updates = [history.PluginUpdate(((),), snap, snap) for _ in range(history.KEPT_STATES + 3)]
    for update in updates:
        h.push(update)
    assert [u.before is None for u in updates] == [True] * 3 + [False] * history.KEPT_STATES


# ------------------------------------------------------------ planning
class _Seg:
    def __init__(self, names, h=8, w=8):
        self.class_names = list(names)
        self.vocabulary = Vocabulary.parse(list(names))
        rng = np.random.default_rng(0)
        self.all_probabilities = rng.random((len(names) + 1, h, w)).astype(np.float32)
        self.probabilities = self.all_probabilities[1:]
        self.labels = rng.integers(0, len(names) + 1, (h, w)).astype(np.uint8)


def _request(source, vocab="a\nb", model="m", **options) -> Request:
    options = RunOptions.build(**{"short_side": 64, **options})
    return Request(source, options, Vocabulary.parse(vocab), ((),), model)


def test_plan_picks_the_cheapest_path():
    src = ImageSource(Image(np.zeros((8, 8), np.uint16), contrast_limits=(0, 100)))
    session = Session(src.geometry, src.layer)
    req = _request(src)
    assert session.plan(req) == {(): "run"}
    session.cache[()] = PlaneResult(_Seg("ab"), req.features_key(()), req.score_key())
    assert session.plan(req) == {(): "relabel"}
    assert session.plan(_request(src, threshold=0.5)) == {(): "relabel"}
    assert session.plan(_request(src, vocab="a\nb\nc")) == {(): "rescore"}
    assert session.plan(_request(src, logit_scale=50.0)) == {(): "rescore"}
    assert session.plan(_request(src, short_side=96)) == {(): "run"}
    assert session.plan(_request(src, attention="vanilla")) == {(): "run"}
    assert session.plan(_request(src, model="other")) == {(): "run"}
    assert session.plan(_request(src, model=None)) == {(): "run"}
    src.layer.contrast_limits = (0, 50)
    assert session.plan(_request(src)) == {(): "run"}


def test_restore_puts_back_results_written_labels_and_decision():
    src = ImageSource(Image(np.zeros((8, 8))))
    session = Session(src.geometry, src.layer, memory=EditMemory((8, 8)))
    old, new = PlaneResult(_Seg("ab"), (), ()), PlaneResult(_Seg("abc"), (), ())
    session.restore(Snapshot({(): old}, Decision(0.3, None, frozenset({"b"}))))
    lut = session.memory.lut(["a", "b"])
    np.testing.assert_array_equal(session.memory.written, lut[old.seg.labels])
    assert session.cache[()] is old and session.hidden == {"b"} and session.decision.threshold == 0.3
    session.restore(Snapshot({(): new}, None))
    assert session.cache[()] is new and session.hidden == {"b"}
    session.restore(Snapshot({(): None}, None))
    assert () not in session.cache and not session.memory.written.any()


# ------------------------------------------------------------------ jobs
def _counting(n: int, result):
    def gen():
        for i in range(n):
            yield Tick(i + 1, n, f"window {i + 1} of {n}")
        return result

    return gen


def test_drive_yields_progress_and_results():
    steps = [Step("run", "A", _counting(2, "x")), Step("relabel", "B", lambda: call(lambda: "y"), weight=3)]
    events = list(drive(steps))
    assert [e.result for e in events if isinstance(e, StepDone)] == ["x", "y"]
    fractions = [e.fraction for e in events if isinstance(e, JobProgress)]
    assert fractions == sorted(fractions) and fractions[-1] <= 1.0
    assert any(e.detail == "window 2 of 2" for e in events if isinstance(e, JobProgress))


def test_drive_close_closes_the_running_step():
    closed = []

    def gen():
        try:
            for i in range(100):
                yield Tick(i, 100)
        finally:
            closed.append(True)

    job = drive([Step("run", "A", gen)])
    next(job)
    next(job)
    job.close()
    assert closed == [True]


def test_format_seconds():
    assert format_seconds(None) == "" and format_seconds(3.2) == "~3 s left" and format_seconds(600) == "~10 min left"


# -------------------------------------------------------- counts, layers
def test_counts_take_only_segmented_planes_and_user_labels():
    src = ImageSource(Image(np.zeros((3, 8, 8))))
    session = Session(src.geometry, src.layer, memory=EditMemory((3, 8, 8)))
    seg = _Seg("ab")
    session.labels = Labels(np.zeros((3, 8, 8), np.uint8))
    session.labels.data[1] = session.memory.lut(seg.class_names)[seg.labels]
    session.cache[(1,)] = PlaneResult(seg, (), ())
    counted = counts.tally(counts.count_inputs(session))
    table = counts.class_table(session.memory.names, session.vocabulary(), counted)
    assert sum(r.pixels for r in table) == 64  # one plane of three
    k = 1
    expected = seg.all_probabilities[k][seg.labels == k].mean()
    assert table[k].mean_probability == pytest.approx(expected)
    rows = counts.legend_rows(session.memory.names, session.vocabulary(), {"b"}, table)
    assert [(r.name, r.visible) for r in rows] == [("a", True), ("b", False)]


def test_score_map_is_a_view_of_the_cache():
    src = ImageSource(Image(np.zeros((8, 8))))
    session = Session(src.geometry, src.layer)
    seg = _Seg("ab")
    session.cache[()] = PlaneResult(seg, (), ())
    assert np.shares_memory(layers.score_map(session, "b"), seg.probabilities)
    stack = ImageSource(Image(np.zeros((3, 8, 8))))
    session = Session(stack.geometry, stack.layer)
    session.cache[(2,)] = PlaneResult(seg, (), ())
    lazy = layers.score_map(session, "a")
    assert lazy.shape == (3, 8, 8) and not np.asarray(lazy[0]).any()
    np.testing.assert_array_equal(np.asarray(lazy[2]), seg.probabilities[0])
