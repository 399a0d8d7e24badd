#!/usr/bin/env python3
"""Export a trained model for sharing: weights only (no optimizer state), its records, a model card.

Writes OUT.keras (about a third of the training checkpoint: Adam's two moments are dropped;
a sixth with --half), OUT_summary.json and OUT_history.csv beside it, and MODEL_CARD.md in the
same folder, all from what the training run recorded.

    python export_model.py models/cnn.keras --out models/pretrained/cnn.keras --half
"""
import argparse
import json
import shutil
from pathlib import Path

import numpy as np

import fer
from fer import cli, training
from fer.atomic import atomic_path, write_text
from fer.errors import InputError


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", metavar="M.keras", help="a model written by train_cnn.py")
    parser.add_argument("--out", default="models/pretrained/cnn.keras", metavar="OUT.keras")
    parser.add_argument("--half", action="store_true",
                        help="store the weights in float16: half the file; the model still computes in float32 "
                             "when loaded (fer.cli.load_model widens them)")
    parser.add_argument("--note", default="", help="a sentence for the card (e.g. why training stopped early)")
    return parser.parse_args()


def records_of(model_path):
    summary_path = Path(model_path).with_name(Path(model_path).stem + "_summary.json")
    history_path = Path(model_path).with_name(Path(model_path).stem + "_history.csv")
    if not summary_path.exists() or not history_path.exists():
        raise InputError(model_path, f"needs {summary_path.name} and {history_path.name} beside it "
                                     "(the records train_cnn.py writes)")
    return json.loads(summary_path.read_text()), training.read_history(history_path), history_path


def model_card(summary, history, size_bytes, note):
    split = summary["split"]
    validated = summary.get("best_val_accuracy") is not None
    best = training.kept_row(history)
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
        f"| preset | {summary.get('preset', '?')}: {settings.get('epochs')} epochs, batch {settings.get('batch_size')}, "
        f"{settings.get('optimizer')} lr {settings.get('lr')}, label smoothing {settings.get('label_smoothing')}, "
        f"augmentation {training.augmentation_words(settings)}{training.teacher_words(settings)} |",
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
    lines += [f"| {r['epoch']} | {r['accuracy']:.4f} | {r['val_accuracy']:.4f} | {r['epoch_seconds']:.0f} |"
              if validated else f"| {r['epoch']} | {r['accuracy']:.4f} | n/a | {r['epoch_seconds']:.0f} |"
              for r in history]
    lines += ["", "Predict with it: `python predict.py --test data/test.csv` (add `--tta` to average each face with "
              "its mirror image, each also zoomed by 0.85 and 1.15); "
              "explain it: `python saliency.py --data data/train.csv`."]
    return "\n".join(lines) + "\n"


def rounding_change(model, exported_path, faces=256):
    """Largest change of any class probability between the model and its exported file, on random faces
    (0 for a float32 export; float16 rounding of the weights moves probabilities by about 1e-4)."""
    x = np.random.default_rng(0).integers(0, 256, (faces, 48, 48, 1)).astype("float32")
    before = model.predict(x, verbose=0)
    after = cli.load_model(exported_path).predict(x, verbose=0)
    return float(np.abs(after - before).max())


def main():
    args = parse_args()
    out = Path(args.out)
    if out.suffix != ".keras":
        raise InputError(out, "the exported file must end in .keras")
    summary, history, history_path = records_of(args.model)
    model = cli.load_model(args.model)  # loaded without compiling: saving it leaves the optimizer out
    with fer.quiet_native_stderr():  # oneDNN's note on building float16 layers where the CPU lacks AVX-512 fp16
        exported = cli.with_policy(model, "float16") if args.half else model
    with atomic_path(out) as tmp:
        exported.save(tmp)
    size = out.stat().st_size
    weights = "float16" if args.half else "float32"
    summary = {**summary, "exported_from": str(args.model), "name": out.stem, "weights": weights,
               "largest_probability_change": rounding_change(model, out)}
    write_text(out.with_name(out.stem + "_summary.json"), json.dumps(summary, indent=2) + "\n")
    with atomic_path(out.with_name(out.stem + "_history.csv")) as tmp:
        shutil.copyfile(history_path, tmp)
    write_text(out.parent / "MODEL_CARD.md", model_card(summary, history, size, args.note))
    print(f"{args.model} -> {out}: {size / 2**20:.1f} MiB {weights} (checkpoint "
          f"{Path(args.model).stat().st_size / 2**20:.1f} MiB), {training.validation_words(summary)}; "
          f"largest change of a probability on 256 random faces: {summary['largest_probability_change']:.1e}")
    print(f"wrote {out}, {out.with_name(out.stem + '_summary.json')}, {out.with_name(out.stem + '_history.csv')}, "
          f"{out.parent / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    fer
    cli.run(main)
