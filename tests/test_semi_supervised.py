"""semi_supervised.py: pseudo-labels from a model trained on a labeled fraction, scored on the same split."""
import json

import numpy as np

from conftest import ROOT, disturbed_copy, run_script, synthetic_faces, write_csv
from fer import inference, records

TINY = ["--preset", "smoke", "--width", "0.25", "--batch-size", "32", "--lr", "3e-3", "--epochs", "6",
        "--no-augment"]


def test_pseudo_labels_are_mostly_right_on_learnable_faces(tmp_path, capsys):
    x, y = synthetic_faces(600, seed=8)
    data = write_csv(tmp_path / "train.csv", x, y)
    tx, _ = synthetic_faces(50, seed=9)
    test = write_csv(tmp_path / "test.csv", tx, np.arange(50), header="id,feature")
    args = ["--data", data, "--test", test, "--fractions", "0.5", "--rounds", "1", "--keep", "0.5", *TINY,
            "--models", tmp_path / "runs", "--out", tmp_path / "figs"]
    assert run_script("semi_supervised.py", *args) == 0
    record = json.loads((tmp_path / "figs" / "semi_supervised.json").read_text())
    (result,) = record["results"]
    assert abs(result["labeled_rows"] - 240) <= 4  # half of the 480-face training split, per class rounded
    round0, round1 = result["rounds"]
    assert round0["val_accuracy"] > 0.6, result  # the supervised half learned the signal
    assert 0.14 <= record["majority_share"] < 0.2 and result["learned"] and record["full_labels_learned"]
    # the gain tested on the same faces: the counts are the two models' own answers, and they decide
    _, val, _ = records.load_split(data, tmp_path / "runs" / "f50_round0.keras")
    supervised, semi = (inference.right_answers(tmp_path / "runs" / f"f50_round{r}.keras", val.x, val.y)
                        for r in (0, 1))
    c = result["paired"]
    assert (c["a_only"], c["b_only"], c["faces"]) == (sum(semi & ~supervised), sum(supervised & ~semi), len(val))
    assert result["gain_within_noise"] is (not c["significant"])
    unlabeled = 480 - result["labeled_rows"] + 50  # the hidden half of the training split, and the test file
    assert round1["pseudo_rows"] == round(0.5 * unlabeled) and round1["pseudo_accuracy"] > 0.8, result
    full = json.loads((tmp_path / "runs" / "full_labels_summary.json").read_text())
    assert result["full_labels_val_accuracy"] == full["best_val_accuracy"] > 0.6  # twice the labels learn too
    assert (tmp_path / "figs" / "semi_supervised.png").read_bytes().startswith(b"\x89PNG")
    capsys.readouterr()
    assert run_script("semi_supervised.py", *args) == 0
    assert capsys.readouterr().out.count("reusing the finished run") == 3


def test_the_pseudo_labelled_model_is_tested_against_the_supervised_one(trained, synthetic_files, tmp_path):
    """paired_test's first model is the pseudo-labelled one: its a_only counts the faces only it gets right."""
    import runpy

    from fer.data import one_hot

    paired_test = runpy.run_path(str(ROOT / "semi_supervised.py"))["paired_test"]
    supervised = trained / "cnn.keras"
    semi = disturbed_copy(supervised, tmp_path / "semi.keras")
    _, val, _ = records.load_split(synthetic_files["train"], supervised)
    c = paired_test(semi, supervised, dict(x_val=val.x, y_val=one_hot(val.y)))
    right_semi, right_supervised = (inference.right_answers(p, val.x, val.y) for p in (semi, supervised))
    assert (c["a_only"], c["b_only"]) == (sum(right_semi & ~right_supervised), sum(right_supervised & ~right_semi))
    assert c["a_only"] != c["b_only"]  # the disturbance took some faces one way: the order shows


def test_fractions_outside_zero_one_are_refused(tmp_path, capsys):
    assert run_script("semi_supervised.py", "--data", tmp_path / "x.csv", "--fractions", "1.5") == 2
    assert capsys.readouterr().err == "error: --fractions: must be above 0 and below 1, got 1.5\n"
    assert run_script("semi_supervised.py", "--data", tmp_path / "x.csv", "--keep", "0") == 2
    assert capsys.readouterr().err == "error: --keep: must be above 0 and at most 1, got 0.0\n"
