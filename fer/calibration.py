"""Calibration of predicted probabilities: how often a model is right at each confidence, the expected
calibration error, and the temperature that calibrates it.

A face's confidence is its highest probability. A calibrated model is right on 70% of the faces it gives 0.7.
Temperature scaling (Guo et al., 2017) raises the probabilities to 1/T and renormalizes: T > 1 softens an
overconfident model, T < 1 sharpens an underconfident one, and no face's label changes.
"""
import numpy as np
from scipy.optimize import minimize_scalar

BINS = 15  # equal-width bins of confidence, the usual choice for the expected calibration error
TEMPERATURES = (0.05, 20.0)  # the range searched (and --temperature's): far beyond what a classifier needs
FLOOR = 1e-12  # a probability a float32 softmax rounded to 0 still has a finite log


def confidence_bins(probabilities, labels, bins=BINS):
    """Per equal-width bin of confidence over (0, 1]: the faces in it, their mean confidence and the share of them
    whose most probable class is their label (NaN where a bin is empty)."""
    confidence = probabilities.max(1)
    right = probabilities.argmax(1) == labels
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)  # (k/bins, (k+1)/bins]
    faces = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_confidence = np.bincount(which, confidence, bins) / faces
        accuracy = np.bincount(which, right, bins) / faces
    return dict(faces=faces, confidence=mean_confidence, accuracy=accuracy)


def expected_calibration_error(probabilities, labels, bins=BINS):
    """The gap between confidence and accuracy, bin by bin, weighted by the bins' shares of the faces."""
    b = confidence_bins(probabilities, labels, bins)
    filled = b["faces"] > 0
    return float(np.sum(b["faces"][filled] * np.abs(b["accuracy"] - b["confidence"])[filled]) / len(labels))


def negative_log_likelihood(probabilities, labels):
    """Mean -log of the probability given to each face's label: what temperature scaling minimizes."""
    return float(-np.mean(np.log(np.maximum(probabilities[np.arange(len(labels)), labels], FLOOR))))


def brier_score(probabilities, labels):
    """Mean over faces of the squared distance between the probabilities and the one-hot label (0 is perfect)."""
    target = np.eye(probabilities.shape[1])[labels]
    return float(np.mean(np.sum((probabilities - target) ** 2, axis=1)))


def with_temperature(probabilities, temperature):
    """The probabilities raised to 1/temperature and renormalized (a softmax of the log-probabilities over T)."""
    logits = np.log(np.maximum(probabilities, FLOOR)) / temperature
    logits -= logits.max(1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(1, keepdims=True)


def fit_temperature(probabilities, labels):
    """The temperature that minimizes the negative log-likelihood of these faces' labels."""
    def loss(log_t):
        return negative_log_likelihood(with_temperature(probabilities, np.exp(log_t)), labels)
    found = minimize_scalar(loss, bounds=np.log(TEMPERATURES), method="bounded", options=dict(xatol=1e-4))
    return float(np.exp(found.x))


def halves(count, seed=0):
    """A random half of range(count) as a boolean mask (its complement is the other half)."""
    mask = np.zeros(count, bool)
    mask[np.random.default_rng(seed).permutation(count)[:count // 2]] = True
    return mask


def cross_fitted(probabilities, labels, seed=0):
    """Each face's probabilities under the temperature fitted on the other half of the faces, so that the score
    after calibration is not flattered by fitting on the faces it scores; and the two temperatures."""
    first = halves(len(labels), seed)
    calibrated = np.empty_like(probabilities, dtype=np.float64)
    temperatures = []
    for fit_on in (first, ~first):
        temperature = fit_temperature(probabilities[fit_on], labels[fit_on])
        calibrated[~fit_on] = with_temperature(probabilities[~fit_on], temperature)
        temperatures.append(temperature)
    return calibrated, temperatures


def calibration_report(probabilities, labels, bins=BINS, seed=0):
    """Everything calibration.py prints and draws for one set of probabilities."""
    probabilities = np.asarray(probabilities, np.float64)
    calibrated, halves_t = cross_fitted(probabilities, labels, seed)
    b = confidence_bins(probabilities, labels, bins)
    return dict(
        faces=len(labels), accuracy=float(np.mean(probabilities.argmax(1) == labels)),
        mean_confidence=float(probabilities.max(1).mean()),
        ece=expected_calibration_error(probabilities, labels, bins),
        nll=negative_log_likelihood(probabilities, labels), brier=brier_score(probabilities, labels),
        temperature=fit_temperature(probabilities, labels), temperatures_of_halves=halves_t,
        ece_after=expected_calibration_error(calibrated, labels, bins),
        nll_after=negative_log_likelihood(calibrated, labels),
        bins={key: [None if np.isnan(v) else float(v) for v in values] if key != "faces" else values.tolist()
              for key, values in b.items()})
