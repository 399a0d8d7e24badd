"""Out-of-range flags: refused in one line naming the flag, before any work, by every script that takes them."""
import subprocess
import sys

import pytest

from conftest import QUICK, ROOT, refused, subprocess_env

SAMPLE = ROOT / "data" / "sample" / "train.csv.xz"


@pytest.mark.parametrize("flags, words", [
    (["--val-fraction", "0.999"], "--val-fraction: 0.999 of the"),
    (["--val-fraction", "1e-9"], "--val-fraction: 1e-09 of the"),
    (["--limit", "-5"], "--limit: must be at least 1, got -5"),
    (["--limit", "0"], "--limit: must be at least 1, got 0"),
    (["--width", "nan"], "--width: must be a finite number, got nan"),
    (["--width", "0.001"], "--width: must be between 0.03125 and 8, got 0.001"),
    (["--minutes", "inf"], "--minutes: must be a finite number, got inf"),
    (["--dropout", "1.5"], "--dropout: must be at least 0 and below 1, got 1.5"),
    (["--lr", "nan"], "--lr: must be a finite number, got nan"),
    (["--lr", "-1"], "--lr: must be positive, got -1.0"),
    (["--label-smoothing", "5"], "--label-smoothing: must be at least 0 and below 1, got 5.0"),
    (["--augment-scale", "nan"], "--augment-scale: must be a finite number, got nan"),
    (["--mixup", "inf"], "--mixup: must be a finite number, got inf"),
    (["--epochs", "two"], "--epochs: expected a whole number, got 'two'"),
    (["--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
    (["--erase", "1.5"], "--erase: must be between 0 and 1, got 1.5"),
    (["--mixup", "-1"], "--mixup: must be 0 or more, got -1.0"),
    (["--split-seed", "-1"], "--split-seed: must be between 0 and 4294967295, got -1"),
    (["--seed", "4294967296"], "--seed: must be between 0 and 4294967295, got 4294967296"),
    (["--mixup", "0.2", "--augment", "imagedatagenerator"],
     "--mixup: works with the in-model augmentation, not --augment imagedatagenerator"),
    (["--clean-tail", "1"], "--clean-tail: must be at least 0 and below 1, got 1.0"),
    (["--clean-tail", "0.2", "--no-augment"],
     "--clean-tail: turns off the in-model warps and erasing, and this run has neither"),
    (["--tail-views"], "--tail-views: needs a clean tail of the in-model warps: give --clean-tail SHARE"),
])
def test_training_flags_out_of_range(flags, words, tmp_path, capsys):
    args = ["--train", SAMPLE, *QUICK, *flags, "--model", tmp_path / "cnn.keras", "--figures", tmp_path]
    if flags[0] == "--limit" or flags[0] == "--val-fraction":
        args = ["--train", SAMPLE, "--preset", "smoke", "--width", "0.25", *flags, "--model", tmp_path / "cnn.keras",
                "--figures", tmp_path]
    line = refused(capsys, "train_cnn.py", *args, inputs=[SAMPLE])
    assert line.startswith(f"error: {words}"), line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("script, flags, words", [
    ("predict.py", ["--test", SAMPLE, "--batch-size", "0"], "--batch-size: must be at least 1"),
    ("predict.py", ["--test", SAMPLE, "--temperature", "0"], "--temperature: must be between 0.05 and 20"),
    ("faces.py", ["photo.jpg", "--temperature", "inf"], "--temperature: must be a finite number"),
    ("filter_vis.py", ["--filters", "0"], "--filters: must be at least 1"),
    ("filter_vis.py", ["--steps", "-1"], "--steps: must be at least 1"),
    ("lime_explain.py", ["--data", SAMPLE, "--samples", "0"], "--samples: must be at least 1"),
    ("saliency.py", ["--data", SAMPLE, "--thresholds", "nan"], "--thresholds: must be a finite number"),
    ("saliency.py", ["--data", SAMPLE, "--thresholds", "1.5"], "--thresholds: must be above 0 and below 1"),
    ("train_dnn.py", ["--train", SAMPLE, "--depth", "0"], "--depth: must be at least 1"),
    ("semi_supervised.py", ["--data", SAMPLE, "--rounds", "-1"], "--rounds: must be 0 or more"),
])
def test_other_scripts_flags_out_of_range(script, flags, words, tmp_path, capsys):
    line = refused(capsys, script, *flags, "--out" if script != "train_dnn.py" else "--model",
                   tmp_path / ("x.keras" if script == "train_dnn.py" else "out"))
    assert line.startswith(f"error: {words}"), line


def test_an_unknown_keras_backend_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "predict.py"), "--test", str(SAMPLE), "--out",
                           str(tmp_path / "s.csv")], env=subprocess_env(KERAS_BACKEND="bogus"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: KERAS_BACKEND=bogus: ")
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "s.csv").exists()
