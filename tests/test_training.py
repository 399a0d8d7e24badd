"""Training end to end through the scripts: it learns, writes everything, resumes, runs on JAX."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import (QUICK, ROOT, read_rows, refused, run_script, submission_accuracy, subprocess_env, synthetic_faces,
                      kill_after_epochs, write_csv)
from fer import CLASSES
from fer.records import augmentation_words, load_split, recipe_words
from fer.resume import backed_up_epochs


def test_a_clean_tail_the_dropout_and_the_batch_are_recorded_and_in_the_recipe(synthetic_files, tmp_path):
    assert run_script("train_cnn.py", "--train", synthetic_files["train"], *QUICK, "--epochs", "4", "--limit", "256",
                      "--erase", "0.5", "--clean-tail", "0.5", "--dropout", "0.25", "--label-smoothing", "0.2",
                      "--model", tmp_path / "cnn.keras", "--figures", tmp_path) == 0
    assert [float(r["clean"]) for r in read_rows(tmp_path / "cnn_history.csv")] == [0, 0, 1, 1]
    summary = json.loads((tmp_path / "cnn_summary.json").read_text())
    assert summary["settings"]["clean_tail"] == 0.5 and "clean tail 0.5" in recipe_words(summary)
    assert summary["settings"]["dropout"] == 0.25 and ", dropout 0.25, " in recipe_words(summary)
    assert ", batch 32, " in recipe_words(summary) and " wd 0.01, label smoothing 0.2, " in recipe_words(summary)


def test_validate_from_skips_the_early_validations_and_keeps_the_best_validated_epoch(synthetic_files, tmp_path,
                                                                                      capsys):
    """--validate-from 0.5 of 4 epochs validates epochs 3 and 4; 0.9 of 2 epochs is never reached by an epoch's
    middle, so the last epoch is validated after training. Either way the model kept scores its record."""
    for epochs, share in (("4", "0.5"), ("2", "0.9")):
        model = tmp_path / f"cnn_{epochs}.keras"
        assert run_script("train_cnn.py", "--train", synthetic_files["train"], *QUICK, "--epochs", epochs,
                          "--limit", "256", "--validate-from", share, "--model", model, "--figures", tmp_path) == 0
        rows = read_rows(tmp_path / f"cnn_{epochs}_history.csv")
        validated = [r["val_accuracy"] != "nan" for r in rows]
        assert validated == ([False, False, True, True] if epochs == "4" else [False, True]), rows
        summary = json.loads((tmp_path / f"cnn_{epochs}_summary.json").read_text())
        scores = {int(r["epoch"]): float(r["val_accuracy"]) for r, v in zip(rows, validated) if v}
        assert summary["best_val_accuracy"] == round(max(scores.values()), 4) and summary["best_epoch"] in scores
        assert f"{epochs} ep validated from {float(share):.0%}" in recipe_words(summary)
        capsys.readouterr()
        assert run_script("predict.py", "--model", model, "--validate", synthetic_files["train"]) == 0
        plain = float(next(line for line in capsys.readouterr().out.splitlines()
                           if line.startswith(str(model))).split()[-3])
        assert abs(plain - summary["best_val_accuracy"]) < 1e-3
    assert refused(capsys, "train_cnn.py", "--train", synthetic_files["train"], *QUICK, "--val-fraction", "0",
                   "--validate-from", "0.5").startswith("error: --validate-from: needs held-out faces")


def test_a_tail_on_the_views_is_named_in_the_recipe():
    settings = dict(augment="affine", augment_scale=0.75, erase=0.25, clean_tail=0.15)
    assert augmentation_words(settings) == "affine x0.75, erasing 0.25, clean tail 0.15"
    assert augmentation_words({**settings, "tail_views": True}) == \
        "affine x0.75, erasing 0.25, clean tail 0.15 on --tta's views"


def test_cnn_learns_the_synthetic_signal(trained):
    summary = json.loads((trained / "cnn_summary.json").read_text())
    assert summary["best_val_accuracy"] >= 0.9, summary
    assert summary["epochs"] == 6 and summary["split"]["train_rows"] == 512 and summary["split"]["val_rows"] == 140
    assert summary["trainable_parameters"] > 50_000 and summary["train_images_per_second"] > 0
    assert summary["settings"]["dropout"] == 0.4 and "dropout" not in recipe_words(summary)  # the default: unsaid
    assert "label smoothing" not in recipe_words(summary)  # nor the default label smoothing
    assert summary["settings"]["arch"] == summary["architecture"] == "vgg"


def test_run_writes_history_figure_and_complete_submission(trained, synthetic_files):
    history = read_rows(trained / "cnn_history.csv")
    assert [int(r["epoch"]) for r in history] == [1, 2, 3, 4, 5, 6]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "train_seconds"} <= set(history[0])
    png = (trained / "figures" / "cnn_history.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    submission = read_rows(trained / "cnn_submission.csv")
    assert [int(r["id"]) for r in submission] == synthetic_files["test_ids"].tolist()
    labels = np.array([int(r["label"]) for r in submission])
    assert np.mean(labels == synthetic_files["test_labels"]) >= 0.85


def test_saved_model_takes_raw_pixels_and_predict_agrees(trained, synthetic_files, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    assert run_script("predict.py", "--model", trained / "cnn.keras", "--test", synthetic_files["labeled_test"],
                      "--out", out) == 0
    accuracy = submission_accuracy(out, synthetic_files["test_labels"])
    assert accuracy >= 0.85 and len(read_rows(out)) == 60
    # Mirroring swaps these synthetic classes (they sit left or right), so TTA must cost accuracy here:
    # proof that the mirrored views are really averaged in, by both kinds (--tta alone is zoom).
    for tta in (["--tta"], ["--tta", "flip"]):
        assert run_script("predict.py", "--model", trained / "cnn.keras", "--test", synthetic_files["labeled_test"],
                          "--out", out, *tta) == 0
        printed = capsys.readouterr().out
        assert f"with {tta[-1] if len(tta) > 1 else 'zoom'} TTA" in printed
        assert submission_accuracy(out, synthetic_files["test_labels"]) < accuracy - 0.1
    # Two copies of the same model average to the same labels as one.
    once, twice = tmp_path / "once.csv", tmp_path / "twice.csv"
    run_script("predict.py", "--model", trained / "cnn.keras", "--test", synthetic_files["test"], "--out", once)
    run_script("predict.py", "--model", trained / "cnn.keras", "--model", trained / "cnn.keras",
               "--test", synthetic_files["test"], "--out", twice)
    assert read_rows(once) == read_rows(twice) == read_rows(trained / "cnn_submission.csv")


def test_predict_writes_the_probabilities_its_labels_come_from(trained, synthetic_files, tmp_path, capsys):
    out, probabilities = tmp_path / "sub.csv", tmp_path / "p.csv"
    assert run_script("predict.py", "--model", trained / "cnn.keras", "--test", synthetic_files["test"], "--tta",
                      "flip", "--out", out, "--probabilities", probabilities) == 0
    rows, labels = read_rows(probabilities), read_rows(out)
    assert list(rows[0]) == ["id", *(f"p_{name}" for name in CLASSES)]
    p = np.array([[float(r[f"p_{name}"]) for name in CLASSES] for r in rows])
    assert [r["id"] for r in rows] == [r["id"] for r in labels] == [str(i) for i in synthetic_files["test_ids"]]
    assert np.array_equal(p.argmax(1), [int(r["label"]) for r in labels]) and np.allclose(p.sum(1), 1, atol=1e-4)
    assert len(set(p.argmax(1))) > 1 and p.max(1).min() < 0.99  # real probabilities, not one-hot labels
    # --temperature below 1 sharpens them: every face more confident, with the same label
    sharp = tmp_path / "sharp.csv"
    assert run_script("predict.py", "--model", trained / "cnn.keras", "--test", synthetic_files["test"], "--tta",
                      "flip", "--out", tmp_path / "sub2.csv", "--probabilities", sharp, "--temperature", "0.5") == 0
    q = np.array([[float(r[f"p_{name}"]) for name in CLASSES] for r in read_rows(sharp)])
    assert np.array_equal(q.argmax(1), p.argmax(1)) and np.allclose(q.sum(1), 1, atol=1e-4)
    squared = p ** 2 / np.sum(p ** 2, axis=1, keepdims=True)  # T = 0.5: each probability squared, renormalized
    np.testing.assert_allclose(q, squared, atol=2e-4)
    assert np.all(q.max(1) >= p.max(1) - 1e-4) and np.mean(q.max(1) > p.max(1) + 0.01) > 0.5
    assert "--temperature: changes the probabilities only" in refused(
        capsys, "predict.py", "--model", trained / "cnn.keras", "--test", synthetic_files["test"], "--out",
        tmp_path / "sub3.csv", "--temperature", "2")
    assert not (tmp_path / "sub3.csv").exists()
    for flags, word in ((["--validate", synthetic_files["train"]], "--probabilities: needs --test"),
                        (["--test", synthetic_files["test"], "--out", out], "is named twice as an output")):
        assert word in refused(capsys, "predict.py", "--model", trained / "cnn.keras", *flags,
                               "--probabilities", out if "--out" in flags else probabilities)


def test_dnn_matches_the_cnn_and_learns(trained, synthetic_files, capsys):
    status = run_script("train_dnn.py", "--train", synthetic_files["train"], "--match", trained / "cnn.keras",
                        *QUICK[:2], "--epochs", "6", "--no-augment", "--lr", "3e-3",
                        "--model", trained / "dnn.keras", "--figures", trained / "figures")
    assert status == 0
    printed = capsys.readouterr().out
    assert "parameters: CNN" in printed
    cnn = json.loads((trained / "cnn_summary.json").read_text())
    dnn = json.loads((trained / "dnn_summary.json").read_text())
    assert dnn["matched_parameters"] == cnn["trainable_parameters"]
    assert cnn["settings"]["width"] == 0.25 and not {"width", "arch"} & set(dnn["settings"])  # a CNN's only
    assert dnn["settings"]["dropout"] == cnn["settings"]["dropout"] == 0.4  # the DNN's after each hidden layer
    assert abs(dnn["trainable_parameters"] - cnn["trainable_parameters"]) <= 0.01 * cnn["trainable_parameters"]
    assert dnn["best_val_accuracy"] >= 0.6


def test_bundled_sample_trains_and_submits(in_tmp):
    status = run_script("train_cnn.py", "--train", ROOT / "data/sample/train.csv.xz",
                        "--test", ROOT / "data/sample/test.csv.xz", "--preset", "smoke", "--epochs", "1",
                        "--width", "0.25")
    assert status == 0
    rows = read_rows(in_tmp / "models" / "cnn_submission.csv")
    assert len(rows) == 140 and {r["label"] for r in rows} <= set("0123456")
    assert (in_tmp / "figures" / "cnn_history.png").exists()


@pytest.mark.skipif(__import__("keras").backend.backend() != "tensorflow", reason="ImageDataGenerator is TF-only")
def test_imagedatagenerator_pipeline_runs(synthetic_files, tmp_path):
    status = run_script("train_cnn.py", "--train", synthetic_files["train"], *QUICK, "--epochs", "1",
                        "--augment", "imagedatagenerator", "--model", tmp_path / "idg.keras",
                        "--figures", tmp_path)
    assert status == 0 and (tmp_path / "idg.keras").exists()


def test_erasing_and_mixup_still_learn_and_are_recorded(synthetic_files, tmp_path, capsys):
    out = tmp_path / "cnn.keras"
    status = run_script("train_cnn.py", "--train", synthetic_files["train"], *QUICK, "--epochs", "6", "--no-augment",
                        "--erase", "0.5", "--mixup", "0.2", "--model", out, "--figures", tmp_path)
    assert status == 0
    summary = json.loads((tmp_path / "cnn_summary.json").read_text())
    assert summary["settings"]["erase"] == 0.5 and summary["settings"]["mixup"] == 0.2
    assert summary["best_val_accuracy"] >= 0.8, summary
    import keras

    from fer.augment import RandomErasing

    assert any(isinstance(layer, RandomErasing) for layer in keras.saving.load_model(out).layers)
    capsys.readouterr()


def test_resume_after_kill_continues_from_the_last_epoch(synthetic_files, tmp_path):
    command = [sys.executable, str(ROOT / "train_cnn.py"), "--train", synthetic_files["train"], *QUICK,
               "--epochs", "5", "--model", str(tmp_path / "cnn.keras"), "--figures", str(tmp_path)]
    history = tmp_path / "cnn_history.csv"
    kill_after_epochs(command, history, 2, tmp_path)
    done_before = backed_up_epochs(tmp_path / ".resume" / "cnn")  # the history may be an epoch ahead of the backup
    assert 1 <= done_before < 5

    changed = subprocess.run(command + ["--lr", "0.01"], cwd=tmp_path, env=subprocess_env(), capture_output=True,
                             text=True, timeout=300)
    assert changed.returncode == 2 and "other settings (lr)" in changed.stderr and "--fresh" in changed.stderr
    wider = subprocess.run(command + ["--width", "0.5"], cwd=tmp_path, env=subprocess_env(), capture_output=True,
                           text=True, timeout=300)  # its weights would not fit the backup's shapes
    assert wider.returncode == 2 and "other settings (width)" in wider.stderr
    other = subprocess.run(command + ["--arch", "resnet", "--dropout", "0.25"], cwd=tmp_path, env=subprocess_env(),
                           capture_output=True, text=True, timeout=300)  # another network on the same backup
    assert other.returncode == 2 and "other settings (arch, dropout) is here" in other.stderr

    again = subprocess.run(command, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"Epoch {done_before + 1}/5" in again.stdout and "Epoch 1/5" not in again.stdout
    assert [int(r["epoch"]) for r in read_rows(history)] == [1, 2, 3, 4, 5]
    assert not (tmp_path / ".resume" / "cnn").exists()
    assert json.loads((tmp_path / "cnn_summary.json").read_text())["epochs"] == 5


def test_a_dnn_resumes_only_with_the_same_layers(synthetic_files, tmp_path):
    """--depth and --params change the DNN's widths, which no setting holds; the backup's shapes would not fit."""
    command = [sys.executable, str(ROOT / "train_dnn.py"), "--train", synthetic_files["train"], *QUICK[:2],
               "--params", "50000", "--epochs", "200", "--no-augment", "--model", str(tmp_path / "dnn.keras"),
               "--figures", str(tmp_path)]
    kill_after_epochs(command, tmp_path / "dnn_history.csv", 2, tmp_path)
    assert backed_up_epochs(tmp_path / ".resume" / "dnn") >= 1
    deeper = subprocess.run(command + ["--depth", "2"], cwd=tmp_path, env=subprocess_env(), capture_output=True,
                            text=True, timeout=300)
    assert deeper.returncode == 2 and deeper.stderr.count("\n") == 1, deeper.stderr
    assert "other settings (network: dnn_" in deeper.stderr and "--fresh" in deeper.stderr


def test_jax_backend_trains_and_its_model_loads_here(synthetic_files, tmp_path):
    """Under JAX too: the model learns, --validate-from 0.5 validates only epochs 3 and 4, and the one kept
    scores its record."""
    pytest.importorskip("jax")
    done = subprocess.run([sys.executable, str(ROOT / "train_cnn.py"), "--train", synthetic_files["train"],
                           "--test", synthetic_files["test"], *QUICK, "--epochs", "4", "--no-augment",
                           "--validate-from", "0.5", "--model", str(tmp_path / "jax.keras"), "--figures",
                           str(tmp_path)],
                          cwd=tmp_path, env=subprocess_env(KERAS_BACKEND="jax"), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads((tmp_path / "jax_summary.json").read_text())
    assert summary["backend"] == "jax" and summary["best_val_accuracy"] >= 0.8
    rows = [{k: float(v) for k, v in r.items()} for r in read_rows(tmp_path / "jax_history.csv")]
    assert [not np.isnan(r["val_accuracy"]) for r in rows] == [False, False, True, True], rows
    assert summary["best_epoch"] in (3, 4)
    # training time is still split from validation time with the batch-end hooks on a worker thread
    assert all(0 < r["train_seconds"] < r["epoch_seconds"] for r in rows)
    from fer import inference
    from fer.data import load_faces

    model = inference.load_model(tmp_path / "jax.keras")  # saved under JAX, loaded under this backend
    here = inference.predict_probabilities([model], load_faces(synthetic_files["test"]).x).argmax(1)
    there = np.array([int(r["label"]) for r in read_rows(tmp_path / "jax_submission.csv")])
    assert np.mean(here == there) >= 0.98
    held_out = load_split(synthetic_files["train"], tmp_path / "jax.keras")[1]
    kept = inference.predict_probabilities([model], held_out.x).argmax(1)
    assert abs(np.mean(kept == held_out.y) - summary["best_val_accuracy"]) < 2e-3


TRAINING_CALLBACKS = """
import keras
from fer.clock import ClockSchedule
from fer.records import output_paths
from fer.resume import AtomicBackupAndRestore
from fer.training import EpochRecorder
paths = output_paths("{model}", "{figures}")
callbacks = [ClockSchedule(1e-3, 1, 10, budget_s=60, spent_s=0, epoch_s=5), EpochRecorder(paths, 100, False),
             AtomicBackupAndRestore(str(paths["resume"]))]
print(keras.callbacks.CallbackList(callbacks)._async_train, keras.callbacks.CallbackList(
    [*callbacks, keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, l: None)])._async_train)
"""


def test_under_jax_the_training_callbacks_let_steps_run_ahead_of_their_hooks(tmp_path):
    """Keras under JAX dispatches batch-end hooks to a worker thread only if every callback is async-safe; one
    synchronous hook makes every step wait for the device before the host feeds the next (Keras's own
    CallbackList decides; the second list adds an ordinary hook to show the check can fail)."""
    pytest.importorskip("jax")
    code = TRAINING_CALLBACKS.format(model=tmp_path / "m.keras", figures=tmp_path)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=subprocess_env(KERAS_BACKEND="jax"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "False"]


def test_predict_validate_scores_the_held_out_split(trained, synthetic_files, tmp_path, capsys, monkeypatch):
    import json

    out = tmp_path / "sub.csv"
    model = trained / "cnn.keras"
    assert run_script("predict.py", "--model", model, "--model", model, "--test", synthetic_files["test"],
                      "--out", out, "--validate", synthetic_files["train"]) == 0
    printed = capsys.readouterr().out
    split = json.loads((trained / "cnn_summary.json").read_text())["split"]
    assert f"validation accuracy on {split['val_rows']:,} faces" in printed and "the split used in training" in printed
    assert printed.split()[printed.split().index("model") + 1:][:5] == ["plain", "flip", "TTA", "zoom", "TTA"]
    rows = {line.rsplit(None, 3)[0]: line.split()[-3:] for line in printed.splitlines()
            if line.startswith((str(model), "ensemble of 2"))}
    assert set(rows) == {str(model), "ensemble of 2"}
    plain, flipped, zoomed = map(float, rows[str(model)])
    best = json.loads((trained / "cnn_summary.json").read_text())["best_val_accuracy"]
    assert abs(plain - best) < 1e-3  # the same faces Keras validated on during training
    assert flipped < plain - 0.1 and zoomed < plain - 0.1  # mirrored synthetic classes: mirrors must hurt here
    assert rows["ensemble of 2"] == rows[str(model)]  # two copies of one model average to it
    from fer.scores import accuracy_interval

    low, high = accuracy_interval(round(plain * split["val_rows"]), split["val_rows"])
    assert f"(95% interval of ensemble of 2, plain: {low:.4f} to {high:.4f};" in printed

    # --validate alone scores the same and writes nothing; with neither --test nor --validate there is nothing to do
    alone = tmp_path / "alone"
    alone.mkdir()
    monkeypatch.chdir(alone)  # where the default submission.csv would go
    assert run_script("predict.py", "--model", model, "--validate", synthetic_files["train"]) == 0
    scored = capsys.readouterr().out
    assert [line for line in scored.splitlines() if line.startswith(str(model))] == \
        [line for line in printed.splitlines() if line.startswith(str(model))][:1]
    assert "wrote" not in scored and list(alone.iterdir()) == []
    assert refused(capsys, "predict.py", "--model", model).startswith("error: --test: required")
    for flag in (["--out", "sub.csv"], ["--tta"]):  # they shape a submission, and there is none to shape
        line = refused(capsys, "predict.py", "--model", model, "--validate", synthetic_files["train"], *flag)
        assert line.startswith(f"error: {flag[0]}: needs --test")


def test_predict_validate_scores_the_ensemble_without_each_member(trained, synthetic_files, tmp_path, capsys):
    """Three members, one of them made worse (its class scores shifted by one): leaving it out gives the model
    alone, leaving out either copy of the model gives the pair of the other copy and the worse one."""
    import shutil

    from fer import inference, records

    model, worse = trained / "cnn.keras", tmp_path / "worse.keras"
    network = inference.load_model(model)
    last = next(layer for layer in reversed(network.layers) if layer.weights)
    last.set_weights([np.roll(w, 1, axis=-1) for w in last.get_weights()])  # votes for the next class
    network.save(worse)
    shutil.copy(trained / "cnn_summary.json", tmp_path / "worse_summary.json")  # trained on the same split
    members = ["--model", model, "--model", model, "--model", worse]
    assert run_script("predict.py", *members, "--test", synthetic_files["test"], "--out", tmp_path / "sub.csv",
                      "--validate", synthetic_files["train"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("validation accuracy on")):]
    rows = [(line.rsplit(None, 3)[0].strip(), [float(v) for v in line.split()[-3:]]) for line in table[2:9]]
    assert [name for name, _ in rows] == [str(model), str(model), str(worse), "ensemble of 3",
                                          f"without {model}", f"without {model}", f"without {worse}"]
    alone, _, _, _, without_first, without_second, without_worse = [scores for _, scores in rows]
    assert without_worse == alone  # two copies of the model average to it
    assert without_first == without_second  # either copy left out leaves the same pair
    _, val, _ = records.load_split(synthetic_files["train"], [model])
    pair = inference.predict_probabilities([network, inference.load_model(model)], val.x).argmax(1)
    assert without_first[0] == pytest.approx(np.mean(pair == val.y), abs=1e-4)
    assert without_first[0] != alone[0]  # the worse member does change the pair's votes
    # and each one tested: McNemar's p of the ensemble without it against all three, on the same faces
    from fer.scores import paired_comparison

    tests = table[table.index(next(line for line in table if line.startswith("McNemar p"))):][1:4]
    everyone = inference.predict_probabilities([network] + [inference.load_model(model)] * 2, val.x).argmax(1)
    p_plain = paired_comparison(pair == val.y, everyone == val.y)["p_value"]
    assert [line.split()[:2] for line in tests] == [["without", str(m)] for m in (model, model, worse)]
    assert [float(line.split()[-3]) for line in tests[:2]] == [round(p_plain, 3)] * 2


def test_predict_validate_also_scores_the_faces_that_do_not_repeat_a_training_face(trained, tmp_path, capsys):
    """Five validation faces are made copies of training faces of their class (the split depends only on the
    labels, so it stays the same): the second table leaves exactly those out."""
    from fer import inference
    from fer.data import Faces, split_train_val

    x, y = synthetic_faces(700, seed=11)
    train, val = split_train_val(Faces(x=x, y=y), 0.2, 0)
    copies = [next(t for t in train if y[t] == y[v]) for v in val[:5]]
    x[val[:5]] = x[copies]
    data = write_csv(tmp_path / "train.csv", x, y)
    test = write_csv(tmp_path / "test.csv", np.concatenate([x[train[:3]], x[val[5:9]]]), range(7), "id,feature")
    model = trained / "cnn.keras"
    assert run_script("predict.py", "--model", model, "--test", test, "--out", tmp_path / "sub.csv",
                      "--validate", data) == 0
    printed = capsys.readouterr().out
    assert f"the same on the {len(val) - 5:,} faces that are not also training faces (5 repeat one" in printed
    assert f"3 of the 7 faces of {test} repeat a training face pixel for pixel, against 5 of the {len(val)}" in printed
    plain_all, plain_new = [float(line.split()[-3]) for line in printed.splitlines() if line.startswith(str(model))]
    predicted = inference.predict_probabilities([inference.load_model(model)], x[val]).argmax(1) == y[val]
    assert plain_all == pytest.approx(predicted.mean(), abs=1e-4)
    assert plain_new == pytest.approx(predicted[5:].mean(), abs=1e-4)


def test_predict_fit_scores_the_training_split_the_model_learned_from(trained, synthetic_files, tmp_path, capsys):
    import json

    from fer import inference
    from fer.data import load_labeled, split_train_val

    out, model = tmp_path / "sub.csv", trained / "cnn.keras"
    assert run_script("predict.py", "--model", model, "--test", synthetic_files["test"], "--out", out,
                      "--validate", synthetic_files["train"], "--fit") == 0
    printed = capsys.readouterr().out.splitlines()
    heading = next(i for i, line in enumerate(printed) if line.startswith("accuracy on the "))
    fit, held_out, gap = map(float, printed[heading + 2].split()[-3:])
    split = json.loads((trained / "cnn_summary.json").read_text())["split"]
    faces = load_labeled(synthetic_files["train"])
    rows, _ = split_train_val(faces, split["val_fraction"], split["seed"])
    assert f"{len(rows):,} training faces" in printed[heading]
    learned = faces.subset(rows)
    expected = np.mean(inference.predict_probabilities([inference.load_model(model)], learned.x).argmax(1) == learned.y)
    assert abs(fit - expected) < 1e-4 and abs(gap - (fit - held_out)) < 2e-3

    assert run_script("predict.py", "--model", model, "--test", synthetic_files["test"],
                      "--out", tmp_path / "other.csv", "--fit") == 2
    assert "--fit" in capsys.readouterr().err and not (tmp_path / "other.csv").exists()


def test_predict_refuses_a_bad_validate_file_before_writing(trained, synthetic_files, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("label,feature\n3,1 2 3\n")
    out = tmp_path / "sub.csv"
    assert run_script("predict.py", "--model", trained / "cnn.keras", "--test", synthetic_files["test"],
                      "--out", out, "--validate", bad) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_seed_leaves_the_validation_split_alone_and_split_seed_moves_it(synthetic_files):
    from fer.data import prepare_data
    from fer.settings import DEFAULTS, PRESETS

    base = {**DEFAULTS, **PRESETS["smoke"]}
    first = prepare_data(synthetic_files["train"], base)
    reseeded = prepare_data(synthetic_files["train"], {**base, "seed": 3})
    moved = prepare_data(synthetic_files["train"], {**base, "split_seed": 1})
    np.testing.assert_array_equal(first["x_val"], reseeded["x_val"])  # an ensemble of seeds shares its faces
    assert reseeded["split"] == first["split"] and moved["split"]["seed"] == 1
    assert len(moved["x_val"]) == len(first["x_val"]) and not np.array_equal(moved["x_val"], first["x_val"])


def test_predict_refuses_to_score_models_trained_on_different_splits(trained, synthetic_files, tmp_path, capsys):
    import json
    import shutil

    other = tmp_path / "other.keras"
    shutil.copy(trained / "cnn.keras", other)
    summary = json.loads((trained / "cnn_summary.json").read_text())
    summary["split"]["seed"] = 1  # as if trained with --split-seed 1
    (tmp_path / "other_summary.json").write_text(json.dumps(summary))
    out = tmp_path / "sub.csv"
    assert run_script("predict.py", "--model", trained / "cnn.keras", "--model", other, "--test",
                      synthetic_files["test"], "--out", out, "--validate", synthetic_files["train"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(other) in err and "--split-seed" in err
    assert not out.exists()
    # without --validate nothing is scored, so the ensemble may still predict
    assert run_script("predict.py", "--model", trained / "cnn.keras", "--model", other, "--test",
                      synthetic_files["test"], "--out", out) == 0


def test_ema_validates_and_keeps_the_averaged_weights_and_trains_on_the_raw_ones(synthetic_files, tmp_path,
                                                                                  monkeypatch):
    """With --ema the kept model holds the optimizer's moving average of the weights, while the backup (and
    training) see the raw weights: a swap left in place, or none, fails one of the two."""
    import keras

    from conftest import train_cnn_settings
    from fer import training
    from fer.data import prepare_data
    from fer.records import output_paths

    seen = {}

    class Backup(training.AtomicBackupAndRestore):
        def on_epoch_end(self, epoch, logs=None):
            optimizer = self.model.optimizer
            seen["raw"] = {w.path: np.asarray(w) for w in self.model.trainable_weights}
            seen["average"] = {v.path: np.asarray(a) for v, a in zip(optimizer._trainable_variables,
                                                                     optimizer._model_variables_moving_average)}
            super().on_epoch_end(epoch, logs)

    monkeypatch.setattr(training, "AtomicBackupAndRestore", Backup)
    settings = train_cnn_settings("--train", synthetic_files["train"], *QUICK, "--epochs", "2", "--no-augment",
                                  "--val-fraction", "0", "--ema", "0.99")
    data = prepare_data(synthetic_files["train"], settings)
    paths = output_paths(tmp_path / "ema.keras", tmp_path)
    training.fit(training.build_for(settings, data), data, settings, paths)
    kept = {w.path: np.asarray(w) for w in keras.saving.load_model(paths["model"]).trainable_weights}
    assert kept.keys() == seen["average"].keys() == seen["raw"].keys()
    assert all(np.allclose(kept[k], seen["average"][k], atol=1e-6) for k in kept)
    assert not all(np.allclose(kept[k], seen["raw"][k], atol=1e-3) for k in kept)
