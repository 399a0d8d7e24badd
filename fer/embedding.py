"""The faces as a network sees them where it decides: the features its output layer reads, a two-dimensional map
of them (t-SNE), and how often a face's nearest neighbours share its class, in the features and on the map."""
import keras
import numpy as np

from . import CLASSES
from .data import as_input
from .errors import InputError
from .layers import layer_model


def hidden_features(model, x, path="the model", batch_size=256):
    """(faces, features) float32: what the output layer reads for each face, i.e. the last hidden layer after
    its activation (dropout is off at inference). A model whose last layer is not a Dense one is refused."""
    head = model.layers[-1]
    if not isinstance(head, keras.layers.Dense):
        raise InputError(path, f"its last layer ({type(head).__name__}) is not a Dense classifier: no "
                               "hidden features to map")
    features = layer_model(model, head.input).predict(as_input(x), batch_size=batch_size, verbose=0)
    return np.asarray(features, np.float32).reshape(len(x), -1)


def chosen_faces(count, total, seed=0):
    """Sorted row numbers of `count` of `total` faces drawn at random (all of them if count >= total)."""
    if count >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, count, replace=False))


def tsne_map(features, perplexity=30.0, seed=0):
    """(faces, 2) coordinates from t-SNE: faces near each other in the features stay near on the map. Sizes of
    islands and the distances between them mean little; who neighbours whom is what the map keeps."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    features = np.asarray(features, np.float64)
    # PCA first, as t-SNE's authors advise: the neighbour search is faster and fine noise directions drop out
    if features.shape[1] > 50 and len(features) > 50:
        features = PCA(50, random_state=seed).fit_transform(features)
    return TSNE(2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed).fit_transform(features)


def nearest_others(points, k=10):
    """(faces, k) row numbers of each face's k nearest other faces (Euclidean), nearest first."""
    from sklearn.neighbors import NearestNeighbors

    if not 1 <= k < len(points):
        raise ValueError(f"k = {k} neighbours needs more than {k} faces (got {len(points)})")
    _, nearest = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    # a repeated face can stand before itself in the list: drop the face itself, not the first column
    return np.array([row[row != face][:k] for face, row in enumerate(nearest)])


def neighbour_counts(nearest, labels):
    """A classes x classes matrix: row c counts the classes of the nearest other faces (nearest_others) of every
    face of class c. Its diagonal's share is how far the classes keep together."""
    labels = np.asarray(labels)
    counts = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
    np.add.at(counts, (np.repeat(labels, nearest.shape[1]), labels[nearest].ravel()), 1)
    return counts


def shuffled_p(nearest, labels, draws=999, seed=0):
    """Could shuffled classes keep together as much? The permutation test's one-sided p-value: the share of `draws`
    shufflings of the faces' classes whose agreement on the same neighbours is at least the real one's (the real
    one counted among them, so never below 1 / (draws + 1))."""
    labels = np.asarray(labels)
    observed = np.mean(labels[nearest] == labels[:, None])
    rng = np.random.default_rng(seed)
    as_high = 0
    for _ in range(draws):
        shuffled = rng.permutation(labels)
        as_high += np.mean(shuffled[nearest] == shuffled[:, None]) >= observed - 1e-12
    return (1 + as_high) / (1 + draws)


def agreement(counts):
    """The share of all neighbours that carry their face's class."""
    return float(np.trace(counts) / max(counts.sum(), 1))


def chance_agreement(labels):
    """What agreement a map with the classes shuffled would score on average: the chance that another face drawn
    at random shares a face's class."""
    sizes = np.bincount(np.asarray(labels), minlength=len(CLASSES)).astype(float)
    return float(np.sum(sizes * (sizes - 1)) / max(len(labels) * (len(labels) - 1), 1))


def class_agreement(counts):
    """{class: share of its faces' neighbours of the same class}, for the classes present."""
    totals = counts.sum(1)
    return {CLASSES[c]: float(counts[c, c] / totals[c]) for c in range(len(CLASSES)) if totals[c]}


def mixed_pairs(counts, top=3):
    """The pairs of classes whose faces most often neighbour each other: [(a, b, share)], share being the pair's
    neighbours in both directions over the neighbours of the two classes' faces."""
    pairs = []
    for a in range(len(CLASSES)):
        for b in range(a + 1, len(CLASSES)):
            total = counts[a].sum() + counts[b].sum()
            if total and counts[a, b] + counts[b, a]:
                pairs.append((CLASSES[a], CLASSES[b], float((counts[a, b] + counts[b, a]) / total)))
    return sorted(pairs, key=lambda pair: -pair[2])[:top]


def grid_faces(points, cells=7):
    """Faces to show on the map: on a cells x cells grid over it, the face nearest each cell's centre, if it lies
    in that cell. [(row number, (x, y) of the cell's centre)]."""
    low, high = points.min(0), points.max(0)
    size = (high - low) / cells
    chosen = []
    for i in range(cells):
        for j in range(cells):
            centre = low + size * (np.array([i, j]) + 0.5)
            inside = np.all(np.abs(points - centre) <= size / 2, axis=1)
            if inside.any():
                rows = np.flatnonzero(inside)
                chosen.append((int(rows[np.argmin(np.linalg.norm(points[rows] - centre, axis=1))]), tuple(centre)))
    return chosen


def label_places(points, labels, classes):
    """Where to write each class's name: the middle (median) of its faces on the map, moved up or down just enough
    that no two names overlap, since the classes a network confuses have their middles close together."""
    low, span = points.min(0), np.ptp(points, axis=0) + 1e-9
    width, height = 0.17, 0.055  # a name's box, as shares of the map's width and height
    placed = []
    for c in classes:
        x, y = (np.median(points[labels == c], axis=0) - low) / span
        for step in range(40):  # 0, +1, -1, +2, -2... boxes up and down
            tried = y + height * ((step + 1) // 2) * (1 if step % 2 else -1)
            if all(abs(x - px) >= width or abs(tried - py) >= height for px, py in placed):
                break
        placed.append((x, tried))
    return [low + np.array(place) * span for place in placed]
