"""What a run leaves behind, and reading it back: file names, histories, summaries, the split a model used,
and the words and tables that describe a run.

A run named NAME writes, all atomically:
    models/NAME.keras            best validation accuracy so far (raw-pixel model)
    models/NAME_history.csv      one row per epoch
    models/NAME_summary.json     parameters, best epoch, accuracy, wall time, images/s, settings, split
    figures/NAME_history.png     loss and accuracy, training vs validation
    models/NAME_submission.csv   with --test: the Kaggle CSV (id,label)
"""
import csv
import io
import json
import math
import sys
import time
from pathlib import Path

from . import backend
from .atomic import write_text
from .data import load_faces, load_labeled, split_train_val, test_rows
from .errors import InputError
from .models import DROPOUT, trainable_parameters
from .reading import check_labels
from .settings import DEFAULTS, as_record, with_new_defaults

ROOT = Path(__file__).resolve().parent.parent
TRAINED_CNN = Path("models/cnn.keras")  # what train_cnn.py writes, relative to where it runs
TRAINED_DNN = Path("models/dnn.keras")
SHIPPED_MODEL = ROOT / "models" / "pretrained" / "cnn.keras"


def ensemble_members(lead):
    """An exported model and the members exported beside it as its stem + _NAME.keras (cnn.keras, cnn_2.keras)."""
    lead = Path(lead)
    return [lead, *sorted(lead.parent.glob(lead.stem + "_*.keras"))]


def summary_path(model_path):
    return Path(model_path).with_name(Path(model_path).stem + "_summary.json")


def history_path(model_path):
    return Path(model_path).with_name(Path(model_path).stem + "_history.csv")


def output_paths(model_path, figures, submission=None):
    model_path = Path(model_path)
    if model_path.suffix != ".keras":
        raise InputError(model_path, "the model file must end in .keras")
    stem = model_path.stem
    return dict(model=model_path, history=history_path(model_path), summary=summary_path(model_path),
                figure=Path(figures) / f"{stem}_history.png",
                submission=Path(submission) if submission else model_path.with_name(f"{stem}_submission.csv"),
                resume=model_path.parent / ".resume" / stem)


def run_files(paths, submission=False):
    """The files a training run writes, for checking before it starts (fer.outputs)."""
    return [paths["model"], paths["history"], paths["summary"], paths["figure"],
            *([paths["submission"]] if submission else [])]


def read_history(path):
    if not Path(path).exists():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) if k != "epoch" else int(v) for k, v in r.items()} for r in csv.DictReader(f)]


def write_history(path, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[-1]))
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text(path, buffer.getvalue())


def kept_row(rows):
    """The history row of the epoch a run keeps: the best by validation accuracy, or without validation
    (--val-fraction 0) the last."""
    validated = validated_rows(rows)
    return max(validated, key=lambda r: r["val_accuracy"]) if validated else rows[-1]


def validated_rows(rows):
    """The history rows of validated epochs: not those before --validate-from's share (NaN), nor any of a run
    without validation."""
    return [r for r in rows if not math.isnan(r.get("val_accuracy", math.nan))]


def write_summary(paths, summary):
    write_text(paths["summary"], json.dumps(summary, indent=2) + "\n")


def read_summary(model_path):
    """A model's summary JSON as a dict, {} when it has none."""
    path = summary_path(model_path)
    return json.loads(path.read_text()) if path.exists() else {}


def finished_run(paths, settings, data):
    """The summary of a run that already finished with these settings (the network among them) on this data,
    else None.

    Lets the multi-run scripts (ablation, semi-supervised) pick up where an interrupted session stopped."""
    if not (paths["summary"].exists() and paths["model"].exists() and paths["history"].exists()):
        return None
    summary = json.loads(paths["summary"].read_text())
    now = as_record(settings)
    # A record older than the arch setting names its network in "architecture" alone.
    recorded = {"arch": summary.get("architecture"), **summary.get("settings", {})}
    split = json.loads(json.dumps(data["split"]))
    if "faces" not in summary.get("split", {}):
        split.pop("faces", None)  # a record older than the faces' content key: its file's digest decides
    same = (with_new_defaults(recorded, now) == now
            and summary.get("split") == split
            and summary.get("backend") == backend.name())
    return summary if same else None


# ----------------------------------------------------------------------------- the split a model used

def recorded_split(model_path, digest, faces=None):
    """(validation fraction, split seed, recorded?) from a model's summary, for the file with this digest or
    the same faces in another file (content key `faces`: train.npz of train.csv); train_cnn.py's defaults when
    the summary is missing or is about other faces."""
    summary = summary_path(model_path)
    if summary.exists():
        split = json.loads(summary.read_text()).get("split", {})
        if split.get("digest") == digest or (faces is not None and split.get("faces") == faces):
            return split["val_fraction"], split["seed"], True
    return DEFAULTS["val_fraction"], DEFAULTS["split_seed"], False


def describe_split(split):
    return f"{split[0]:.0%} (split seed {split[1]})"


def load_split(data_path, model_paths):
    """(training faces, validation faces, note) of the split the models' summaries record for this file.

    Models that held out different faces of it are refused: each would be scored, and their ensemble
    averaged, on faces some of them trained on."""
    paths = [model_paths] if isinstance(model_paths, (str, Path)) else list(model_paths)
    faces = load_labeled(data_path)
    content = faces.content()
    splits = [recorded_split(path, faces.digest, content) for path in paths]
    for path, split in zip(paths, splits):
        if split[0] == 0 and split[2]:
            raise InputError(path, f"was trained on every labeled row of {data_path} (--val-fraction 0): no face of "
                                   "it is held out to score or explain the model on; use a model trained with a "
                                   "validation split")
    for path, split in zip(paths[1:], splits[1:]):
        if split[:2] != splits[0][:2] and faces.usage is None:  # fer2013.csv's Usage column fixes its split
            raise InputError(path, f"held out {describe_split(split)} of {data_path} in training, but {paths[0]} "
                                   f"held out {describe_split(splits[0])}: scored together, some of the "
                                   f"validation faces would be training faces (train them with one --split-seed)")
    fraction, seed, recorded = splits[0]
    note = "the split used in training" if recorded else f"stratified {fraction:.0%}, seed {seed}"
    train, val = split_train_val(faces, fraction, seed)
    if faces.usage is not None:
        note = "Usage = PublicTest"
    return faces.subset(train), faces.subset(val), note


def load_validation(data_path, model_paths):
    """The validation rows the models were trained without: the split their summaries record, when it matches."""
    _, validation, note = load_split(data_path, model_paths)
    return validation, note


def load_test(test_path, model_paths):
    """(faces, note): labeled test faces no model trained on, to score them as papers do: the PrivateTest rows
    of fer2013.csv, or every row of a labeled file (the test labels) that no model's summary records training on."""
    faces = load_faces(test_path)
    if faces.y is None:
        raise InputError(test_path, "has no labels to score against (Kaggle's test.csv has none): give fer2013.csv, "
                                    "or the test faces as 'label,feature'")
    check_labels(faces)
    if faces.usage is None:  # fer2013.csv's PrivateTest rows never train; any other file's rows may have
        content = faces.content()
        for path in [model_paths] if isinstance(model_paths, (str, Path)) else model_paths:
            if recorded_split(path, faces.digest, content)[2]:
                raise InputError(test_path, f"{path} trained on this file, so its faces are no test of it: "
                                            "give the file as --data to score the faces it held out")
    rows = test_rows(faces)
    if len(rows) == 0:
        raise InputError(test_path, "has no PrivateTest rows to score")
    return faces.subset(rows), "Usage = PrivateTest" if faces.usage is not None else "every row"


def load_scored(data_path, test_path, model_paths):
    """(faces, note, what) for a script's --data or --test: the validation split, or labeled test faces."""
    if test_path:
        return (*load_test(test_path, model_paths), "test")
    return (*load_validation(data_path, model_paths), "validation")


# ----------------------------------------------------------------------------- words and tables

def describe_run(name, architecture, model, settings, data):
    return {"name": name, "architecture": architecture,
            "trainable_parameters": trainable_parameters(model),
            "total_parameters": int(model.count_params()), "preset": settings["preset"],
            "settings": as_record(settings), "precision": settings["precision"],
            "backend": backend.name(), "device": backend.accelerator(), "split": data["split"],
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "date": time.strftime("%Y-%m-%d"),
            **({"teacher_train_accuracy": data["teacher_accuracy"]} if "teacher_accuracy" in data else {}),
            **({"unlabeled_rows": data["unlabeled_rows"]} if data.get("unlabeled_rows") else {})}


def validation_words(summary):
    """How a run was validated, in a few words: its best validation accuracy, or that it trained on every row."""
    if summary.get("best_val_accuracy") is None:
        return f"no validation: every labeled row trained, the model is the last of {summary['epochs']} epochs"
    return (f"best validation accuracy {summary['best_val_accuracy']:.4f} at epoch {summary['best_epoch']} of "
            f"{summary['epochs']}")


def augmentation_words(settings):
    """The run's augmentation in a few words, e.g. "affine x1.0, erasing 0.5, mixup 0.2"."""
    words = (["no augmentation"] if settings.get("augment") == "none" else
             [f"{settings.get('augment')} x{settings.get('augment_scale')}"])
    if settings.get("erase"):
        words.append(f"erasing {settings['erase']}")
    if settings.get("degrade"):
        words.append(f"blur and noise {settings['degrade']}")
    if settings.get("clean_tail"):
        views = " on --tta's views" if settings.get("tail_views") else ""
        words.append(f"clean tail {settings['clean_tail']}{views}")
    if settings.get("mixup"):
        words.append(f"mixup {settings['mixup']}")
    if settings.get("ema"):
        words.append(f"EMA {settings['ema']}")
    return ", ".join(words)


def teacher_words(settings):
    """", distilled from N teachers (W)" and " with FILE unlabeled" for --unlabeled, or nothing."""
    teachers = settings.get("teachers") or []
    if not teachers:
        return ""
    unlabeled = settings.get("unlabeled") or []
    views = f", {settings['teacher_tta']} TTA" if settings.get("teacher_tta") else ""
    return (f", distilled from {len(teachers)} teachers ({settings['distill']:g}{views})"
            + (f" with {' '.join(Path(p).name for p in unlabeled)} unlabeled" if unlabeled else ""))


def start_words(settings):
    """", started from NAME.keras" for a run started from a trained model's weights (--init), or nothing."""
    return f", started from {Path(settings['init']).name}" if settings.get("init") else ""


def print_table(title, rows):
    """A short two-column table: airbench style, so runs are comparable at a glance."""
    width = max(len(k) for k, _ in rows)
    print(f"\n{title}")
    print("-" * (width + 24))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("-" * (width + 24))


def recipe_words(summary):
    """The settings that differ between runs, in a few words."""
    s = summary.get("settings")
    if not s:
        return "(still training: no summary yet)"
    network = (f"{summary['architecture']} {summary['trainable_parameters'] / 1e6:.1f}M, "
               if "trainable_parameters" in summary else "")
    if s.get("dropout", DROPOUT) != DROPOUT:  # older records lack the setting; their commands say so
        network += f"dropout {s['dropout']:g}, "
    length = f"{s['minutes']:g} min timed" if s.get("minutes") else f"{s.get('epochs')} ep"
    if s.get("validate_from"):
        length += f" validated from {s['validate_from']:.0%}"
    smoothing = s.get("label_smoothing", DEFAULTS["label_smoothing"])
    smoothing = "" if smoothing == DEFAULTS["label_smoothing"] else f", label smoothing {smoothing:g}"
    return (f"{summary.get('preset', '?')}: {network}{length}, batch {s.get('batch_size')}, {s.get('optimizer')} "
            f"lr {s.get('lr')} wd {s.get('weight_decay')}{smoothing}, {augmentation_words(s)}{teacher_words(s)}"
            f"{start_words(s)}, {summary.get('precision')}")
