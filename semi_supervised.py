#!/usr/bin/env python3
"""Semi-supervised learning by pseudo-labels: how far do unlabeled faces carry a model trained on few labels?

For each labeled fraction of the training split (default 10%, 20%, 50%; stratified):
  round 0  train on the labeled faces only (the supervised baseline);
  round r  label the other faces (and, with --test, the test file) with the last model, keep the most
           confident --keep share of them (or those above --threshold), train a fresh model on labeled +
           pseudo-labeled.
Every model is scored on the same validation split, next to one trained with all labels; the best round
is tested against the supervised model by McNemar's test on the faces only one of them gets right. The hidden
labels of the unlabeled training faces are used for one thing only: to report how right the pseudo-labels
were. Writes figures/semi_supervised.png, figures/semi_supervised.json and a table; finished runs are reused.

    python semi_supervised.py --data data/train.csv --test data/test.csv
    python semi_supervised.py --data data/train.csv --fractions 0.1 0.2 --rounds 2 --keep 0.5
"""
import json
from pathlib import Path

import numpy as np

from fer import IMAGE_SIZE, cli, inference, records, training
from fer.atomic import write_text
from fer.data import as_input, one_hot, prepare_data
from fer.outputs import check_folder
from fer.scores import learned, majority_share, paired_comparison, within_noise
from fer.settings import resolve


def parse_args():
    parser = cli.parser(__doc__)
    cli.add_data_flags(parser, labeled="--data", test=False)
    parser.add_argument("--test", metavar="CSV", help="also pseudo-label this unlabeled test.csv")
    parser.add_argument("--fractions", type=cli.number(float, 0, 1, above=True, below=True),
                        nargs="+", default=[0.1, 0.2, 0.5],
                        help="labeled shares of the training split (default 0.1 0.2 0.5)")
    parser.add_argument("--rounds", type=cli.number(int, 0),
                        default=2, help="pseudo-labelling rounds after the supervised one")
    parser.add_argument("--keep", type=cli.number(float, 0, 1, above=True), default=0.3,
                        help="pseudo-label the most confident share of the unlabeled faces (default 0.3): a weak "
                             "model trained with label smoothing is rarely 80%% sure of anything")
    parser.add_argument("--threshold", type=cli.number(float, 0, 1, above=True, below=True),
                        help="instead of --keep: the faces predicted this confidently")
    cli.add_run_flags(parser)
    cli.add_network_flags(parser)
    out = parser.add_argument_group("outputs")
    out.add_argument("--models", default="models/semi", metavar="DIR")
    out.add_argument("--out", default="figures", metavar="DIR")
    return parser.parse_args()


def labeled_rows(y, fraction, seed):
    """A stratified, seeded choice of `fraction` of the rows, at least one per class present."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        rows.extend(rng.choice(members, max(1, round(fraction * len(members))), replace=False))
    return np.sort(np.array(rows))


def train(name, data, x, y_onehot, extra_split, settings, args):
    """One model on (x, y); reused when a finished run with the same data description exists."""
    run_data = {**data, "x_train": x, "y_train": y_onehot, "split": {**data["split"], **extra_split,
                                                                     "train_rows": len(x)}}
    paths = records.output_paths(Path(args.models) / f"{name}.keras", Path(args.models) / "figures")
    done = None if args.fresh else records.finished_run(paths, settings, run_data)
    if done is None:
        print(f"\n== {name}: {len(x):,} training faces", flush=True)
        done = training.train_cnn(run_data, settings, paths, fresh=args.fresh)
        records.write_summary(paths, done)
    else:
        print(f"{name}: reusing the finished run in {paths['model']}")
    return done, paths["model"]


def pseudo_label(model_path, x_unlabeled, keep_share, threshold=None):
    """Rows of x_unlabeled to pseudo-label, their guessed classes, and the lowest confidence kept."""
    probabilities = inference.predict_probabilities([inference.load_model(model_path)], x_unlabeled)
    confidence = probabilities.max(1)
    if threshold is not None:
        rows = np.flatnonzero(confidence >= threshold)
    else:
        rows = np.sort(np.argsort(-confidence, kind="stable")[:round(keep_share * len(confidence))])
    cutoff = float(confidence[rows].min()) if len(rows) else None
    return rows, probabilities.argmax(1)[rows], cutoff


def paired_test(semi_path, supervised_path, data):
    """McNemar's test between the pseudo-labelled model and the supervised one on the validation faces (a: the
    pseudo-labelled model, b: the supervised one): only the faces one gets right and the other wrong count."""
    labels = data["y_val"].argmax(1)
    return paired_comparison(*(inference.right_answers(path, data["x_val"], labels)
                               for path in (semi_path, supervised_path)))


def draw(results, full, majority, title, path):
    from fer.plots import plt, save

    fig, ax = plt.subplots(figsize=(9, 5.6), layout="constrained")
    for (fraction, runs), color in zip(results.items(), plt.cm.tab10.colors):
        rounds = [r["round"] for r in runs]
        ax.plot(rounds, [r["val_accuracy"] for r in runs], "o-", color=color,
                label=f"{fraction:.0%} labeled ({runs[0]['labeled_rows']:,} faces)")
        for r in runs[1:]:
            ax.annotate(f"+{r['pseudo_rows']:,}", (r["round"], r["val_accuracy"]), textcoords="offset points",
                        xytext=(4, -12), fontsize=10, color=color)
    ax.axhline(full, color="black", ls="--", lw=1, label=f"all labels ({full:.3f})")
    ax.axhline(majority, color="grey", ls=":", lw=1.5, label=f"majority class ({majority:.3f})")
    ax.set_xticks(sorted({r["round"] for runs in results.values() for r in runs}))
    ax.margins(x=0.12)  # room for the annotations right of the last round
    ax.set_xlabel("round (0 = labeled faces only; annotation = pseudo-labeled faces added)")
    ax.set_ylabel("best validation accuracy")
    fig.legend(loc="outside lower center", ncol=3, fontsize=10)  # below the plot: never over a curve
    ax.set_title(title, fontsize=11)
    return save(fig, path)


def main():
    args = parse_args()
    for folder in (args.out, args.models):
        check_folder(folder)  # before any work: a run must not fail at its end
    settings = resolve(args)  # the preset, then what the command line set
    test = inference.load_test(args.test) if args.test else None
    data = prepare_data(args.data, settings)
    x_all, labels = data["x_train"], data["y_train"].argmax(1)
    extra = as_input(test.x if test is not None else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), "uint8"))

    full, _ = train("full_labels", data, x_all, data["y_train"], {"labeled_fraction": 1.0}, settings, args)
    results, table = {}, []
    for fraction in args.fractions:
        labeled = labeled_rows(labels, fraction, settings["seed"])
        hidden = np.setdiff1d(np.arange(len(x_all)), labeled)
        unlabeled = np.concatenate([x_all[hidden], extra])
        tag = f"f{round(fraction * 100):02d}"
        described = {"labeled_fraction": fraction, "labeled_rows": int(len(labeled)),
                     "unlabeled_rows": int(len(unlabeled))}
        selection = f"p >= {args.threshold}" if args.threshold is not None else f"top {args.keep:.0%}"
        summary, model_path = train(f"{tag}_round0", data, x_all[labeled], one_hot(labels[labeled]),
                                    {**described, "round": 0}, settings, args)
        runs = [dict(round=0, val_accuracy=summary["best_val_accuracy"], labeled_rows=len(labeled), pseudo_rows=0,
                     pseudo_accuracy=None, cutoff=None)]
        model_paths = [model_path]
        for r in range(1, args.rounds + 1):
            keep, guessed, cutoff = pseudo_label(model_path, unlabeled, args.keep, args.threshold)
            if len(keep) == 0:
                print(f"{tag} round {r}: no face predicted with p >= {args.threshold}; no more rounds")
                break
            from_train = keep < len(hidden)  # pseudo-labels whose true label we know (and only score)
            right = float(np.mean(guessed[from_train] == labels[hidden[keep[from_train]]])) if from_train.any() \
                else None
            x = np.concatenate([x_all[labeled], unlabeled[keep]])
            y = np.concatenate([one_hot(labels[labeled]), one_hot(guessed)])
            summary, model_path = train(f"{tag}_round{r}", data, x, y, {**described, "round": r, "selection": selection,
                                                                        "pseudo_rows": int(len(keep))},
                                        settings, args)
            runs.append(dict(round=r, val_accuracy=summary["best_val_accuracy"], labeled_rows=len(labeled),
                             pseudo_rows=int(len(keep)), pseudo_accuracy=None if right is None else round(right, 4),
                             cutoff=round(cutoff, 4)))
            model_paths.append(model_path)
            print(f"{tag} round {r}: {len(keep):,} pseudo-labels ({selection}, p >= {cutoff:.2f}; "
                  f"{'n/a' if right is None else f'{right:.1%} right'}), validation {summary['best_val_accuracy']:.4f}")
        results[fraction] = runs
        best = max(runs[1:], key=lambda run: run["val_accuracy"]) if len(runs) > 1 else runs[0]
        table.append({"labeled_fraction": fraction, "labeled_rows": len(labeled),
                      "supervised_val_accuracy": runs[0]["val_accuracy"],
                      "semi_supervised_val_accuracy": best["val_accuracy"], "best_round": best["round"],
                      "pseudo_rows": best["pseudo_rows"], "pseudo_label_accuracy": best["pseudo_accuracy"],
                      "confidence_cutoff": best["cutoff"],
                      "full_labels_val_accuracy": full["best_val_accuracy"], "rounds": runs,
                      "paired": (paired_test(model_paths[best["round"]], model_paths[0], data) if best["round"]
                                 else None)})

    split = data["split"]
    title = (f"Pseudo-labels: {settings['arch']}, {settings['epochs']} epochs a run, {selection} "
             f"pseudo-labeled, {split['train_rows']:,} training faces"
             + (f" + {len(extra):,} test faces" if len(extra) else ""))
    majority = majority_share(data["y_val"].argmax(1))
    for t in table:
        t["learned"] = learned(t["supervised_val_accuracy"], majority)
        t["gain_within_noise"] = within_noise(t["paired"], t["supervised_val_accuracy"],
                                              t["semi_supervised_val_accuracy"], split["val_rows"])
    figure = draw(results, full["best_val_accuracy"], majority, title, Path(args.out) / "semi_supervised.png")
    write_text(Path(args.out) / "semi_supervised.json", json.dumps(
        {"title": title, "data": str(args.data), "test": args.test, "settings": dict(settings), "split": split,
         "selection": selection, "majority_share": majority, "full_labels_learned": learned(
             full["best_val_accuracy"], majority), "results": table}, indent=2) + "\n")
    records.print_table(title, [(f"{t['labeled_fraction']:.0%} labeled ({t['labeled_rows']:,})",
                                  f"supervised {t['supervised_val_accuracy']:.4f}  ->  pseudo-labels "
                                  f"{t['semi_supervised_val_accuracy']:.4f} (round {t['best_round']})")
                                 for t in table] + [("all labels", f"{full['best_val_accuracy']:.4f}")])
    print(f"wrote {figure}, {Path(args.out) / 'semi_supervised.json'}")


if __name__ == "__main__":
    cli.run(main)
