"""robustness.py and fer/corruptions.py: each corruption does what it says at the strength it says, the share kept
measures what a model keeps, a model that pools over positions withstands shifts that a position-bound one does
not, and the script's files agree with the model."""
import json

import numpy as np
import pytest

from conftest import disturbed_copy, read_rows, refused, run_script
from fer import inference
from fer.corruptions import CORRUPTIONS, corrupted, predictions_under, retained, retained_difference, strengths

RANDOM = ("shift", "rotation", "noise", "occlusion")  # those that draw something for each face


def mass_centre(image, background=0.0):
    weights = np.asarray(image, np.float64) - background
    rows, columns = np.indices(weights.shape)
    return np.array([np.sum(rows * weights), np.sum(columns * weights)]) / weights.sum()


def dots(n, row=23.5, column=23.5, size=2):
    """n dark faces with a bright size x size dot whose middle is at (row, column)."""
    x = np.zeros((n, 48, 48), np.float32)
    r, c = int(row - size / 2 + 0.5), int(column - size / 2 + 0.5)
    x[:, r:r + size, c:c + size] = 200
    return x


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_leaves_clean_faces_alone_stays_in_range_and_repeats_with_its_seed(name):
    x = np.random.default_rng(0).integers(0, 256, (5, 48, 48)).astype(np.uint8)
    levels = CORRUPTIONS[name].levels
    assert len(levels) == 6 and np.array_equal(corrupted(x, name, levels[0]), x.astype(np.float32))
    for level in levels[1:]:
        faces = corrupted(x, name, level, seed=3)
        assert faces.shape == x.shape and faces.dtype == np.float32 and 0 <= faces.min() and faces.max() <= 255
        assert not np.allclose(faces, x) and np.array_equal(faces, corrupted(x, name, level, seed=3))
        if name in RANDOM:
            assert not np.array_equal(faces, corrupted(x, name, level, seed=4))


def test_a_shift_moves_each_face_by_its_level_in_one_direction_per_face():
    x = dots(6)
    moves = []
    for level in CORRUPTIONS["shift"].levels[1:]:
        moved = np.array([mass_centre(face) for face in corrupted(x, "shift", level)]) - mass_centre(x[0])
        assert np.allclose(np.linalg.norm(moved, axis=1), level, atol=0.02)
        moves.append(moved / level)
    assert np.allclose(moves, moves[0], atol=0.01)  # the same direction at every level
    assert np.ptp(moves[0], axis=0).max() > 0.5  # and not the same for every face


def test_a_rotation_turns_each_face_about_its_centre_by_its_level():
    x = dots(6, column=35.5)  # 12 pixels right of the centre
    for level in CORRUPTIONS["rotation"].levels[1:]:
        for face in corrupted(x, "rotation", level):
            row, column = mass_centre(face) - 23.5
            assert np.hypot(row, column) == pytest.approx(12, abs=0.3)
            assert abs(np.degrees(np.arctan2(row, column))) == pytest.approx(level, abs=1.5)


def test_blur_spreads_a_point_by_its_sigma():
    x = dots(1, size=1, row=24, column=24)
    for sigma in CORRUPTIONS["blur"].levels[1:]:
        face = corrupted(x, "blur", sigma)[0].astype(np.float64)
        rows = np.arange(48)
        profile = face.sum(1) / face.sum()
        spread = np.sqrt(np.sum(profile * (rows - np.sum(profile * rows)) ** 2))
        # a Gaussian sampled at whole pixels out to 4 sigma, as the filter is: at half a pixel, narrower than sigma
        taps = np.arange(-int(4 * sigma + 0.5), int(4 * sigma + 0.5) + 1)
        kernel = np.exp(-taps ** 2 / (2 * sigma ** 2))
        assert spread == pytest.approx(np.sqrt(np.sum(kernel * taps ** 2) / kernel.sum()), rel=1e-3)
        assert spread == pytest.approx(sigma, rel=0.08)


def test_noise_has_its_level_as_spread_and_contrast_keeps_the_mean_and_its_share_of_the_spread():
    grey = np.full((4, 48, 48), 128, np.uint8)
    for level in CORRUPTIONS["noise"].levels[1:]:
        assert np.std(corrupted(grey, "noise", level) - 128) == pytest.approx(level, rel=0.04)
    x = np.random.default_rng(1).integers(40, 220, (4, 48, 48)).astype(np.float32)
    for kept in CORRUPTIONS["contrast"].levels[1:]:
        faces = corrupted(x, "contrast", kept)
        assert np.allclose(faces.mean((1, 2)), x.mean((1, 2)), atol=1e-3)
        assert np.allclose(faces.std((1, 2)), kept * x.std((1, 2)), rtol=1e-4)


def test_occlusion_covers_one_square_of_its_level_with_the_face_mean():
    checks = (np.indices((48, 48)).sum(0) % 2 * 255).astype(np.float32)  # mean 127.5, a value no pixel has
    x = np.stack([checks] * 5)
    for side in CORRUPTIONS["occlusion"].levels[1:]:
        for face in corrupted(x, "occlusion", side):
            rows, columns = np.nonzero(face == 127.5)
            assert len(rows) == side * side
            assert np.ptp(rows) == side - 1 and np.ptp(columns) == side - 1


def test_a_lower_resolution_loses_the_detail_finer_than_its_pixels_and_keeps_the_coarser():
    rows, columns = np.indices((48, 48))
    fine = np.stack([(rows + columns) % 2 * 200.0 + 20] * 2)  # one-pixel checks
    coarse = np.stack([20 + 200.0 * (columns >= 24)] * 2)  # a dark half and a bright one
    errors = []
    for side in CORRUPTIONS["resolution"].levels[1:]:
        assert corrupted(fine, "resolution", side).std() < 0.2 * fine.std()
        error = np.abs(corrupted(coarse, "resolution", side) - coarse)
        away = 2 * 48 // side  # two of the small face's pixels from the edge: untouched
        assert error[:, :, np.r_[:24 - away, 24 + away:48]].max() < 1
        errors.append(error.mean())
    assert np.all(np.diff(errors) > 0)  # the edge blurs more as fewer pixels are left


def test_the_strengths_are_counted_in_words():
    assert strengths(len(c.levels) for c in CORRUPTIONS.values()) == "five"
    assert strengths([4, 6, 6]) == "three to five" and strengths([14]) == "13"


def test_the_share_kept_counts_the_lead_over_the_majority_class():
    y = np.array([0] * 50 + [1] * 30 + [2] * 20)  # majority 0.5
    right = np.zeros((6, 100), bool)
    right[0, :90] = True  # clean: 0.9, a lead of 0.4
    assert retained(np.repeat(right[:1], 6, 0), 0.5) == 1.0  # untouched
    right[1:, :50] = True  # the corrupted levels: 0.5, the majority's share
    assert retained(right, 0.5) == 0.0
    right[1:, 30:50] = False  # 0.3: worse than always answering the commonest class
    assert retained(right, 0.5) == pytest.approx(-0.5)
    never_led = np.zeros((6, 100), bool)
    never_led[:, :50] = True  # the majority's share, clean and corrupted alike: it has no lead to keep
    assert retained(never_led, 0.5) == 0.0
    same = retained_difference(right, right, y, draws=300)
    assert same["difference"] == 0 and same["interval"] == [0.0, 0.0] and not same["significant"]


def test_resampling_tells_a_real_difference_from_noise():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 7, 600)
    keeps = np.repeat(rng.uniform(size=(1, 600)) < 0.8, 6, axis=0)  # right on the same 80% at every level
    loses = keeps.copy()
    loses[1:] = rng.uniform(size=(5, 600)) < 0.3  # corrupted: right at random on 30%
    verdict = retained_difference(keeps, loses, y, draws=500)
    majority = np.bincount(y).max() / 600
    assert verdict["difference"] == pytest.approx(1 - retained(loses, majority))
    assert verdict["significant"] and verdict["interval"][0] > 0.5
    # two models that differ only by noise of the same size: the interval covers zero most of the time
    covered = 0
    for seed in range(20):
        a, b = (np.concatenate([keeps[:1], np.random.default_rng([seed, k]).uniform(size=(5, 600)) < 0.5])
                for k in (1, 2))
        covered += not retained_difference(a, b, y, draws=400, seed=seed)["significant"]
    assert covered >= 16


def pattern_models(patterns):
    """Two hand-built classifiers of faces whose class is a 7x7 pattern at the centre: one compares the centre
    with each class's pattern (bound to the place), one looks for each pattern anywhere (pooled over places)."""
    import keras

    zero_mean = patterns - patterns.mean((1, 2), keepdims=True)
    inputs = keras.Input((48, 48, 1))
    templates = np.zeros((48, 48, 7), np.float32)
    templates[21:28, 21:28] = np.moveaxis(zero_mean, 0, -1)
    dense = keras.layers.Dense(7, activation="softmax")
    bound = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.set_weights([templates.reshape(-1, 7) / 50, np.zeros(7, np.float32)])
    conv = keras.layers.Conv2D(7, 7, padding="same", use_bias=False)
    head = keras.layers.Dense(7, activation="softmax")
    pooled = keras.Model(inputs, head(keras.layers.GlobalMaxPooling2D()(conv(inputs))))
    conv.set_weights([np.moveaxis(zero_mean, 0, -1)[:, :, None, :].astype(np.float32)])
    head.set_weights([np.eye(7, dtype=np.float32) / 50, np.zeros(7, np.float32)])
    return bound, pooled


def test_a_network_that_pools_over_places_withstands_shifts_that_a_place_bound_one_does_not():
    rng = np.random.default_rng(5)
    patterns = np.random.default_rng(9).integers(0, 2, (7, 7, 7)).astype(np.float32)
    y = rng.integers(0, 7, 210)
    x = rng.normal(100, 4, (210, 48, 48)).astype(np.float32)
    x[:, 21:28, 21:28] += 120 * patterns[y]
    models = pattern_models(patterns)
    answers = predictions_under([lambda faces, m=m: m.predict(faces[..., None], verbose=0) for m in models], x,
                                ["shift"])
    bound, pooled = (a == y for a in answers["shift"])
    assert bound[0].mean() == 1 and pooled[0].mean() == 1  # both read the clean faces perfectly
    majority = np.bincount(y).max() / len(y)
    assert retained(pooled, majority) > 0.9 and retained(bound, majority) < 0.3
    verdict = retained_difference(pooled, bound, y, draws=500)
    assert verdict["significant"] and verdict["interval"][0] > 0.5


def test_robustness_script_scores_each_model_on_the_same_faces(trained, synthetic_files, tmp_path, capsys):
    from fer import records

    model = trained / "cnn.keras"
    other = disturbed_copy(model, tmp_path / "other.keras")
    out = tmp_path / "scores"
    assert run_script("robustness.py", "--data", synthetic_files["train"], "--model", model, "--model", other,
                      "--out", out) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "robustness_cnn_vs_other.json").read_text())
    rows = read_rows(out / "robustness_cnn_vs_other.csv")
    _, val, _ = records.load_split(synthetic_files["train"], model)
    assert record["faces"] == len(val) and (out / "robustness_cnn_vs_other.png").stat().st_size > 50_000
    assert len(rows) == 2 * len(CORRUPTIONS) * 6 and list(record["kept_first_minus"]) == ["other"]
    for stem, path in (("cnn", model), ("other", other)):
        predicted = inference.predict_probabilities([inference.load_model(path)], val.x).argmax(1)
        r = record["models"][stem]
        assert r["clean_accuracy"] == pytest.approx(np.mean(predicted == val.y))
        assert all(scores["accuracy"][0] == r["clean_accuracy"] for scores in r["corruptions"].values())
        shift = r["corruptions"]["shift"]
        # the CSV holds the record's numbers
        mine = [row for row in rows if row["model"] == stem and row["corruption"] == "shift"]
        assert [float(row["accuracy"]) for row in mine] == pytest.approx(shift["accuracy"], abs=1e-4)
        assert [row["level"] for row in mine] == ["0", "2", "4", "6", "8", "10"]
        # every model saw the same shifted faces, the ones the seed draws: what it answers there is what it answers
        strongest = inference.predict_probabilities([inference.load_model(path)],
                                                    corrupted(val.x, "shift", 10, seed=0)).argmax(1)
        assert np.mean(strongest == val.y) == pytest.approx(shift["accuracy"][-1])
        shares = np.bincount(strongest, minlength=7) / len(val)
        assert list(shift["answers_at_strongest"].values()) == pytest.approx(shares)
    # the synthetic class is where a bright square sits: moving it 10 pixels takes it towards another class's place,
    # while noise leaves a square 120 grey levels bright easy to see
    trained_model = record["models"]["cnn"]["corruptions"]
    assert record["models"]["cnn"]["clean_accuracy"] > 0.9 and trained_model["shift"]["accuracy"][-1] < 0.7
    assert trained_model["shift"]["retained"] < 0.8 < 0.95 < trained_model["noise"]["retained"]
    assert "shift (pixels 2 to 10): cnn " in printed and "wrote " in printed


def test_robustness_script_scores_an_ensemble_as_predict_py_averages_it(trained, synthetic_files, tmp_path, capsys):
    from fer import records

    model = trained / "cnn.keras"
    other = disturbed_copy(model, tmp_path / "other.keras")
    out = tmp_path / "scores"
    assert run_script("robustness.py", "--data", synthetic_files["train"], "--model", model, "--model", other,
                      "--ensemble", "--corruption", "resolution", "--corruption", "noise", "--out", out) == 0
    assert "scoring the mean of 2 models" in capsys.readouterr().out
    record = json.loads((out / "robustness_ensemble.json").read_text())
    assert list(record["models"]) == ["ensemble of 2"] and record["kept_first_minus"] == {}
    assert list(record["corruptions"]) == ["resolution", "noise"] and (out / "robustness_ensemble.png").exists()
    _, val, _ = records.load_split(synthetic_files["train"], model)
    both = [inference.load_model(model), inference.load_model(other)]
    scores = record["models"]["ensemble of 2"]
    for level, accuracy in zip(CORRUPTIONS["resolution"].levels, scores["corruptions"]["resolution"]["accuracy"]):
        faces = corrupted(val.x, "resolution", level, seed=0)
        assert accuracy == pytest.approx(np.mean(inference.predict_probabilities(both, faces).argmax(1) == val.y))


@pytest.mark.parametrize("flags, words", [
    (["--faces", "5"], "--faces: "),
    (["--corruption", "fog"], "--corruption: invalid choice: 'fog'"),
])
def test_robustness_script_refuses_bad_flags(trained, synthetic_files, tmp_path, capsys, flags, words):
    line = refused(capsys, "robustness.py", "--data", synthetic_files["train"], "--model", trained / "cnn.keras",
                   "--out", tmp_path, *flags, inputs=[synthetic_files["train"]])
    assert words in line and not list(tmp_path.glob("robustness*"))


def test_outputs_are_named_after_every_model_in_full_even_with_dots_in_its_name(tmp_path):
    from argparse import Namespace

    from fer import cli

    models = [tmp_path / "cnn_lr0.001.keras", tmp_path / "cnn_lr0.002.keras"]
    args = Namespace(model=[str(m) for m in models], out=str(tmp_path / "out"), data=None, test=None)
    _, outputs = cli.compared_outputs(args, "robustness", "the curves")
    assert [o.name for o in outputs] == [f"robustness_cnn_lr0.001_vs_cnn_lr0.002.{kind}" for kind in ("png", "json",
                                                                                                       "csv")]


def test_robustness_script_refuses_two_models_of_one_name(trained, synthetic_files, tmp_path, capsys):
    (tmp_path / "b").mkdir()
    copy = tmp_path / "b" / "cnn.keras"
    copy.write_bytes((trained / "cnn.keras").read_bytes())
    line = refused(capsys, "robustness.py", "--data", synthetic_files["train"], "--model", trained / "cnn.keras",
                   "--model", copy, "--out", tmp_path / "scores", inputs=[copy])
    assert line == "error: --model: two models share a name; the curves and rows are named after the files"
    assert not (tmp_path / "scores").exists()
