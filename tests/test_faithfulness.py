"""Judging saliency methods: the randomization check's verdicts, deletion and insertion against a random
ranking, and the completeness of Integrated Gradients from the blurred face."""
import numpy as np
import pytest

from conftest import synthetic_faces
from fer import inference
from fer.faithfulness import deletion_insertion, empty, rank_correlation, sanity_verdict


def patch_masks(y):
    masks = np.zeros((len(y), 48, 48), bool)
    for m, c in zip(masks, y):
        r, k = 6 + 24 * (c // 4), 12 * (c % 4)
        m[r:r + 12, k:k + 12] = True
    return masks


@pytest.fixture(scope="module")
def model_and_faces(trained):
    x, y = synthetic_faces(28, seed=7)
    return inference.load_model(trained / "cnn.keras"), x, y


def test_an_empty_map_is_undefined_not_uncorrelated():
    rng = np.random.default_rng(0)
    maps = rng.random((6, 48, 48))
    blank = np.zeros((6, 48, 48))
    assert empty(blank).all() and not empty(maps).any()
    rho = rank_correlation(blank, maps)
    assert np.isnan(rho).all()
    assert sanity_verdict(rho).startswith("undefined: empty maps for 6 of 6 faces")
    assert sanity_verdict(rank_correlation(maps, maps)).startswith("fails")
    assert sanity_verdict(rank_correlation(maps, rng.random((6, 48, 48)))).startswith("passes")


def test_deletion_and_insertion_reward_a_map_on_the_signal(model_and_faces):
    model, x, y = model_and_faces
    right = deletion_insertion(model, x, y, patch_masks(y).astype(float))
    wrong = deletion_insertion(model, x, y, (~patch_masks(y)).astype(float))  # everything but the patch first
    random = deletion_insertion(model, x, y, np.random.default_rng(1).random((len(x), 48, 48)))
    assert right["deletion"].shape == (len(x), 17)
    assert np.allclose(right["deletion"][:, 0], right["insertion"][:, -1])  # the face itself, both ends
    assert right["deletion_auc"].mean() < random["deletion_auc"].mean() < wrong["deletion_auc"].mean()
    assert right["insertion_auc"].mean() > random["insertion_auc"].mean() > wrong["insertion_auc"].mean()


def test_integrated_gradients_add_up_to_the_logit_gained_over_the_blurred_face(model_and_faces):
    from fer.explain import blurred, class_scores, explain, logits_function

    model, x, y = model_and_faces
    attributions = explain("integrated", model, x[:7], y[:7])
    score = class_scores(logits_function(model), y[:7])
    gained = np.asarray(score(x[:7, ..., None].astype("float32"))) - np.asarray(score(blurred(x[:7])[..., None]))
    assert np.allclose(attributions.sum((1, 2)), gained, rtol=0.05, atol=0.05 * np.abs(gained).max())
    assert (attributions < 0).any() and (attributions > 0).any()  # signed, not folded into absolute values


def test_occlusion_finds_the_patch_that_carries_the_class(model_and_faces):
    from fer.explain import explain

    model, x, y = model_and_faces
    drop = explain("occlusion", model, x[:14], y[:14])
    inside = np.array([m[p].mean() for m, p in zip(drop, patch_masks(y[:14]))])
    outside = np.array([m[~p].mean() for m, p in zip(drop, patch_masks(y[:14]))])
    assert np.mean(inside > outside) >= 12 / 14 and np.median(inside) > 0


def test_a_verdict_never_prints_minus_zero():
    assert sanity_verdict([-0.001, -0.002, 0.0004]) == "passes (median ρ 0.00)"
    assert sanity_verdict([0.9, 0.8, 0.7]).startswith(
        "fails: the maps barely change with random weights (median ρ 0.80")
