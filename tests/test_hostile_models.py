"""Models that are not FER2013 classifiers, or that a method cannot explain: refused in one line naming the
file and what it has, wherever a model is read (predictions, scores, teachers, explanations)."""
import keras
import pytest

from conftest import QUICK, refused
from fer.models import build_dnn


def tiny_model(path, classes=7, outputs=1, shape=(48, 48, 1)):
    inputs = keras.Input(shape)
    flat = keras.layers.Flatten()(inputs)
    heads = [keras.layers.Dense(classes, activation="softmax", name=f"predictions{'' if i == 0 else i}")(flat)
             for i in range(outputs)]
    keras.Model(inputs, heads if outputs > 1 else heads[0]).save(path)
    return path


@pytest.mark.parametrize("kind, make, words", [
    ("10 classes", lambda p: tiny_model(p, classes=10), "model output is (10,), expected the 7 expression"),
    ("3 classes", lambda p: tiny_model(p, classes=3), "model output is (3,)"),
    ("two outputs", lambda p: tiny_model(p, outputs=2), "expected a model with one input and one output (has 1 and 2)"),
    ("colour input", lambda p: tiny_model(p, shape=(48, 48, 3)), "model input is (48, 48, 3)"),
])
def test_models_that_are_not_fer_classifiers_are_refused_everywhere(kind, make, words, synthetic_files, tmp_path,
                                                                    capsys):
    bad = make(tmp_path / "bad.keras")
    runs = [("predict.py", "--model", bad, "--test", synthetic_files["test"], "--out", tmp_path / "s.csv"),
            ("confusion.py", "--model", bad, "--data", synthetic_files["train"], "--out", tmp_path / "figs"),
            ("calibration.py", "--model", bad, "--data", synthetic_files["train"], "--out", tmp_path / "figs"),
            ("embedding.py", "--model", bad, "--data", synthetic_files["train"], "--out", tmp_path / "figs"),
            ("robustness.py", "--model", bad, "--data", synthetic_files["train"], "--out", tmp_path / "figs"),
            ("train_cnn.py", "--train", synthetic_files["train"], *QUICK, "--teacher", bad, "--val-fraction", "0",
             "--model", tmp_path / "student.keras", "--figures", tmp_path / "figs")]
    for script, *args in runs:
        line = refused(capsys, script, *args, inputs=[bad])
        assert f"{bad}: {words}" in line, (script, line)
    assert not (tmp_path / "s.csv").exists() and not (tmp_path / "student.keras").exists()


def test_explanations_say_why_a_model_cannot_be_explained(trained, synthetic_files, tmp_path, capsys):
    dnn = tmp_path / "dnn.keras"
    build_dnn([16, 16], mean=100.0, variance=2500.0).save(dnn)
    data = ["--data", synthetic_files["train"], "--out", tmp_path / "figs"]
    line = refused(capsys, "saliency.py", "--model", dnn, *data, inputs=[dnn])
    assert "has no convolution layers (a DNN?)" in line and "gradcam" in line
    line = refused(capsys, "saliency.py", "--model", dnn, "--method", "hirescam", *data)
    assert "hirescam explain convolutional feature maps" in line
    line = refused(capsys, "filter_vis.py", "--model", trained / "cnn.keras", "--compare", dnn, "--out",
                   tmp_path / "figs")
    assert f"{dnn}: has no convolution layers" in line
    headless = tmp_path / "headless.keras"
    inputs = keras.Input((48, 48, 1))
    keras.Model(inputs, keras.layers.Dense(7, activation="softmax", name="scores")(keras.layers.Flatten()(inputs))
                ).save(headless)
    line = refused(capsys, "saliency.py", "--model", headless, "--method", "gradient", *data)
    assert "no softmax Dense layer named 'predictions'" in line
