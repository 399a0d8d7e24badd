"""calibration.py and fer.calibration: confidence bins, the expected calibration error, temperature scaling."""
import json

import numpy as np
import pytest

from conftest import refused, run_script
from fer import calibration as cal
from fer import inference
from fer.data import load_faces


def softmax(logits):
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def sampled(sharpen, n=20_000, seed=0):
    """Labels drawn from softmax(logits), and the probabilities a model would give with its logits multiplied by
    sharpen: calibrated at 1, overconfident above, underconfident below."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, 7))
    labels = (rng.random((n, 1)) > softmax(logits).cumsum(1)).sum(1)
    return softmax(logits * sharpen), labels


def with_confidence(top, label, right):
    """One face's 7 probabilities: `top` on class 0, the rest shared; its label 0 when right, else 1."""
    row = np.full(7, (1 - top) / 6)
    row[0] = top
    return row, 0 if right else 1


def test_a_calibrated_model_needs_no_temperature():
    p, y = sampled(1.0)
    assert cal.expected_calibration_error(p, y) < 0.02
    assert abs(cal.fit_temperature(p, y) - 1) < 0.06


@pytest.mark.parametrize("sharpen", [2.0, 0.5])
def test_the_temperature_undoes_over_and_underconfidence(sharpen):
    p, y = sampled(sharpen)
    r = cal.calibration_report(p, y)
    assert r["ece"] > 0.06
    assert abs(r["temperature"] - sharpen) < 0.05 * sharpen
    assert all(abs(t - sharpen) < 0.08 * sharpen for t in r["temperatures_of_halves"])
    assert r["ece_after"] < 0.025 and r["nll_after"] < r["nll"]
    assert (r["mean_confidence"] > r["accuracy"]) == (sharpen > 1)


def test_ece_weights_each_bins_gap_by_its_faces():
    rows = [with_confidence(0.95, 0, True), with_confidence(0.95, 0, False),
            with_confidence(0.55, 0, True), with_confidence(0.55, 0, True),
            with_confidence(0.6, 0, True), with_confidence(0.6, 0, True)]
    p, y = np.array([r for r, _ in rows]), np.array([label for _, label in rows])
    b = cal.confidence_bins(p, y, bins=10)
    # (0.5, 0.6] holds 0.55 and 0.6, (0.9, 1.0] both 0.95s; the rest are empty
    assert b["faces"].tolist() == [0, 0, 0, 0, 0, 4, 0, 0, 0, 2]
    assert b["accuracy"][9] == 0.5 and abs(b["confidence"][5] - 0.575) < 1e-12
    assert np.isnan(b["accuracy"][0])
    # |0.575 - 1| * 4/6 + |0.95 - 0.5| * 2/6
    assert abs(cal.expected_calibration_error(p, y, bins=10) - (0.425 * 4 + 0.45 * 2) / 6) < 1e-12


def test_temperature_keeps_every_label_and_the_scores_bounds():
    p, y = sampled(1.0, n=500)
    for t in (0.3, 1.0, 4.0):
        q = cal.with_temperature(p, t)
        assert np.array_equal(q.argmax(1), p.argmax(1)) and np.allclose(q.sum(1), 1)
    assert np.allclose(cal.with_temperature(p, 1.0), p)
    assert (cal.with_temperature(p, 4.0).max(1) < p.max(1)).all()  # softer
    one_hot = np.eye(7)[y]
    assert cal.brier_score(one_hot, y) == 0 and abs(cal.brier_score(np.full((500, 7), 1 / 7), y) - 6 / 7) < 1e-12
    assert cal.negative_log_likelihood(one_hot, y) == 0


def test_calibration_py_scores_the_models_validation_split(trained, synthetic_files, tmp_path, capsys):
    model = trained / "cnn.keras"
    assert run_script("calibration.py", "--model", model, "--data", synthetic_files["train"], "--tta", "flip",
                      "--out", tmp_path) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "calibration.json").read_text())
    summary = json.loads((trained / "cnn_summary.json").read_text())
    assert list(record["columns"]) == ["plain", "flip TTA"]
    plain = record["columns"]["plain"]["cnn"]
    assert abs(plain["accuracy"] - summary["best_val_accuracy"]) < 1e-6  # the split the model held out
    assert sum(plain["bins"]["faces"]) == summary["split"]["val_rows"] == record["faces"]
    assert "The cnn (plain) is " in out and f"where it is right on {plain['accuracy']:.3f} of the faces" in out
    assert (tmp_path / "calibration.png").read_bytes().startswith(b"\x89PNG")


def test_test_faces_are_scored_in_files_of_their_own(trained, synthetic_files, tmp_path, capsys):
    model = trained / "cnn.keras"
    labeled = synthetic_files["labeled_test"]
    assert run_script("calibration.py", "--model", model, "--test", labeled, "--out", tmp_path) == 0
    assert "calibration on 60 test faces (every row)" in capsys.readouterr().out
    record = json.loads((tmp_path / "calibration_test.json").read_text())
    faces = load_faces(labeled)
    right = inference.predict_probabilities([inference.load_model(model)], faces.x).argmax(1) == faces.y
    assert record["scored"] == "test" and record["faces"] == 60 and record["data"] == str(labeled)
    assert record["columns"]["plain"]["cnn"]["accuracy"] == pytest.approx(np.mean(right))
    assert (tmp_path / "calibration_test.png").exists() and not (tmp_path / "calibration.json").exists()
    line = refused(capsys, "calibration.py", "--model", model, "--test", synthetic_files["test"], "--out", tmp_path)
    assert line.startswith(f"error: {synthetic_files['test']}: has no labels to score against"), line


def test_two_models_are_also_scored_together(trained, synthetic_files, tmp_path):
    """The same model twice: both named apart, and their average (the ensemble) scores as each does."""
    model = trained / "cnn.keras"
    assert run_script("calibration.py", "--model", model, "--model", model, "--data", synthetic_files["train"],
                      "--out", tmp_path) == 0
    scored = json.loads((tmp_path / "calibration_cnn_vs_cnn.json").read_text())["columns"]["plain"]
    assert list(scored) == ["1:cnn", "2:cnn", "ensemble"]
    assert abs(scored["ensemble"]["ece"] - scored["1:cnn"]["ece"]) < 1e-6
    assert (tmp_path / "calibration_cnn_vs_cnn.png").exists()


@pytest.mark.parametrize("flag, value", [("--bins", "1"), ("--bins", "x"), ("--tta", "mirror")])
def test_bad_flags_are_refused(trained, synthetic_files, tmp_path, capsys, flag, value):
    line = refused(capsys, "calibration.py", "--model", trained / "cnn.keras", "--data", synthetic_files["train"],
                   "--out", tmp_path / "figs", flag, value)
    assert flag in line
    assert not (tmp_path / "figs").exists()


def test_each_half_is_scored_with_the_temperature_fitted_on_the_other(monkeypatch):
    p, y = sampled(1.0, n=101)
    fitted, scaled = [], []
    real = cal.with_temperature

    def fit(q, _):
        fitted.append({r.tobytes() for r in q})
        return len(fitted)  # the first fit's temperature is 1, the second's 2

    def scale(q, t):
        scaled.append((t, {r.tobytes() for r in q}))
        return real(q, t)
    monkeypatch.setattr(cal, "fit_temperature", fit)
    monkeypatch.setattr(cal, "with_temperature", scale)
    _, temperatures = cal.cross_fitted(p, y)
    assert temperatures == [1, 2] and len(scaled) == 2
    for t, rows in scaled:
        assert not rows & fitted[t - 1]  # scored rows never among those its temperature was fitted on
    assert fitted[0] | fitted[1] == {r.tobytes() for r in p} and not fitted[0] & fitted[1]


def test_each_leaves_the_average_out(trained, synthetic_files, tmp_path):
    model = trained / "cnn.keras"
    assert run_script("calibration.py", "--model", model, "--model", model, "--each", "--data",
                      synthetic_files["train"], "--out", tmp_path) == 0
    assert list(json.loads((tmp_path / "calibration_cnn_vs_cnn.json").read_text())["columns"]["plain"]) == \
        ["1:cnn", "2:cnn"]


def test_an_output_that_is_an_input_is_refused(trained, synthetic_files, tmp_path, capsys):
    data = tmp_path / "calibration.json"  # where the record would go
    data.write_bytes(open(synthetic_files["train"], "rb").read())
    line = refused(capsys, "calibration.py", "--model", trained / "cnn.keras", "--data", data, "--out", tmp_path,
                   inputs=[data])
    assert line == f"error: {data}: is also an input ({data}): refusing to overwrite it; write elsewhere"
    assert not (tmp_path / "calibration.png").exists()


def test_many_models_are_counted_in_the_file_name():
    from calibration import output_stem

    assert output_stem(None) == output_stem(["a.keras"]) == "calibration"
    assert output_stem(["m/a.keras", "b.keras"]) == "calibration_a_vs_b"
    assert output_stem([f"m{i}.keras" for i in range(7)]) == "calibration_m0_and_6_more"
