"""The widget's Qt-free helpers: sources (planes, channels), layer writing with edit memory,
transforms, class tables, planning, jobs, vocabulary files and export."""

from __future__ import annotations

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from napari.layers import Image, Labels  # noqa: E402

from napari_sclip import _export, _layers, _vocab_files  # noqa: E402
from napari_sclip._jobs import Progress, Step, StepDone, call, drive, format_seconds  # noqa: E402
from napari_sclip._session import Cached, RunSettings, Session  # noqa: E402
from napari_sclip._source import Source, compose_rgb  # noqa: E402


def settings(**kw) -> RunSettings:
    base = dict(classes="a\nb", background="", short_side=64, window=None, stride=None,
                attention="sclip", logit_scale=40.0, threshold=0.0, area_threshold=None)  # fmt: skip
    base.update(kw)
    return RunSettings(**base)


# ---------------------------------------------------------------- sources
def test_source_grayscale_stack_planes_and_read():
    data = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    src = Source(Image(data, contrast_limits=(0, 50)))
    assert src.shape == (3, 4, 5) and src.plane_shape == (3,)
    assert src.planes() == [(0,), (1,), (2,)]
    image, limits = src.read((2,))
    np.testing.assert_array_equal(image, data[2])
    assert limits == (0.0, 50.0)


def test_source_rgb_layer_drops_colour_axis():
    src = Source(Image(np.zeros((2, 6, 7, 3), np.uint8), rgb=True))
    assert src.shape == (2, 6, 7)
    image, _ = src.read((1,))
    assert image.shape == (6, 7, 3)


def test_source_channel_axis_composes_rgb_through_contrast_limits():
    data = np.zeros((2, 3, 4, 5), np.uint16)  # (t, c, y, x)
    data[:, 0] = 100
    data[:, 2] = 300
    layer = Image(data, contrast_limits=(0, 400))
    src = Source(layer, channel_axis=1, channels=(2, None, 0))
    assert src.shape == (2, 4, 5) and src.dropped_axes() == (1,)
    image, limits = src.read((1,))
    assert limits == (0.0, 1.0) and image.shape == (4, 5, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image[..., 0], 0.75)  # channel 2 -> R
    np.testing.assert_allclose(image[..., 1], 0.0)  # none -> G
    np.testing.assert_allclose(image[..., 2], 0.25)  # channel 0 -> B


def test_source_channel_axis_first():
    data = np.zeros((2, 4, 5), np.float32)
    data[1] = 1.0
    src = Source(Image(data, contrast_limits=(0, 1)), channel_axis=0, channels=(1, 0, None))
    assert src.shape == (4, 5) and src.plane_shape == ()
    image, _ = src.read(())
    assert image[..., 0].min() == 1.0 and image[..., 1].max() == 0.0


def test_source_separate_layers_and_shape_check():
    a = Image(np.full((2, 4, 5), 10, np.uint16), contrast_limits=(0, 20))
    b = Image(np.full((2, 4, 5), 5, np.uint16), contrast_limits=(0, 10))
    src = Source(a, rgb_layers=(None, a, b))
    image, limits = src.read((0,))
    assert limits == (0.0, 1.0)
    np.testing.assert_allclose(image[0, 0], [0.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="same shape"):
        Source(a, rgb_layers=(Image(np.zeros((4, 5))), None, None))
    with pytest.raises(ValueError, match="spatial"):
        Source(a, channel_axis=2)


def test_current_plane_follows_world_point_with_scale():
    layer = Image(np.zeros((5, 4, 4)), scale=(2.0, 1.0, 1.0))
    assert Source(layer).current_plane((6.0, 0.0, 0.0)) == (3,)
    assert Source(layer).current_plane((100.0, 0.0, 0.0)) == (4,)  # clipped


def test_compose_rgb_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        compose_rgb([np.zeros((2, 2)), np.zeros((3, 3)), None], [None, None, None])


# ------------------------------------------------------- layers and edits
def test_transform_kwargs_copy_and_class_axis():
    layer = Image(np.zeros((3, 10, 12)), scale=(2, 0.5, 0.25), translate=(1, 5, 7), rotate=30)
    kw = _layers.transform_kwargs(Source(layer))
    lab = Labels(np.zeros((3, 10, 12), np.uint8), **kw)
    np.testing.assert_allclose(lab.affine.affine_matrix, layer.affine.affine_matrix)
    for name in ("scale", "translate", "rotate"):
        np.testing.assert_allclose(getattr(lab, name), getattr(layer, name), atol=1e-9)
    point = (1.0, 3.0, 4.0)
    np.testing.assert_allclose(lab.data_to_world(point), layer.data_to_world(point), atol=1e-9)
    kw4 = _layers.transform_kwargs(Source(layer), class_axis=True)
    scores = Image(np.zeros((2, 3, 10, 12)), **kw4)
    np.testing.assert_allclose(scores.data_to_world((1,) + point)[1:], layer.data_to_world(point), atol=1e-9)


def test_transform_kwargs_drop_channel_axis():
    layer = Image(np.zeros((2, 3, 10, 12)), scale=(4, 1, 0.5, 0.5), translate=(0, 0, 3, 9))
    kw = _layers.transform_kwargs(Source(layer, channel_axis=1, channels=(0, 1, 2)))
    np.testing.assert_allclose(kw["scale"], (4, 0.5, 0.5))
    np.testing.assert_allclose(kw["translate"], (0, 3, 9))


def test_colormap_and_features():
    names = ["water", "thing"]
    cmap = _layers.label_colormap(names)
    np.testing.assert_allclose(cmap.map(1)[:3], np.array(_layers.NAMED_COLOURS["water"]) / 255, atol=1e-6)
    assert cmap.map(0)[3] == 0
    table = _layers.features_table(names)
    assert list(table["index"]) == [0, 1, 2] and list(table["class"]) == ["background", "water", "thing"]


def test_edit_memory_lut_keeps_numbers_by_name():
    mem = _layers.EditMemory((4, 4))
    np.testing.assert_array_equal(mem.lut(["a", "b"]), [0, 1, 2])
    np.testing.assert_array_equal(mem.lut(["b", "c"]), [0, 2, 3])
    assert mem.names == ["a", "b", "c"]


def test_write_planes_keeps_user_edits_and_is_one_undo_step():
    mem = _layers.EditMemory((6, 6), ["a", "b"])
    layer = Labels(_layers.new_labels_data(mem, {(): np.ones((6, 6), np.uint8)}))
    # the user paints a 2 x 2 square with label 2 and erases one pixel
    with layer.block_history():
        layer.data_setitem((np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])), 2)
    with layer.block_history():
        layer.data_setitem((np.array([5]), np.array([5])), 0)
    before = np.array(layer.data)
    new = np.full((6, 6), 2, np.uint8)
    new[3:, :] = 1
    changed = _layers.write_planes(layer, mem, {(): new})
    expected = new.copy()
    expected[:2, :2] = 2
    expected[5, 5] = 0
    np.testing.assert_array_equal(layer.data, expected)
    assert changed == int((expected != before).sum())
    layer.undo()  # one step takes the whole update back
    np.testing.assert_array_equal(layer.data, before)
    layer.redo()
    # a later update still keeps them (they are remembered, not just diffed once)
    _layers.write_planes(layer, mem, {(): np.ones((6, 6), np.uint8)})
    assert layer.data[5, 5] == 0 and (layer.data[:2, :2] == 2).all() and layer.data[3, 3] == 1
    mem.forget()
    mem.written[...] = layer.data
    _layers.write_planes(layer, mem, {(): np.ones((6, 6), np.uint8)})
    assert (layer.data == 1).all()


def test_write_planes_in_a_stack_touches_only_given_planes():
    mem = _layers.EditMemory((3, 4, 4), ["a"])
    layer = Labels(_layers.new_labels_data(mem, {}))
    _layers.write_planes(layer, mem, {(1,): np.ones((4, 4), np.uint8)})
    assert layer.data[1].all() and not layer.data[0].any() and not layer.data[2].any()


def test_writing_in_row_bands_equals_one_write():
    new = np.random.default_rng(0).integers(0, 3, (2, 9, 7)).astype(np.uint8)
    results = []
    for rows in (2, 100):
        mem = _layers.EditMemory((2, 9, 7), ["a", "b"])
        layer = Labels(_layers.new_labels_data(mem, {}))
        _paint = (np.array([1, 1]), np.array([4, 8]), np.array([3, 3]))
        with layer.block_history():
            layer.data_setitem(_paint, 2)  # a user edit that must survive
        regions = _layers.bands([(0,), (1,)], 9, rows)
        assert len(regions) == (10 if rows == 2 else 2)
        with layer.block_history():
            for region in regions:
                _layers.write_region(layer, mem, region, new[region[0]][region[1]])
        results.append(np.array(layer.data))
        assert (layer.data[_paint] == 2).all()
        layer.undo()
        assert (layer.data[0] == 0).all()  # the banded write was one undo step
    np.testing.assert_array_equal(results[0], results[1])


def test_dtype_widens_past_255_classes():
    mem = _layers.EditMemory((2, 2))
    lut = mem.lut([f"c{i}" for i in range(300)])
    assert mem.dtype == np.uint16 and lut.dtype == np.uint16 and lut[-1] == 300


def test_class_statistics():
    labels = np.array([[1, 1], [2, 0]], np.uint8)
    probs = np.stack([np.full((2, 2), 0.6), np.full((2, 2), 0.9)]).astype(np.float32)
    counts, sums = _layers.class_statistics(labels, probs, np.array([0, 1, 2]))
    np.testing.assert_array_equal(counts[:3], [1, 2, 1])
    np.testing.assert_allclose(sums[1:3], [1.2, 0.9], rtol=1e-6)


# ------------------------------------------------------------ planning
def test_plan_picks_the_cheapest_path():
    src = Source(Image(np.zeros((8, 8))))
    session = Session(src)
    s = settings()
    assert session.plan([()], s, "m") == {(): "run"}
    session.cache[()] = Cached(object(), session.features_key((), s, "m"), s.vocabulary_key())
    assert session.plan([()], s, "m") == {(): "relabel"}
    assert session.plan([()], settings(threshold=0.5), "m") == {(): "relabel"}
    assert session.plan([()], settings(classes="a\nb\nc"), "m") == {(): "rescore"}
    assert session.plan([()], settings(logit_scale=50.0), "m") == {(): "rescore"}
    assert session.plan([()], settings(short_side=96), "m") == {(): "run"}
    assert session.plan([()], settings(attention="vanilla"), "m") == {(): "run"}
    assert session.plan([()], s, "other model") == {(): "run"}
    assert session.plan([()], s, None) == {(): "run"}


def test_plan_sees_contrast_changes():
    layer = Image(np.zeros((8, 8), np.uint16), contrast_limits=(0, 100))
    session = Session(Source(layer))
    s = settings()
    session.cache[()] = Cached(object(), session.features_key((), s, "m"), s.vocabulary_key())
    layer.contrast_limits = (0, 50)
    assert session.plan([()], s, "m") == {(): "run"}


# ------------------------------------------------------------------ jobs
def _counting(n: int, result):
    def gen():
        for i in range(n):
            yield Progress(0, 0, "", i + 1, n, 0.0)
        return result

    return gen


def test_drive_yields_progress_and_results():
    steps = [Step("a", "A", _counting(2, "x")), Step("b", "B", lambda: call(lambda: "y"), weight=3)]
    events = list(drive(steps))
    done = [e for e in events if isinstance(e, StepDone)]
    assert [d.result for d in done] == ["x", "y"]
    fractions = [e.fraction for e in events if isinstance(e, Progress)]
    assert fractions == sorted(fractions) and fractions[-1] <= 1.0
    assert any(e.done == 2 and e.total == 2 for e in events if isinstance(e, Progress))


def test_drive_close_closes_the_running_step():
    closed = []

    def gen():
        try:
            for i in range(100):
                yield Progress(0, 0, "", i, 100, 0.0)
        finally:
            closed.append(True)

    job = drive([Step("a", "A", gen)])
    next(job)
    next(job)
    job.close()
    assert closed == [True]


def test_format_seconds():
    assert format_seconds(None) == ""
    assert format_seconds(3.2) == "~3 s left"
    assert format_seconds(600) == "~10 min left"


# ------------------------------------------------------ vocabulary files
def test_vocabulary_file_round_trip(tmp_path):
    path = _vocab_files.write_vocabulary_file(tmp_path / "v.txt", "nuclei, nucleus\ncytoplasm\n", "dark, black")
    assert _vocab_files.read_vocabulary_file(path) == ("nuclei, nucleus\ncytoplasm", "dark, black")


@pytest.mark.parametrize("name", ["fluorescence", "loveda", "openearthmap", "histology"])
def test_presets_parse_with_the_engine(name):
    from napari_sclip import Vocabulary

    assert name in _vocab_files.preset_names()
    classes, background = _vocab_files.load_preset(name)
    vocab = Vocabulary.parse(classes, background or None)
    assert len(vocab.names) >= 2


def test_loveda_and_openearthmap_class_lists():
    loveda = [c.split(",")[0] for c in _vocab_files.load_preset("loveda")[0].splitlines()]
    assert loveda == ["background", "building", "road", "water", "barren", "forest", "agricultural"]
    oem = [c.split(",")[0] for c in _vocab_files.load_preset("openearthmap")[0].splitlines()]
    assert len(oem) == 8 and {"bareland", "rangeland", "developed space", "road", "tree", "water",
                              "agriculture land", "building"} == set(oem)  # fmt: skip


# --------------------------------------------------------------- export
def test_export_reads_back(tmp_path):
    import tifffile

    labels = np.array([[0, 1], [2, 2]], np.uint8)
    probs = np.random.default_rng(0).random((2, 2, 2)).astype(np.float32)
    written = _export.export_result(tmp_path / "out.tif", labels, ["a", "b"], probabilities=probs,
                                    probability_sums=np.array([0, 0.5, 1.5]))  # fmt: skip
    assert [p.split("/")[-1] for p in written] == ["out.tif", "out_classes.csv", "out_probabilities.tif"]
    np.testing.assert_array_equal(tifffile.imread(written[0]), labels)
    np.testing.assert_array_equal(tifffile.imread(written[2]), probs)
    rows = _export.read_class_csv(written[1])
    assert [(r["label"], r["class"], r["pixels"]) for r in rows] == [("0", "background", "1"), ("1", "a", "1"), ("2", "b", "2")]
    assert rows[2]["mean_probability"] == "0.7500"


def test_npe2_writer_uses_features(tmp_path):
    import tifffile

    data = np.array([[0, 1], [3, 3]], np.uint8)
    meta = {"features": _layers.features_table(["x", "y", "z"])}
    written = _export.write_labels(str(tmp_path / "w.tiff"), data, meta)
    np.testing.assert_array_equal(tifffile.imread(written[0]), data)
    rows = _export.read_class_csv(written[1])
    assert [r["class"] for r in rows] == ["background", "x", "y", "z"]
