"""What a network withstands: faces shifted, turned, blurred, seen at a lower resolution, noised, flattened in
contrast or partly covered, at growing strengths, and how much of its accuracy a network keeps under each.

Every corruption has one call shape, `corrupt(x, level, rng) -> faces`: x (faces, 48, 48) raw pixels, level in the
corruption's own unit, rng a NumPy generator made afresh for each level from the same seed. Each draws the same
random quantities per face at every level (a direction, a noise pattern, a place), so that a face's corruption
only grows with the level. Adding a corruption is adding one function and one row to CORRUPTIONS."""
from typing import Callable, NamedTuple

import numpy as np

from .photos import resized


def shifted(x, pixels, rng):
    """Each face moved `pixels` in a direction drawn for it; the border's pixels fill what comes in."""
    from scipy.ndimage import shift

    angles = rng.uniform(0, 2 * np.pi, len(x))
    moves = pixels * np.stack([np.sin(angles), np.cos(angles)], 1)
    return np.stack([shift(face, move, order=1, mode="nearest") for face, move in zip(x, moves)])


def turned(x, degrees, rng):
    """Each face turned `degrees` about its centre, clockwise or not as drawn for it."""
    from scipy.ndimage import rotate

    signs = rng.choice([-1, 1], len(x))
    return np.stack([rotate(face, sign * degrees, reshape=False, order=1, mode="nearest")
                     for face, sign in zip(x, signs)])


def blurred(x, sigma, rng):
    """Gaussian blur of `sigma` pixels: the detail a face out of focus or moving loses."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(x, sigma=(0, sigma, sigma), mode="nearest")


def lower_resolution(x, side, rng):
    """Each face as a camera sees it at `side` pixels across (an area average), enlarged back as faces.py and video.py
    enlarge a face found smaller than the networks' input: the detail a distant face lacks."""
    import cv2

    return np.stack([resized(cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA), x.shape[1]) for face in x])


def noised(x, grey_levels, rng):
    """Gaussian noise of `grey_levels` standard deviation on the 0-255 scale: a dark room's sensor."""
    return x + grey_levels * rng.standard_normal(x.shape)


def flattened(x, kept, rng):
    """Contrast cut to the share `kept` of each face's own, about its mean brightness: haze or a poor exposure."""
    mean = x.mean(axis=(1, 2), keepdims=True)
    return mean + kept * (x - mean)


def covered(x, side, rng):
    """A grey square of `side` pixels (the face's mean brightness) at a place drawn for each face: a hand, a
    microphone, sunglasses."""
    places = rng.uniform(0, 1, (len(x), 2))
    out = x.copy()
    corners = np.floor(places * (x.shape[1] - side + 1)).astype(int)
    for face, (row, column) in zip(out, corners):
        face[row:row + side, column:column + side] = face.mean()
    return out


class Corruption(NamedTuple):
    corrupt: Callable
    levels: tuple  # the first leaves the faces as they are
    unit: str


CORRUPTIONS = {
    "shift": Corruption(shifted, (0, 2, 4, 6, 8, 10), "pixels"),
    "rotation": Corruption(turned, (0, 10, 20, 30, 40, 50), "degrees"),
    "blur": Corruption(blurred, (0, 0.5, 1, 1.5, 2, 3), "sigma, pixels"),
    "resolution": Corruption(lower_resolution, (48, 40, 32, 24, 16, 12), "pixels across"),
    "noise": Corruption(noised, (0, 8, 16, 24, 32, 48), "grey levels"),
    "contrast": Corruption(flattened, (1, 0.7, 0.5, 0.35, 0.25, 0.15), "share kept"),
    "occlusion": Corruption(covered, (0, 8, 12, 16, 20, 24), "square's side, pixels"),
}


def strengths(level_counts):
    """The number of strengths beyond the clean one, in words, given each corruption's count of levels: "five", or
    "three to five" where they differ."""
    words = dict(enumerate(("none", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")))
    counts = sorted({count - 1 for count in level_counts})
    first, last = (words.get(c, str(c)) for c in (counts[0], counts[-1]))
    return first if first == last else f"{first} to {last}"


def corrupted(x, name, level, seed=0):
    """The faces x under one corruption at one level, as float32 pixels within 0-255. The clean level returns
    them as they are; every other level draws from the same generator (the seed and the corruption's name)."""
    corruption = CORRUPTIONS[name]
    x = np.asarray(x, np.float32)
    if level == corruption.levels[0]:
        return x.copy()
    rng = np.random.default_rng([seed, list(CORRUPTIONS).index(name)])
    return np.clip(corruption.corrupt(x, level, rng), 0, 255).astype(np.float32)


def predictions_under(predictors, x, names, seed=0, progress=None):
    """{name: [(levels, faces) class numbers per predictor]}: what each predictor (a function from faces to class
    probabilities) answers for each face at each level of each corruption. The clean faces are predicted once, and
    every predictor sees the same corrupted faces. progress(name, level) after each level."""
    clean = [predict(np.asarray(x, np.float32)).argmax(1) for predict in predictors]
    answers = {}
    for name in names:
        rows = [[c] for c in clean]
        for level in CORRUPTIONS[name].levels[1:]:
            faces = corrupted(x, name, level, seed)
            for k, predict in enumerate(predictors):
                rows[k].append(predict(faces).argmax(1))
            if progress:
                progress(name, level)
        answers[name] = [np.array(r) for r in rows]
    return answers


def retained(right, majority):
    """The share of its lead over the majority class that a model keeps, over the corrupted levels on average:
    right (levels, faces) with the clean level first; majority, the share of the commonest class. 1 means
    untouched, 0 no better than always answering the commonest class, below 0 worse than that. (A share of the
    clean accuracy would flatter a weak model: one at chance has nothing to lose.)"""
    right = np.asarray(right, np.float64)
    lead = right[0].mean() - majority
    return float((right[1:].mean() - majority) / lead) if lead > 0 else 0.0


def retained_difference(right_a, right_b, labels, draws=2000, seed=0, confidence=0.95):
    """retained(a) - retained(b) on the same faces, and its percentile interval from resampling the faces (the
    same resampled faces for both models, so that what they share cancels; the majority share resampled too)."""
    right_a, right_b = np.asarray(right_a, np.float64), np.asarray(right_b, np.float64)
    labels = np.asarray(labels)
    faces = len(labels)
    weights = np.random.default_rng(seed).multinomial(faces, np.full(faces, 1 / faces), size=draws) / faces
    majority = (weights @ np.eye(labels.max() + 1)[labels]).max(1)

    def kept(right):
        accuracy = weights @ right.T  # (draws, levels): each face counted as often as it was drawn
        lead = accuracy[:, 0] - majority
        return np.where(lead > 0, (accuracy[:, 1:].mean(1) - majority) / np.where(lead > 0, lead, 1), 0.0)

    differences = kept(right_a) - kept(right_b)
    tail = (1 - confidence) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    share = float(np.bincount(labels).max() / faces)
    return dict(difference=retained(right_a, share) - retained(right_b, share), interval=[float(low), float(high)],
                significant=bool(low > 0 or high < 0))
