"""Training that goes wrong stops in one line: a loss that is no longer a number writes no model, a damaged
resume backup names --fresh, and a second run of the same model is refused while the first trains."""
from pathlib import Path

from conftest import QUICK, refused, run_script
from fer.resume import only_run


def test_a_diverging_run_stops_and_keeps_the_last_good_outputs(synthetic_files, tmp_path, capsys):
    model = tmp_path / "cnn.keras"
    args = ["--train", synthetic_files["train"], *QUICK, "--model", model, "--figures", tmp_path]
    assert run_script("train_cnn.py", *args, "--epochs", "1", "--no-augment") == 0
    good = {p: p.read_bytes() for p in (model, tmp_path / "cnn_summary.json", tmp_path / "cnn_history.csv")}
    line = refused(capsys, "train_cnn.py", *args, "--epochs", "2", "--no-augment", "--lr", "1e30", "--fresh")
    assert "training diverged: the loss was nan in epoch 1" in line and "--lr" in line
    assert {p: p.read_bytes() for p in good} == good  # the last good model and records, as they were


def test_a_damaged_backup_is_refused_with_a_hint_of_fresh(synthetic_files, tmp_path, capsys, monkeypatch):
    from fer import training

    model = tmp_path / "cnn.keras"
    args = ["--train", synthetic_files["train"], *QUICK, "--epochs", "2", "--model", model, "--figures", tmp_path]
    with monkeypatch.context() as patch:  # the run leaves its backup, as a run killed after its last epoch would
        patch.setattr(training.shutil, "rmtree", lambda *a, **k: None)
        assert run_script("train_cnn.py", *args) == 0
    weights = tmp_path / ".resume" / "cnn" / "latest.weights.h5"
    weights.write_bytes(weights.read_bytes()[:500])  # cut short, as a full disk or a bad copy leaves it
    line = refused(capsys, "train_cnn.py", *args, inputs=[model])
    assert "the backup of an interrupted run cannot be read" in line and "--fresh" in line
    assert run_script("train_cnn.py", *args, "--fresh") == 0


def test_a_second_run_of_the_same_model_is_refused_while_the_first_trains(synthetic_files, tmp_path, capsys):
    model = tmp_path / "cnn.keras"
    with only_run(tmp_path / ".resume" / "cnn", model):  # the first run, holding its lock
        line = refused(capsys, "train_cnn.py", "--train", synthetic_files["train"], *QUICK, "--epochs", "1",
                       "--model", model, "--figures", tmp_path)
    assert "another run is training this model now" in line and not model.exists()
    assert run_script("train_cnn.py", "--train", synthetic_files["train"], *QUICK, "--epochs", "1",
                      "--model", model, "--figures", tmp_path) == 0  # once it has ended
    assert Path(model).exists()
