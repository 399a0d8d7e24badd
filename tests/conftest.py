"""Shared helpers: synthetic faces with a learnable signal, CSV writers, script runner."""
import csv
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the scripts and the fer package

import fer  # noqa: E402,F401  (quiet Keras import, custom layers)


def train_cnn_settings(*argv, timed=False):
    """The settings train_cnn.py resolves from these flags (timed: with its --minutes and half-hour preset;
    without, as the scripts that compare runs resolve them)."""
    import argparse

    from fer import cli
    from fer.settings import resolve

    parser = argparse.ArgumentParser()
    cli.add_data_flags(parser)
    cli.add_run_flags(parser)
    cli.add_distill_flags(parser)
    cli.add_output_flags(parser, "models/cnn.keras")
    cli.add_network_flags(parser)
    cli.add_minutes_flag(parser)
    return resolve(parser.parse_args([str(a) for a in argv]), timed=timed)


def synthetic_faces(n, seed=0, classes=7):
    """Noise images; class c has a bright 12x12 square in row band c//4 and column block c%4.

    Learnable by a small CNN in a few epochs, without augmentation.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(90, 25, (n, 48, 48))
    for i, c in enumerate(y):
        r, k = 6 + 24 * (c // 4), 12 * (c % 4)
        x[i, r:r + 12, k:k + 12] += 120
    return np.clip(x, 0, 255).astype(np.uint8), y


def centre_faces(n, seed=0, classes=7):
    """Noise images whose class is a fixed binary texture in the central 16x16 block, the same block for
    every class: the only place a model can look. Explanations must point there."""
    rng = np.random.default_rng(seed)
    textures = np.random.default_rng(1234).integers(0, 2, (classes, 4, 4)).repeat(4, 1).repeat(4, 2)
    y = rng.integers(0, classes, n)
    x = rng.normal(110, 30, (n, 48, 48))
    x[:, 16:32, 16:32] += 110 * textures[y] - 40
    return np.clip(x, 0, 255).astype(np.uint8), y


def csv_text(x, first, header="label,feature", newline="\n"):
    rows = [header] + [f"{a}," + " ".join(map(str, img.reshape(-1))) for a, img in zip(first, x)]
    return newline.join(rows) + newline


def write_csv(path, x, first, header="label,feature"):
    Path(path).write_text(csv_text(x, first, header))
    return str(path)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FER_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def faces_csv(tmp_path):
    x, y = synthetic_faces(12, seed=1)
    return write_csv(tmp_path / "train.csv", x, y), x, y


def run_script(script, *args, capsys=None):
    """Run a top-level script in this process (Keras is imported once); return its exit status."""
    argv = sys.argv
    sys.argv = [script, *map(str, args)]
    try:
        runpy.run_path(str(ROOT / script), run_name="__main__")
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def subprocess_env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


QUICK = ["--preset", "smoke", "--width", "0.25", "--batch-size", "32", "--lr", "3e-3"]


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def refused(capsys, script, *args, inputs=(), env=None):
    """Run a script that must refuse its input: exit status 2, one `error:` line on stderr and no traceback, and
    every file in `inputs` byte for byte as before. Returns the error line."""
    before = {Path(p): Path(p).read_bytes() for p in inputs if Path(p).is_file()}
    capsys.readouterr()
    status = run_script(script, *args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, (status, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err[-2000:]
    for path, content in before.items():
        assert path.read_bytes() == content, f"{path} changed"
    return lines[0]


def submission_accuracy(path, labels):
    """Accuracy of a written submission (id,label) against the labels of the faces it predicted, in order."""
    rows = read_rows(path)
    assert [int(r["id"]) for r in rows] == list(range(len(labels)))  # a labeled file's ids are its row numbers
    return float(np.mean(np.array([int(r["label"]) for r in rows]) == np.asarray(labels)))


@pytest.fixture(scope="session")
def synthetic_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    x, y = synthetic_faces(700, seed=11)
    tx, ty = synthetic_faces(60, seed=12)
    ids = np.arange(1000, 1060)[::-1]
    return dict(train=write_csv(folder / "train.csv", x, y),
                test=write_csv(folder / "test.csv", tx, ids, header="id,feature"),
                labeled_test=write_csv(folder / "labeled.csv", tx, ty), test_ids=ids, test_labels=ty)


@pytest.fixture(scope="session")
def trained(synthetic_files, tmp_path_factory):
    """One small CNN trained on the synthetic faces, shared by several tests."""
    out = tmp_path_factory.mktemp("run")
    status = run_script("train_cnn.py", "--train", synthetic_files["train"], "--test", synthetic_files["test"],
                        *QUICK, "--epochs", "6", "--no-augment", "--model", out / "cnn.keras",
                        "--figures", out / "figures")
    assert status == 0
    return out


@pytest.fixture(scope="session")
def trained_centre(tmp_path_factory):
    """A small CNN trained on centre_faces."""
    out = tmp_path_factory.mktemp("centre")
    x, y = centre_faces(700, seed=21)
    train = write_csv(out / "train.csv", x, y)
    assert run_script("train_cnn.py", "--train", train, *QUICK, "--epochs", "6", "--no-augment",
                      "--model", out / "cnn.keras", "--figures", out) == 0
    return out


def disturbed_copy(source, target, scale=1.5, seed=3):
    """A second model that disagrees with `source` on some faces: its output layer's weights with noise added,
    saved at `target` with a copy of the source's records (the same held-out faces)."""
    import shutil

    from fer import inference

    model = inference.load_model(source)
    last = [layer for layer in model.layers if layer.weights][-1]
    rng = np.random.default_rng(seed)
    last.set_weights([w + rng.normal(0, scale * w.std(), w.shape) for w in last.get_weights()])
    model.save(target)
    shutil.copy(Path(source).with_name(Path(source).stem + "_summary.json"),
                Path(target).with_name(Path(target).stem + "_summary.json"))
    return Path(target)


def kill_after_epochs(command, history, count, cwd, timeout=240):
    """Start a training command, and kill it (SIGKILL, no clean-up) once its history shows `count` epochs."""
    process = subprocess.Popen(command, cwd=cwd, env=subprocess_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + timeout
    while not (history.exists() and len(read_rows(history)) >= count):
        assert process.poll() is None, process.stdout.read()
        if time.time() > deadline:
            process.kill()
            raise AssertionError("training made no progress")
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
