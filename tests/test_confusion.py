"""confusion.py on a model that learned the synthetic classes."""
import json

import numpy as np

from conftest import disturbed_copy, refused, run_script, synthetic_faces
from fer import CLASSES, inference, records
from fer.data import load_faces
from fer.scores import accuracy_interval, most_confused


def test_confusion_matrix_figure_and_metrics(trained, synthetic_files, tmp_path):
    assert run_script("confusion.py", "--model", trained / "cnn.keras", "--data", synthetic_files["train"],
                      "--out", tmp_path) == 0
    report = json.loads((tmp_path / "confusion.json").read_text())["cnn"]
    counts = np.array(report["counts"])
    summary = json.loads((trained / "cnn_summary.json").read_text())
    assert counts.sum() == summary["split"]["val_rows"]  # the validation split used in training
    assert abs(report["accuracy"] - summary["best_val_accuracy"]) < 1e-6
    assert report["per_class"]["Happy"]["recall"] > 0.7
    for cls, m in report["per_class"].items():  # each recall's interval: Wilson's, from the class's own counts
        k = CLASSES.index(cls)
        assert m["recall_interval"] == list(accuracy_interval(counts[k, k], counts[k].sum())), cls
    assert (tmp_path / "confusion.png").read_bytes().startswith(b"\x89PNG")


def test_most_confused_ranks_by_rate_of_the_true_class():
    counts = np.diag([50, 10, 10, 10, 10, 10, 10])
    counts[1, 2] = 10  # half of Disgust called Fear
    counts[0, 3] = 20  # a smaller share of Angry called Happy
    pairs = most_confused(counts, top=2)
    assert pairs[0][:2] == ("Disgust", "Fear") and abs(pairs[0][2] - 0.5) < 1e-9
    assert pairs[1][:2] == ("Angry", "Happy")
    assert len(most_confused(counts, top=5)) == 2  # no mistake left to name: never a class paired with itself
    assert most_confused(np.diag([5] * 7)) == []


def test_two_models_give_a_difference_matrix_and_macro_f1(trained, synthetic_files, tmp_path):
    """Two --model flags (here the same model twice) give the difference figure; macro-F1 is the mean of the
    classes' F1; the classes never predicted are those with neither precision nor recall."""
    model = trained / "cnn.keras"
    assert run_script("confusion.py", "--model", model, "--model", model, "--data", synthetic_files["train"],
                      "--out", tmp_path) == 0
    (figure,) = tmp_path.glob("*_difference.png")
    assert figure.read_bytes().startswith(b"\x89PNG")
    report = json.loads(next(tmp_path.glob("*.json")).read_text())["cnn"]
    assert abs(report["macro_f1"] - np.mean([m["f1"] for m in report["per_class"].values()])) < 1e-12
    assert report["never_predicted"] == [c for c, m in report["per_class"].items() if m["precision"] == 0
                                         and m["recall"] == 0 and m["support"] > 0]


def test_never_predicted_names_the_empty_columns():
    from fer.scores import never_predicted

    counts = np.diag([5, 0, 3, 3, 3, 3, 3])
    counts[1, 0] = 4  # every Disgust face called Angry
    assert never_predicted(counts) == ["Disgust"]


def fer2013_file(path, x, y, usage):
    """fer2013.csv's layout: emotion,pixels,Usage."""
    lines = ["emotion,pixels,Usage"] + [f"{c}," + " ".join(map(str, face.ravel())) + f",{u}"
                                        for c, face, u in zip(y, x.astype(int), usage)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_test_faces_are_scored_instead_of_the_validation_split(trained, synthetic_files, tmp_path, capsys):
    model = trained / "cnn.keras"
    labeled = synthetic_files["labeled_test"]
    assert run_script("confusion.py", "--model", model, "--test", labeled, "--out", tmp_path) == 0
    report = json.loads((tmp_path / "confusion_test.json").read_text())["cnn"]
    faces = load_faces(labeled)
    right = inference.predict_probabilities([inference.load_model(model)], faces.x).argmax(1) == faces.y
    assert np.sum(report["counts"]) == len(faces) == 60 and report["accuracy"] == np.mean(right)
    assert report["scored_on"] == f"test: every row of {labeled}" and not (tmp_path / "confusion.json").exists()
    # fer2013.csv: only its PrivateTest rows, which no run trains on
    x, y = synthetic_faces(30, seed=5)
    usage = ["Training"] * 12 + ["PublicTest"] * 7 + ["PrivateTest"] * 11
    fer2013 = fer2013_file(tmp_path / "fer2013.csv", x, y, usage)
    assert run_script("confusion.py", "--model", model, "--test", fer2013, "--out", tmp_path) == 0
    report = json.loads((tmp_path / "confusion_test.json").read_text())["cnn"]
    assert np.sum(report["counts"]) == 11 and "Usage = PrivateTest" in report["scored_on"]
    # no labels; the faces the model trained on; both sources at once
    for flags, words in ((["--test", synthetic_files["test"]], "has no labels to score against"),
                         (["--test", synthetic_files["train"]], f"{model} trained on this file"),
                         (["--test", labeled, "--data", synthetic_files["train"]], "not allowed with")):
        line = refused(capsys, "confusion.py", "--model", model, *flags, "--out", tmp_path / "no")
        assert words in line, line
    assert not (tmp_path / "no").exists()


def test_an_ensemble_with_tta_is_scored_as_predict_scores_it(trained, synthetic_files, tmp_path):
    model = trained / "cnn.keras"
    assert run_script("confusion.py", "--model", model, "--model", model, "--ensemble", "--tta", "flip",
                      "--data", synthetic_files["train"], "--out", tmp_path) == 0
    (name, report), = json.loads((tmp_path / "confusion_ensemble_flip.json").read_text()).items()
    _, val, _ = records.load_split(synthetic_files["train"], model)
    flipped = inference.predict_probabilities([inference.load_model(model)], val.x, "flip").argmax(1)
    plain = inference.predict_probabilities([inference.load_model(model)], val.x).argmax(1)
    assert name == "ensemble of 2" and report["models"] == [str(model)] * 2
    assert report["accuracy"] == np.mean(flipped == val.y) and np.sum(report["counts"]) == len(val)
    assert report["scored_on"].endswith(", flip TTA") and not (tmp_path / "confusion.json").exists()
    assert np.any(flipped != plain)  # the views did change some answers, so the check above tells them apart


def test_an_accuracy_interval_is_wilsons():
    """Checked against SciPy's own Wilson interval, near the middle and at both ends."""
    from scipy.stats import binomtest

    from fer.scores import accuracy_interval

    for right, n in ((4066, 5742), (140, 140), (0, 60), (3, 7)):
        reference = binomtest(right, n).proportion_ci(0.95, method="wilson")
        assert np.allclose(accuracy_interval(right, n), (reference.low, reference.high), atol=1e-12)
    low, high = accuracy_interval(4066, 5742)
    assert 0.011 < (high - low) / 2 < 0.013  # about a point and a fifth either way on FER2013's validation split


def test_a_paired_test_tells_apart_what_two_accuracies_alone_cannot():
    """Two models on the same 5,742 faces, one right on 60 faces more (a point): as independent accuracies that is
    noise, but no face goes the other way, so McNemar's test calls it real; the same point from 1,030 faces one way
    and 970 the other is not."""
    from math import comb

    from fer.scores import difference_is_noise, paired_comparison

    rng = np.random.default_rng(0)
    a = rng.random(5742) < 0.69
    wrong = np.flatnonzero(~a)
    b = a.copy()
    b[wrong[:60]] = True
    assert difference_is_noise(a.mean(), b.mean(), len(a))
    one_way = paired_comparison(b, a)
    assert (one_way["a_only"], one_way["b_only"]) == (60, 0) and one_way["significant"]
    assert abs(one_way["p_value"] - 2 * 0.5 ** 60) < 1e-25 and one_way["interval"][0] > 0
    right = np.flatnonzero(a)
    b = a.copy()
    b[wrong[:1030]], b[right[:970]] = True, False
    both_ways = paired_comparison(b, a)
    assert (both_ways["a_only"], both_ways["b_only"]) == (1030, 970)
    assert abs(both_ways["difference"] - 60 / 5742) < 1e-12
    assert not both_ways["significant"] and both_ways["interval"][0] < 0 < both_ways["interval"][1]
    # the exact two-sided p-value, from the binomial distribution written out
    small = paired_comparison([1] * 3 + [0] * 9 + [1] * 5, [0] * 3 + [1] * 9 + [1] * 5)
    assert abs(small["p_value"] - 2 * sum(comb(12, k) for k in range(4)) / 2 ** 12) < 1e-12
    assert paired_comparison([1, 1], [1, 1])["p_value"] == 1.0  # no disagreement: nothing to tell apart


def test_the_second_model_is_tested_against_the_first_on_the_same_faces(trained, synthetic_files, tmp_path, capsys):
    """A second model (the first with its output layer disturbed) disagrees on some faces; the record counts those
    faces from each side, as the two models' own predictions do."""
    from scipy.stats import binom, binomtest

    first = trained / "cnn.keras"
    (tmp_path / "models").mkdir()
    second = disturbed_copy(first, tmp_path / "models" / "other.keras")
    assert run_script("confusion.py", "--model", first, "--model", second, "--data", synthetic_files["train"],
                      "--out", tmp_path) == 0
    report = json.loads((tmp_path / "confusion_cnn_vs_other.json").read_text())
    _, val, _ = records.load_split(synthetic_files["train"], first)
    right = [inference.predict_probabilities([inference.load_model(p)], val.x).argmax(1) == val.y
             for p in (first, second)]
    c = report["other"]["against_first"]
    assert (c["right_only_first"], c["right_only_here"]) == (np.sum(right[0] & ~right[1]), np.sum(right[1] & ~right[0]))
    assert c["right_only_first"] + c["right_only_here"] > 0  # the disturbance did change answers
    assert c["first"] == "cnn" and "against_first" not in report["cnn"] and c["faces"] == len(val)
    low = min(c["right_only_first"], c["right_only_here"])
    assert abs(c["p_value"] - min(1, 2 * binom.cdf(low, c["right_only_first"] + c["right_only_here"], 0.5))) < 1e-12
    for name, entry in report.items():
        right_count = int(np.trace(np.array(entry["counts"])))
        reference = binomtest(right_count, len(val)).proportion_ci(0.95, method="wilson")
        assert np.allclose(entry["accuracy_interval"], (reference.low, reference.high), atol=1e-12), name
    out = capsys.readouterr().out
    assert (f"other alone right on {c['right_only_here']:,}, cnn alone on {c['right_only_first']:,}; McNemar "
            in out), out
