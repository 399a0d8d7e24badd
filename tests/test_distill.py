"""--teacher: training targets that blend each face's label with trained models' probabilities."""
import json

import keras
import numpy as np
import pytest

from conftest import (QUICK, read_rows, refused, run_script, submission_accuracy, synthetic_faces, train_cnn_settings,
                      write_csv)
from fer import distillation, records
from fer.data import prepare_data
from fer.errors import InputError
from fer.settings import DISTILL, frozen


def constant_model(path, logits):
    """A model that predicts softmax(logits) whatever the face, saved with no summary yet."""
    inputs = keras.Input((48, 48, 1))
    dense = keras.layers.Dense(7, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(logits))
    model = keras.Model(inputs, keras.layers.Softmax()(dense(keras.layers.Flatten()(inputs))))
    model.save(path)
    return path


def settings_for(teachers, distill=None, extra=()):
    return train_cnn_settings("--train", "x.csv", "--preset", "smoke",
                              *(["--teacher", *map(str, teachers)] if teachers else []),
                              *(["--distill", str(distill)] if distill is not None else []), *extra)


TEACHER_LOGITS = [np.linspace(-1, 2, 7), np.array([3.0, 0, 0, 0, 0, 0, -1])]
TEACHER_MEAN = np.mean([np.exp(v) / np.exp(v).sum() for v in TEACHER_LOGITS], axis=0)


def two_teachers_at(tmp_path, distill):
    """Settings and data of a 50-face run with two constant teachers that held out its validation faces."""
    x, y = synthetic_faces(50, seed=3)
    train = write_csv(tmp_path / "train.csv", x, y)
    teachers = [constant_model(tmp_path / f"t{i}.keras", v) for i, v in enumerate(TEACHER_LOGITS)]
    settings = settings_for(teachers, distill=distill)
    data = prepare_data(train, settings)
    for teacher in teachers:
        (tmp_path / f"{teacher.stem}_summary.json").write_text(json.dumps({"split": data["split"]}))
    return settings, data


def test_targets_are_the_label_blended_with_the_teachers_mean(tmp_path):
    settings, data = two_teachers_at(tmp_path, distill=0.3)
    labels = data["y_train"].copy()
    data = distillation.distill(data, settings)
    np.testing.assert_allclose(data["y_train"], 0.7 * labels + 0.3 * TEACHER_MEAN, atol=1e-6)
    np.testing.assert_allclose(data["y_train"].sum(1), 1, atol=1e-6)
    assert len(data["y_train"]) == 40 and data["teacher_accuracy"] == pytest.approx(np.mean(labels.argmax(1) == 0))
    assert data["unlabeled_rows"] == 0


def test_unlabeled_faces_train_on_the_teachers_mean_less_the_validation_faces(tmp_path, capsys):
    settings, data = two_teachers_at(tmp_path, distill=0.3)
    fresh, _ = synthetic_faces(5, seed=4)
    held_out = data["x_val"][:3].reshape(3, 48, 48).astype("uint8")  # a test file that repeats three validation faces
    unlabeled = write_csv(tmp_path / "test.csv", np.concatenate([fresh, held_out]), range(8), header="id,feature")
    settings = frozen({**settings, "unlabeled": (unlabeled,)})
    labels = data["y_train"].copy()
    data = distillation.distill(data, settings)
    assert len(data["x_train"]) == len(data["y_train"]) == 45 and data["unlabeled_rows"] == 5
    np.testing.assert_allclose(data["y_train"][:40], 0.7 * labels + 0.3 * TEACHER_MEAN, atol=1e-6)
    np.testing.assert_allclose(data["y_train"][40:], np.tile(TEACHER_MEAN, (5, 1)), atol=1e-6)
    np.testing.assert_array_equal(data["x_train"][40:, :, :, 0], fresh)
    assert "left out 3 of 8 faces identical to validation faces" in capsys.readouterr().out


def test_the_weight_defaults_to_one_half_and_is_checked(tmp_path, capsys):
    assert settings_for([tmp_path / "t.keras"])["distill"] == DISTILL == 0.5
    assert settings_for(None)["distill"] == 0 and settings_for(None)["teachers"] == ()
    with pytest.raises(InputError, match="give --teacher"):
        settings_for([], 0.5)
    for distill, problem in ((1.5, "above 0 and at most 1, got 1.5"), (0.0, "above 0 and at most 1, got 0.0")):
        assert refused(capsys, "train_cnn.py", "--train", "x.csv", "--teacher", "t.keras", "--distill",
                       str(distill)) == f"error: --distill: must be {problem}"
    with pytest.raises(InputError, match="--unlabeled.*give --teacher"):
        settings_for(None, extra=["--unlabeled", "test.csv"])
    with pytest.raises(InputError, match="--teacher-tta.*give --teacher"):
        settings_for(None, extra=["--teacher-tta", "zoom"])
    assert settings_for(None)["teacher_tta"] is None


def test_a_student_learns_from_its_teacher_what_its_labels_do_not_say(trained, synthetic_files, tmp_path, capsys):
    """The student's own labels are random; only the teacher knows the classes (--distill 1, no validation:
    the labels file differs from the teacher's, so this is a final fit)."""
    x, _ = synthetic_faces(700, seed=11)
    noise = write_csv(tmp_path / "noise.csv", x, np.random.default_rng(0).integers(0, 7, 700))
    unlabeled = write_csv(tmp_path / "unlabeled.csv", synthetic_faces(100, seed=13)[0], range(100), "id,feature")
    capsys.readouterr()
    assert run_script("train_cnn.py", "--train", noise, *QUICK, "--limit", "700", "--epochs", "5", "--no-augment",
                      "--val-fraction", "0", "--teacher", trained / "cnn.keras", "--distill", "1",
                      "--unlabeled", unlabeled, "--model", tmp_path / "student.keras", "--figures", tmp_path) == 0
    printed = capsys.readouterr().out
    assert "teacher 1/1" in printed and "targets: 0 x label + 1 x the 1 teachers' mean" in printed
    assert "700 training rows and 100 unlabeled faces" in printed
    summary = json.loads((tmp_path / "student_summary.json").read_text())
    assert summary["settings"]["teachers"] == [str(trained / "cnn.keras")] and summary["settings"]["distill"] == 1
    assert summary["settings"]["unlabeled"] == [unlabeled] and summary["unlabeled_rows"] == 100
    assert summary["teacher_train_accuracy"] < 0.3  # against the random labels
    assert run_script("predict.py", "--model", tmp_path / "student.keras", "--test", synthetic_files["labeled_test"],
                      "--out", tmp_path / "sub.csv") == 0
    accuracy = submission_accuracy(tmp_path / "sub.csv", synthetic_files["test_labels"])
    assert accuracy >= 0.85
    assert len(read_rows(tmp_path / "sub.csv")) == 60


@pytest.mark.parametrize("case", ["other split seed", "no summary", "missing", "unlabeled missing"])
def test_a_doubtful_teacher_or_a_missing_unlabeled_file_is_refused(trained, synthetic_files, tmp_path, capsys,
                                                                      case):
    teacher, blamed = trained / "cnn.keras", None
    args = ["--split-seed", "1"] if case == "other split seed" else []
    if case == "no summary":
        teacher = tmp_path / "copy.keras"
        teacher.write_bytes((trained / "cnn.keras").read_bytes())
    elif case == "missing":
        teacher = tmp_path / "none.keras"
    elif case == "unlabeled missing":
        blamed = tmp_path / "no_test.csv"
        args = ["--unlabeled", blamed]
    capsys.readouterr()
    assert run_script("train_cnn.py", "--train", synthetic_files["train"], *QUICK, *args, "--teacher", teacher,
                      "--model", tmp_path / "student.keras", "--figures", tmp_path / "figures") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {blamed or teacher}")
    assert {"other split seed": "split seed 0", "no summary": "summary JSON", "missing": "no such model",
            "unlabeled missing": "no such file"}[case] in err
    assert not (tmp_path / "student.keras").exists() and not (tmp_path / "figures").exists()


def test_a_teacher_trained_on_the_same_faces_in_another_format_held_out_the_same_faces(tmp_path):
    """train.npz holds train.csv's faces: a teacher split from one held out what a student of the other holds out;
    other faces in a file of the same format are still refused, and load_split finds the teacher's split."""
    x, y = synthetic_faces(50, seed=3)
    csv = write_csv(tmp_path / "train.csv", x, y)
    np.savez(tmp_path / "train.npz", x=x, y=y.astype(np.uint8))
    np.savez(tmp_path / "other.npz", x=x, y=((y + 1) % 7).astype(np.uint8))
    teacher = constant_model(tmp_path / "t.keras", TEACHER_LOGITS[0])
    settings = settings_for([teacher], extra=["--split-seed", "2"])
    student = prepare_data(csv, settings)
    for arrays, accepted in (("train.npz", True), ("other.npz", False)):
        split = prepare_data(tmp_path / arrays, settings)["split"]
        assert split["digest"] != student["split"]["digest"]  # other files: only their faces can match
        (tmp_path / "t_summary.json").write_text(json.dumps({"split": split}))
        if accepted:
            distillation.check_held_out(teacher, student["split"], "--teacher")
            _, validation, note = records.load_split(csv, teacher)
            assert note == "the split used in training"
            np.testing.assert_array_equal(validation.x.reshape(-1, 48, 48, 1), student["x_val"])
        else:
            with pytest.raises(InputError, match="does not show which faces"):
                distillation.check_held_out(teacher, student["split"], "--teacher")


def sided_model(path):
    """A model whose answer depends on which half of the face is bright: class 0 for the left, 1 for the right."""
    kernel = np.zeros((48, 48, 7), "float32")
    kernel[:, :24, 0], kernel[:, 24:, 1] = 1 / 30000, 1 / 30000
    inputs = keras.Input((48, 48, 1))
    dense = keras.layers.Dense(7, kernel_initializer=keras.initializers.Constant(kernel.reshape(-1, 7)))
    keras.Model(inputs, keras.layers.Softmax()(dense(keras.layers.Flatten()(inputs)))).save(path)
    return path


def test_teacher_tta_averages_each_teachers_views(tmp_path):
    x, y = synthetic_faces(50, seed=5)
    x[:, :, :24] = np.minimum(x[:, :, :24].astype(int) + 60, 255)  # every face brighter on its left
    train = write_csv(tmp_path / "train.csv", x, y)
    teacher = sided_model(tmp_path / "sided.keras")
    settings = settings_for([teacher], distill=0.4, extra=["--teacher-tta", "flip"])
    data = prepare_data(train, settings)
    (tmp_path / "sided_summary.json").write_text(json.dumps({"split": data["split"]}))
    labels, faces = data["y_train"].copy(), data["x_train"]
    model = keras.saving.load_model(teacher)
    as_is = model.predict(faces, verbose=0)
    seen = (as_is + model.predict(faces[:, :, ::-1], verbose=0)) / 2
    assert np.all(as_is[:, 0] > seen[:, 0] + 0.01)  # the mirror changes its mind
    flipped = distillation.distill(data, settings)
    np.testing.assert_allclose(flipped["y_train"], 0.6 * labels + 0.4 * seen, atol=1e-5)
    plain = distillation.distill(data, frozen({**settings, "teacher_tta": None}))
    np.testing.assert_allclose(plain["y_train"], 0.6 * labels + 0.4 * as_is, atol=1e-5)
    assert records.teacher_words(settings) == ", distilled from 1 teachers (0.4, flip TTA)"


def test_a_teachers_probabilities_are_cached_by_its_file_and_the_faces(tmp_path, monkeypatch, capsys):
    settings, data = two_teachers_at(tmp_path, distill=0.3)
    first = distillation.distill(data, settings)
    assert "(cached)" not in capsys.readouterr().out

    def no_prediction(*args, **kwargs):
        raise AssertionError("predicted although cached")

    with monkeypatch.context() as patch:
        patch.setattr(distillation, "predict_probabilities", no_prediction)
        again = distillation.distill(data, settings)
    assert capsys.readouterr().out.count("(cached)") == 2
    np.testing.assert_array_equal(again["y_train"], first["y_train"])

    constant_model(settings["teachers"][1], TEACHER_LOGITS[0])  # retrained: same path, other weights
    retrained = distillation.distill(data, settings)
    assert capsys.readouterr().out.count("(cached)") == 1  # the first teacher's, not the retrained one's
    mean = np.exp(TEACHER_LOGITS[0]) / np.exp(TEACHER_LOGITS[0]).sum()
    np.testing.assert_allclose(retrained["y_train"], 0.7 * data["y_train"] + 0.3 * mean, atol=1e-6)

    entries = list(distillation.cache_dir().glob("teacher-*.npy"))
    assert len(entries) == 3  # the former file's entry stays
    for entry in entries:
        entry.write_bytes(b"damaged")  # predicted again and replaced, not an error
    repaired = distillation.distill(data, settings)
    assert "(cached)" not in capsys.readouterr().out
    np.testing.assert_allclose(repaired["y_train"], retrained["y_train"], atol=1e-6)


def test_a_cache_folder_that_cannot_be_written_only_goes_without_the_cache(tmp_path, monkeypatch, capsys):
    settings, data = two_teachers_at(tmp_path, distill=0.3)
    (tmp_path / "a file").write_text("")
    monkeypatch.setenv("FER_CACHE", str(tmp_path / "a file" / "cache"))
    labels = data["y_train"].copy()
    for _ in range(2):
        taught = distillation.distill(data, settings)
        assert "(cached)" not in capsys.readouterr().out
        np.testing.assert_allclose(taught["y_train"], 0.7 * labels + 0.3 * TEACHER_MEAN, atol=1e-6)
