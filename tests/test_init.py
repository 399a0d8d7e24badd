"""--init: a run that starts from a trained model's weights, and the models it refuses to start from."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import QUICK, ROOT, refused, run_script, subprocess_env, synthetic_faces, kill_after_epochs
from fer.inference import load_model
from fer.records import recipe_words
from fer.resume import backed_up_epochs


def test_a_run_started_from_a_trained_model_begins_where_that_model_left_off(trained, synthetic_files, tmp_path):
    """At a learning rate too small to move anything, one epoch from --init keeps the model's accuracy and
    predictions; from random weights the same epoch would be at chance. The init model was trained without
    augmentation, this run warps: the preprocessing is the run's own, only the learned layers are copied."""
    out = tmp_path / "warm.keras"
    assert run_script("train_cnn.py", "--train", synthetic_files["train"], *QUICK, "--epochs", "1", "--lr", "1e-9",
                      "--init", trained / "cnn.keras", "--model", out, "--figures", tmp_path) == 0
    summary = json.loads((tmp_path / "warm_summary.json").read_text())
    assert summary["settings"]["init"] == str(trained / "cnn.keras")
    assert ", started from cnn.keras, float32" in recipe_words(summary)
    assert summary["best_val_accuracy"] >= 0.85, summary["best_val_accuracy"]
    x = synthetic_faces(60, seed=12)[0][..., None].astype("float32")  # the test faces, none seen in training
    warm, init = load_model(out), load_model(trained / "cnn.keras")
    for learned, copied in zip(init.trainable_weights, warm.trainable_weights, strict=True):
        np.testing.assert_allclose(np.asarray(copied), np.asarray(learned), atol=1e-6)
    ours, theirs = warm.predict(x, verbose=0), init.predict(x, verbose=0)
    # The batch norms' moving statistics still move toward the warped faces over the epoch, so the probabilities
    # may shift a little; the classes must not.
    assert np.mean(ours.argmax(1) == theirs.argmax(1)) >= 0.95 and np.abs(ours - theirs).mean() < 0.1


@pytest.mark.parametrize("case", ["other width", "other split seed", "no summary", "missing", "a folder",
                                  "is the output"])
def test_a_model_that_cannot_be_started_from_is_refused_before_training(trained, synthetic_files, tmp_path, capsys,
                                                                        case):
    init, args, out = trained / "cnn.keras", [], tmp_path / "warm.keras"
    if case == "other width":
        args = ["--width", "0.5"]
    elif case == "other split seed":
        args = ["--split-seed", "1"]
    elif case == "no summary":
        init = tmp_path / "copy.keras"
        shutil.copyfile(trained / "cnn.keras", init)
    elif case == "missing":
        init = tmp_path / "none.keras"
    elif case == "a folder":
        init = tmp_path / "folder.keras"
        init.mkdir()
    elif case == "is the output":
        init = out = tmp_path / "copy.keras"
        shutil.copyfile(trained / "cnn.keras", init)
    line = refused(capsys, "train_cnn.py", "--train", synthetic_files["train"], *QUICK, *args, "--init", init,
                   "--model", out, "--figures", tmp_path / "figures", inputs=[init])
    assert line.startswith(f"error: {init}")
    assert {"other width": "its layers differ from this run's", "other split seed": "split seed 0",
            "no summary": "summary JSON", "missing": "no such model", "a folder": "is not a file",
            "is the output": "is also an input"}[case] in line
    assert not (tmp_path / "figures").exists() and (case == "is the output" or not out.exists())


def test_a_resumed_run_continues_from_its_backup_not_from_the_init_model(trained, synthetic_files, tmp_path):
    """Killed and run again, a run started with --init picks up its own backup; loading the init model's
    weights again would be work thrown away, and saying so would misstate where the run starts."""
    command = [sys.executable, str(ROOT / "train_cnn.py"), "--train", synthetic_files["train"], *QUICK,
               "--epochs", "4", "--init", str(trained / "cnn.keras"), "--model", str(tmp_path / "warm.keras"),
               "--figures", str(tmp_path)]
    kill_after_epochs(command, tmp_path / "warm_history.csv", 2, tmp_path)  # the second begins after the first's backup
    done = backed_up_epochs(tmp_path / ".resume" / "warm")
    assert 1 <= done < 4
    again = subprocess.run(command, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"Epoch {done + 1}/4" in again.stdout and "starting from the weights" not in again.stdout
    fresh = subprocess.run(command + ["--fresh"], cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True,
                           timeout=300)
    assert fresh.returncode == 0 and "starting from the weights of" in fresh.stdout, fresh.stderr
