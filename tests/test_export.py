"""export_model.py: a smaller file that predicts exactly the same; scripts fall back to the shipped model."""
import json

import keras
import numpy as np

import export_model
from conftest import read_rows, refused, run_script, synthetic_faces
from fer import cli, inference
from fer.augment import TTA_ZOOMS


def test_export_drops_optimizer_state_and_predicts_the_same(trained, tmp_path):
    out = tmp_path / "shipped" / "cnn.keras"
    assert run_script("export_model.py", trained / "cnn.keras", "--out", out) == 0
    assert out.stat().st_size < 0.6 * (trained / "cnn.keras").stat().st_size
    x, _ = synthetic_faces(16, seed=3)
    before = inference.load_model(trained / "cnn.keras").predict(x[..., None].astype("float32"), verbose=0)
    after = inference.load_model(out).predict(x[..., None].astype("float32"), verbose=0)
    np.testing.assert_allclose(after, before, atol=1e-6)
    card = (out.parent / "MODEL_CARD.md").read_text()
    summary = (out.parent / "cnn_summary.json").read_text()
    assert '"exported_from"' in summary and "best validation accuracy" in card and "| epoch |" in card
    assert (out.parent / "cnn_history.csv").exists()


def test_export_needs_the_training_records(tmp_path, trained, capsys):
    lone = tmp_path / "lone.keras"
    lone.write_bytes((trained / "cnn.keras").read_bytes())
    assert run_script("export_model.py", lone, "--out", tmp_path / "out" / "cnn.keras") == 2
    assert "needs lone_summary.json and lone_history.csv beside it" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_without_a_trained_model_predict_uses_the_shipped_one(trained, synthetic_files, tmp_path, monkeypatch,
                                                              capsys):
    shipped = tmp_path / "shipped" / "cnn.keras"
    assert run_script("export_model.py", trained / "cnn.keras", "--out", shipped) == 0
    monkeypatch.chdir(tmp_path)  # no models/cnn.keras here
    monkeypatch.setattr(cli, "SHIPPED_MODEL", shipped)
    monkeypatch.setattr(cli, "ROOT", tmp_path)
    capsys.readouterr()
    assert run_script("predict.py", "--test", synthetic_files["test"], "--out", tmp_path / "sub.csv") == 0
    assert "using the shipped model" in capsys.readouterr().err
    rows = read_rows(tmp_path / "sub.csv")
    assert len(rows) > 1 and set(rows[0]) == {"id", "label"}
    # --out naming the default model itself: refused in one line, the note that would precede it held back
    line = refused(capsys, "predict.py", "--test", synthetic_files["test"], "--out", shipped, inputs=[shipped])
    assert line.startswith(f"error: {shipped}: is also an input"), line


def test_a_shipped_ensemble_predicts_together_and_its_first_member_explains(trained, trained_centre, synthetic_files,
                                                                             tmp_path, monkeypatch, capsys):
    shipped = tmp_path / "shipped" / "cnn.keras"
    assert run_script("export_model.py", trained / "cnn.keras", "--out", shipped) == 0
    assert run_script("export_model.py", trained_centre / "cnn.keras", "--out", shipped.with_name("cnn_2.keras")) == 0
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "SHIPPED_MODEL", shipped)
    monkeypatch.setattr(cli, "ROOT", tmp_path)
    capsys.readouterr()
    assert run_script("predict.py", "--test", synthetic_files["test"], "--out", tmp_path / "default.csv") == 0
    assert "using the shipped models shipped/cnn.keras + shipped/cnn_2.keras" in capsys.readouterr().err
    assert run_script("predict.py", "--test", synthetic_files["test"], "--out", tmp_path / "both.csv",
                      "--model", shipped, "--model", shipped.with_name("cnn_2.keras")) == 0
    assert read_rows(tmp_path / "default.csv") == read_rows(tmp_path / "both.csv")
    assert cli.default_model() == str(shipped)  # explanations and the report take one model: the first


def test_an_ensemble_card_scores_the_members_together_and_refuses_what_it_cannot_score(
        trained, synthetic_files, tmp_path, capsys):
    shipped = tmp_path / "shipped" / "cnn.keras"
    member = shipped.with_name("cnn_2.keras")
    train = synthetic_files["train"]
    assert run_script("export_model.py", trained / "cnn.keras", "--out", shipped, "--validate", train) == 2
    assert "--validate: scores an ensemble, and cnn.keras would be alone" in capsys.readouterr().err
    assert not shipped.parent.exists()
    assert run_script("export_model.py", trained / "cnn.keras", "--out", shipped, "--note", "The lead.") == 0
    broken = tmp_path / "broken.csv"
    broken.write_text("label,feature\n3,1 2 3\n")
    assert run_script("export_model.py", trained / "cnn.keras", "--out", member, "--validate", broken) == 2
    assert capsys.readouterr().err.startswith(f"error: {broken}") and not member.exists()
    assert run_script("export_model.py", trained / "cnn.keras", "--out", member, "--half", "--validate", train) == 0
    card = (shipped.parent / "MODEL_CARD.md").read_text()
    assert card.startswith("# An ensemble of 2") and "## cnn.keras" in card and "## cnn_2.keras" in card
    assert "The lead." in card and "float16 weights" in card and "float32 weights" in card
    scored = json.loads((shipped.parent / "cnn_2_summary.json").read_text())["ensemble"]
    assert scored["members"] == ["cnn.keras", "cnn_2.keras"]
    row = next(line for line in card.splitlines() if line.startswith("| the ensemble |"))
    columns = ["plain", "flip TTA", "zoom TTA (--tta)"]
    assert row == "| the ensemble | " + " | ".join(f"{scored[c]:.4f}" for c in columns) + " |"
    assert scored["plain"] > 0.5  # the synthetic signal is learned: these are real scores, not placeholders
    # exported again without --validate, the member's file is new: the old scores do not travel with it
    assert run_script("export_model.py", trained / "cnn.keras", "--out", member, "--half") == 0
    assert "ensemble" not in json.loads((shipped.parent / "cnn_2_summary.json").read_text())
    assert "Not scored as an ensemble" in (shipped.parent / "MODEL_CARD.md").read_text()


def test_a_member_of_a_member_joins_the_first_lead(tmp_path):
    for name in ("cnn", "cnn_2", "dnn"):
        (tmp_path / f"{name}.keras").touch()
    assert export_model.lead_of(tmp_path / "cnn_2_b.keras") == tmp_path / "cnn.keras"  # cnn's members hold it
    assert export_model.lead_of(tmp_path / "cnn_3.keras") == tmp_path / "cnn.keras"
    assert export_model.lead_of(tmp_path / "dnn.keras") is None
    assert export_model.lead_of(tmp_path / "cnn2.keras") is None  # a stem + _NAME only


def test_the_card_has_a_column_for_each_kind_of_tta():
    assert list(export_model.TTA_COLUMNS.values()) == [None, *TTA_ZOOMS]
    assert sum("(--tta)" in column for column in export_model.TTA_COLUMNS) == 1


def test_half_export_is_half_the_file_and_predicts_within_rounding(trained, tmp_path):
    full, half = tmp_path / "full" / "cnn.keras", tmp_path / "half" / "cnn.keras"
    assert run_script("export_model.py", trained / "cnn.keras", "--out", full) == 0
    assert run_script("export_model.py", trained / "cnn.keras", "--out", half, "--half") == 0
    stored = keras.saving.load_model(half, compile=False)
    numbers = sum(int(np.prod(w.shape)) for w in stored.weights)
    assert full.stat().st_size - half.stat().st_size >= 0.9 * 2 * numbers  # two bytes saved per number
    assert {w.dtype for w in stored.weights} == {"float16"}
    loaded = inference.load_model(half)
    assert {w.dtype for w in loaded.weights} == {"float32"}  # widened: explanations need float32 gradients
    x, y = synthetic_faces(200, seed=4)
    x = x[..., None].astype("float32")
    before = inference.load_model(full).predict(x, verbose=0)
    after = loaded.predict(x, verbose=0)
    assert 0 < np.abs(after - before).max() < 1e-2  # rounded, but only just
    assert (after.argmax(1) == before.argmax(1)).mean() >= 0.99
    assert abs((after.argmax(1) == y).mean() - (before.argmax(1) == y).mean()) <= 0.01
    assert "float16 weights" in (half.parent / "MODEL_CARD.md").read_text()
    assert "float32 weights" in (full.parent / "MODEL_CARD.md").read_text()
    again = tmp_path / "again" / "cnn.keras"  # a shipped file exported once more (to join an ensemble)
    assert run_script("export_model.py", half, "--out", again, "--half") == 0
    first, second = (json.loads(path.with_name("cnn_summary.json").read_text()) for path in (half, again))
    assert second["largest_probability_change"] == first["largest_probability_change"] > 0


def test_the_shipped_model_predicts_with_one_line_on_stderr(tmp_path, synthetic_files):
    """In a fresh process (where native libraries log their first messages): only the shipped-model note."""
    import subprocess
    import sys

    from conftest import ROOT, subprocess_env

    done = subprocess.run([sys.executable, str(ROOT / "predict.py"), "--test", synthetic_files["test"],
                           "--out", tmp_path / "sub.csv"], cwd=tmp_path, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [line for line in done.stderr.splitlines() if "using the shipped model" in line]
    assert len(done.stderr.splitlines()) == 1 and len(read_rows(tmp_path / "sub.csv")) == 60


def test_a_half_export_writes_nothing_on_stderr(trained, tmp_path):
    """In a fresh process: building the float16 copy made oneDNN log a line on CPUs without AVX-512 fp16."""
    import subprocess
    import sys

    from conftest import ROOT, subprocess_env

    done = subprocess.run([sys.executable, str(ROOT / "export_model.py"), trained / "cnn.keras",
                           "--out", tmp_path / "half" / "cnn.keras", "--half"], cwd=tmp_path, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and "float16" in done.stdout


def test_an_exported_model_loads_in_plain_keras_and_predicts_the_same(trained, tmp_path):
    """In a fresh Python that never imports this project, from a folder outside it."""
    import subprocess
    import sys

    from conftest import subprocess_env

    x = np.random.default_rng(3).integers(0, 256, (16, 48, 48, 1)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    expected = inference.load_model(trained / "cnn.keras").predict(x, verbose=0)
    for half, tolerance in ((False, 1e-5), (True, 5e-3)):  # a --half file computes in float16 in plain Keras
        out = tmp_path / ("half" if half else "full") / "cnn.keras"
        assert run_script("export_model.py", trained / "cnn.keras", "--out", out, *(["--half"] if half else [])) == 0
        code = ("import keras, numpy as np; m = keras.saving.load_model('cnn.keras'); "
                "np.save('p.npy', m.predict(np.load('../x.npy'), verbose=0))")
        done = subprocess.run([sys.executable, "-c", code], cwd=out.parent, env=subprocess_env(), capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        probabilities = np.load(out.parent / "p.npy")
        assert probabilities.shape == (16, 7)
        np.testing.assert_allclose(probabilities, expected, atol=tolerance)


def test_savedmodel_and_litert_exports_agree_with_the_keras_model(trained, synthetic_files, tmp_path):
    import pytest

    from fer import backend, records

    if backend.name() != "tensorflow":
        pytest.skip("SavedModel and LiteRT are TensorFlow's formats")
    out = tmp_path / "shipped" / "cnn.keras"
    assert run_script("export_model.py", trained / "cnn.keras", "--out", out, "--format", "savedmodel",
                      "--format", "litert") == 0
    assert (out.parent / "cnn_savedmodel" / "saved_model.pb").exists() and (out.parent / "cnn.tflite").exists()
    validation, _ = records.load_validation(synthetic_files["train"], trained / "cnn.keras")
    x = validation.x.reshape(-1, 48, 48, 1).astype("float32")
    expected = inference.load_model(trained / "cnn.keras").predict(x, verbose=0)
    for kind, path in (("savedmodel", out.parent / "cnn_savedmodel"), ("litert", out.parent / "cnn.tflite")):
        probabilities = backend.predict_exported(path, kind, x)
        assert probabilities.shape == (len(x), 7)
        np.testing.assert_allclose(probabilities, expected, atol=1e-3)
    summary = json.loads((out.parent / "cnn_summary.json").read_text())
    assert set(summary["formats"]) == {"savedmodel", "litert"}
    assert all(f["largest_probability_change"] < 1e-3 for f in summary["formats"].values())


def test_the_shipped_members_record_one_split_of_the_same_faces_whichever_file_they_read():
    """Members trained on train.npz.xz and on train.csv.xz record the faces' content key: each is then known as
    held out from either file, so all of them teach one run and are scored together."""
    from fer.records import SHIPPED_MODEL, recorded_split, summary_path

    members = sorted(SHIPPED_MODEL.parent.glob("cnn*.keras"))
    splits = [json.loads(summary_path(m).read_text())["split"] for m in members]
    keys = {s.get("faces") for s in splits}
    assert len(members) >= 2 and len(keys) == 1 and None not in keys, splits
    for member, split in zip(members, splits):
        recorded = recorded_split(member, "the digest of another file", faces=split["faces"])
        assert recorded == (split["val_fraction"], split["seed"], True)
        assert recorded_split(member, "the digest of another file", faces="other faces")[2] is False
