"""Saliency points where the class signal is; Grad-CAM's shape and range; the randomization check."""
import numpy as np
import pytest

from conftest import run_script, synthetic_faces
from fer import cli
from fer.explain import METHODS, explain, randomized_copy, rank_correlation


def patch_mask(c):
    mask = np.zeros((48, 48), bool)
    r, k = 6 + 24 * (c // 4), 12 * (c % 4)
    mask[r:r + 12, k:k + 12] = True
    return mask


@pytest.fixture(scope="module")
def model_and_faces(trained):
    x, y = synthetic_faces(21, seed=99)
    return cli.load_model(trained / "cnn.keras"), x, y


# Grad-CAM is left out here: on this data set a class can be told by the *absence* of patches elsewhere,
# and Grad-CAM's 6x6 maps then point there (measured: zero inside the patch for class 0). Its localization
# test needs a data set whose signal sits in one shared region.
@pytest.mark.parametrize("name", [m for m in METHODS if m != "gradcam"])
def test_saliency_concentrates_on_the_class_patch(model_and_faces, name):
    model, x, y = model_and_faces
    maps = explain(name, model, x, y)
    assert maps.shape == (21, 48, 48) and np.all(maps >= 0)
    inside = np.array([m[patch_mask(c)].mean() for m, c in zip(maps, y)])
    outside = np.array([m[~patch_mask(c)].mean() for m, c in zip(maps, y)])
    # the patch is 6% of the image; its mean saliency must stand well above the rest
    assert np.median(inside / np.maximum(outside, 1e-12)) > 2.0, name


def test_grad_cam_shape_and_range(model_and_faces):
    model, x, y = model_and_faces
    cam = explain("gradcam", model, x, y)
    assert cam.shape == (21, 48, 48)
    assert cam.min() >= 0 and np.allclose(cam.max(axis=(1, 2)), 1.0, atol=1e-5)


def test_randomized_weights_change_the_maps(model_and_faces):
    model, x, y = model_and_faces
    random_model = randomized_copy(model)
    same = rank_correlation(explain("gradient", model, x, y), explain("gradient", model, x, y))
    differ = rank_correlation(explain("gradient", model, x, y), explain("gradient", random_model, x, y))
    assert np.allclose(same, 1.0)
    assert np.mean(differ) < 0.5


def test_saliency_script_writes_each_figure(trained, synthetic_files, tmp_path, capsys):
    status = run_script("saliency.py", "--model", trained / "cnn.keras", "--data", synthetic_files["train"],
                        "--out", tmp_path, "--method", "gradient", "--method", "gradcam")
    assert status == 0
    printed = capsys.readouterr().out
    assert "rank correlation with random weights" in printed
    for name in ("saliency_gradient.png", "saliency_gradcam.png", "saliency_sanity.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


def test_saliency_script_refuses_rows_outside_the_split(trained, synthetic_files, tmp_path, capsys):
    status = run_script("saliency.py", "--model", trained / "cnn.keras", "--data", synthetic_files["train"],
                        "--out", tmp_path, "--index", "0", "1", "2", "3", "4", "5", "9999")
    assert status == 2 and capsys.readouterr().err.startswith("error: --index: rows must be in 0..139")
    assert list(tmp_path.iterdir()) == []


def test_lime_weights_favour_the_class_patch(model_and_faces):
    from lime_explain import explain_face, region_weights

    model, x, y = model_and_faces
    ratios = []
    for face, c in zip(x[:7], y[:7]):
        exp = explain_face(model, face, samples=300, segments=40, seed=0)
        weights = region_weights(exp, exp.top_labels[0])
        assert exp.top_labels[0] == c  # the model is right on these
        ratios.append(weights[patch_mask(c)].mean() - weights[~patch_mask(c)].mean())
    assert np.median(ratios) > 0 and np.mean(np.array(ratios) > 0) >= 5 / 7, ratios


def test_lime_script(trained, synthetic_files, tmp_path):
    assert run_script("lime_explain.py", "--model", trained / "cnn.keras", "--data", synthetic_files["train"],
                      "--samples", "100", "--out", tmp_path) == 0
    assert (tmp_path / "lime.png").read_bytes().startswith(b"\x89PNG")
