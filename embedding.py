#!/usr/bin/env python3
"""Where a trained network puts each face: the features its output layer reads (the last hidden layer), mapped to
two dimensions by t-SNE and coloured by the true class, for validation faces (or labeled test faces).

Classes the network keeps apart form islands of one colour; classes it confuses share a shore. Since a map can
mislead, each is also scored: the share of a face's --neighbours nearest other faces that carry its class, in the
network's own features and on the map, beside what shuffled classes would score, with a permutation test of
whether shuffled classes could score as much on the same neighbours. With several --model flags (the
CNN and a DNN of as many parameters) the maps stand side by side, each on the same faces.

Writes, in --out: embedding.png (with several models embedding_A_vs_B.png), .json (the scores, per class too) and
.csv (each face's row in the split, its label, and per model its prediction and place on the map).

    python embedding.py --data data/train.csv
    python embedding.py --data data/train.csv --model models/cnn.keras --model models/dnn.keras
    python embedding.py --data data/train.csv --faces 5742 --perplexity 50
"""
import csv
import io
import json
import time
from pathlib import Path

import numpy as np

from fer import CLASSES, cli, inference, records
from fer.atomic import write_text
from fer.embedding import (agreement, chance_agreement, chosen_faces, class_agreement, grid_faces, hidden_features,
                           label_places, mixed_pairs, nearest_others, neighbour_counts, shuffled_p, tsne_map)
from fer.errors import InputError
from fer.scores import SIGNIFICANCE


def parse_args():
    parser = cli.parser(__doc__)
    cli.add_explain_flags(parser, compare=True, test=True)
    parser.add_argument("--faces", type=cli.number(int, 20), default=3000,
                        help="faces drawn at random to map (default 3000; t-SNE's time grows faster than their count)")
    parser.add_argument("--perplexity", type=cli.number(float, 2, 100), default=30.0,
                        help="t-SNE's effective number of neighbours per face, under a third of the faces (default 30)")
    parser.add_argument("--neighbours", type=cli.number(int, 1, 100), default=10,
                        help="nearest faces that score how far the classes keep together (default 10)")
    parser.add_argument("--seed", type=cli.number(int, **cli.SEED), default=0, help="which faces, and t-SNE's start")
    return parser.parse_args()


def check_counts(args, count):
    """t-SNE needs a few times as many faces as its perplexity (scikit-learn: more than it; here three times, so that
    each face has neighbours to spare), and the score more faces than its neighbours."""
    if count <= 3 * args.perplexity:
        raise InputError("--perplexity", f"{args.perplexity:g} needs more than {3 * args.perplexity:g} faces to "
                                         f"map; there are {count} (lower it, or map more --faces)")
    if count <= args.neighbours:
        raise InputError("--neighbours", f"{args.neighbours} needs more than {args.neighbours} faces; there are "
                                         f"{count}")


def map_model(path, x, y, args):
    """One model's features, map and scores."""
    model = inference.load_model(path)
    started = time.perf_counter()
    features = hidden_features(model, x, path)
    predicted = inference.predict_probabilities([model], x).argmax(1)
    points = tsne_map(features, args.perplexity, args.seed)
    nearest = nearest_others(features, args.neighbours)
    in_features, on_map = neighbour_counts(nearest, y), neighbour_counts(nearest_others(points, args.neighbours), y)
    by_class = class_agreement(on_map)
    return dict(points=points, predicted=predicted, seconds=time.perf_counter() - started,
                record=dict(model=str(path), features=int(features.shape[1]), accuracy=float(np.mean(predicted == y)),
                            agreement_features=agreement(in_features), agreement_map=agreement(on_map),
                            p_shuffled=shuffled_p(nearest, y, seed=args.seed),
                            per_class={c: dict(features=f, map=by_class[c])
                                       for c, f in class_agreement(in_features).items()},
                            mixed_pairs=mixed_pairs(in_features), neighbour_counts=in_features.tolist()))


def summary_words(name, result, chance, k):
    r = result["record"]
    order = sorted(r["per_class"], key=lambda c: -r["per_class"][c]["features"])
    pairs = "; ".join(f"{a} and {b} {share:.0%}" for a, b, share in r["mixed_pairs"]) or "none"
    return (f"{name}: of each face's {k} nearest faces, {r['agreement_features']:.1%} share its class in its "
            f"{r['features']} features and {r['agreement_map']:.1%} on the map (shuffled classes: {chance:.1%}, "
            f"as high with p {'<=' if r['p_shuffled'] <= 0.001 else '='} {r['p_shuffled']:.3g}); "
            f"together most: {order[0]} {r['per_class'][order[0]]['features']:.0%}, least: {order[-1]} "
            f"{r['per_class'][order[-1]]['features']:.0%}; most mixed: {pairs} ({result['seconds']:.0f} s)")


def draw(results, faces, chance, k, path):
    """Per model, the map coloured by true class with each class's name at its middle; beside it, the same map
    with faces drawn where they lie."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    from fer.plots import plt, save

    fig, axes = plt.subplots(len(results), 2, figsize=(10.5, 5.2 * len(results)), squeeze=False, layout="constrained")
    for row, (name, result) in enumerate(results.items()):
        points, r = result["points"], result["record"]
        scatter, gallery = axes[row]
        present = [c for c in range(len(CLASSES)) if np.any(faces.y == c)]
        for c in present:
            scatter.scatter(*points[faces.y == c].T, s=5, color=plt.cm.tab10(c), alpha=0.6, lw=0, label=CLASSES[c])
        middles = label_places(points, faces.y, present)
        for c, middle in zip(present, middles):
            scatter.text(*middle, CLASSES[c], ha="center", va="center", fontsize=10, weight="bold",
                         bbox=dict(boxstyle="round,pad=0.2", fc="white", ec=plt.cm.tab10(c), alpha=0.85))
        chance_words = f"no better than shuffled ({chance:.0%}, p = {r['p_shuffled']:.2f})" \
            if r["p_shuffled"] >= SIGNIFICANCE else f"shuffled classes {chance:.0%}"
        scatter.set_title(f"{name}: of {k} nearest faces, {r['agreement_features']:.0%} of its class\n"
                          f"({chance_words}; accuracy {r['accuracy']:.3f})", fontsize=11)
        gallery.scatter(*points.T, s=3, color="0.8", lw=0)
        for face, centre in grid_faces(points):
            picture = OffsetImage(faces.x[face], cmap="gray", norm=plt.Normalize(0, 255), zoom=0.85)
            gallery.add_artist(AnnotationBbox(picture, centre, frameon=True, pad=0.15,
                                              bboxprops=dict(ec=plt.cm.tab10(faces.y[face]), lw=2)))
        gallery.set_title(f"{name}: the faces at each place\n(framed in the colour of their true class)", fontsize=11)
        for ax in (scatter, gallery):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, ncol=len(labels), loc="outside lower center", markerscale=4, frameon=False)
    fig.suptitle(f"The {len(faces):,} faces as each network's last hidden layer sees them (t-SNE)")
    return save(fig, path)


def csv_text(rows, y, results):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["row", "label"] + [f"{key}_{name}" for name in results for key in ("predicted", "x", "y")])
    for i, (row, label) in enumerate(zip(rows, y)):
        writer.writerow([row, CLASSES[label]] + [value for result in results.values() for value in
                                                 (CLASSES[result["predicted"][i]], *(f"{v:.3f}" for v in
                                                                                     result["points"][i]))])
    return buffer.getvalue()


def main():
    args = parse_args()
    paths, outputs = cli.compared_outputs(args, "embedding", "the maps and columns")
    faces, note, what = records.load_scored(args.data, args.test, paths)
    rows = chosen_faces(args.faces, len(faces), args.seed)
    check_counts(args, len(rows))
    faces = faces.subset(rows)
    chance = chance_agreement(faces.y)
    print(f"mapping {len(faces):,} of the {what} faces ({note}) with t-SNE, perplexity {args.perplexity:g}", flush=True)
    results = {}
    for path in paths:
        results[Path(path).stem] = map_model(path, faces.x, faces.y, args)
        print(summary_words(Path(path).stem, results[Path(path).stem], chance, args.neighbours), flush=True)
    figure = draw(results, faces, chance, args.neighbours, outputs[0])
    record = dict(faces=len(faces), scored_on=f"{what}: {note} of {args.test or args.data}", seed=args.seed,
                  perplexity=args.perplexity, neighbours=args.neighbours, chance_agreement=chance,
                  models={name: result["record"] for name, result in results.items()})
    write_text(outputs[1], json.dumps(record, indent=1) + "\n")
    write_text(outputs[2], csv_text(rows, faces.y, results))
    print(f"wrote {figure}, {outputs[1]}, {outputs[2]}")


if __name__ == "__main__":
    cli.run(main)
