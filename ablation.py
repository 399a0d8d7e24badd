#!/usr/bin/env python3
"""What do batch normalization and data augmentation each bring? Four runs of one CNN, one plot.

The same architecture, seed, split and epochs, with and without BatchNormalization
layers and with and without augmentation. Writes figures/ablation.png (validation
accuracy per epoch, training accuracy dotted), figures/ablation.json and a table.
Without batch norm the network trains at a smaller learning rate (--no-bn-lr), as it must: at the
batch-normalized network's rate it does not leave the majority class. Each plot draws the majority-class
line, and a run that does not clear it is marked "did not learn". Removing each of the two is tested by
McNemar's test on the validation faces only one of the two best models gets right (one seed each: it says
whether these two networks differ, not how another seed would fall). Finished runs are reused, so an
interrupted ablation continues where it stopped.

    python ablation.py --data data/train.csv
    python ablation.py --data data/train.csv --preset cpu --limit 6000 --epochs 6
"""
import json
import re
from pathlib import Path

from fer import cli, inference, records, training
from fer.atomic import write_text
from fer.data import prepare_data
from fer.outputs import check_folder
from fer.narrative import p_words
from fer.scores import learned, majority_share, paired_comparison
from fer.settings import frozen, require_validation, resolve, without_idle_tail

VARIANTS = {  # name: (batch norm, augmentation)
    "BN + augmentation": (True, True),
    "BN, no augmentation": (True, False),
    "no BN, augmentation": (False, True),
    "no BN, no augmentation": (False, False),
}
CONTRASTS = {"batch norm": ("BN + augmentation", "no BN, augmentation"),  # what is removed: (with it, without)
             "augmentation": ("BN + augmentation", "BN, no augmentation")}


def parse_args():
    parser = cli.parser(__doc__)
    cli.add_data_flags(parser, labeled="--data", test=False)
    cli.add_run_flags(parser, variants=True)  # batch norm and augmentation are what the ablation varies
    cli.add_network_flags(parser, variants=True)
    parser.add_argument("--no-bn-lr", type=cli.number(float, 0, above=True), default=5e-4, metavar="LR",
                        help="peak learning rate of the runs without batch norm (default 5e-4)")
    out = parser.add_argument_group("outputs")
    out.add_argument("--models", default="models/ablation", metavar="DIR", help="where the four runs go")
    out.add_argument("--out", default="figures", metavar="DIR")
    return parser.parse_args()


def slug(name):
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def variant_paths(name, args):
    return records.output_paths(Path(args.models) / f"{slug(name)}.keras", Path(args.models) / "figures")


def run_variant(name, batchnorm, augment, args, data, base):
    # No augmentation means no erasing, blur or noise either, and so no tail that turns them off.
    settings = frozen(without_idle_tail({**base, "batchnorm": batchnorm, "augment": "affine" if augment else "none",
                                         "erase": base["erase"] if augment else 0.0,
                                         "degrade": base["degrade"] if augment else 0.0,
                                         "lr": base["lr"] if batchnorm else args.no_bn_lr}))
    paths = variant_paths(name, args)
    done = None if args.fresh else records.finished_run(paths, settings, data)
    if done is not None:
        print(f"{name}: reusing the finished run in {paths['model']}")
        return done, records.read_history(paths["history"])
    print(f"\n== {name}")
    summary = training.train_cnn(data, settings, paths, fresh=args.fresh)
    records.write_summary(paths, summary)
    return summary, records.read_history(paths["history"])


def paired_tests(args, data):
    """Each contrast as McNemar's test between the two runs' best models on the validation faces: only the faces
    one of them gets right and the other wrong tell them apart."""
    labels = data["y_val"].argmax(1)
    right = {name: inference.right_answers(variant_paths(name, args)["model"], data["x_val"], labels)
             for name in VARIANTS}
    return {what: {"with": with_it, "without": without, **paired_comparison(right[with_it], right[without])}
            for what, (with_it, without) in CONTRASTS.items()}


def draw(results, majority, title, path):
    from fer.plots import plt, save

    fig, ax = plt.subplots(figsize=(9, 5.6), layout="constrained")
    for (name, (summary, rows)), color, marker in zip(results.items(), plt.cm.tab10.colors, "osD^"):
        epochs = [r["epoch"] for r in rows]
        flag = "" if learned(summary["best_val_accuracy"], majority) else ", did not learn"
        ax.plot(epochs, [r["val_accuracy"] for r in rows], marker + "-", ms=4, color=color,
                label=f"{name} (best {summary['best_val_accuracy']:.3f}{flag})")
        ax.plot(epochs, [r["accuracy"] for r in rows], ":", color=color, alpha=0.8)
    ax.axhline(majority, color="black", ls="--", lw=1, label=f"majority class ({majority:.3f})")
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)  # whole epochs only
    ax.set_ylabel("accuracy (validation solid, training dotted)")
    fig.legend(loc="outside lower center", ncol=2, fontsize=10)  # below the plot: never over a curve
    ax.set_title(title, fontsize=11)
    return save(fig, path)


def main():
    args = parse_args()
    for folder in (args.out, args.models):
        check_folder(folder)  # before any work: a run must not fail at its end
    base = resolve(args)  # the preset, then what the command line set
    require_validation(base, "ablation.py")
    data = prepare_data(args.data, base)
    results = {name: run_variant(name, bn, aug, args, data, base) for name, (bn, aug) in VARIANTS.items()}

    majority = majority_share(data["y_val"].argmax(1))
    table = [{"variant": name, "batchnorm": VARIANTS[name][0], "augmentation": VARIANTS[name][1],
              "lr": s["settings"]["lr"], "learned": learned(s["best_val_accuracy"], majority),
              "best_val_accuracy": s["best_val_accuracy"], "best_epoch": s["best_epoch"], "epochs": s["epochs"],
              "final_train_accuracy": round(rows[-1]["accuracy"], 4),
              "trainable_parameters": s["trainable_parameters"], "wall_seconds": s["wall_seconds"]}
             for name, (s, rows) in results.items()]
    split = data["split"]
    title = (f"Ablation: {base['arch']}, {base['epochs']} epochs, {split['train_rows']:,} training rows, "
             f"seed {base['seed']}")
    figure = draw(results, majority, title, Path(args.out) / "ablation.png")
    record = {"title": title, "data": str(args.data), "settings": dict(base), "no_bn_lr": args.no_bn_lr,
              "split": split, "majority_share": majority, "runs": table, "paired": paired_tests(args, data)}
    write_text(Path(args.out) / "ablation.json", json.dumps(record, indent=2) + "\n")
    records.print_table(title, [(r["variant"], f"best {r['best_val_accuracy']:.4f} at epoch {r['best_epoch']}"
                                  f"   train {r['final_train_accuracy']:.4f}   {r['wall_seconds']:.0f} s"
                                  + ("" if r["learned"] else "   DID NOT LEARN (majority class "
                                                              f"{majority:.4f})"))
                                 for r in table])
    for what, c in record["paired"].items():
        print(f"{what}: right only with it on {c['a_only']:,} faces, only without on {c['b_only']:,}; McNemar "
              f"{p_words(c['p_value'])}")
    print(f"wrote {figure}, {Path(args.out) / 'ablation.json'}")


if __name__ == "__main__":
    cli.run(main)
