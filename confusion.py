#!/usr/bin/env python3
"""Confusion matrix of a trained model on its validation split (or labeled test faces), with per-class metrics.

Counts and row-normalized rates, per-class precision/recall/F1, the most confused
pairs, the accuracy with its 95% interval; with several --model flags (e.g. CNN and
DNN) all side by side, the first minus the second as a difference matrix, and each
against the first on the same faces: McNemar's test on the faces only one of the two
gets right, which tells a real difference from luck on far fewer faces than comparing
the two accuracies can.

    python confusion.py --data data/train.csv
    python confusion.py --data data/train.csv --model models/cnn.keras --model models/dnn.keras --log
    python confusion.py --test data/fer2013.csv      # on its PrivateTest rows, as papers report
    python confusion.py --test data/fer2013.csv --ensemble --tta   # the models as predict.py --tta uses them
"""
import json
from pathlib import Path

import numpy as np

from fer import CLASSES, cli, inference, records
from fer.augment import TTA_DEFAULT, TTA_ZOOMS
from fer.narrative import p_words, points, rounded
from fer.outputs import check_folder
from fer.scores import (accuracy_interval, confusion_counts, macro_f1, most_confused, never_predicted,
                        paired_comparison, per_class_metrics)


def parse_args():
    parser = cli.parser(__doc__)
    cli.add_explain_flags(parser, compare=True, test=True)
    parser.add_argument("--ensemble", action="store_true",
                        help="score the models averaged as one, as predict.py does (without --model: "
                             f"{cli.ENSEMBLE_WORDS})")
    parser.add_argument("--tta", nargs="?", const=TTA_DEFAULT, choices=list(TTA_ZOOMS),
                        help="average each face over test-time views, as predict.py --tta does")
    parser.add_argument("--log", action="store_true", help="logarithmic colour scale for the counts")
    return parser.parse_args()


def scored_models(paths, x, what, ensemble, tta):
    """[(name, model files, predicted labels)]: each model, or with ensemble their average, over tta's views."""
    models = [inference.load_model(p) for p in paths]
    if tta:  # every view computed once and shown to every model (a line after each: they are the slow part)
        zooms = TTA_ZOOMS[tta]
        views = inference.view_probabilities(models, x, zooms,
                                             progress=inference.view_progress(f"{len(x):,} {what} faces", len(models)))
        own = [inference.mean_of_views([member], zooms) for member in views]
    else:
        own = [inference.predict_probabilities([model], x) for model in models]
    if ensemble:  # every model sees as many views, so the mean of their means is predict.py's mean
        name = f"ensemble of {len(paths)}" if len(paths) > 1 else Path(paths[0]).stem
        return [(name, paths, np.mean(own, axis=0).argmax(1))]
    return [(Path(path).stem, [path], probabilities.argmax(1)) for path, probabilities in zip(paths, own)]


def output_stem(paths, ensemble, tta, test):
    """confusion, or the models' names joined; marked when the scores are not a model's own on its validation
    split, since the report reads that file."""
    stem = ("confusion" if len(paths) == 1 or ensemble else
            "confusion_" + "_vs_".join(Path(p).stem for p in paths))
    return stem + ("_ensemble" if ensemble else "") + (f"_{tta}" if tta else "") + ("_test" if test else "")


def class_axes(ax):
    """A class-by-class matrix's axes: predicted classes across, true classes down."""
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right")
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.grid(False)


def draw(results, path, log):
    import matplotlib.colors as colors

    from fer.plots import plt, save

    fig, axes = plt.subplots(len(results), 2, figsize=(11, 4.9 * len(results)), squeeze=False)
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
                    ax.text(j, i, format(values[i, j], fmt), ha="center", va="center", fontsize=10,
                            color="white" if dark else "black")
            class_axes(ax)
            ax.set_title(f"{name}: {title} (accuracy {accuracy:.4f})")
    fig.tight_layout()
    return save(fig, path)


def draw_difference(results, path):
    """The first model's row-normalized confusion minus the second's: where one is right more often (diagonal)
    and which mistakes it makes less (off the diagonal, blue)."""
    from fer.plots import plt, save

    (first, a, _), (second, b, _) = results[:2]
    rates = [m / np.maximum(m.sum(1, keepdims=True), 1) for m in (a, b)]
    difference = rates[0] - rates[1]
    bound = max(np.abs(difference).max(), 0.05)
    fig, ax = plt.subplots(figsize=(7.5, 6.2), layout="constrained")
    image = ax.imshow(difference, cmap="RdBu_r", vmin=-bound, vmax=bound)
    fig.colorbar(image, ax=ax, label=f"rate of {first} minus rate of {second}")
    for i in range(len(CLASSES)):
        for j in range(len(CLASSES)):
            ax.text(j, i, f"{rounded(difference[i, j], 2):+.2f}", ha="center", va="center", fontsize=10,
                    color="white" if abs(difference[i, j]) > 0.6 * bound else "black")
    class_axes(ax)
    ax.set_title(f"{first} - {second}: red on the diagonal = {first} right more often")
    return save(fig, path)


def against(first, right):
    """A model against the first on the same faces: McNemar's test on the faces only one of the two gets right."""
    first_name, first_right = first
    c = paired_comparison(right, first_right)
    return dict(first=first_name, faces=c["faces"], right_only_here=c["a_only"], right_only_first=c["b_only"],
                difference=c["difference"], interval=c["interval"], p_value=c["p_value"], significant=c["significant"])


def against_words(c, name):
    low, high = (100 * v for v in c["interval"])
    return (f"against {c['first']} on the same faces: {points(c['difference'], 0)} (95% interval {low:+.1f} to "
            f"{high:+.1f}); {name} alone right on {c['right_only_here']:,}, {c['first']} alone on "
            f"{c['right_only_first']:,}; McNemar {p_words(c['p_value'])}: "
            + ("a real difference" if c["significant"] else "no evidence of a difference"))


def main():
    args = parse_args()
    check_folder(args.out)  # before any work: a run must not fail at its end
    paths = args.model or (cli.default_models() if args.ensemble else [cli.default_model()])
    faces, note, what = records.load_scored(args.data, args.test, paths)
    views = f", {args.tta} TTA" if args.tta else ""
    results, report, first = [], {}, None
    for name, files, predicted in scored_models(paths, faces.x, what, args.ensemble, args.tta):
        counts = confusion_counts(faces.y, predicted)
        accuracy = float(np.trace(counts) / counts.sum())
        results.append((name + views, counts, accuracy))
        per_class = per_class_metrics(faces.y, predicted)
        interval = accuracy_interval(int(np.trace(counts)), len(faces))
        report[name] = dict(accuracy=accuracy, accuracy_interval=list(interval), macro_f1=macro_f1(per_class),
                            counts=counts.tolist(), per_class=per_class, most_confused=most_confused(counts),
                            never_predicted=never_predicted(counts), faces=len(faces),
                            scored_on=f"{what}: {note} of {args.test or args.data}{views}",
                            models=[str(p) for p in files])
        print(f"\n{name}: accuracy {accuracy:.4f} (95% interval {interval[0]:.4f} to {interval[1]:.4f}) on "
              f"{len(faces):,} {what} faces ({note}{views})")
        print(f"{'class':<9} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8}  recall's 95% interval")
        for cls, m in report[name]["per_class"].items():
            low, high = m["recall_interval"]
            print(f"{cls:<9} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {m['support']:>8}  "
                  f"{low:.3f} to {high:.3f}")
        print(f"macro-F1 {report[name]['macro_f1']:.3f}"
              + "".join(f"; never predicts {c}" for c in report[name]["never_predicted"]))
        print("most confused: " + ("; ".join(f"{t} -> {p} {rate:.0%} ({n})" for t, p, rate, n in most_confused(counts))
                                   or "none: every face right"))
        right = predicted == faces.y
        if first is None:
            first = (name, right)
        else:  # on the same faces, only those where the two disagree tell them apart
            report[name]["against_first"] = against(first, right)
            print(against_words(report[name]["against_first"], name))
    stem = output_stem(paths, args.ensemble, args.tta, args.test)
    figures = [draw(results, Path(args.out) / f"{stem}.png", args.log)]
    if len(results) >= 2:  # the first model against the second
        figures.append(draw_difference(results, Path(args.out) / f"{stem}_difference.png"))
    from fer.atomic import write_text

    write_text(Path(args.out) / f"{stem}.json", json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {', '.join(map(str, figures))}, {Path(args.out) / f'{stem}.json'}")


if __name__ == "__main__":
    cli.run(main)
