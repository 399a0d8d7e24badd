"""Scores of a classifier on labeled faces: confusion counts, per-class metrics, the pairs it confuses most,
and the majority-class line that a model must clear before its accuracy means anything."""
import numpy as np

from . import CLASSES

LEARNED_MARGIN = 0.01  # a run within this of the majority-class share did not learn anything useful


def confusion_counts(truth, predicted):
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(truth, predicted, labels=range(len(CLASSES)))


def most_confused(counts, top=5):
    """Off-diagonal (true, predicted, share of the true class, count), largest share first."""
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    np.fill_diagonal(rates, 0)
    order = np.argsort(rates, axis=None)[::-1][:top]
    return [(CLASSES[i], CLASSES[j], float(rates[i, j]), int(counts[i, j]))
            for i, j in zip(*np.unravel_index(order, rates.shape))]


def per_class_metrics(truth, predicted):
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, n = precision_recall_fscore_support(truth, predicted, labels=range(len(CLASSES)), zero_division=0)
    return {name: dict(precision=float(a), recall=float(b), f1=float(c), support=int(d))
            for name, a, b, c, d in zip(CLASSES, p, r, f, n)}


def macro_f1(per_class):
    return float(np.mean([m["f1"] for m in per_class.values()]))


def never_predicted(counts):
    """Classes present among the faces that the model never predicts."""
    counts = np.asarray(counts)
    return [CLASSES[c] for c in range(len(CLASSES)) if counts[:, c].sum() == 0 and counts[c].sum() > 0]


def majority_share(labels):
    """Accuracy of always answering the most common class."""
    labels = np.asarray(labels)
    return float(np.bincount(labels, minlength=len(CLASSES)).max() / max(len(labels), 1))


def learned(accuracy, majority):
    """Whether an accuracy clears the majority-class line by more than LEARNED_MARGIN."""
    return accuracy is not None and accuracy > majority + LEARNED_MARGIN


def difference_is_noise(a, b, n):
    """Whether two accuracies on the same n faces differ by less than two standard errors of the difference of
    two independent binomial proportions: too little to call a gain."""
    p = (a + b) / 2
    return abs(a - b) <= 2 * np.sqrt(2 * p * (1 - p) / max(n, 1))  # equal accuracies are never a gain, even at 1
