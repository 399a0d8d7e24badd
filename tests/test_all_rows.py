"""--val-fraction 0: the final fit on every labeled row, kept at its last epoch, and never scored as if held out."""
import contextlib
import io
import json
import time

import keras
import numpy as np
import pytest

from conftest import QUICK, read_rows, run_script, submission_accuracy
from fer.records import output_paths
from fer.training import EpochRecorder


@pytest.fixture(scope="module")
def all_rows(synthetic_files, tmp_path_factory):
    """A small CNN trained on all 700 synthetic faces; returns (folder, what train_cnn.py printed)."""
    out = tmp_path_factory.mktemp("all_rows")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = run_script("train_cnn.py", "--train", synthetic_files["train"], "--test", synthetic_files["test"],
                            *QUICK, "--limit", "700", "--epochs", "5", "--no-augment", "--val-fraction", "0",
                            "--model", out / "cnn.keras", "--figures", out)
    assert status == 0
    return out, printed.getvalue()


def test_every_row_trains_and_the_records_say_there_was_no_validation(all_rows, synthetic_files):
    out, printed = all_rows
    summary = json.loads((out / "cnn_summary.json").read_text())
    assert summary["split"]["train_rows"] == 700 and summary["split"]["val_rows"] == 0
    assert summary["split"]["val_fraction"] == 0
    assert summary["best_val_accuracy"] is None and summary["best_epoch"] == summary["epochs"] == 5
    history = read_rows(out / "cnn_history.csv")
    assert len(history) == 5 and not any(key.startswith("val_") for key in history[0])
    assert "every labeled row" in printed and "none: no held-out faces, the model is the last epoch" in printed
    assert (out / "cnn_history.png").read_bytes().startswith(b"\x89PNG")
    assert len(read_rows(out / "cnn_submission.csv")) == 60


def test_the_model_trained_on_every_row_learns_and_predicts(all_rows, synthetic_files, tmp_path, capsys):
    out, _ = all_rows
    capsys.readouterr()
    assert run_script("predict.py", "--model", out / "cnn.keras", "--test", synthetic_files["labeled_test"],
                      "--out", tmp_path / "sub.csv") == 0
    accuracy = submission_accuracy(tmp_path / "sub.csv", synthetic_files["test_labels"])
    assert accuracy >= 0.85


@pytest.mark.parametrize("script", ["predict.py", "confusion.py", "calibration.py", "saliency.py"])
def test_scoring_or_explaining_it_on_its_own_training_faces_is_refused(all_rows, synthetic_files, tmp_path,
                                                                        capsys, script):
    out, figures = all_rows[0], tmp_path / "figures"
    args = (["--test", synthetic_files["test"], "--out", figures / "sub.csv", "--validate", synthetic_files["train"]]
            if script == "predict.py" else ["--data", synthetic_files["train"], "--out", figures])
    capsys.readouterr()
    assert run_script(script, "--model", out / "cnn.keras", *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--val-fraction 0" in err and str(out / "cnn.keras") in err
    assert not figures.exists()


def test_its_model_card_says_it_has_no_validation_accuracy(all_rows, tmp_path):
    out, _ = all_rows
    assert run_script("export_model.py", out / "cnn.keras", "--out", tmp_path / "shipped" / "cnn.keras") == 0
    card = (tmp_path / "shipped" / "MODEL_CARD.md").read_text()
    assert "none: trained on every labeled row, the model is the last of 5 epochs" in card
    assert "0 rows: none held out" in card and card.count("| n/a |") == 5


def test_scripts_that_compare_validation_accuracies_refuse_it(synthetic_files, tmp_path, capsys):
    assert run_script("ablation.py", "--data", synthetic_files["train"], "--val-fraction", "0",
                      "--out", tmp_path) == 2
    assert capsys.readouterr().err.strip() == ("error: --val-fraction: ablation.py compares validation accuracies, "
                                               "so it needs held-out faces: give a share above 0")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fraction", ["1", "-0.1"])
def test_a_share_outside_0_to_1_is_refused(fraction, synthetic_files, tmp_path, capsys):
    assert run_script("train_cnn.py", "--train", synthetic_files["train"], *QUICK, "--val-fraction", fraction,
                      "--model", tmp_path / "cnn.keras", "--figures", tmp_path) == 2
    assert capsys.readouterr().err.strip() == (f"error: --val-fraction: must be at least 0 and below 1, "
                                               f"got {float(fraction)}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("validation, kept", [([0.5, 0.4], 0.0), (None, 1.0)])
def test_the_recorder_keeps_the_best_epoch_or_without_validation_the_latest(validation, kept, tmp_path):
    paths = output_paths(tmp_path / "m.keras", tmp_path)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    recorder = EpochRecorder(paths, 10, resuming=False)
    recorder.set_model(model)
    for epoch in range(2):
        model.layers[0].bias.assign([float(epoch)])  # marks which epoch's weights a saved file holds
        logs = {"accuracy": 0.5 - 0.1 * epoch, "loss": 1.0}
        if validation:
            logs.update(val_accuracy=validation[epoch], val_loss=1.0)
        recorder.on_epoch_begin(epoch)
        time.sleep(0.01)
        recorder.on_train_batch_end(0)
        recorder.on_epoch_end(epoch, logs)
    assert keras.saving.load_model(paths["model"]).layers[0].bias.numpy().tolist() == [kept]
    summary = recorder.summary(1.0)
    assert summary["best_epoch"] == int(kept) + 1
    assert summary["best_val_accuracy"] == (None if validation is None else 0.5)
    np.testing.assert_equal(summary["final_val_accuracy"], None if validation is None else 0.4)


def test_the_speed_benchmark_reads_a_run_without_validation(all_rows):
    import subprocess
    import sys

    from conftest import ROOT, subprocess_env

    out, _ = all_rows
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "speed.py"), "--data", "unused", "--reuse",
                           "--model", str(out / "cnn.keras"), "--target", "0.5", "--peak-tflops", "1"],
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["best_val_accuracy"] is None and result["seconds_to_target"] is None and result["epochs"] == 5
    assert any(line.startswith("time to 50% validation") and line.endswith("no validation") for line in lines)


def test_the_report_says_it_was_not_validated_and_why_its_figures_are_missing(all_rows, synthetic_files,
                                                                             tmp_path, capsys):
    out, figures = all_rows[0], tmp_path / "figures"
    assert run_script("report.py", "--data", synthetic_files["train"], "--cnn", out / "cnn.keras",
                      "--dnn", tmp_path / "no_dnn.keras", "--out", figures) == 0
    md = (figures / "report.md").read_text()
    assert "The CNN trained on every labeled face (no validation split), so it has no validation score; it ran 5 " \
           "epochs." in md and "; 700 training and 0 validation faces;" in md
    assert "--val-fraction 0" in capsys.readouterr().out  # each figure script's refusal, quoted
