"""Scores of a classifier on labeled faces: confusion counts, per-class metrics, the pairs it confuses most,
and the majority-class line that a model must clear before its accuracy means anything."""
import numpy as np

from . import CLASSES

LEARNED_MARGIN = 0.01  # a run within this of the majority-class share did not learn anything useful


def confusion_counts(truth, predicted):
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(truth, predicted, labels=range(len(CLASSES)))


def most_confused(counts, top=5):
    """Off-diagonal (true, predicted, share of the true class, count), largest share first: at most `top`, and only
    mistakes that happened (a model that makes few has fewer pairs, never a class paired with itself)."""
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    np.fill_diagonal(rates, 0)
    order = [k for k in np.argsort(rates, axis=None)[::-1] if rates.flat[k] > 0][:top]
    return [(CLASSES[i], CLASSES[j], float(rates[i, j]), int(counts[i, j]))
            for i, j in (np.unravel_index(k, rates.shape) for k in order)]


def per_class_metrics(truth, predicted):
    """Per class: precision, recall, F1, the class's faces, and recall's 95% interval (a class of 87 faces, as
    FER2013's Disgust has, knows its recall only to about ten points either way)."""
    from sklearn.metrics import precision_recall_fscore_support

    truth, predicted = np.asarray(truth), np.asarray(predicted)
    p, r, f, n = precision_recall_fscore_support(truth, predicted, labels=range(len(CLASSES)), zero_division=0)
    found = [int(np.sum((truth == c) & (predicted == c))) for c in range(len(CLASSES))]
    return {name: dict(precision=float(a), recall=float(b), f1=float(c), support=int(d),
                       recall_interval=list(accuracy_interval(k, int(d))))
            for name, a, b, c, d, k in zip(CLASSES, p, r, f, n, found)}


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


def within_noise(paired, a, b, n):
    """Whether accuracies a and b on the same n faces differ too little to call: McNemar's verdict where the two
    models were tested face by face (`paired`: paired_comparison's record), else difference_is_noise's."""
    return not paired["significant"] if paired else bool(difference_is_noise(a, b, n))


Z_95 = 1.959963984540054  # the standard normal's two-sided 95% point
SIGNIFICANCE = 0.05


def accuracy_interval(right, n, z=Z_95):
    """Wilson's 95% interval for an accuracy of `right` faces out of `n`: unlike the normal approximation's, it
    stays within [0, 1] and keeps its coverage near either end (a model right on every face of a small set)."""
    if n <= 0:
        return 0.0, 1.0
    p, z2 = right / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # at either end the interval closes exactly on it, which rounding would leave a hair short of
    return 0.0 if right == 0 else float(centre - half), 1.0 if right == n else float(centre + half)


def paired_comparison(right_a, right_b, z=Z_95):
    """Two classifiers scored on the same faces (right_a, right_b: whether each got each face right). Only the
    faces where one is right and the other wrong tell them apart: McNemar's exact test asks whether a's and b's
    shares of those could come from tossing a fair coin. On shared faces this is far more sensitive than
    difference_is_noise, which must treat the two accuracies as measured on different faces."""
    from scipy.stats import binom

    right_a, right_b = np.asarray(right_a, bool), np.asarray(right_b, bool)
    if right_a.shape != right_b.shape or right_a.ndim != 1:
        raise ValueError(f"paired_comparison needs the same faces: shapes {right_a.shape} and {right_b.shape}")
    n = len(right_a)
    a_only, b_only = int(np.sum(right_a & ~right_b)), int(np.sum(right_b & ~right_a))
    disagree = a_only + b_only
    p_value = min(1.0, 2 * float(binom.cdf(min(a_only, b_only), disagree, 0.5))) if disagree else 1.0
    difference = (a_only - b_only) / max(n, 1)
    # the matched-pairs standard error of a difference of two accuracies on the same faces
    half = z * np.sqrt(max(disagree - (a_only - b_only) ** 2 / max(n, 1), 0.0)) / max(n, 1)
    return dict(faces=n, a_only=a_only, b_only=b_only, difference=difference,
                interval=[float(difference - half), float(difference + half)], p_value=p_value,
                significant=p_value < SIGNIFICANCE)
