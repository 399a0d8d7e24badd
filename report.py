#!/usr/bin/env python3
"""The whole report in one command: figures/report.md and a self-contained figures/report.html.

One section per homework question, built only from this project's outputs, each opening with sentences
written from its own numbers: architectures (layers named by their place), training curves, the CNN
against DNNs with as many parameters (recipes, curves, per-class F1, the difference of their confusion
matrices, their calibration, where each puts the faces, what corruptions each withstands), the ablation,
confusion matrices, saliency (every method side by side, on mistakes too, with faithfulness scores and the
randomization check), filters and feature maps, LIME, semi-supervised learning, and the derivations as
formulas with their numerical checks.
Cheap figures are regenerated from the models; the costly runs (ablation.py, semi_supervised.py) are read from
their JSON, and anything missing is listed as missing, with the command that makes it. A run that does not clear
the majority class is flagged "did not learn", never presented as a result.

    python report.py                                   # data/train.csv, else the bundled sample
    python report.py --data data/train.csv --private 0.6912 --public 0.7001
"""
import json
import subprocess
import sys
import time
from pathlib import Path

from fer import CLASSES, backend, cli, inference, narrative, records
from fer.atomic import write_text
from fer.document import heading, image, missing, note, para, shown_path, table, to_html, to_markdown
from fer.errors import InputError
from fer.layers import layer_rows
from fer.models import trainable_parameters
from fer.outputs import check_folder
from fer.sections import (ablation_section, confusion_section, embedding_section, figure_record, filters_section,
                          json_file, math_section, robustness_section, saliency_section, semi_section)
from fer.scores import learned, majority_share

SAMPLE = Path("data/sample/train.csv.xz")
DNNS = ("models/dnn.keras", "models/dnn_noaug.keras")


def parse_args():
    parser = cli.parser(__doc__)
    parser.add_argument("--data", metavar="CSV", help="labeled faces the models were trained on "
                                                       "(default: data/train.csv[.gz|.xz], else the bundled sample)")
    parser.add_argument("--cnn", metavar="M.keras", help="(default models/cnn.keras, else the shipped model)")
    parser.add_argument("--dnn", action="append", metavar="M.keras",
                        help=f"a DNN to compare with the CNN (repeat; default {' and '.join(DNNS)}, those that exist)")
    parser.add_argument("--out", default="figures", metavar="DIR")
    parser.add_argument("--faces", type=cli.number(int, 7), default=70,
                        help="validation faces for the saliency faithfulness scores (default 70)")
    parser.add_argument("--public", type=cli.number(float, 0, 1), help="your public leaderboard score, to quote")
    parser.add_argument("--private", type=cli.number(float, 0, 1), help="your private leaderboard score, to quote")
    parser.add_argument("--started", type=cli.number(float, 0), metavar="UNIX_SECONDS",
                        help="when the whole job began (run.sh passes it), to state its time in the report")
    parser.add_argument("--no-regenerate", action="store_true", help="only assemble figures already in --out")
    return parser.parse_args()


# ----------------------------------------------------------------------------- gathering

def default_data():
    return next((n for n in ("data/train.csv", "data/train.csv.gz", "data/train.csv.xz") if Path(n).exists()),
                str(SAMPLE))


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
    print(f"  {script}: {len(files)} file(s) in {seconds:.0f} s", flush=True)
    return files, None


def regenerate(data, cnn_path, dnn_paths, out, faces):
    models = ["--model", cnn_path] + [arg for p in dnn_paths for arg in ("--model", p)]
    jobs = {
        "confusion": ("confusion.py", "--data", data, *models, "--out", out),
        "calibration": ("calibration.py", "--data", data, *models, "--each", "--out", out),
        "saliency": ("saliency.py", "--data", data, "--model", cnn_path, "--faces", faces, "--out", out),
        "filters": ("filter_vis.py", "--data", data, "--model", cnn_path, "--filters", 24, "--steps", 60,
                    "--out", out),
        "lime": ("lime_explain.py", "--data", data, "--model", cnn_path, "--out", out),
        "embedding": ("embedding.py", "--data", data, *models, "--faces", 2000, "--out", out),
        "robustness": ("robustness.py", "--data", data, *models, "--faces", 1000, "--out", out),
    }
    print("regenerating figures:", flush=True)
    return {key: run_script(*job) for key, job in jobs.items()}


def by_layer(path):  # filter_vis.py's order: each layer's filter patterns, then its feature maps; filters.json last
    return (path.suffix == ".json", path.stem.removeprefix("feature_maps_").removeprefix("filters_"),
            path.stem.startswith("feature_maps_"))


def found(out):
    """What an earlier run left in `out` (--no-regenerate)."""
    return {"confusion": (sorted(out.glob("confusion*.png")) + sorted(out.glob("confusion*.json")), "not found"),
            "calibration": (sorted(out.glob("calibration*.png")) + sorted(out.glob("calibration*.json")), "not found"),
            "saliency": (sorted(out.glob("saliency*")), "not found"),
            "filters": (sorted([*out.glob("filters*"), *out.glob("feature_maps_*.png")], key=by_layer), "not found"),
            "lime": (sorted(out.glob("lime*.png")), "not found"),
            "embedding": (sorted(out.glob("embedding*")), "not found"),
            "robustness": (sorted(out.glob("robustness*")), "not found")}


# ----------------------------------------------------------------------------- sections

def model_section(title, name, path, out, blocks, majority, score_note="", label=None):
    """Architecture, parameters, curves and accuracy of one trained model (`label` names it in the text, default
    `name`); returns (model, summary, history)."""
    from fer.plots import history_figure

    blocks.append(heading(title))
    if not Path(path).exists():
        blocks.append(missing(f"the {name} model {path}", f"python train_{name.lower()}.py --train data/train.csv"))
        return None, None, None
    model = inference.load_model(path)
    summary, history = records.read_summary(path), records.read_history(records.history_path(path))
    label = label or name
    blocks.append(para(narrative.model_text(label, summary, majority)))
    if summary and summary.get("best_val_accuracy") is not None and not learned(summary["best_val_accuracy"],
                                                                                  majority):
        blocks.append(note(f"the {label} did not learn; its figures below show a model that answers at chance."))
    blocks.append(para(f"`{shown_path(path)}`: {trainable_parameters(model):,} trainable parameters, "
                       f"{model.count_params():,} in all." + score_note))
    blocks.append(table(["layer", "role", "type", "output shape", "parameters"], layer_rows(model)))
    if summary and history:
        split, validation = summary["split"], records.validation_words(summary)
        blocks.append(para(f"Recipe: {records.recipe_words(summary)}; {split['train_rows']:,} training and "
                           f"{split['val_rows']:,} validation faces; {summary['wall_seconds'] / 60:.1f} min on "
                           f"{summary['device']} ({summary['backend']}); command `{summary.get('command', '?')}`."))
        figure = history_figure(history, out / f"report_{Path(path).stem}_history.png", f"{label}: {validation}",
                                tail_views=summary.get("settings", {}).get("tail_views", False))
        blocks.append(image(figure, f"{label} training curves: loss and accuracy per epoch"))
    else:
        blocks.append(missing(f"the {name}'s training records (summary and history beside {path})",
                              f"python train_{name.lower()}.py --train data/train.csv"))
    return model, summary, history


def comparison_section(runs, confusion, majority, val_rows, out, files, calibration_files, blocks):
    """runs: [(name, model, summary, path)], the CNN first; files and calibration_files: the scripts' outputs."""
    from fer.plots import curves_figure

    blocks.append(heading("2b. CNN vs DNN with the same number of parameters"))
    present = [r for r in runs if r[1] is not None]
    if len(present) < 2 or present[0][0] != "CNN":
        blocks.append(missing("the CNN or every DNN", "bash run.sh"))
        return
    scored = [(name, confusion[Path(path).stem]) for name, _, _, path in present
              if Path(path).stem in (confusion or {})]
    if len(scored) == len(present):
        blocks.append(para(narrative.comparison_text(scored, val_rows)))
    rows = []
    for name, model, summary, path in present:
        c = confusion.get(Path(path).stem) if confusion else None
        rows.append((name, f"{trainable_parameters(model):,}",
                     records.recipe_words(summary) if summary else "?",
                     narrative.accuracy_words(c) if c else "?", f"{c['macro_f1']:.3f}" if c else "?",
                     ", ".join(c["never_predicted"]) or "-" if c else "?"))
    blocks.append(table(["model", "trainable parameters", "recipe", "validation accuracy (95%)", "macro-F1",
                         "never predicts"], rows))
    histories = [(name, records.read_history(records.history_path(path))) for name, _, _, path in present
                 if records.history_path(path).exists()]
    if histories:
        blocks.append(image(curves_figure(histories, majority, out / "report_cnn_vs_dnn.png"),
                            "Validation accuracy per epoch (training dotted), majority-class line dashed"))
    if scored:
        blocks.append(table(["class"] + [f"F1 {n}" for n, _ in scored],
                            [(cls, *(f"{c['per_class'][cls]['f1']:.3f}" for _, c in scored)) for cls in CLASSES]))
    difference = next((f for f in files if f.name.endswith("_difference.png")), None)
    if difference:
        blocks.append(image(difference, "CNN minus the first DNN, rates per true class: red on the diagonal where "
                                        "the CNN is right more often, blue off it where it errs less"))
    calibration_paragraphs(present, calibration_files, blocks)
    blocks.append(para("The DNN sees each pixel as an unrelated input: no weight is shared across positions, so "
                       "what it learns about a mouth corner in one place does not carry to another."))


def calibration_paragraphs(present, files, blocks):
    """How far each model's probabilities can be trusted: calibration.py's record of exactly these, and its figure."""
    figure, record = figure_record(files, lambda record: record.get("models") == [str(path) for *_, path in present])
    if record:
        scored = zip([name for name, *_ in present], record["columns"]["plain"].values())
        blocks += [para(narrative.calibration_text(scored)),
                   image(figure, "Accuracy at each confidence (the highest probability) on the "
                         "validation split, on the diagonal where calibrated; below, the share of faces at each")]
    else:
        models = " ".join(f"--model {shown_path(path)}" for *_, path in present)
        blocks.append(missing("the calibration", f"python calibration.py --data data/train.csv --each {models}"))


def majority_of(data, cnn_path):
    try:
        validation, _ = records.load_validation(data, cnn_path)
        return majority_share(validation.y), len(validation)
    except InputError:
        return None, 0


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
    dnn_paths = args.dnn or [p for p in DNNS if Path(p).exists()] or [DNNS[0]]
    print(f"report on {cnn_path} (CNN) and {', '.join(dnn_paths)} (DNN), data {data}")
    existing_dnns = [p for p in dnn_paths if Path(p).exists()]
    if args.no_regenerate or not Path(cnn_path).exists():
        regenerated = found(out)
    else:
        regenerated = regenerate(data, cnn_path, existing_dnns, out, args.faces)
    majority, val_rows = majority_of(data, cnn_path)

    quoted = [f"{k} {v:.4f}" for k, v in (("public", args.public), ("private", args.private)) if v is not None]
    scores = " Leaderboard: " + ", ".join(quoted) + "." if quoted else ""
    blocks = [para(f"Generated {time.strftime('%Y-%m-%d %H:%M')} from `{data}` on {backend.accelerator()}. Classes: "
                   + ", ".join(f"{i} {c}" for i, c in enumerate(CLASSES)) + ".")]
    if majority is not None:
        blocks.append(para(f"Always answering the most common class scores {majority:.4f} on the validation split "
                           f"({val_rows:,} faces): a run must clear this line to have learned anything."))
    cnn, cnn_summary, _ = model_section("1. The CNN", "CNN", cnn_path, out, blocks, majority or 0, scores)
    runs = [("CNN", cnn, cnn_summary, cnn_path)]
    for k, path in enumerate(dnn_paths):
        name = "DNN" if k == 0 else f"DNN ({Path(path).stem})"
        model, summary, _ = model_section(f"2{'' if k == 0 else chr(ord('a') + k - 1)}. The {name}", "DNN", path,
                                          out, blocks, majority or 0, label=name)
        runs.append((name, model, summary, path))
    confusion_files = regenerated["confusion"][0]
    confusion = json_file(confusion_files)
    comparison_section(runs, confusion, majority or 0, val_rows, out, confusion_files, regenerated["calibration"][0],
                       blocks)
    embedding_section([r for r in runs if r[1] is not None], *regenerated["embedding"], blocks)
    robustness_section([r for r in runs if r[1] is not None], *regenerated["robustness"], blocks)
    ablation_section(json.loads((out / "ablation.json").read_text()) if (out / "ablation.json").exists() else None,
                     out / "ablation.png", blocks)
    confusion_section(*regenerated["confusion"], cnn_summary, blocks)
    saliency = json_file(regenerated["saliency"][0], "saliency.json")
    saliency_section(saliency, *regenerated["saliency"], blocks)
    filters_section(*regenerated["filters"], blocks)
    blocks.append(heading("7. LIME"))
    lime = [f for f in regenerated["lime"][0] if f.suffix == ".png"]
    if lime and saliency and "lime" in saliency["faithfulness"]:
        blocks.append(para(narrative.lime_text(saliency)))
    blocks.extend([image(lime[0], "LIME on SLIC superpixels: the regions that support the predicted class most, "
                                  "and every region's weight (opacity follows the weight)")] if lime else
                  [missing(f"LIME ({regenerated['lime'][1]})", f"python lime_explain.py --data {data}")])
    semi = out / "semi_supervised.json"
    semi_section(json.loads(semi.read_text()) if semi.exists() else None, out / "semi_supervised.png", blocks)
    math_section(blocks)
    absent = [b for b in blocks if b[0] == "missing"]
    if absent:
        blocks.append(heading("Missing"))
        blocks.append(table(["what", "make it with"], [(b[1], f"`{b[2]}`") for b in absent]))
    if args.started is not None:
        blocks.append(para(f"The whole job (`bash run.sh`, set-up to this page) took "
                           f"{(time.time() - args.started) / 60:.0f} minutes on {backend.accelerator()}."))
    title = "FER2013 facial-expression recognition: report"
    write_text(out / "report.md", f"# {title}\n\n" + to_markdown(blocks, out))
    write_text(out / "report.html", to_html(blocks, title))
    images = sum(b[0] == "img" for b in blocks)
    print(f"{images} figures, {len(absent)} missing item(s){': ' + '; '.join(b[1] for b in absent) if absent else ''}")
    print(f"report built in {time.perf_counter() - started:.0f} s")
    print(f"wrote {out / 'report.md'}, {out / 'report.html'}")


if __name__ == "__main__":
    cli.run(main)
