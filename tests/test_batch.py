"""Large results to files and whole sets of images: tiled TIFF and OME-Zarr outputs, lazy inputs
from files, the resumable ``batch`` command, and a two-worker dask cluster equal to one process."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from skimage import io as skio

from napari_sclip import segment
from napari_sclip.cli import main
from napari_sclip.errors import Cancelled
from napari_sclip.io import ome_zarr, read_class_table

from .conftest import write_tiny_checkpoint

VOCAB = "cat, kitten; dog; bird"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", seed=11)


def picture(seed: int, shape=(140, 190)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    img = np.stack([(xx * (1 + seed)) % 256, (yy * 2.1) % 256, ((xx - yy) * 0.9 * seed) % 256], axis=-1)
    return (img + rng.normal(0, 8, img.shape)).clip(0, 255).astype(np.uint8)


def cli(*args, checkpoint):
    return main([*map(str, args), "--checkpoint", str(checkpoint), "--device", "cpu", "--precision", "fp32",
                 "--short-side", "native", "-q"])  # fmt: skip


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    skio.imsave(src / "a.png", picture(1), check_contrast=False)
    skio.imsave(src / "b.png", picture(2), check_contrast=False)
    tifffile.imwrite(src / "c.tif", np.stack([picture(3)[..., 0], picture(4)[..., 1]]))  # a 2-plane stack
    return src


def test_lazy_result_saves_tiled_tiff_and_ome_zarr_like_the_eager_one(tiny_model, tmp_path, monkeypatch):
    from napari_sclip import score

    monkeypatch.setattr(score, "BLOCK_BYTES", 4 * 4 * 256 * 256)
    monkeypatch.setattr(ome_zarr, "CHUNK", 256)
    import dask.array as da

    img = picture(5, (600, 700))
    eager = segment(img, VOCAB, background="sky", model=tiny_model, short_side=None)
    lazy = segment(da.from_array(img, chunks=(256, 256, 3)), VOCAB, background="sky", model=tiny_model, short_side=None)
    eager.save(tmp_path / "e.tif")
    lazy.save(tmp_path / "l.tif", overlay=img)
    lazy.save(tmp_path / "z.zarr", probabilities=True)
    with tifffile.TiffFile(tmp_path / "l.tif") as tif:
        assert tif.pages[0].is_tiled and [lv.shape for lv in tif.series[0].levels] == [(600, 700), (300, 350), (150, 175)]
        np.testing.assert_array_equal(tif.asarray(), eager.labels)
        np.testing.assert_array_equal(tif.series[0].levels[1].asarray(), eager.labels[::2, ::2])
    assert (tmp_path / "e_classes.csv").read_text() == (tmp_path / "l_classes.csv").read_text()
    assert (tmp_path / "l_overlay.png").is_file()
    image, labels = ome_zarr.read_layers(tmp_path / "z.zarr")
    np.testing.assert_array_equal(np.asarray(labels[0][0]), eager.labels)
    np.testing.assert_array_equal(np.asarray(labels[0][1]), eager.labels[::2, ::2])
    assert list(labels[1]["features"]["class"]) == ["background", "cat", "dog", "bird"] and labels[2] == "labels"
    import zarr

    probs = zarr.open_group(str(tmp_path / "z.zarr"), mode="r")["probabilities"]["0"]
    np.testing.assert_allclose(np.asarray(probs), eager.probabilities)
    assert read_class_table(tmp_path / "z_classes.csv").rows[1].pixels == int((eager.labels == 1).sum())


def test_an_interrupted_ome_zarr_write_resumes_from_its_chunks(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(ome_zarr, "CHUNK", 128)
    seg = segment(picture(6, (300, 400)), VOCAB, model=tiny_model, short_side=None, lazy=True)
    calls = []
    original = seg.outputs
    monkeypatch.setattr(seg, "outputs", lambda *a: calls.append(a) or original(*a))
    steps = []
    with pytest.raises(Cancelled):
        seg.save(tmp_path / "r.zarr", progress=lambda d, t: steps.append(d), cancel=lambda: len(steps) >= 5)
    assert not (tmp_path / "r.zarr").exists() and (tmp_path / ".r.zarr.partial").is_dir()
    first = len(calls)
    seg.save(tmp_path / "r.zarr")
    assert first == 5 and len(calls) == 12  # 3 x 4 chunks in all: the 5 finished ones were not redone
    assert not (tmp_path / ".r.zarr.partial").exists()
    np.testing.assert_array_equal(np.asarray(ome_zarr.read_layers(tmp_path / "r.zarr")[1][0][0]), np.asarray(seg.labels))


def test_batch_over_a_folder_resumes_and_summarises(tmp_path, folder, checkpoint):
    out = tmp_path / "out"
    assert cli("batch", folder, "--classes", VOCAB, "-o", out, checkpoint=checkpoint) == 0
    names = sorted(p.name for p in out.iterdir())
    assert {"a_labels.tif", "b_labels.tif", "c_labels.tif", "summary.csv", "a_classes.csv"} <= set(names)
    assert tifffile.imread(out / "c_labels.tif").shape == (2, 140, 190)
    summary = (out / "summary.csv").read_text().splitlines()
    assert summary[0] == "image,plane,label,class,pixels,fraction,mean_probability"
    rows = [line.split(",") for line in summary[1:]]
    total = [r for r in rows if r[0] == "(all)"]
    assert len(rows) == 4 * 4 and len(total) == 4
    assert sum(int(r[4]) for r in total) == 2 * 140 * 190 + 2 * 140 * 190
    kept = (out / "a_labels.tif").stat().st_mtime_ns
    (out / "b_labels.tif").unlink()  # as if the batch had stopped before b was complete
    assert cli("batch", folder, "--classes", VOCAB, "-o", out, checkpoint=checkpoint) == 0
    assert (out / "a_labels.tif").stat().st_mtime_ns == kept and (out / "b_labels.tif").is_file()
    assert (out / "summary.csv").read_text().splitlines() == summary


def test_large_inputs_are_read_lazily_from_files(tmp_path, checkpoint, monkeypatch):
    import zarr

    from napari_sclip.io import images

    monkeypatch.setattr(images, "EAGER_BYTES", 1000)  # every TIFF counts as large here
    img = picture(7, (300, 260))
    tifffile.imwrite(tmp_path / "big.tif", img, tile=(64, 64))
    z = zarr.open_array(str(tmp_path / "big2.zarr"), mode="w", shape=img.shape, chunks=(64, 64, 3), dtype=np.uint8)
    z[:] = img
    planes = images.open_image(tmp_path / "big.tif")
    assert len(planes) == 1 and type(planes[0].image).__module__.startswith("dask")
    out = tmp_path / "out"
    assert cli("segment", tmp_path / "big.tif", tmp_path / "big2.zarr", "--classes", VOCAB, "-o", out,
               "--format", "zarr", checkpoint=checkpoint) == 0  # fmt: skip
    a = np.asarray(ome_zarr.read_layers(out / "big.zarr")[1][0][0])
    b = np.asarray(ome_zarr.read_layers(out / "big2.zarr")[1][0][0])
    np.testing.assert_array_equal(a, b)
    assert (out / "big_classes.csv").read_text() == (out / "big2_classes.csv").read_text()
    # their probabilities exist in OME-Zarr only: said before the model loads, nothing written
    refused = tmp_path / "refused"
    assert cli("segment", tmp_path / "big.tif", "--classes", VOCAB, "-o", refused, "--save-probabilities",
               checkpoint=checkpoint) == 2  # fmt: skip
    assert not refused.exists()


def test_two_worker_cluster_equals_one_process(tmp_path, folder, checkpoint):
    pytest.importorskip("distributed")
    one, two = tmp_path / "one", tmp_path / "two"
    assert cli("batch", folder, "--classes", VOCAB, "-o", one, "--no-overlay", checkpoint=checkpoint) == 0
    assert cli("batch", folder, "--classes", VOCAB, "-o", two, "--no-overlay", "--workers", "2", checkpoint=checkpoint) == 0
    for name in ("a_labels.tif", "b_labels.tif", "c_labels.tif", "a_classes.csv", "c_classes.csv", "summary.csv"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_batch_killed_mid_image_resumes(tmp_path, checkpoint):
    """SIGKILL while an OME-Zarr result is half written: the re-run finishes it and equals a clean run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        skio.imsave(src / f"p{i}.png", picture(8 + i, (600, 640)), check_contrast=False)
    args = ["batch", str(src), "--classes", VOCAB, "--format", "zarr", "--no-overlay", "--checkpoint", str(checkpoint),
            "--device", "cpu", "--precision", "fp32", "--short-side", "native", "-q"]  # fmt: skip
    out = tmp_path / "out"
    env = dict(os.environ, NAPARI_SCLIP_ZARR_CHUNK="128")
    proc = subprocess.Popen([sys.executable, "-m", "napari_sclip.cli", *args, "-o", str(out)], env=env)
    deadline = time.monotonic() + 180
    chunks = out / ".p1.zarr.partial" / "labels" / "classes" / "0"
    while proc.poll() is None and time.monotonic() < deadline:
        if chunks.is_dir() and sum(1 for _ in chunks.rglob("*") if _.is_file()) >= 2:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL, "the batch ended before it could be killed mid-image"
    assert (out / "p0.zarr").is_dir() and not (out / "p1.zarr").exists()
    env_code = subprocess.run([sys.executable, "-m", "napari_sclip.cli", *args, "-o", str(out)], env=env).returncode
    assert env_code == 0 and (out / "p1.zarr").is_dir() and not (out / ".p1.zarr.partial").exists()
    from napari_sclip import load_model

    model = load_model(None, checkpoint, device="cpu", precision="fp32")
    for name in ("p0", "p1"):
        ref = segment(skio.imread(src / f"{name}.png"), VOCAB, model=model, short_side=None)
        np.testing.assert_array_equal(np.asarray(ome_zarr.read_layers(out / f"{name}.zarr")[1][0][0]), ref.labels)
        table = read_class_table(out / f"{name}_classes.csv")
        assert [r.pixels for r in table] == [int((ref.labels == k).sum()) for k in range(4)]


def test_windows_of_one_image_on_a_cluster_equal_one_process(tmp_path, checkpoint):
    """segment(client=...): the window groups run on two workers; the labels are the same."""
    distributed = pytest.importorskip("distributed")
    from napari_sclip import encode, load_model

    model = load_model(None, checkpoint, device="cpu", precision="fp32")
    img = picture(9, (300, 330))
    local = segment(img, VOCAB, model=model, short_side=None, batch_size=4)
    original = encode.WINDOWS_PER_TASK
    encode.WINDOWS_PER_TASK = 40  # several tasks for this small image
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                      dashboard_address="127.0.0.1:0") as cluster, distributed.Client(cluster) as client:  # fmt: skip
            far = segment(img, VOCAB, model=model, short_side=None, batch_size=4, client=client)
    finally:
        encode.WINDOWS_PER_TASK = original
    np.testing.assert_array_equal(far.labels, local.labels)
    np.testing.assert_array_equal(far.probabilities, local.probabilities)
    with pytest.raises(ValueError, match="computed on a cluster"):
        far.rescore("tree; car")
