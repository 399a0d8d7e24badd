#!/usr/bin/env python3
"""Compare training runs: validation accuracy against epoch and against wall time on one figure, and a
markdown table of each run's recipe and result. Reads the records train_cnn.py writes beside each model
(NAME_history.csv, NAME_summary.json), so it needs no model file and no data.

    python bench/curves.py models/cnn_cpu.keras models/cnn_gpu.keras --out bench/results/recipes.png
"""
import json
import sys
from itertools import accumulate
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fer import cli, plots, records  # noqa: E402
from fer.atomic import write_text  # noqa: E402
from fer.errors import InputError  # noqa: E402
from fer.records import kept_row, read_history, recipe_words  # noqa: E402


def parse_args():
    parser = cli.parser(__doc__)
    parser.add_argument("runs", nargs="+", metavar="M.keras", help="models (or their _history.csv) to compare")
    parser.add_argument("--out", default="figures/recipes.png", metavar="PNG")
    parser.add_argument("--table", metavar="MD", help="also write the table to this markdown file")
    return parser.parse_args()


def run_records(run):
    """History rows and summary of one run, from the model path or its history CSV."""
    run = Path(run)
    stem = run.stem[:-len("_history")] if run.stem.endswith("_history") else run.stem
    history_path, summary_path = records.history_path(run.with_name(stem)), records.summary_path(run.with_name(stem))
    if not history_path.exists():
        raise InputError(run, f"needs {history_path.name} beside it (the record train_cnn.py writes)")
    history = read_history(history_path)
    if not history:
        raise InputError(history_path, "no epochs recorded")
    if "val_accuracy" not in history[0]:
        raise InputError(history_path, "has no validation curve to compare (trained with --val-fraction 0)")
    # a run still training has no summary yet
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return stem, history, summary


def table(runs):
    lines = ["| run | recipe | best validation | epoch | wall time | images/s | device |",
             "|---|---|---:|---:|---:|---:|---|"]
    for name, history, summary in runs:
        best = kept_row(history)  # every run here has validation (refused otherwise)
        wall = summary.get("wall_seconds", sum(r["epoch_seconds"] for r in history))
        rate = summary.get("train_images_per_second")
        lines.append(f"| {name} | {recipe_words(summary)} | {best['val_accuracy']:.4f} | {best['epoch']} of "
                     f"{len(history)} | {wall:,.0f} s | {f'{rate:.0f}' if rate else '?'} | "
                     f"{summary.get('device', '?')}, {summary.get('backend', '?')} |")
    return "\n".join(lines) + "\n"


def curves_figure(runs, path):
    fig, (by_epoch, by_time) = plots.plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for i, (name, history, summary) in enumerate(runs):
        val = [r["val_accuracy"] for r in history]
        minutes = [seconds / 60 for seconds in accumulate(r["epoch_seconds"] for r in history)]
        label = f"{name} ({kept_row(history)['val_accuracy']:.4f})"
        # past the 10 default colours, dashes keep every run's line distinct
        style = dict(color=f"C{i % 10}", linestyle=["-", "--", ":"][i // 10 % 3], lw=1.5, label=label)
        by_epoch.plot([r["epoch"] for r in history], val, **style)
        by_time.plot(minutes, val, **style)
    by_epoch.set_xlabel("epoch")
    by_time.set_xlabel("wall time (minutes)")
    by_epoch.set_ylabel("validation accuracy")
    by_epoch.set_title("validation accuracy by epoch")
    by_time.set_title("validation accuracy by wall time")
    # below both panels, so that no curve hides behind it however many runs there are
    fig.legend(*by_epoch.get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=min(3, len(runs)), frameon=False)
    return plots.save(fig, path)


def main():
    args = parse_args()
    runs = [run_records(run) for run in args.runs]
    text = table(runs)
    print(text, end="")
    curves_figure(runs, Path(args.out))
    if args.table:
        write_text(args.table, text)
    print(f"wrote {args.out}" + (f", {args.table}" if args.table else ""))


if __name__ == "__main__":
    cli.run(main)
