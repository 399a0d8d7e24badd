#!/usr/bin/env python3
"""What each network withstands: its accuracy on validation faces (or labeled test faces) shifted, turned,
blurred, seen at a lower resolution, noised, flattened in contrast or partly covered, each at five growing strengths.

A photo from a phone is rarely framed, lit and focused as FER2013's faces were, so the accuracy on clean faces
is not all a user gets. With several --model flags (the CNN and a DNN of as many parameters) the networks are
scored on the very same corrupted faces, and the share of its lead over the majority class that each keeps is
compared with an interval from resampling the faces: a CNN shares its weights across positions, a DNN does not,
and shifted faces are where that should show. Every corruption is drawn from --seed, so a rerun scores the same faces.

With --ensemble the models' mean is scored as one, as predict.py, faces.py and video.py use them (by default
the shipped ensemble): what a user of those scripts gets.

Writes, in --out: robustness.png (with several models robustness_A_vs_B.png, with --ensemble
robustness_ensemble.png), .json (accuracies with their 95% intervals, the shares kept, the classes answered at the
strongest level, and under kept_first_minus the first model's share kept minus each other's, with its interval)
and .csv (one row per model, corruption and level).

    python robustness.py --data data/train.csv
    python robustness.py --data data/train.csv --model models/cnn.keras --model models/dnn.keras
    python robustness.py --data data/train.csv --corruption shift --corruption rotation --faces 5742
    python robustness.py --data data/train.csv --ensemble --corruption resolution
"""
import csv
import io
import json
import time
from pathlib import Path

import numpy as np

from fer import CLASSES, cli, inference, records
from fer.atomic import write_text
from fer.corruptions import CORRUPTIONS, corrupted, predictions_under, retained, retained_difference, strengths
from fer.embedding import chosen_faces
from fer.scores import accuracy_interval, learned, majority_share


def parse_args():
    parser = cli.parser(__doc__)
    cli.add_explain_flags(parser, compare=True, test=True)
    parser.add_argument("--corruption", action="append", choices=list(CORRUPTIONS),
                        help="repeat to choose (default: all)")
    parser.add_argument("--ensemble", action="store_true",
                        help="score the models' mean as one, as predict.py and faces.py use them (default: yours, "
                             "else the shipped ensemble)")
    parser.add_argument("--faces", type=cli.number(int, 20), default=2000,
                        help="faces drawn at random to score (default 2000; each is predicted "
                             f"{1 + sum(len(c.levels) - 1 for c in CORRUPTIONS.values())} times a model)")
    parser.add_argument("--seed", type=cli.number(int, **cli.SEED), default=0,
                        help="which faces, and every corruption's random directions, noise and places")
    return parser.parse_args()


def model_record(path, answers, right, majority):
    """One model's accuracies under each corruption, with their intervals, the share of its lead kept, and the
    classes it answers at the strongest level (where a network breaks, it often falls back on one or two).
    answers and right: {corruption: (levels, faces)} its answers and whether each is right."""
    clean = float(next(iter(right.values()))[0].mean())
    scores = {}
    for name, levels in right.items():
        counts = levels.sum(1)
        strongest = np.bincount(answers[name][-1], minlength=len(CLASSES)) / levels.shape[1]
        scores[name] = dict(accuracy=[float(c / levels.shape[1]) for c in counts],
                            interval=[list(accuracy_interval(int(c), levels.shape[1])) for c in counts],
                            retained=retained(levels, majority),
                            answers_at_strongest={c: float(v) for c, v in zip(CLASSES, strongest)})
    return dict(model=str(path), clean_accuracy=clean, learned=learned(clean, majority), corruptions=scores)


def summary_words(name, records_by_model):
    """One line per corruption: each model's accuracy from clean to the strongest level, the share kept, and the
    class it answers most at the strongest."""
    unit = CORRUPTIONS[name].unit
    levels = CORRUPTIONS[name].levels
    shown = []
    for model, r in records_by_model.items():
        scores = r["corruptions"][name]
        answers = scores["answers_at_strongest"]
        commonest = max(answers, key=answers.get)
        shown.append(f"{model} {scores['accuracy'][0]:.3f} -> {scores['accuracy'][-1]:.3f}, keeps "
                     f"{scores['retained']:.0%}, answers {commonest} {answers[commonest]:.0%}")
    return f"{name} ({unit} {levels[1]:g} to {levels[-1]:g}): {'; '.join(shown)}"


def draw(record, example, path):
    """Left, one face under every corruption at every level; right, each model's accuracy against the level, with
    its 95% interval and the majority-class line."""
    from fer.plots import plt, save

    names = list(record["corruptions"])
    fig = plt.figure(figsize=(11.3, 2 + 1.5 * len(names)), layout="constrained")  # the report's page width
    left, right = fig.subfigures(1, 2, width_ratios=[0.8, 1.2])
    faces = left.subplots(len(names), 6, squeeze=False)
    for row, name in enumerate(names):
        for column, level in enumerate(CORRUPTIONS[name].levels):
            ax = faces[row, column]
            ax.imshow(corrupted(example[None], name, level, record["seed"])[0], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{level:g}", fontsize=10)
        faces[row, 0].set_ylabel(name, fontsize=11)
    left.suptitle("one face at each level", fontsize=11)
    columns = 2 if len(names) > 1 else 1
    curves = right.subplots(-(-len(names) // columns), columns, squeeze=False)
    top = max(high for r in record["models"].values() for scores in r["corruptions"].values()
              for _, high in scores["interval"])
    for ax, name in zip(curves.flat, names):
        levels = CORRUPTIONS[name].levels
        for k, (model, r) in enumerate(record["models"].items()):
            scores = r["corruptions"][name]
            low, high = np.array(scores["interval"]).T
            colour = plt.cm.tab10(k)
            ax.fill_between(levels, low, high, color=colour, alpha=0.15, lw=0)
            ax.plot(levels, scores["accuracy"], "o-", color=colour, ms=4, label=model)
            kept = f"keeps {scores['retained']:.0%}" if r["learned"] else "did not learn"
            ax.text(0.98, 0.97 - 0.09 * k, kept, color=colour, ha="right", va="top", transform=ax.transAxes,
                    fontsize=10)
        ax.axhline(record["majority"], color="0.4", ls="--", lw=1)
        ax.set_title(name, fontsize=11)
        ax.set_xlabel(CORRUPTIONS[name].unit, fontsize=10)
        ax.set_ylim(0, min(1, np.ceil(10 * top + 1) / 10))  # room above for the shares kept
        if all(float(level).is_integer() for level in levels):
            ax.set_xticks(levels)  # whole-number levels are read off the axis itself
        if levels[-1] < levels[0]:
            ax.invert_xaxis()  # less contrast or fewer pixels is the stronger corruption: strength grows to the right
    for ax in list(curves.flat)[len(names):]:
        ax.set_visible(False)
    handles, labels = curves[0, 0].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], color="0.4", ls="--", lw=1))
    labels.append(f"majority class ({record['majority']:.3f})")
    right.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 2), frameon=False)
    count = strengths(len(CORRUPTIONS[n].levels) for n in names)
    right.suptitle("accuracy (95% interval); 'keeps': the share of its lead\nover the majority class "
                   f"kept, on average over the {count} levels", fontsize=11)
    fig.suptitle(f"{record['faces']:,} {record['scored_on'].split(':')[0]} faces, corrupted more and more")
    return save(fig, path)


def csv_text(record):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "corruption", "level", "unit", "accuracy", "low", "high", "faces"])
    for model, r in record["models"].items():
        for name, scores in r["corruptions"].items():
            for level, accuracy, (low, high) in zip(CORRUPTIONS[name].levels, scores["accuracy"], scores["interval"]):
                writer.writerow([model, name, f"{level:g}", CORRUPTIONS[name].unit, f"{accuracy:.4f}", f"{low:.4f}",
                                 f"{high:.4f}", record["faces"]])
    return buffer.getvalue()


def main():
    args = parse_args()
    paths, outputs = cli.compared_outputs(args, "robustness", "the curves and rows", args.ensemble)
    names = list(dict.fromkeys(args.corruption or CORRUPTIONS))
    faces, note, what = records.load_scored(args.data, args.test, paths)
    faces = faces.subset(chosen_faces(args.faces, len(faces), args.seed))
    models = [inference.load_model(path) for path in paths]
    scored = f"the mean of {len(paths)} models" if args.ensemble else f"{len(paths)} model(s)"
    print(f"scoring {scored} on {len(faces):,} of the {what} faces ({note}) under "
          f"{len(names)} corruption(s), {len(CORRUPTIONS[names[0]].levels) - 1} levels each", flush=True)
    started = time.perf_counter()

    def progress(name, level):
        print(f"  {name} {level:g} done ({time.perf_counter() - started:.0f} s)", flush=True)

    members = [models] if args.ensemble else [[m] for m in models]
    answers = predictions_under([lambda x, m=m: inference.predict_probabilities(m, x) for m in members], faces.x,
                                names, args.seed, progress)
    right = {name: [a == faces.y for a in answers[name]] for name in names}
    majority = majority_share(faces.y)
    stems = [f"ensemble of {len(paths)}"] if args.ensemble else [Path(p).stem for p in paths]
    files = [" + ".join(map(str, paths))] if args.ensemble else paths
    record = dict(faces=len(faces), scored_on=f"{what}: {note} of {args.test or args.data}", seed=args.seed,
                  majority=majority, corruptions={n: dict(levels=list(CORRUPTIONS[n].levels), unit=CORRUPTIONS[n].unit)
                                                  for n in names},
                  truth={c: float(v) for c, v in zip(CLASSES, np.bincount(faces.y, minlength=len(CLASSES))
                                                     / len(faces))},
                  models={s: model_record(p, {n: answers[n][k] for n in names}, {n: right[n][k] for n in names},
                                          majority)
                          for k, (s, p) in enumerate(zip(stems, files))},
                  kept_first_minus={s: {n: retained_difference(right[n][0], right[n][k], faces.y, seed=args.seed)
                                        for n in names} for k, s in enumerate(stems) if k > 0})
    for name in names:
        print(summary_words(name, record["models"]), flush=True)
    print(f"scored in {time.perf_counter() - started:.0f} s")
    example = faces.x[int(np.argmax(right[names[0]][0][0]))]  # a face the first model gets right when clean
    figure = draw(record, example, outputs[0])
    write_text(outputs[1], json.dumps(record, indent=1) + "\n")
    write_text(outputs[2], csv_text(record))
    print(f"wrote {figure}, {outputs[1]}, {outputs[2]}")


if __name__ == "__main__":
    cli.run(main)
