"""The command line with bad arguments, clashing or existing outputs, and kills while writing: one
line and the documented exit code, checks before the model loads, and no partial or stale file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
from safetensors.torch import load_file, save_file
from skimage import io as skio

from napari_sclip.cli import main
from napari_sclip.io import read_class_table

from .conftest import write_tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", seed=11)


@pytest.fixture
def image(tmp_path, rgb_image):
    path = tmp_path / "img.png"
    skio.imsave(path, rgb_image, check_contrast=False)
    return path


def run(*args, checkpoint, out):
    """The CLI with test defaults; ``args`` come last, so they win over the defaults."""
    base = ["segment", "--device", "cpu", "--precision", "fp32", "--short-side", "native", "-q", "-o", str(out)]
    if checkpoint is not None:
        base += ["--checkpoint", str(checkpoint)]
    return main([*base, *map(str, args)])


@pytest.mark.parametrize(
    "extra,fragment",
    [
        (["--threshold", "2"], "threshold is a probability"),
        (["--logit-scale", "-1"], "logit_scale is a positive number"),
        (["--attention", "foo"], "Unknown attention mode 'foo'"),
        (["--window", "32", "--stride", "64"], "stride (64) larger than the window (32)"),
        (["--window", "0"], "window must be a positive whole number"),
        (["--stride", "0"], "stride must be a positive whole number"),
        (["--batch-size", "0"], "batch_size must be a positive whole number"),
        (["--batch-size", "-1"], "batch_size must be a positive whole number"),
        (["--short-side", "abc"], "short_side must be a number or 'native'"),
        (["--contrast-limits", "200", "50"], "low < high"),
        (["--device", "nonsense"], "Unknown device 'nonsense'"),
        (["--precision", "int8"], "precision must be one of"),
    ],
)
def test_bad_options_exit_2_before_the_model_loads(tmp_path, image, capsys, extra, fragment):
    # the checkpoint does not exist: reaching the model would exit 3, so exit 2 proves the order
    code = run(image, "--classes", "cat; dog", *extra, checkpoint=tmp_path / "missing.pt", out=tmp_path / "o")
    err = capsys.readouterr().err
    assert code == 2, err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err
    assert not list((tmp_path / "o").glob("*"))


def test_stride_beyond_the_models_window_exits_2_before_image_work(tmp_path, image, checkpoint, capsys):
    assert run(image, "--classes", "cat", "--stride", "48", checkpoint=checkpoint, out=tmp_path / "o") == 2
    assert "stride (48) larger than the window (32)" in capsys.readouterr().err
    assert not list((tmp_path / "o").glob("*"))


def test_output_folder_problems_exit_2(tmp_path, image, checkpoint, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    assert run(image, "--classes", "cat", checkpoint=checkpoint, out=a_file) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert run(image, "--classes", "cat", checkpoint=checkpoint, out="/proc/napari-sclip-out") == 2
    assert "napari-sclip:" in capsys.readouterr().err


def test_vocabulary_file_problems_exit_2(tmp_path, image, checkpoint, capsys):
    latin1 = tmp_path / "vocab.txt"
    latin1.write_bytes("caf\xe9; dog\n".encode("latin-1"))
    assert run(image, "--classes-file", latin1, checkpoint=checkpoint, out=tmp_path / "o") == 2
    assert "is not UTF-8 text" in capsys.readouterr().err
    assert run(image, "--classes-file", tmp_path / "none.txt", checkpoint=checkpoint, out=tmp_path / "o") == 2
    assert "not found" in capsys.readouterr().err


def test_damaged_checkpoint_metadata_exits_3(tmp_path, image, checkpoint, capsys):
    from safetensors import safe_open

    with safe_open(str(checkpoint), framework="pt") as f:
        meta = dict(f.metadata())
    meta["open_clip_config"] = meta["open_clip_config"][:-7]  # broken JSON
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(checkpoint)), str(bad), metadata=meta)
    assert run(image, "--classes", "cat", checkpoint=bad, out=tmp_path / "o") == 3
    err = capsys.readouterr().err
    assert "architecture metadata is damaged" in err and "Traceback" not in err


def test_a_run_that_cannot_fit_is_skipped_with_a_message(tmp_path, image, checkpoint, capsys):
    code = run(image, "--classes", "cat", "--short-side", "100000", checkpoint=checkpoint, out=tmp_path / "o")
    assert code == 4
    assert "would need about" in capsys.readouterr().err


def test_same_names_from_two_folders_are_refused_before_work(tmp_path, rgb_image, checkpoint, capsys):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        skio.imsave(tmp_path / sub / "img.png", rgb_image, check_contrast=False)
    code = run(tmp_path / "a/img.png", tmp_path / "b/img.png", "--classes", "cat", checkpoint=checkpoint, out=tmp_path / "o")
    assert code == 2
    assert "would both write img_labels.tif" in capsys.readouterr().err
    assert not list((tmp_path / "o").glob("*"))


def test_existing_results_are_refused_replaced_or_kept(tmp_path, image, checkpoint, capsys):
    out = tmp_path / "o"
    assert run(image, "--classes", "cat; dog", "--save-probabilities", checkpoint=checkpoint, out=out) == 0
    first = (out / "img_labels.tif").stat().st_mtime_ns
    assert run(image, "--classes", "cat; dog; bird", checkpoint=checkpoint, out=out) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "img_labels.tif").stat().st_mtime_ns == first  # untouched
    assert run(image, "--classes", "cat; dog; bird", "--skip-existing", checkpoint=checkpoint, out=out) == 0
    assert (out / "img_labels.tif").stat().st_mtime_ns == first
    assert run(image, "--classes", "cat; dog; bird", "--overwrite", "--no-overlay", checkpoint=checkpoint, out=out) == 0
    assert [r.name for r in read_class_table(out / "img_classes.csv")] == ["background", "cat", "dog", "bird"]
    # the first run's probabilities and overlay would be stale beside the new labels: gone
    assert sorted(p.name for p in out.iterdir()) == ["img_classes.csv", "img_labels.tif"]


def _complete(path) -> bool:
    """Whether a result file reads back whole."""
    if path.suffix == ".tif":
        return tifffile.imread(path).size > 0
    if path.suffix == ".csv":
        return len(read_class_table(path)) == 4
    return skio.imread(path).size > 0


@pytest.mark.parametrize(
    "sig,moment",
    [
        (signal.SIGKILL, ".partial.tif"),  # while the probabilities are being written
        (signal.SIGKILL, "_probabilities.tif"),  # just after they appear
        (signal.SIGKILL, ".partial.png"),  # while the overlay is being written
        (signal.SIGTERM, ".partial.tif"),
        (signal.SIGINT, ".partial.tif"),
    ],
)
def test_killed_while_writing_leaves_no_partial_file(tmp_path, checkpoint, sig, moment):
    """Kill the CLI the moment a given output file appears: every file under a final name reads
    back whole, and a re-run completes the result."""
    rng = np.random.default_rng(0)
    img = tmp_path / "big.png"
    skio.imsave(img, rng.integers(0, 255, (600, 800, 3), dtype=np.uint8), check_contrast=False)
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "napari_sclip.cli", "segment", str(img), "--classes", "cat; dog; bird",
           "--checkpoint", str(checkpoint), "--device", "cpu", "--precision", "fp32", "--short-side", "64",
           "--save-probabilities", "-q", "-o", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and any(p.name.endswith(moment) for p in out.iterdir()):
            proc.send_signal(sig)
            break
        time.sleep(0.001)
    proc.wait(60)
    assert proc.returncode != 0, "the run ended before the moment to kill it"
    finals = [p for p in out.iterdir() if not p.name.startswith(".")]
    for path in finals:
        assert _complete(path), path
    if sig != signal.SIGKILL and proc.returncode != 0:  # interrupted in time: it cleaned up after itself
        assert proc.returncode == 130, proc.stderr.read()
        assert not [p for p in out.iterdir() if p.name.startswith(".")]
    # a later run sweeps what a killed one left and finishes the job
    assert main([*cmd[3:], "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "big_classes.csv", "big_labels.tif", "big_overlay.png", "big_probabilities.tif"
    ]


def test_text_cache_recovers_from_damaged_and_foreign_entries(tmp_path):
    from napari_sclip import SclipModel

    from .conftest import make_tiny_clip

    model = SclipModel.from_open_clip(make_tiny_clip(seed=5), cache_dir=tmp_path)
    good = model.embed(["cat", "dog", "bird"]).clone()
    files = sorted(model.text.folder.glob("*.npz"))
    assert len(files) == 3
    by_phrase = {str(np.load(f)["phrase"]): f for f in files}
    np.savez(by_phrase["cat"], embedding=np.ones(7, np.float32), phrase=np.str_("cat"), key=np.str_(model.text.key))
    np.savez(by_phrase["dog"], embedding=np.full(32, np.nan, np.float32), phrase=np.str_("dog"),
             key=np.str_(model.text.key))  # fmt: skip
    by_phrase["bird"].write_bytes(b"not an npz file")
    fresh = SclipModel.from_open_clip(make_tiny_clip(seed=5), cache_dir=tmp_path)
    assert fresh.uncached(["cat", "dog", "bird"]) == ["cat", "dog", "bird"]  # all three refused
    np.testing.assert_allclose(fresh.embed(["cat", "dog", "bird"]).numpy(), good.numpy(), atol=1e-6)
    again = SclipModel.from_open_clip(make_tiny_clip(seed=5), cache_dir=tmp_path)
    assert again.uncached(["cat", "dog", "bird"]) == []  # the replacements are good entries


def test_text_cache_shared_by_processes(tmp_path):
    """Four processes embed overlapping phrases into one cache folder at once: every entry is whole."""
    code = (
        f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); from conftest import make_tiny_clip;"
        "from napari_sclip import SclipModel;"
        f"m = SclipModel.from_open_clip(make_tiny_clip(seed=5), cache_dir={str(tmp_path)!r});"
        "m.embed(['p%d' % i for i in range(12)])"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(4)]
    assert all(p.wait(120) == 0 for p in procs)
    from napari_sclip import SclipModel

    from .conftest import make_tiny_clip

    model = SclipModel.from_open_clip(make_tiny_clip(seed=5), cache_dir=tmp_path)
    assert model.uncached([f"p{i}" for i in range(12)]) == []
    assert not [p for p in model.text.folder.iterdir() if "partial" in p.name]
    json.dumps([str(p) for p in model.text.folder.iterdir()])  # names are plain
