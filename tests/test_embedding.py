"""embedding.py and fer/embedding.py: the features are what the output layer reads, the neighbour scores count
what they say, t-SNE keeps separate groups apart, and the script's files agree with each other and the model."""
import json

import numpy as np
import pytest

from conftest import read_rows, refused, run_script
from fer import CLASSES, inference
from fer.embedding import (agreement, chance_agreement, chosen_faces, class_agreement, grid_faces, hidden_features,
                           label_places, mixed_pairs, nearest_others, neighbour_counts, shuffled_p,
                           tsne_map)
from fer.errors import InputError


def blobs(groups=3, each=40, dims=64, spread=0.3, seed=0):
    """Points in `groups` tight clusters far apart; the label of each is its cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, (groups, dims))
    labels = np.repeat(np.arange(groups), each)
    return centres[labels] + rng.normal(0, spread, (len(labels), dims)), labels


def brute_force_agreement(points, labels, k):
    """The share of each point's k nearest other points (Euclidean) with its label, written out with NumPy."""
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return float(np.mean(labels[nearest] == labels[:, None]))


def test_neighbour_counts_agree_with_a_brute_force_count_and_see_separate_classes():
    points, labels = blobs()
    counts = neighbour_counts(nearest_others(points, 5), labels)
    assert counts.sum() == 5 * len(labels) and agreement(counts) == 1.0
    assert class_agreement(counts) == {CLASSES[c]: 1.0 for c in range(3)} and mixed_pairs(counts) == []
    shuffled = np.random.default_rng(1).permutation(labels)
    counts = neighbour_counts(nearest_others(points, 5), shuffled)
    assert agreement(counts) == pytest.approx(brute_force_agreement(points, shuffled, 5))
    assert agreement(counts) < 0.6
    a, b, share = mixed_pairs(counts, top=1)[0]
    assert share == max((counts[i, j] + counts[j, i]) / (counts[i].sum() + counts[j].sum())
                        for i in range(3) for j in range(i + 1, 3))


def test_a_repeated_face_never_counts_as_its_own_neighbour():
    # three copies of one face with three labels: the search lists a copy before the face itself for most of them
    points = np.array([[0.0, 0], [0, 0], [0, 0], [10, 10], [10, 10.5]])
    labels = np.array([0, 1, 2, 3, 3])
    counts = neighbour_counts(nearest_others(points, 2), labels)
    assert counts.sum() == 10 and counts[3, 3] == 2 and np.trace(counts[:3, :3]) == 0
    assert counts[:3, :3].sum() == 6  # each copy's two neighbours are the other two copies
    with pytest.raises(ValueError):
        neighbour_counts(nearest_others(points, 5), labels)


def test_chance_agreement_is_what_every_arrangement_scores_when_all_faces_are_neighbours():
    labels = np.array([0, 0, 0, 1, 1, 3, 6])
    points = np.random.default_rng(2).normal(size=(len(labels), 3))
    for seed in range(3):
        shuffled = np.random.default_rng(seed).permutation(labels)
        assert agreement(neighbour_counts(nearest_others(points, len(labels) - 1), shuffled)) == pytest.approx(
            chance_agreement(labels))
    assert chance_agreement(labels) == pytest.approx((3 * 2 + 2 * 1) / (7 * 6))


def test_the_permutation_test_tells_kept_classes_from_shuffled_ones():
    points, labels = blobs(groups=4, each=30)
    nearest = nearest_others(points, 5)
    assert shuffled_p(nearest, labels, draws=199) == 1 / 200  # no shuffling keeps the clusters' classes together
    rng = np.random.default_rng(6)
    p_values = [shuffled_p(nearest, rng.permutation(labels), draws=199, seed=k) for k in range(20)]
    assert sum(p < 0.05 for p in p_values) <= 3 and np.mean(p_values) > 0.3  # random classes: about uniform


def test_tsne_keeps_separate_groups_apart():
    points, labels = blobs(groups=4, each=30, dims=80)
    mapped = tsne_map(points, perplexity=10, seed=0)
    assert mapped.shape == (120, 2)
    assert brute_force_agreement(mapped, labels, 5) > 0.95
    assert np.allclose(mapped, tsne_map(points, perplexity=10, seed=0))  # seeded: the same map again


def test_grid_faces_picks_one_face_inside_each_occupied_cell():
    points = np.random.default_rng(3).uniform(0, 1, (300, 2))
    chosen = grid_faces(points, cells=5)
    assert 20 <= len(chosen) <= 25 and len({face for face, _ in chosen}) == len(chosen)
    size = (points.max(0) - points.min(0)) / 5
    for face, centre in chosen:
        assert np.all(np.abs(points[face] - centre) <= size / 2 + 1e-12)
    assert list(chosen_faces(10, 5)) == list(range(5))
    picked = chosen_faces(50, 1000, seed=4)
    assert len(set(picked)) == 50 and list(picked) == sorted(picked) and list(picked) == list(chosen_faces(50, 1000, 4))


def test_class_names_on_the_map_never_overlap_even_where_the_classes_share_a_middle():
    rng = np.random.default_rng(5)
    points = rng.uniform(0, 1, (400, 2))
    labels = np.repeat(np.arange(4), 100)
    points[labels < 3] = rng.normal(0.5, 0.01, (300, 2))  # three classes piled on one spot
    places = (np.array(label_places(points, labels, range(4))) - points.min(0)) / np.ptp(points, axis=0)
    for i in range(4):
        for j in range(i):
            assert abs(places[i, 0] - places[j, 0]) >= 0.17 or abs(places[i, 1] - places[j, 1]) >= 0.055 - 1e-9
    assert np.allclose(places[0], (np.median(points[labels == 0], 0) - points.min(0)) / np.ptp(points, axis=0))


def test_the_features_are_what_the_output_layer_reads(trained, synthetic_files):
    from fer import records

    model = inference.load_model(trained / "cnn.keras")
    _, val, _ = records.load_split(synthetic_files["train"], trained / "cnn.keras")
    features = hidden_features(model, val.x[:40])
    weights, bias = model.layers[-1].get_weights()
    logits = features.astype(np.float64) @ weights + bias
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    assert features.shape == (40, weights.shape[0])
    assert np.allclose(softmax, inference.predict_probabilities([model], val.x[:40]), atol=1e-4)

    import keras

    inputs = keras.Input((4,))
    ends_in_activation = keras.Model(inputs, keras.layers.Activation("softmax")(keras.layers.Dense(7)(inputs)))
    with pytest.raises(InputError, match=r"its last layer \(Activation\) is not a Dense"):
        hidden_features(ends_in_activation, np.zeros((2, 4)), "odd.keras")


def test_embedding_script_maps_scores_and_records_each_model(trained, synthetic_files, tmp_path, capsys):
    from fer import records

    model = trained / "cnn.keras"
    out = tmp_path / "maps"
    assert run_script("embedding.py", "--data", synthetic_files["train"], "--model", model, "--out", out,
                      "--perplexity", "15", "--neighbours", "5") == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "embedding.json").read_text())
    rows = read_rows(out / "embedding.csv")
    _, val, _ = records.load_split(synthetic_files["train"], model)
    assert record["faces"] == len(val) == len(rows) and (out / "embedding.png").stat().st_size > 20_000
    r = record["models"]["cnn"]
    # the synthetic classes are a drawn square the model learned: its features keep them apart
    assert r["agreement_features"] > 0.9 and record["chance_agreement"] < 0.2 and r["p_shuffled"] == 1 / 1000
    predicted = inference.predict_probabilities([inference.load_model(model)], val.x).argmax(1)
    assert [row["predicted_cnn"] for row in rows] == [CLASSES[p] for p in predicted]
    assert [row["label"] for row in rows] == [CLASSES[y] for y in val.y]
    assert r["accuracy"] == pytest.approx(np.mean(predicted == val.y))
    # the map's score is the neighbours of the points written to the CSV
    mapped = np.array([[float(row["x_cnn"]), float(row["y_cnn"])] for row in rows])
    assert r["agreement_map"] == pytest.approx(brute_force_agreement(mapped, val.y, 5), abs=0.01)
    assert np.sum(r["neighbour_counts"]) == 5 * len(val)
    assert f"{r['agreement_features']:.1%} share its class" in printed and "wrote " in printed


@pytest.mark.parametrize("flags, words", [
    (["--perplexity", "60"], "--perplexity: 60 needs more than 180 faces to map; there are 140"),
    (["--faces", "5"], "--faces: "),
    (["--neighbours", "0"], "--neighbours: "),
])
def test_embedding_script_refuses_what_it_cannot_map(trained, synthetic_files, tmp_path, capsys, flags, words):
    line = refused(capsys, "embedding.py", "--data", synthetic_files["train"], "--model", trained / "cnn.keras",
                   "--out", tmp_path, *flags, inputs=[synthetic_files["train"]])
    assert words in line and not list(tmp_path.glob("embedding*"))


def test_embedding_script_refuses_a_model_without_a_dense_classifier_at_its_end(synthetic_files, tmp_path, capsys):
    import keras

    inputs = keras.Input((48, 48, 1))
    scores = keras.layers.Dense(7)(keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs)))
    keras.Model(inputs, keras.layers.Activation("softmax")(scores)).save(tmp_path / "odd.keras")
    line = refused(capsys, "embedding.py", "--data", synthetic_files["train"], "--model", tmp_path / "odd.keras",
                   "--out", tmp_path / "maps", inputs=[tmp_path / "odd.keras"])
    assert line == (f"error: {tmp_path / 'odd.keras'}: its last layer (Activation) is not a Dense classifier: no "
                    "hidden features to map")
    assert not (tmp_path / "maps").exists()
