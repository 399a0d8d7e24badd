#!/usr/bin/env python3
"""The whole report in one command: figures/report.md and a self-contained figures/report.html.

One section per homework question, built only from this project's outputs: architectures
(layer, output shape, parameters), training curves, validation accuracy (and leaderboard
scores you pass), CNN vs DNN, ablation, confusion matrices, saliency, filter patterns,
feature maps, LIME, semi-supervised results, and the derivations with their checks.
Cheap figures (confusion, saliency, filters, LIME) are regenerated from the models; the
costly runs (ablation.py, semi_supervised.py) are read from their JSON, and anything
missing is listed as missing, with the command that makes it.

    python report.py                                   # data/train.csv, else the bundled sample
    python report.py --data data/train.csv --private 0.6912 --public 0.7001
"""
import base64
import html
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from fer import CLASSES, cli, inference, records
from fer.atomic import write_text
from fer.errors import InputError
from fer.outputs import check_folder

SAMPLE = Path("data/sample/train.csv.xz")


def parse_args():
    parser = cli.parser(__doc__)
    parser.add_argument("--data", metavar="CSV", help="labeled faces the models were trained on "
                                                       "(default: data/train.csv[.gz|.xz], else the bundled sample)")
    parser.add_argument("--cnn", metavar="M.keras", help="(default models/cnn.keras, else the shipped model)")
    parser.add_argument("--dnn", default="models/dnn.keras", metavar="M.keras")
    parser.add_argument("--out", default="figures", metavar="DIR")
    parser.add_argument("--public", type=cli.number(float, 0, 1), help="your public leaderboard score, to quote")
    parser.add_argument("--private", type=cli.number(float, 0, 1), help="your private leaderboard score, to quote")
    parser.add_argument("--no-regenerate", action="store_true", help="only assemble figures already in --out")
    return parser.parse_args()


# ----------------------------------------------------------------------------- document blocks
# A report is a list of blocks; each renders to Markdown and to HTML, so the two never disagree.

def heading(text):
    return ("h", text)


def para(text):
    return ("p", text)


def image(path, caption):
    return ("img", Path(path), caption)


def table(header, rows):
    return ("table", header, rows)


def code(text):
    return ("code", text)


def missing(what, command):
    return ("missing", what, command)


def to_markdown(blocks, out_dir):
    lines = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            lines += [f"## {block[1]}", ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "img":
            lines += [f"![{block[2]}]({block[1].resolve().relative_to(out_dir.resolve())})", "", f"*{block[2]}*", ""]
        elif kind == "table":
            lines += ["| " + " | ".join(block[1]) + " |", "|" + "---|" * len(block[1])]
            lines += ["| " + " | ".join(map(str, row)) + " |" for row in block[2]] + [""]
        elif kind == "code":
            lines += ["```", block[1], "```", ""]
        elif kind == "missing":
            lines += [f"> **Missing: {block[1]}.** Make it with `{block[2]}`", ""]
    return "\n".join(lines)


def inline_code(text):
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def to_html(blocks, title):
    esc = html.escape
    body = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            body.append(f"<h2>{esc(block[1])}</h2>")
        elif kind == "p":
            body.append(f"<p>{inline_code(esc(block[1]))}</p>")
        elif kind == "img":
            data = base64.b64encode(block[1].read_bytes()).decode()
            body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{esc(block[2])}">'
                        f"<figcaption>{esc(block[2])}</figcaption></figure>")
        elif kind == "table":
            head = "".join(f"<th>{esc(str(h))}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{inline_code(esc(str(c)))}</td>" for c in row) + "</tr>" for row in block[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "code":
            body.append(f"<pre>{esc(block[1])}</pre>")
        elif kind == "missing":
            body.append(f'<p class="missing"><b>Missing: {esc(block[1])}.</b> Make it with '
                        f"<code>{esc(block[2])}</code></p>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}"
             "img{max-width:100%}figure{margin:1em 0}figcaption{color:#555;font-size:.9em}"
             "table{border-collapse:collapse;margin:1em 0;font-size:.92em}td,th{border:1px solid #ccc;"
             "padding:.25em .6em;text-align:left}th{background:#f3f3f3}pre{background:#f6f6f6;padding:.8em;"
             "overflow-x:auto}.missing{background:#fff4e5;border-left:4px solid #f0a020;padding:.5em .8em}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{style}</style>"
            f"</head><body><h1>{esc(title)}</h1>{''.join(body)}</body></html>\n")


# ----------------------------------------------------------------------------- gathering

def default_data():
    for name in ("data/train.csv", "data/train.csv.gz", "data/train.csv.xz"):
        if Path(name).exists():
            return name
    return str(SAMPLE)


def run_script(script, *args):
    """Run one of the figure scripts; return the files it says it wrote (its 'wrote ...' line)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(records.ROOT / script), *map(str, args)], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        print(f"  {script}: failed ({reason})")
        return [], reason
    wrote = [line[len("wrote "):] for line in done.stdout.splitlines() if line.startswith("wrote ")]
    files = [Path(p.strip()) for line in wrote for p in line.split(", ")]
    print(f"  {script}: {len(files)} file(s) in {seconds:.0f} s")
    return files, None


def run_records(model_path):
    """A model's summary and history, if training left them beside it."""
    summary, history = records.summary_path(model_path), records.history_path(model_path)
    return (json.loads(summary.read_text()) if summary.exists() else None,
            records.read_history(history) if history.exists() else None)


def architecture_table(model):
    rows = []
    for layer in model.layers:
        shape = tuple(layer.output.shape[1:]) if hasattr(layer, "output") else ""
        rows.append((layer.name, type(layer).__name__, str(shape).replace(" ", ""), f"{layer.count_params():,}"))
    return table(["layer", "type", "output shape", "parameters"], rows)


def trainable(model):
    from fer.models import trainable_parameters

    return trainable_parameters(model)


# ----------------------------------------------------------------------------- sections

def model_section(title, name, path, out, blocks, score_note=""):
    """Architecture, parameters, curves and accuracy of one trained model; returns (model, summary)."""
    from fer.plots import history_figure

    blocks.append(heading(title))
    if not Path(path).exists():
        blocks.append(missing(f"the {name} model {path}", f"python train_{name.lower()}.py --train data/train.csv"))
        return None, None
    model = inference.load_model(path)
    summary, history = run_records(path)
    blocks.append(para(f"`{path}`: {trainable(model):,} trainable parameters, {model.count_params():,} in all."
                       + score_note))
    blocks.append(architecture_table(model))
    if summary and history:
        split, validation = summary["split"], records.validation_words(summary)
        blocks.append(para(f"{validation[0].upper()}{validation[1:]}; {split['train_rows']:,} training "
                           f"and {split['val_rows']:,} validation faces; {summary['wall_seconds']:.0f} s on "
                           f"{summary['device']} ({summary['backend']}, {summary['precision']}); "
                           f"command `{summary.get('command', '?')}`."))
        figure = history_figure(history, out / f"report_{name.lower()}_history.png",
                                f"{name}: {validation}")
        blocks.append(image(figure, f"{name} training curves: loss and accuracy per epoch"))
    else:
        blocks.append(missing(f"the {name}'s training records (summary and history beside {path})",
                              f"python train_{name.lower()}.py --train data/train.csv"))
    return model, summary


def comparison_section(cnn, cnn_summary, dnn, dnn_summary, blocks):
    blocks.append(heading("2b. CNN vs DNN with the same number of parameters"))
    if cnn is None or dnn is None:
        blocks.append(missing("one of the two models", "bash run.sh"))
        return
    def accuracy(summary):
        if not summary:
            return "?"
        score = summary["best_val_accuracy"]
        return "none (every labeled row trained)" if score is None else f"{score:.4f}"

    rows = [("CNN", f"{trainable(cnn):,}", accuracy(cnn_summary)), ("DNN", f"{trainable(dnn):,}", accuracy(dnn_summary))]
    blocks.append(table(["model", "trainable parameters", "best validation accuracy"], rows))
    blocks.append(para("The DNN sees each pixel as an unrelated input: it has no weight sharing across positions "
                       "and no notion of neighbourhood, so its parameters go to memorizing positions instead of "
                       "reusable local patterns (edges, eyes, mouth corners) as the CNN's do."))


def json_section(title, path, figure, command, render, blocks):
    blocks.append(heading(title))
    if not Path(path).exists():
        blocks.append(missing(title.split(". ", 1)[-1], command))
        return
    record = json.loads(Path(path).read_text())
    blocks.append(para(record.get("title", "")))
    render(record, blocks)
    if Path(figure).exists():
        blocks.append(image(figure, record.get("title", title)))


def ablation_rows(record, blocks):
    blocks.append(table(["variant", "batch norm", "augmentation", "best validation accuracy", "best epoch",
                         "final training accuracy"],
                        [(r["variant"], "yes" if r["batchnorm"] else "no", "yes" if r["augmentation"] else "no",
                          f"{r['best_val_accuracy']:.4f}", r["best_epoch"], f"{r['final_train_accuracy']:.4f}")
                         for r in record["runs"]]))


def semi_rows(record, blocks):
    blocks.append(table(["labeled", "supervised only", "with pseudo-labels (best round)", "pseudo-labels added",
                         "lowest confidence kept", "pseudo-labels right", "all labels"],
                        [(f"{t['labeled_fraction']:.0%} ({t['labeled_rows']:,})", f"{t['supervised_val_accuracy']:.4f}",
                          f"{t['semi_supervised_val_accuracy']:.4f} ({t['best_round']})", f"{t['pseudo_rows']:,}",
                          "n/a" if t.get("confidence_cutoff") is None else f"{t['confidence_cutoff']:.2f}",
                          "n/a" if t["pseudo_label_accuracy"] is None else f"{t['pseudo_label_accuracy']:.1%}",
                          f"{t['full_labels_val_accuracy']:.4f}") for t in record["results"]]))


def confusion_section(files, error, blocks):
    blocks.append(heading("4. Confusion matrix"))
    pngs = [f for f in files if f.suffix == ".png"]
    if not pngs:
        blocks.append(missing(f"the confusion matrix ({error})", "python confusion.py --data data/train.csv"))
        return
    blocks.append(image(pngs[0], "Confusion matrices on the validation split: counts and row-normalized rates"))
    for path in (f for f in files if f.suffix == ".json"):
        record = json.loads(path.read_text())
        for name, result in record.items():
            blocks.append(para(f"{name}: validation accuracy {result['accuracy']:.4f}. Most confused (true → "
                               "predicted, share of the true class): " + "; ".join(
                                   f"{a} → {b} {share:.0%}" for a, b, share, _ in result["most_confused"][:4]) + "."))
            blocks.append(table(["class", "precision", "recall", "F1", "faces"],
                                [(c, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", m["support"])
                                 for c, m in result["per_class"].items()]))


def figures_section(title, files, error, captions, command, blocks):
    blocks.append(heading(title))
    pngs = [f for f in files if f.suffix == ".png"]
    if not pngs:
        blocks.append(missing(f"{title.lower()} ({error})", command))
    for path in pngs:
        key, caption = next(((key, text) for key, text in captions.items() if key in path.name), ("", path.stem))
        if key.endswith("_"):  # one figure per layer: say which
            caption += f", layer {path.stem[path.stem.index(key) + len(key):]}"
        blocks.append(image(path, caption))


def math_section(blocks):
    from fer.derivations import FORMULAS, checks

    blocks.append(heading("9. The math, checked"))
    blocks.append(para("Each formula is implemented in NumPy (fer/derivations.py) and compared with Keras's own "
                       "layers and with automatic differentiation on random inputs; errors are relative to the "
                       "largest reference value (shapes: in output pixels)."))
    blocks.append(code("\n".join(f"{name}:  {formula}" for name, formula in FORMULAS.items())))
    blocks.append(table(["quantity", "compared with", "largest error", "agrees"],
                        [(name, against, f"{error:.1e}", "yes" if error < 1e-5 else "NO")
                         for name, against, error in checks()]))


# ----------------------------------------------------------------------------- main

def main():
    args = parse_args()
    check_folder(args.out)  # before any work: a run must not fail at its end
    started = time.perf_counter()
    out = Path(args.out)
    data = args.data or default_data()
    if not Path(data).exists():
        raise InputError(data, "no such file")
    cnn_path = args.cnn or cli.default_model()
    dnn_path = args.dnn
    print(f"report on {cnn_path} (CNN) and {dnn_path} (DNN), data {data}")

    regenerated = {}
    if not args.no_regenerate and Path(cnn_path).exists():
        models = ["--model", cnn_path] + (["--model", dnn_path] if Path(dnn_path).exists() else [])
        jobs = {
            "confusion": ("confusion.py", "--data", data, *models, "--out", out),
            "saliency": ("saliency.py", "--data", data, "--model", cnn_path, "--out", out),
            "filters": ("filter_vis.py", "--data", data, "--model", cnn_path, "--filters", 24, "--steps", 60,
                        "--out", out),
            "lime": ("lime_explain.py", "--data", data, "--model", cnn_path, "--out", out),
        }
        print("regenerating figures:")
        regenerated = {key: run_script(*job) for key, job in jobs.items()}
    else:
        # assemble what an earlier run left
        regenerated = {"confusion": (sorted(out.glob("confusion*.png")) + sorted(out.glob("confusion*.json")), "not found"),
                       "saliency": (sorted(out.glob("saliency_*.png")), "not found"),
                       "filters": (sorted(out.glob("filters_*.png")) + sorted(out.glob("feature_maps_*.png")),
                                   "not found"),
                       "lime": (sorted(out.glob("lime*.png")), "not found")}

    scores = ""
    if args.public is not None or args.private is not None:
        scores = " Leaderboard: " + ", ".join(f"{k} {v:.4f}" for k, v in (("public", args.public),
                                                                         ("private", args.private)) if v is not None) + "."
    blocks = [para(f"Generated {time.strftime('%Y-%m-%d %H:%M')} from `{data}`. Classes: "
                   + ", ".join(f"{i} {c}" for i, c in enumerate(CLASSES)) + ".")]
    cnn, cnn_summary = model_section("1. The CNN", "CNN", cnn_path, out, blocks, scores)
    dnn, dnn_summary = model_section("2. The DNN", "DNN", dnn_path, out, blocks)
    comparison_section(cnn, cnn_summary, dnn, dnn_summary, blocks)
    json_section("3. Batch normalization and augmentation (ablation)", out / "ablation.json", out / "ablation.png",
                 f"python ablation.py --data {data}", ablation_rows, blocks)
    confusion_section(*regenerated["confusion"], blocks)
    figures_section("5. Saliency maps", *regenerated["saliency"], {
        "sanity": "Sanity check: the same maps from the network with random weights (rank correlation)",
        "gradient": "Vanilla gradient |d score / d pixel|, one validation face per class",
        "smoothgrad": "SmoothGrad: gradients averaged over noisy copies",
        "integrated": "Integrated Gradients from a black image",
        "hirescam": "HiResCAM on the last convolutional layer",
        "gradcam": "Grad-CAM on the last convolutional layer"}, f"python saliency.py --data {data}", blocks)
    figures_section("6. Filter patterns and feature maps", *regenerated["filters"], {
        "filters_": "Inputs that maximize each filter (gradient ascent)",
        "feature_maps_": "Feature maps of one validation face"}, f"python filter_vis.py --data {data}", blocks)
    figures_section("7. LIME", *regenerated["lime"], {"lime": "LIME: superpixels that support the predicted class"},
                    f"python lime_explain.py --data {data}", blocks)
    json_section("8. Semi-supervised learning (pseudo-labels)", out / "semi_supervised.json",
                 out / "semi_supervised.png", f"python semi_supervised.py --data {data}", semi_rows, blocks)
    math_section(blocks)
    absent = [b[1] for b in blocks if b[0] == "missing"]
    if absent:
        blocks.append(heading("Missing"))
        blocks.append(table(["what", "make it with"], [(b[1], f"`{b[2]}`") for b in blocks if b[0] == "missing"]))
    title = "FER2013 facial-expression recognition: report"
    write_text(out / "report.md", f"# {title}\n\n" + to_markdown(blocks, out))
    write_text(out / "report.html", to_html(blocks, title))
    images = sum(b[0] == "img" for b in blocks)
    print(f"{images} figures, {len(absent)} missing item(s){': ' + '; '.join(absent) if absent else ''}")
    print(f"report built in {time.perf_counter() - started:.0f} s")
    print(f"wrote {out / 'report.md'}, {out / 'report.html'}")


if __name__ == "__main__":
    cli.run(main)
