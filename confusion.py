#!/usr/bin/env python3
"""Confusion matrix of a trained model on its validation split, with per-class metrics.

Counts and row-normalized rates, per-class precision/recall/F1, the most confused
pairs; with two --model flags (e.g. CNN and DNN) both side by side.

    python confusion.py --data data/train.csv
    python confusion.py --data data/train.csv --model models/cnn.keras --model models/dnn.keras --log
"""
import json
from pathlib import Path

import numpy as np

from fer import CLASSES, cli, inference, records
from fer.outputs import check_folder


def parse_args():
    parser = cli.parser(__doc__)
    cli.add_explain_flags(parser, compare=True)
    parser.add_argument("--log", action="store_true", help="logarithmic colour scale for the counts")
    return parser.parse_args()


def confusion_counts(truth, predicted):
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(truth, predicted, labels=range(len(CLASSES)))


def most_confused(counts, top=5):
    """Off-diagonal (true, predicted) pairs by the share of the true class they take."""
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


def draw(results, path, log):
    import matplotlib.colors as colors

    from fer.plots import plt, save

    fig, axes = plt.subplots(len(results), 2, figsize=(12, 5.2 * len(results)), squeeze=False)
    for row, (name, counts, accuracy) in enumerate(results):
        rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        for ax, values, title, fmt in ((axes[row, 0], counts, "counts", "d"),
                                       (axes[row, 1], rates, "rate per true class", ".2f")):
            norm = colors.LogNorm(vmin=1, vmax=max(values.max(), 2)) if log and fmt == "d" else None
            image = ax.imshow(np.maximum(values, 1) if norm else values, cmap="Blues", norm=norm,
                              vmin=None if norm else 0, vmax=None if norm else (1 if fmt != "d" else None))
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
            for i in range(len(CLASSES)):
                for j in range(len(CLASSES)):
                    dark = values[i, j] > (values.max() * 0.6 if fmt == "d" else 0.6)
                    ax.text(j, i, format(values[i, j], fmt), ha="center", va="center", fontsize=9,
                            color="white" if dark else "black")
            ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right")
            ax.set_yticks(range(len(CLASSES)), CLASSES)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            ax.grid(False)
            ax.set_title(f"{name}: {title} (accuracy {accuracy:.4f})")
    fig.tight_layout()
    return save(fig, path)


def main():
    args = parse_args()
    check_folder(args.out)  # before any work: a run must not fail at its end
    paths = args.model or [cli.default_model()]
    models = [inference.load_model(p) for p in paths]
    faces, note = records.load_validation(args.data, paths)
    results, report = [], {}
    for path, model in zip(paths, models):
        predicted = inference.predict_probabilities([model], faces.x).argmax(1)
        counts = confusion_counts(faces.y, predicted)
        accuracy = float(np.trace(counts) / counts.sum())
        name = Path(path).stem
        results.append((name, counts, accuracy))
        report[name] = dict(accuracy=accuracy, counts=counts.tolist(), per_class=per_class_metrics(faces.y, predicted),
                            most_confused=most_confused(counts))
        print(f"\n{name}: accuracy {accuracy:.4f} on {len(faces):,} validation faces ({note})")
        print(f"{'class':<9} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8}")
        for cls, m in report[name]["per_class"].items():
            print(f"{cls:<9} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {m['support']:>8}")
        print("most confused: " + "; ".join(f"{t} -> {p} {rate:.0%} ({n})" for t, p, rate, n in most_confused(counts)))
    stem = "confusion" if len(paths) == 1 else "confusion_" + "_vs_".join(Path(p).stem for p in paths)
    figure = draw(results, Path(args.out) / f"{stem}.png", args.log)
    from fer.atomic import write_text

    write_text(Path(args.out) / f"{stem}.json", json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {figure}, {Path(args.out) / f'{stem}.json'}")


if __name__ == "__main__":
    cli.run(main)
