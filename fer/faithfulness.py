"""How far to trust a saliency method: does the map follow the model, and does it find what the model uses?

- The randomization check (Adebayo et al., 2018): maps of the trained model against maps of the same network
  with random weights. A method whose maps barely change is showing the image, not the model. An empty map
  ranks nothing, so its correlation is undefined (NaN), never 0: a method that returns empty maps does not pass.
- Deletion and insertion (Petsiuk et al., 2018): blur away the pixels a map ranks highest, step by step, and
  follow the probability of the explained class (deletion: lower area is better); or start from the blurred
  face and put them back (insertion: higher is better). A random ranking is the reference.
"""
import keras
import numpy as np

from . import IMAGE_SIZE
from .explain import blurred
from .inference import predict_probabilities
from .narrative import rounded

PASS_BELOW = 0.5  # median rank correlation with the random-weights maps under which a method passes
EMPTY_SHARE = 0.5  # a method with empty maps for more faces than this share is "undefined" on them


def randomized_copy(model, seed=0):
    """Same architecture and preprocessing, freshly initialized weights.

    The normalization statistics live in the layer's config, so the clone keeps them."""
    keras.utils.set_random_seed(seed)
    return keras.models.clone_model(model)


def empty(maps):
    """Per map: True where it is constant (all zero, say), so it ranks no pixel above another."""
    maps = np.asarray(maps).reshape(len(maps), -1)
    return maps.max(1) - maps.min(1) <= 1e-12 * np.maximum(np.abs(maps).max(1), 1e-30)


def rank_correlation(a, b):
    """Spearman correlation between two maps, per image; NaN where either map is empty."""
    from scipy.stats import spearmanr

    undefined = empty(a) | empty(b)
    return np.array([np.nan if skip else spearmanr(x.ravel(), y.ravel())[0] for x, y, skip in zip(a, b, undefined)])


def sanity_verdict(correlations):
    """'passes', or why not, from one method's trained-vs-random correlations over many faces."""
    correlations = np.asarray(correlations, float)
    undefined = np.isnan(correlations)
    if undefined.mean() > EMPTY_SHARE:
        return f"undefined: empty maps for {undefined.sum()} of {len(correlations)} faces"
    median = rounded(np.median(correlations[~undefined]), 2)
    if median >= PASS_BELOW:
        return f"fails: the maps barely change with random weights (median ρ {median:.2f})"
    if undefined.any():
        return f"passes where defined (median ρ {median:.2f}; empty maps for {undefined.sum()} faces)"
    return f"passes (median ρ {median:.2f})"


def ranking(maps, seed=0):
    """Pixels of each map from the highest value down; ties (an empty map) in a random order."""
    rng = np.random.default_rng(seed)
    flat = np.asarray(maps, "float64").reshape(len(maps), -1)
    jitter = rng.random(flat.shape) * 1e-9 * np.maximum(np.abs(flat).max(1, keepdims=True), 1e-30)
    return np.argsort(-(flat + jitter), axis=1)


def deletion_insertion(model, images, classes, maps, steps=16, seed=0):
    """Curves (n, steps + 1) of the class probability as the top-ranked pixels are blurred away (deletion)
    and put back into the blurred face (insertion), and their areas (mean over the curve, in [0, 1])."""
    x = np.asarray(images, "float32").reshape(-1, IMAGE_SIZE * IMAGE_SIZE)
    base = blurred(x).reshape(len(x), -1)
    order = ranking(maps, seed)
    counts = np.round(np.linspace(0, x.shape[1], steps + 1)).astype(int)
    deleted, inserted = [], []
    for count in counts:
        top = np.zeros_like(x, bool)
        np.put_along_axis(top, order[:, :count], True, axis=1)
        deleted.append(np.where(top, base, x))
        inserted.append(np.where(top, x, base))
    batch = np.concatenate([np.stack(deleted, 1), np.stack(inserted, 1)], 1).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    probabilities = predict_probabilities([model], batch).reshape(len(x), 2 * (steps + 1), -1)
    chosen = probabilities[np.arange(len(x)), :, np.asarray(classes)]
    deletion, insertion = chosen[:, :steps + 1], chosen[:, steps + 1:]
    area = lambda curve: ((curve[:, 1:] + curve[:, :-1]) / 2).mean(1)  # noqa: E731  trapezoids over [0, 1]
    return dict(deletion=deletion, insertion=insertion, deletion_auc=area(deletion), insertion_auc=area(insertion))
