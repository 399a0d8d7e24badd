#!/usr/bin/env python3
"""Export a trained model for sharing: weights only (no optimizer state), its records, a model card.

Writes OUT.keras (about a third of the training checkpoint: Adam's two moments are dropped;
a sixth with --half), OUT_summary.json and OUT_history.csv beside it, and MODEL_CARD.md in the
same folder, all from what the training run recorded. The exported model holds only Keras's own
layers (the training-only augmentation becomes Identity), so `keras.saving.load_model` opens it
anywhere, without this project.

A second model exported as OUT's stem + _NAME.keras beside it (models/pretrained/cnn_2.keras) joins it as
an ensemble: predict.py and faces.py average the members by default, explanations use the first, and
MODEL_CARD.md describes them all, with the ensemble's validation accuracy when --validate names the data.

    python export_model.py models/cnn.keras --out models/pretrained/cnn.keras --half
    python export_model.py models/cnn_b.keras --out models/pretrained/cnn_2.keras --half --validate data/train.csv
"""
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from fer import IMAGE_SIZE, backend, cli, inference, quiet_native_stderr, records
from fer.atomic import atomic_path, write_text
from fer.errors import InputError
from fer.outputs import check_outputs


def parse_args():
    parser = cli.parser(__doc__)
    parser.add_argument("model", metavar="M.keras", help="a model written by train_cnn.py")
    parser.add_argument("--out", default="models/pretrained/cnn.keras", metavar="OUT.keras")
    parser.add_argument("--half", action="store_true",
                        help="store the weights in float16: half the file; the model still computes in float32 "
                             "when loaded (fer.inference.load_model widens them)")
    parser.add_argument("--note", default="", help="a sentence for the card (e.g. why training stopped early)")
    parser.add_argument("--validate", metavar="CSV", help="the labeled file the models were trained on: score the "
                        "ensemble OUT joins (or leads) on their validation split, for its card")
    parser.add_argument("--format", action="append", choices=list(FORMATS), default=[],
                        help="also write OUT_savedmodel/ (a TensorFlow SavedModel) or OUT.tflite (LiteRT), through "
                             "Keras's model.export, each checked against the model's probabilities; repeatable")
    return parser.parse_args()


FORMATS = {"savedmodel": "_savedmodel", "litert": ".tflite"}  # where each goes: OUT's stem + this


def format_path(out, kind):
    return out.with_name(out.stem + FORMATS[kind])


def write_format(model, out, kind):
    """The model in another format beside OUT, written to a temporary name first, then moved into place;
    returns the largest difference of a probability from the model's own on random faces."""
    target = format_path(out, kind)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{target.name}.") as folder:
        tmp = Path(folder) / target.name
        backend.export_format(model, tmp, kind)
        x = np.random.default_rng(1).integers(0, 256, (64, IMAGE_SIZE, IMAGE_SIZE, 1)).astype("float32")
        difference = float(np.abs(backend.predict_exported(tmp, kind, x) - model.predict(x, verbose=0)).max())
        if target.is_dir():  # a SavedModel folder from an earlier export: moved aside, then removed
            old = Path(folder) / "old"
            os.replace(target, old)
        os.replace(tmp, target)
    return difference


def records_of(model_path):
    summary_path, history_path = records.summary_path(model_path), records.history_path(model_path)
    if not summary_path.exists() or not history_path.exists():
        raise InputError(model_path, f"needs {summary_path.name} and {history_path.name} beside it "
                                     "(the records train_cnn.py writes)")
    return json.loads(summary_path.read_text()), records.read_history(history_path), history_path


def model_card(summary, history, size_bytes, note):
    split = summary["split"]
    validated = summary.get("best_val_accuracy") is not None
    best = records.kept_row(history)
    settings = summary.get("settings", {})
    weights = summary.get("weights", "float32")
    lines = [
        f"# {summary['architecture']} facial-expression CNN (FER2013, 7 classes)", "",
        "Input: 48x48 grayscale faces as raw 0-255 pixels; normalization is inside the model. "
        "Output: softmax over Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral.", "",
        "| | |", "|---|---|",
        (f"| best validation accuracy | **{summary['best_val_accuracy']:.4f}** (epoch {summary['best_epoch']} of "
         f"{summary['epochs']}) |" if validated else
         f"| validation accuracy | none: trained on every labeled row, the model is the last of {summary['epochs']} "
         "epochs |"),
        f"| training accuracy at that epoch | {best['accuracy']:.4f} |",
        f"| validation split | {split['val_rows']:,} rows: " + (
            "none held out" if not validated else "Usage = PublicTest" if split.get("by_usage") else
            f"stratified {split['val_fraction']:.0%}, seed {split['seed']}") + f" of `{Path(split['file']).name}` |",
        f"| training rows | {split['train_rows']:,}" + (f" and {summary['unlabeled_rows']:,} unlabeled faces"
                                                         if summary.get("unlabeled_rows") else "") + " |",
        f"| trainable parameters | {summary['trainable_parameters']:,} |",
        f"| command | `{summary.get('command', '?')}` |",
        f"| preset | {summary.get('preset', '?')}: "
        + (f"timed to {settings['minutes']:g} minutes ({summary['epochs']} epochs)" if settings.get("minutes") else
           f"{settings.get('epochs')} epochs") + f", batch {settings.get('batch_size')}, "
        f"{settings.get('optimizer')} lr {settings.get('lr')}, label smoothing {settings.get('label_smoothing')}, "
        f"augmentation {records.augmentation_words(settings)}{records.teacher_words(settings)} |",
        f"| hardware | {summary['device']}, {summary['backend']}, {summary['precision']} |",
        f"| wall time | {summary['wall_seconds']:.0f} s ({summary['wall_seconds'] / 60:.1f} min), "
        f"{summary['train_images_per_second']:.0f} training images/s |",
        f"| date | {summary.get('date', '?')} |",
        f"| file | {size_bytes / 2**20:.1f} MiB, {weights} weights, no optimizer state" + (
            f"; computes in float32, probabilities within {summary['largest_probability_change']:.0e} of the "
            "float32 model on random faces" if weights == "float16" else "") + " |",
    ]
    if note:
        lines += ["", note]
    lines += ["", "Accuracy per epoch:", "", "| epoch | training | validation | seconds |", "|---:|---:|---:|---:|"]
    # n/a: a run without validation, or an epoch before --validate-from's share (NaN in the history)
    lines += [f"| {r['epoch']} | {r['accuracy']:.4f} | {accuracy_or_na(r.get('val_accuracy', np.nan))} | "
              f"{r['epoch_seconds']:.0f} |" for r in history]
    lines += ["", "Predict with it: `python predict.py --test data/test.csv` (add `--tta` to average each face with "
              "its mirror image, each also zoomed by 0.85 and 1.15); "
              "explain it: `python saliency.py --data data/train.csv`."]
    return "\n".join(lines) + "\n"


def accuracy_or_na(value):
    return "n/a" if np.isnan(value) else f"{value:.4f}"


def lead_of(out):
    """The exported model whose ensemble `out` joins (`cnn.keras` for `cnn_2.keras`), if it is there."""
    # the shortest stem: the lead whose members (records.ensemble_members) include every longer one
    leads = [path for path in out.parent.glob("*.keras") if out.stem.startswith(path.stem + "_")]
    return min(leads, key=lambda path: len(path.stem)) if leads else None


TTA_COLUMNS = inference.tta_columns(mark_default=True)  # the card's columns: predict.py --validate's, --tta marked


def ensemble_scores(members, faces, split):
    """Validation accuracy of the members averaged, as predict.py averages them, plain and with each TTA."""
    progress = inference.view_progress(f"{len(faces):,} validation faces", len(members))
    views = inference.view_probabilities([inference.load_model(path) for path in members], faces.x, progress=progress)
    return dict(members=[path.name for path in members], faces=len(faces), split=split,
                **inference.column_accuracies(views, faces.y, mark_default=True))


def ensemble_card(members):
    """One card for an ensemble: what averages what and how well (as last measured), then each member's card."""
    names = [path.name for path in members]
    summaries = [records_of(path)[:2] for path in members]
    lines = [f"# An ensemble of {len(members)} facial-expression CNNs (FER2013, 7 classes)", "",
             f"`predict.py` and `faces.py` average the probabilities of {', '.join(f'`{n}`' for n in names)} "
             f"when no --model is given; explanations, filters and the report use the first, `{names[0]}` "
             "(pass --model to choose).", ""]
    measured = [summary["ensemble"] for summary, _ in summaries if summary.get("ensemble", {}).get("members") == names]
    if measured:
        got = measured[-1]
        lines += [f"Validation accuracy on {got['faces']:,} faces ({got['split']}), float32 after loading:", "",
                  "| | " + " | ".join(TTA_COLUMNS) + " |", "|---|" + "---:|" * len(TTA_COLUMNS),
                  "| the ensemble | " + " | ".join(f"{got[column]:.4f}" for column in TTA_COLUMNS) + " |"]
    else:
        lines += ["Not scored as an ensemble: export its last member with --validate to add its accuracy here."]
    for path, (summary, history) in zip(members, summaries):
        own = model_card(summary, history, path.stat().st_size, summary.get("card_note", ""))
        lines += ["", f"## {path.name}", "", own.split("\n", 2)[2].rstrip()]
    return "\n".join(lines) + "\n"


def rounding_change(model, exported_path, faces=256):
    """Largest change of any class probability between the model and its exported file, on random faces
    (0 for a float32 export; float16 rounding of the weights moves probabilities by about 1e-4)."""
    x = np.random.default_rng(0).integers(0, 256, (faces, IMAGE_SIZE, IMAGE_SIZE, 1)).astype("float32")
    before = model.predict(x, verbose=0)
    after = inference.load_model(exported_path).predict(x, verbose=0)
    return float(np.abs(after - before).max())


def main():
    args = parse_args()
    out = Path(args.out)
    if out.suffix != ".keras":
        raise InputError(out, "the exported file must end in .keras")
    card = out.parent / "MODEL_CARD.md"
    formats = [format_path(out, kind) for kind in args.format if kind == "litert"]  # a SavedModel is a folder
    check_outputs([out, records.summary_path(out), records.history_path(out), card, *formats],
                  inputs=[args.model, records.summary_path(args.model), records.history_path(args.model),
                          args.validate])
    lead = lead_of(out)
    if card.exists() and not out.exists() and lead is None:  # another model's card: not ours to replace
        raise InputError(card, f"describes another model in {out.parent}; export {out.name} into a folder of its own, "
                               "or remove that card first")
    if args.validate:
        others = [path for path in records.ensemble_members(lead or out) if path != out]
        if not others:
            raise InputError("--validate", f"scores an ensemble, and {out.name} would be alone: export a member "
                                           f"beside it as {out.stem}_NAME.keras")
        # read before anything is written: a bad file or another split leaves no half-finished export
        faces, split = records.load_validation(args.validate, [*others, args.model])
    summary, history, history_path = records_of(args.model)
    model = inference.load_model(args.model)  # loaded without compiling: saving it leaves the optimizer out
    # The training-only layers become Identity: the file loads in plain Keras, without this project.
    portable = inference.with_policy(model, "float32", portable=True)
    with quiet_native_stderr():  # oneDNN's note on building float16 layers where the CPU lacks AVX-512 fp16
        exported = inference.with_policy(portable, "float16") if args.half else portable
    with atomic_path(out) as tmp:
        exported.save(tmp)
    size = out.stat().st_size
    weights = "float16" if args.half else "float32"
    differences = {kind: write_format(portable, out, kind) for kind in dict.fromkeys(args.format)}
    group = records.ensemble_members(lead or out)  # now that OUT is written, it is among them
    scored = ({"ensemble": ensemble_scores(group, faces, f"{split} of {Path(args.validate).name}")}
              if args.validate else {})
    # an exported file exported again keeps what its first rounding moved
    change = max(rounding_change(model, out), summary.get("largest_probability_change", 0.0))
    carried = {key: value for key, value in summary.items() if key != "ensemble"}  # scores of another file
    summary = {**carried, "exported_from": str(args.model), "name": out.stem, "weights": weights,
               "card_note": args.note, "largest_probability_change": change, **scored,
               **({"formats": {kind: {"path": str(format_path(out, kind)), "largest_probability_change": d}
                               for kind, d in differences.items()}} if differences else {})}
    write_text(records.summary_path(out), json.dumps(summary, indent=2) + "\n")
    with atomic_path(records.history_path(out)) as tmp:
        shutil.copyfile(history_path, tmp)
    if scored:
        print("ensemble of " + " + ".join(summary["ensemble"]["members"]) + ": "
              + ", ".join(f"{column} {summary['ensemble'][column]:.4f}" for column in TTA_COLUMNS))
    write_text(card, ensemble_card(group) if len(group) > 1 else model_card(summary, history, size, args.note))
    print(f"{args.model} -> {out}: {size / 2**20:.1f} MiB {weights} (checkpoint "
          f"{Path(args.model).stat().st_size / 2**20:.1f} MiB), {records.validation_words(summary)}; "
          f"largest change of a probability on 256 random faces: {summary['largest_probability_change']:.1e}")
    for kind, difference in differences.items():
        print(f"{kind}: {format_path(out, kind)}, largest change of a probability {difference:.1e}")
    print(f"wrote {out}, {records.summary_path(out)}, {records.history_path(out)}, "
          + "".join(f"{format_path(out, kind)}, " for kind in differences) + f"{out.parent / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    cli.run(main)
