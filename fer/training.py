"""Training shared by train_cnn.py and train_dnn.py: settings, data, fit, outputs.

A run writes, all atomically:
    models/<name>.keras            best validation accuracy so far (raw-pixel model)
    models/<name>_history.csv      one row per epoch
    models/<name>_summary.json     parameters, best epoch, accuracy, wall time, images/s
    figures/<name>_history.png     loss and accuracy, training vs validation
    models/<name>_submission.csv   with --test: the Kaggle CSV (id,label)
Killed runs resume: rerun the same command and it continues after the last
finished epoch (weights, optimizer and schedule come from models/.resume/).
"""
import argparse
import csv
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np

from . import CLASSES, backend
from .atomic import atomic_path, write_text
from .data import load_faces, load_labeled, repeats, split_train_val
from .errors import InputError

# Budgets. Flags given on the command line override the preset's values.
PRESETS = {
    "smoke": dict(epochs=2, batch_size=32, precision="float32", limit=512, lr=2e-3, augment_scale=0.5, width=1.0),
    "sample": dict(epochs=12, batch_size=32, precision="float32", limit=None, lr=2e-3, augment_scale=0.5, width=1.0),
    # precision "auto": bfloat16 where the CPU has AMX or AVX-512 bf16, else float32 (on an AVX2-only CPU
    # TensorFlow runs bfloat16 ~10x slower: measured 11 vs 105 images/s).
    # epochs "auto": train_cnn.py times the run to CPU_MINUTES (epochs_for_budget plans the epochs from the
    # speed it measures, ClockSchedule paces the learning rate by the clock), so the half hour is used on any
    # CPU. Scripts that compare runs take a fixed 20 (bfloat16) or 8 (float32) instead.
    # Half-strength warps: a short run learns faster with milder augmentation (measured on a 4k subset).
    # width: the CNN's channel multiplier (1.0 = 32-64-128-256, dense 256). The gpu preset's 1.5x (4.0M
    # parameters, 2.3x the FLOPs) beat 1.0x at 60 epochs (0.6588 vs 0.6445) and is the widest whose float16 file
    # ships within 10 MB; the cpu preset stays 1.0x: at equal time 1.5x matched 1.0x (0.6412 in 20 epochs,
    # 2,540 s, against 0.6418 in 30 epochs, 2,409 s, on the Xeon).
    # lr 4e-3: in the half hour it beat 2e-3 in 2 of 3 seeds (mean 0.6588 against 0.6544) and reached 60% sooner in
    # all 3 (bench/results/README.md); one seed at 8e-3 reached 0.6632.
    "cpu": dict(epochs="auto", batch_size=128, precision="auto", limit=None, lr=4e-3, augment_scale=0.5, width=1.0),
    "gpu": dict(epochs=60, batch_size=128, precision="bfloat16", limit=None, lr=1e-3, augment_scale=1.0, width=1.5),
}
DEFAULTS = dict(val_fraction=0.2, split_seed=0, seed=0, optimizer="adamw", weight_decay=0.01, label_smoothing=0.1,
                warmup_epochs=1, augment="affine", normalize=True, batchnorm=True, erase=0.0, mixup=0.0,
                minutes=None, teachers=[], distill=0.0, unlabeled=[])
DISTILL = 0.5  # --teacher's default weight of the teachers' probabilities in each training target
CPU_MINUTES = 30  # the cpu preset's whole run, data loading and submission included
BUDGET_RESERVE_S = 20  # of those: after training, the figure and a test-set prediction
PROCESS_START = time.perf_counter()  # this module loads first thing; a budget counts from here


def add_arguments(parser: argparse.ArgumentParser, default_model):
    data = parser.add_argument_group("data")
    data.add_argument("--train", required=True, metavar="CSV",
                      help="labeled faces: train.csv (label,feature), fer2013.csv, or an .npz; plain, .gz or .xz")
    data.add_argument("--test", metavar="CSV", help="also write a Kaggle submission for this test.csv (id,feature)")
    data.add_argument("--val-fraction", type=float, help="held-out share of the training file, stratified (0.2); "
                      "fer2013.csv uses its own PublicTest rows. 0: hold out nothing, train on every labeled row "
                      "(fer2013.csv: Training and PublicTest) and keep the last epoch, the final fit of a recipe "
                      "already chosen on a validation split, for a submission")
    data.add_argument("--split-seed", type=int, help="which faces are held out (0); --seed leaves them alone, so "
                      "runs of several seeds share one validation split and their ensemble can be scored on it")
    data.add_argument("--limit", type=int, metavar="N", help="train on N rows of the training split (quick runs)")
    run = parser.add_argument_group("run")
    run.add_argument("--preset", choices=[*PRESETS, "auto"], default="auto",
                     help="budget: smoke (seconds), sample, cpu (~30 min on 2 cores), gpu; auto = gpu if one is "
                          "visible, else cpu")
    run.add_argument("--epochs", type=int)
    run.add_argument("--batch-size", type=int)
    run.add_argument("--lr", type=float, help="peak learning rate (after warm-up, then cosine decay to 0)")
    run.add_argument("--optimizer", choices=["adamw", "sgd"])
    run.add_argument("--weight-decay", type=float)
    run.add_argument("--label-smoothing", type=float)
    run.add_argument("--precision", choices=list(backend.PRECISIONS),
                     help="bfloat16 = mixed precision (about 2x conv throughput on recent CPUs and GPUs)")
    run.add_argument("--seed", type=int, help="initialization, shuffling and augmentation draws (0)")
    run.add_argument("--augment", choices=["affine", "imagedatagenerator", "none"],
                     help="affine: one in-model warp per image (default); imagedatagenerator: the reports' "
                          "host-side pipeline; none")
    run.add_argument("--no-augment", dest="augment", action="store_const", const="none")
    run.add_argument("--augment-scale", type=float,
                     help="shrink the reports' warp ranges: 1.0 = rotation 30, shift 0.2, zoom 0.8-1.2, shear 0.2 "
                          "(gpu preset); cpu preset 0.5")
    run.add_argument("--erase", type=float, metavar="P",
                     help="random erasing: share of training images with one rectangle (2-33%% of the face) "
                          "replaced by noise (0 = off, the default; 0.5 is the usual setting)")
    run.add_argument("--mixup", type=float, metavar="ALPHA",
                     help="blend pairs of training images and their labels, weight ~ Beta(ALPHA, ALPHA) per "
                          "batch (0 = off, the default; 0.2 is the usual setting)")
    run.add_argument("--no-normalize", dest="normalize", action="store_false", default=None,
                     help="feed raw 0-255 pixels (ablation)")
    run.add_argument("--fresh", action="store_true", help="discard an interrupted run's backup and start over")
    teach = parser.add_argument_group("distillation")
    teach.add_argument("--teacher", dest="teachers", nargs="+", metavar="MODEL.keras",
                       help="learn from these trained models too: each training face's target blends its label "
                            "with the models' mean probabilities on it. With validation, each must have held out "
                            "the same faces of the same file (its summary JSON says so)")
    teach.add_argument("--distill", type=float, metavar="W",
                       help=f"the teachers' weight in the targets, above 0 and at most 1 ({DISTILL} with --teacher)")
    teach.add_argument("--unlabeled", nargs="+", metavar="CSV",
                       help="also train on these faces, e.g. test.csv, their targets the teachers' mean probabilities "
                            "alone (labels in the file are not used; faces identical to a validation face are left out)")
    out = parser.add_argument_group("outputs")
    out.add_argument("--model", default=default_model, metavar="OUT.keras", help=f"(default {default_model})")
    out.add_argument("--figures", default="figures", metavar="DIR")
    out.add_argument("--submission", metavar="CSV", help="(default models/<name>_submission.csv)")


def settings_from(args):
    """Preset values, then defaults, then whatever the command line said."""
    preset = args.preset
    if preset == "auto":
        preset = "gpu" if backend.has_gpu() else "cpu"
    chosen = {**DEFAULTS, **PRESETS[preset], "preset": preset}
    for key in [*PRESETS["cpu"], *DEFAULTS]:
        value = getattr(args, key, None)
        if value is not None:
            chosen[key] = value
    if chosen["minutes"] is not None:
        if getattr(args, "epochs", None) is not None:
            raise InputError("--minutes", "give --minutes or --epochs, not both")
        if not chosen["minutes"] > 0:
            raise InputError("--minutes", f"must be positive, got {chosen['minutes']}")
        chosen["epochs"] = "auto"
    elif chosen["epochs"] == "auto" and hasattr(args, "minutes"):
        chosen["minutes"] = CPU_MINUTES  # train_cnn.py: fit the epochs to the preset's half hour
    fast_bfloat16 = "auto" in (chosen["precision"], chosen["epochs"]) and backend.cpu_bfloat16_is_fast()
    if chosen["precision"] == "auto":
        chosen["precision"] = "bfloat16" if fast_bfloat16 else "float32"
    if chosen["epochs"] == "auto" and chosen["minutes"] is None:
        # Scripts that compare runs (ablation, semi-supervised, the DNN) need one fixed count.
        chosen["epochs"] = 20 if chosen["precision"] == "bfloat16" and fast_bfloat16 else 8
    if not hasattr(args, "width"):  # a script without CNNs (train_dnn.py): not a setting of its runs
        del chosen["width"]
    elif chosen["width"] <= 0:
        raise InputError("--width", f"must be positive, got {chosen['width']}")
    for key in ("seed", "split_seed"):
        if not 0 <= chosen[key] < 2**32:  # what NumPy and scikit-learn accept
            raise InputError("--" + key.replace("_", "-"), f"must be between 0 and 4294967295, got {chosen[key]}")
    if not 0 <= chosen["erase"] <= 1:
        raise InputError("--erase", f"must be between 0 and 1, got {chosen['erase']}")
    if not chosen["mixup"] >= 0:  # NaN too
        raise InputError("--mixup", f"must be 0 (off) or positive, got {chosen['mixup']}")
    if chosen["mixup"] and chosen["augment"] == "imagedatagenerator":
        raise InputError("--mixup", "works with the in-model augmentation, not --augment imagedatagenerator")
    if chosen["teachers"] and getattr(args, "distill", None) is None:
        chosen["distill"] = DISTILL
    if chosen["distill"] and not chosen["teachers"]:
        raise InputError("--distill", "needs the models to learn from: give --teacher")
    if chosen["unlabeled"] and not chosen["teachers"]:
        raise InputError("--unlabeled", "needs the models that label them: give --teacher")
    chosen["unlabeled"] = [str(path) for path in chosen["unlabeled"]]
    if chosen["teachers"] and not 0 < chosen["distill"] <= 1:
        raise InputError("--distill", f"must be above 0 and at most 1, got {chosen['distill']}")
    if not 0 <= chosen["val_fraction"] < 1:
        raise InputError("--val-fraction", f"must be at least 0 and below 1, got {chosen['val_fraction']}")
    if chosen["epochs"] != "auto" and chosen["epochs"] < 1 or chosen["batch_size"] < 1:
        raise InputError("--epochs/--batch-size", "must be positive")
    return chosen


def output_paths(model_path, figures, submission=None):
    model_path = Path(model_path)
    if model_path.suffix != ".keras":
        raise InputError(model_path, "the model file must end in .keras")
    stem = model_path.stem
    return dict(model=model_path, history=model_path.with_name(f"{stem}_history.csv"),
                summary=model_path.with_name(f"{stem}_summary.json"),
                figure=Path(figures) / f"{stem}_history.png",
                submission=Path(submission) if submission else model_path.with_name(f"{stem}_submission.csv"),
                resume=model_path.parent / ".resume" / stem)


# ----------------------------------------------------------------------------- data

def prepare_data(path, settings):
    """Load, split and shape the training data; statistics come from the training split only."""
    faces = load_labeled(path)
    train, val = split_train_val(faces, settings["val_fraction"], settings["split_seed"])
    if len(val) == 0 and settings["val_fraction"] > 0:
        raise InputError(path, "no validation rows (fer2013.csv without PublicTest rows?)")
    if settings.get("limit") and settings["limit"] < len(train):
        rng = np.random.default_rng(settings["split_seed"])
        train = np.sort(rng.choice(train, settings["limit"], replace=False))
    x_train, x_val = as_input(faces.x[train]), as_input(faces.x[val])
    data = dict(x_train=x_train, y_train=one_hot(faces.y[train]), x_val=x_val, y_val=one_hot(faces.y[val]),
                mean=None, variance=None,
                split=dict(file=str(path), digest=faces.digest, val_fraction=settings["val_fraction"],
                           seed=settings["split_seed"], train_rows=len(train), val_rows=len(val),
                           by_usage=faces.usage is not None, limit=settings.get("limit")))
    if settings["normalize"]:
        data["mean"], data["variance"] = float(x_train.mean()), float(x_train.var())
    return data


def distill(data, settings):
    """Blend each training face's one-hot target with the teachers' mean probabilities on it, weight
    settings["distill"]: the student learns which faces are ambiguous, and between which expressions.
    With settings["unlabeled"], the faces of those files train too, their targets the teachers' mean alone.

    The teachers see the faces as they are (no augmentation); the student sees them warped, as usual.
    With validation, a teacher that trained on any of the validation faces is refused: its probabilities would
    pass what it learned from them on to the student, whose validation accuracy would then overstate it.
    For the same reason an unlabeled face identical to a validation face is left out."""
    if not settings["teachers"]:
        return data
    from .cli import load_model, predict_probabilities

    for path in settings["teachers"]:
        check_teacher(path, data["split"])
    unlabeled = unlabeled_faces(settings["unlabeled"], data["x_val"])  # read before the teachers' slow work
    models = [load_model(path) for path in settings["teachers"]]
    labels = data["y_train"].argmax(1)
    n = len(labels)  # the labeled faces come first, the unlabeled ones after them
    x = np.concatenate([data["x_train"], unlabeled]) if len(unlabeled) else data["x_train"]  # no copy if none
    total = 0
    for i, (path, model) in enumerate(zip(settings["teachers"], models), 1):
        t0 = time.perf_counter()
        probabilities = predict_probabilities([model], x)
        total = total + probabilities
        print(f"teacher {i}/{len(models)} {path}: {np.mean(probabilities[:n].argmax(1) == labels):.4f} on "
              f"the {n:,} training faces ({time.perf_counter() - t0:.0f} s)", flush=True)
    teachers = total / len(models)
    weight = settings["distill"]
    data["teacher_accuracy"] = round(float(np.mean(teachers[:n].argmax(1) == labels)), 4)
    print(f"targets: {1 - weight:g} x label + {weight:g} x the {len(models)} teachers' mean "
          f"({data['teacher_accuracy']:.4f} on the training faces)", flush=True)
    if len(unlabeled):
        print(f"and {len(unlabeled):,} unlabeled faces, each the teachers' mean alone", flush=True)
    targets = np.concatenate([(1 - weight) * data["y_train"] + weight * teachers[:n], teachers[n:]])
    data["x_train"], data["y_train"], data["unlabeled_rows"] = x, targets.astype("float32"), len(unlabeled)
    return data


def unlabeled_faces(paths, x_val):
    """The faces of `paths` as model inputs, less any identical to a validation face."""
    if not paths:
        return np.zeros((0, 48, 48, 1), "float32")
    kept = []
    for path in paths:
        faces = as_input(load_faces(path).x)
        fresh = ~repeats(faces, x_val)
        if not fresh.all():
            print(f"{path}: left out {np.sum(~fresh):,} of {len(faces):,} faces identical to validation faces",
                  flush=True)
        kept.append(faces[fresh])
    return np.concatenate(kept)


def check_teacher(path, split):
    """Refuse a teacher whose summary does not show it held out this run's validation faces."""
    if not Path(path).exists():
        raise InputError(path, "no such model file (a --teacher must be a trained .keras model)")
    if split["val_rows"] == 0:
        return  # a final fit: no face is held out, so no teacher can have trained on one
    from .cli import recorded_split

    fraction, seed, recorded = recorded_split(path, split["digest"])
    if not recorded:
        raise InputError(path, f"its summary JSON ({Path(path).stem}_summary.json) does not show which faces of "
                               f"{split['file']} it held out, so it may have trained on this run's validation faces; "
                               "give teachers trained on this file with this run's --val-fraction and --split-seed")
    same = (fraction > 0 if split["by_usage"]  # fer2013.csv: Usage fixes the split, unless nothing was held out
            else (fraction, seed) == (split["val_fraction"], split["seed"]))
    if not same:
        raise InputError(path, f"held out {fraction:.0%} (split seed {seed}) of {split['file']}, this run "
                               f"{split['val_fraction']:.0%} (split seed {split['seed']}): it trained on some of "
                               "this run's validation faces")


def require_validation(settings, script):
    """Refuse --val-fraction 0 in a script whose results are validation accuracies."""
    if settings["val_fraction"] == 0:
        raise InputError("--val-fraction", f"{script} compares validation accuracies, so it needs held-out faces: "
                                           "give a share above 0")


def validation_words(summary):
    """How a run was validated, in a few words: its best validation accuracy, or that it trained on every row."""
    if summary.get("best_val_accuracy") is None:
        return f"no validation: every labeled row trained, the model is the last of {summary['epochs']} epochs"
    return (f"best validation accuracy {summary['best_val_accuracy']:.4f} at epoch {summary['best_epoch']} of "
            f"{summary['epochs']}")


def as_input(x):
    return x.reshape(-1, 48, 48, 1).astype("float32")


def one_hot(y):
    return np.eye(len(CLASSES), dtype="float32")[y]


# ----------------------------------------------------------------------------- fit

def compile_model(model, settings, steps_per_epoch, fast_batch_norm=True):
    if settings.get("minutes"):
        schedule = float(settings["lr"])  # a variable, which ClockSchedule sets at each epoch
    else:
        total = settings["epochs"] * steps_per_epoch
        warmup = min(settings["warmup_epochs"] * steps_per_epoch, total // 2)
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=settings["lr"] / 10, decay_steps=max(1, total - warmup),
            warmup_target=settings["lr"], warmup_steps=warmup)
    if settings["optimizer"] == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True,
                                         weight_decay=settings["weight_decay"])
    else:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=settings["weight_decay"])
    if fast_batch_norm:
        backend.fuse_batch_norm(model)  # TensorFlow on a CPU: batch norm through the fused kernel (same numerics)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=settings["label_smoothing"]),
                  metrics=["accuracy"])


def build_for(settings, data, arch="vgg", dropout=0.4):
    """The CNN these settings describe (width, augmentation, erasing...), with the data's normalization."""
    from .models import build_cnn

    backend.set_precision(settings["precision"])
    keras.utils.set_random_seed(settings["seed"])
    return build_cnn(arch, data["mean"], data["variance"], settings["augment"], settings["width"], dropout,
                     settings["seed"], settings["augment_scale"], batchnorm=settings["batchnorm"],
                     erase=settings["erase"])


def train_cnn(data, settings, paths, arch="vgg", dropout=0.4, fresh=False, started=None):
    """Build the CNN for these settings (width among them), say what it is, fit it; returns the run's summary.

    With settings["minutes"] the run is timed from `started` (default: when this module loaded)."""
    budget = None
    started = PROCESS_START if started is None else started
    if settings["epochs"] == "auto":
        settings["epochs"], budget = epochs_for_budget(data, settings, paths, arch, dropout, fresh, started)
    model = build_for(settings, data, arch, dropout)
    run = describe_run(paths["model"].stem, arch, model, settings, data)
    unlabeled = f" and {data['unlabeled_rows']:,} unlabeled faces" if data.get("unlabeled_rows") else ""
    print(f"{run['name']}: {arch}, {run['trainable_parameters']:,} trainable parameters, "
          f"{data['split']['train_rows']:,} training rows{unlabeled}"
          f"{'' if len(data['x_val']) else ' (every labeled row: no validation, the last epoch is the model)'}, "
          f"preset {settings['preset']}, "
          f"{backend.name()} on {run['device']}", flush=True)
    if budget:
        # A first session's time so far, the measurement and this build included; a resumed one keeps its own.
        budget.setdefault("seconds_before_training", round(time.perf_counter() - started, 1))
        run["budget"] = budget
        print(f"about {budget['planned_epochs']} epochs fit {settings['minutes']:g} minutes here "
              f"({budget['train_images_per_second']:,.0f} training and {budget['val_images_per_second']:,.0f} "
              f"validation images/s measured, ~{budget['epoch_seconds']:.0f} s an epoch); the learning rate "
              f"follows the clock, so the run ends on time even if the machine slows down", flush=True)
    run.update(fit(model, data, settings, paths, fresh=fresh, budget=budget))
    return run


def epochs_for_budget(data, settings, paths, arch="vgg", dropout=0.4, fresh=False, started=None):
    """The epoch cap and plan of a run timed to settings["minutes"]: returns (cap, budget).

    The plan is as many epochs as fit the time left, counted from `started` (the process start), at the speed
    this machine shows on a few steps of the same network; the cap leaves room for the machine to speed up.
    ClockSchedule then paces the learning rate by the clock. A run that resumes keeps its cap and budget."""
    saved = paths["resume"] / "budget.json"
    if saved.exists() and not fresh:
        budget = json.loads(saved.read_text())
        if budget.get("minutes") == settings["minutes"]:
            return budget["cap_epochs"], budget
    rates = measure_speed(data, settings, arch, dropout)
    epoch = len(data["x_train"]) / rates["train"] + len(data["x_val"]) / rates["val"]
    elapsed = time.perf_counter() - (PROCESS_START if started is None else started)
    planned = max(1, int((settings["minutes"] * 60 - elapsed - BUDGET_RESERVE_S) // epoch))
    cap = planned + max(1, planned // 2)
    return cap, {"minutes": settings["minutes"], "train_images_per_second": round(rates["train"], 1),
                 "val_images_per_second": round(rates["val"], 1), "epoch_seconds": round(epoch, 1),
                 "planned_epochs": planned, "cap_epochs": cap}


class ClockSchedule(keras.callbacks.Callback):
    """Warm-up, then cosine decay paced by the clock: each epoch's learning rate is the cosine at the share of
    the time budget its middle will have used (or of the epoch cap, if that is further on), and training stops
    when the next epoch would not end in time. So a machine that slows down mid-run still ends on time with the
    learning rate near zero. One rate per epoch: under JAX the rate reaches the compiled step at epoch starts.

    budget_s: seconds for training, counted from `spent_s` already used (loading, earlier sessions' epochs);
    epoch_s: the expected length of an epoch, until one has been timed.
    """

    def __init__(self, lr, warmup_epochs, cap_epochs, budget_s, spent_s, epoch_s, done_rows=(),
                 clock=time.perf_counter):
        super().__init__()
        self.lr, self.warmup, self.cap, self.budget = lr, warmup_epochs, cap_epochs, budget_s
        self.spent, self.epoch_s, self.clock = spent_s, epoch_s, clock
        self.between = 0.0  # checkpoints and backup after an epoch, before the next begins
        self.ended = None
        rows = list(done_rows)
        self.warm_end = (spent_s - sum(r["epoch_seconds"] for r in rows[warmup_epochs:])
                         if len(rows) >= warmup_epochs else None)
        if rows:
            self.epoch_s = rows[-1]["epoch_seconds"]

    def on_train_begin(self, logs=None):
        self.t0 = self.clock() - self.spent

    def rate_for(self, epoch, elapsed):
        if epoch < self.warmup:  # the mean of a linear ramp from lr/10 to lr across the warm-up
            return self.lr * (0.1 + 0.9 * (epoch + 0.5) / self.warmup)
        warm_end = elapsed if self.warm_end is None else self.warm_end
        by_time = (elapsed + self.epoch_s / 2 - warm_end) / max(1e-9, self.budget - warm_end)
        by_epochs = (epoch + 0.5 - self.warmup) / max(1, self.cap - self.warmup)
        progress = min(1.0, max(by_time, by_epochs, 0.0))
        return self.lr * 0.5 * (1 + np.cos(np.pi * progress))

    def on_epoch_begin(self, epoch, logs=None):
        self.started = self.clock()
        if self.ended is not None:
            self.between = self.started - self.ended
        elapsed = self.started - self.t0
        if epoch == self.warmup and self.warm_end is None:
            self.warm_end = elapsed
        self.model.optimizer.learning_rate = float(self.rate_for(epoch, elapsed))

    def on_epoch_end(self, epoch, logs=None):
        self.ended = self.clock()
        self.epoch_s = self.ended - self.started + self.between  # the next one, as this one went
        if self.ended - self.t0 + self.epoch_s > self.budget:
            self.model.stop_training = True


def measure_speed(data, settings, arch="vgg", dropout=0.4, steps=6, warmup=2):
    """Training and validation images/s of the run's network here, timed on a throwaway copy after `warmup`
    steps (compilation). The session is cleared afterwards so the real network gets the same layer names
    as in a run that resumes without measuring (its backup is matched by name)."""
    model = build_for(settings, data, arch, dropout)
    compile_model(model, {**settings, "epochs": 1}, warmup + steps)
    n = min(settings["batch_size"], len(data["x_train"]))
    x, y = data["x_train"][:n], data["y_train"][:n]
    rates = {}
    for name, step in (("train", model.train_on_batch), ("val", model.test_on_batch)):
        for _ in range(warmup):
            step(x, y)
        t0 = time.perf_counter()
        for _ in range(steps):
            step(x, y)
        rates[name] = steps * n / (time.perf_counter() - t0)
    del model
    keras.backend.clear_session()
    return rates


def finished_run(paths, settings, data):
    """The summary of a run that already finished with these settings on this data, else None.

    Lets the multi-run scripts (ablation, semi-supervised) pick up where an interrupted session stopped."""
    if not (paths["summary"].exists() and paths["model"].exists() and paths["history"].exists()):
        return None
    summary = json.loads(paths["summary"].read_text())
    now = json.loads(json.dumps({k: v for k, v in settings.items() if k != "preset"}))
    same = (with_new_defaults(summary.get("settings", {}), now) == now
            and summary.get("split") == json.loads(json.dumps(data["split"]))
            and summary.get("backend") == backend.name())
    return summary if same else None


def fit(model, data, settings, paths, fresh=False, budget=None):
    """Train with checkpoint-on-best, atomic CSV history, resume; returns the summary dict.

    With a budget (settings["minutes"]), ClockSchedule sets the learning rate and ends the run on time."""
    steps = -(-len(data["x_train"]) // settings["batch_size"])
    compile_model(model, settings, steps)
    check_resume(paths["resume"], settings, data["split"], fresh)
    # Resuming means this run finished an epoch and backed it up; an older run's history doesn't count.
    done = backed_up_epochs(paths["resume"])
    recorder = EpochRecorder(paths, len(data["x_train"]), resuming=done > 0)
    write_text(paths["resume"] / "settings.json", json.dumps(resume_key(settings, data["split"]), indent=1))
    callbacks = [recorder, AtomicBackupAndRestore(str(paths["resume"]))]
    if budget:
        write_text(paths["resume"] / "budget.json", json.dumps(budget, indent=1))
        rows = recorder.rows[:done]
        callbacks.insert(0, ClockSchedule(
            settings["lr"], settings["warmup_epochs"], settings["epochs"],
            budget_s=budget["minutes"] * 60 - BUDGET_RESERVE_S,
            spent_s=budget["seconds_before_training"] + sum(r["epoch_seconds"] for r in rows),
            epoch_s=budget["epoch_seconds"], done_rows=rows))
    verbose = 1 if sys.stdout.isatty() else 2
    validation = backend.validation_feed(data["x_val"], data["y_val"]) if len(data["x_val"]) else {}
    started = time.perf_counter()
    model.fit(**training_feed(data, settings, steps, done), epochs=settings["epochs"], **validation,
              callbacks=callbacks, verbose=verbose)
    shutil.rmtree(paths["resume"], ignore_errors=True)
    return recorder.summary(time.perf_counter() - started)


def training_feed(data, settings, steps, done):
    """fit()'s training inputs: the arrays reshuffled each epoch or mixup's blended batches, both continuing
    after the `done` epochs of a resumed run, or the reports' ImageDataGenerator."""
    x, y, batch_size = data["x_train"], data["y_train"], settings["batch_size"]
    if settings["augment"] == "imagedatagenerator":
        from .augment import imagedatagenerator_flow

        return dict(x=imagedatagenerator_flow(x, y, batch_size, settings["seed"]), steps_per_epoch=steps)
    if settings["mixup"]:
        from .augment import MixupBatches

        return dict(x=MixupBatches(x, y, batch_size, settings["mixup"], settings["seed"], epoch=done), shuffle=False)
    return backend.array_feed(x, y, batch_size, settings["seed"], epoch=done)


def backed_up_epochs(resume_dir):
    """Epochs an interrupted run finished and backed up (the count AtomicBackupAndRestore resumes from); 0 if none."""
    metadata = resume_dir / "training_metadata.json"
    return json.loads(metadata.read_text())["epoch"] if metadata.exists() else 0


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's resume callback, but a kill mid-save can no longer corrupt the backup.

    Keras 3.15 writes the weights file in place, so a kill during the write
    leaves an unreadable file and the rerun crashes. Here weights and epoch
    are written to temporary files first, then moved into place.
    """

    async_safe = True  # it saves at epoch ends only (save_freq "epoch"); its batch-end hook does nothing

    def __init__(self, backup_dir):
        super().__init__(backup_dir, save_freq="epoch")

    def _save_model(self):
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        weights, meta = folder / ".next.weights.h5", folder / ".next.json"
        self.model.save_weights(weights, overwrite=True)
        meta.write_text(json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen}))
        # Weights first: a kill between the two moves only redoes one epoch from newer weights.
        os.replace(weights, self._weights_path)
        os.replace(meta, self._training_metadata_path)


def resume_key(settings, split):
    return {"settings": {k: v for k, v in settings.items() if k != "preset"}, "data": split["digest"],
            "backend": backend.name()}


def with_new_defaults(before, now):
    """A run's recorded settings, plus the settings added since then that hold their default now:
    such a setting counts as unchanged."""
    added = {k: v for k, v in DEFAULTS.items() if k not in before and now.get(k) == v}
    return {**before, **added}


def check_resume(resume_dir, settings, split, fresh):
    saved = resume_dir / "settings.json"
    if fresh:
        shutil.rmtree(resume_dir, ignore_errors=True)
        return
    if not saved.exists():
        shutil.rmtree(resume_dir, ignore_errors=True)  # a backup without settings is unusable
        return
    before = json.loads(saved.read_text())
    now = json.loads(json.dumps(resume_key(settings, split)))
    before["settings"] = with_new_defaults(before["settings"], now["settings"])
    if before != now:
        changed = [k for k in sorted(set(before["settings"]) | set(now["settings"]))
                   if before["settings"].get(k) != now["settings"].get(k)]
        if before["data"] != now["data"]:
            changed.append("training data")
        if before["backend"] != now["backend"]:
            changed.append("backend")
        raise InputError(resume_dir, f"an interrupted run with other settings ({', '.join(changed)}) is here; "
                                     "rerun with --fresh to discard it, or with its settings to resume it")


class EpochRecorder(keras.callbacks.Callback):
    """Times epochs, keeps the best model (atomically) and rewrites the CSV history each epoch.

    Without validation (--val-fraction 0) the model kept is the latest epoch's."""

    # Under JAX, Keras runs batch-end hooks on a worker thread only if every callback says it may; a
    # synchronous hook makes each step wait for the device before the host prepares the next one.
    async_safe = True

    def __init__(self, paths, n_train, resuming):
        super().__init__()
        self.paths, self.n_train = paths, n_train
        self.rows = read_history(paths["history"]) if resuming else []
        has_model = paths["model"].exists()
        self.best = max((r.get("val_accuracy", -1.0) for r in self.rows), default=-1.0) if has_model else -1.0
        self.first_epoch_of_session = True

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = self.t_train = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        # Called once the step's results exist (on a worker thread under JAX, where hooks may finish out of
        # order): the latest is when training ended; Keras waits for every hook before on_epoch_end.
        self.t_train = max(self.t_train, time.perf_counter())

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        logs = {k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}
        row = {"epoch": epoch + 1, **logs, "lr": float(np.asarray(self.model.optimizer.learning_rate)),
               "train_seconds": self.t_train - self.t0, "epoch_seconds": now - self.t0,
               "warm": int(not self.first_epoch_of_session)}  # the first epoch of a session compiles
        self.first_epoch_of_session = False
        # A run killed after this row but before its backup redoes the epoch: replace, don't repeat.
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        if row.get("val_accuracy", np.inf) > self.best:
            self.best = row.get("val_accuracy", -1.0)
            with atomic_path(self.paths["model"]) as tmp:
                self.model.save(tmp)
        write_history(self.paths["history"], self.rows)

    def summary(self, session_seconds):
        rows = self.rows
        validated = "val_accuracy" in rows[-1]
        best = kept_row(rows)
        warm = [r for r in rows if r["warm"]] or rows
        return {
            "epochs": len(rows), "best_epoch": best["epoch"],
            "best_val_accuracy": round(best["val_accuracy"], 4) if validated else None,
            "final_val_accuracy": round(rows[-1]["val_accuracy"], 4) if validated else None,
            "train_accuracy_at_best": round(best["accuracy"], 4),
            "wall_seconds": round(sum(r["epoch_seconds"] for r in rows), 1),
            "session_seconds": round(session_seconds, 1),
            "train_images_per_second": round(self.n_train * len(warm) / sum(r["train_seconds"] for r in warm), 1),
        }


def kept_row(rows):
    """The history row of the epoch a run keeps: the best by validation accuracy, or without validation
    (--val-fraction 0) the last."""
    return max(rows, key=lambda r: r["val_accuracy"]) if "val_accuracy" in rows[-1] else rows[-1]


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


# ----------------------------------------------------------------------------- reporting

def print_table(title, rows):
    """A short two-column table: airbench style, so runs are comparable at a glance."""
    width = max(len(k) for k, _ in rows)
    print(f"\n{title}")
    print("-" * (width + 24))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("-" * (width + 24))


def write_summary(paths, summary):
    write_text(paths["summary"], json.dumps(summary, indent=2) + "\n")


def finish(paths, summary, test=None, figures_title=""):
    """After fit: history figure, submission from the best checkpoint, summary JSON, table."""
    from .cli import load_model, predict_probabilities, write_submission
    from .plots import history_figure

    rows = read_history(paths["history"])
    validated = summary["best_val_accuracy"] is not None
    history_figure(rows, paths["figure"], f"{figures_title}: " + (
        f"best validation accuracy {summary['best_val_accuracy']:.4f}" if validated
        else f"every labeled row trained ({summary['split']['train_rows']:,}), no validation"))
    written = [paths["model"], paths["history"], paths["figure"]]
    if test is not None:
        best = load_model(paths["model"])
        labels = predict_probabilities([best], test.x).argmax(1)
        write_submission(paths["submission"], test.ids, labels)
        summary["submission"] = str(paths["submission"])
        written.append(paths["submission"])
    write_summary(paths, summary)
    written.append(paths["summary"])
    print_table(f"{summary['name']} on {summary['device']} ({summary['backend']}, {summary['precision']})", [
        ("architecture", summary["architecture"]),
        ("trainable parameters", f"{summary['trainable_parameters']:,}"),
        ("training / validation rows", f"{summary['split']['train_rows']:,} / {summary['split']['val_rows']:,}"),
        ("epochs (best)", f"{summary['epochs']} ({summary['best_epoch']})"),
        ("best validation accuracy", f"{summary['best_val_accuracy']:.4f}" if validated
         else "none: no held-out faces, the model is the last epoch"),
        ("wall time", f"{summary['wall_seconds']:.1f} s"),
        ("training images/s", f"{summary['train_images_per_second']:.0f}"),
    ])
    print("wrote " + ", ".join(map(str, written)))


def augmentation_words(settings):
    """The run's augmentation in a few words, e.g. "affine x1.0, erasing 0.5, mixup 0.2"."""
    words = [f"{settings.get('augment')} x{settings.get('augment_scale')}"]
    if settings.get("erase"):
        words.append(f"erasing {settings['erase']}")
    if settings.get("mixup"):
        words.append(f"mixup {settings['mixup']}")
    return ", ".join(words)


def teacher_words(settings):
    """", distilled from N teachers (W)" and " with FILE unlabeled" for --unlabeled, or nothing."""
    teachers = settings.get("teachers") or []
    if not teachers:
        return ""
    unlabeled = settings.get("unlabeled") or []
    return (f", distilled from {len(teachers)} teachers ({settings['distill']:g})"
            + (f" with {' '.join(Path(p).name for p in unlabeled)} unlabeled" if unlabeled else ""))


def describe_run(name, architecture, model, settings, data):
    from .models import trainable_parameters

    return {"name": name, "architecture": architecture, "trainable_parameters": trainable_parameters(model),
            "total_parameters": int(model.count_params()), "preset": settings["preset"],
            "settings": {k: v for k, v in settings.items() if k != "preset"}, "precision": settings["precision"],
            "backend": backend.name(), "device": backend.accelerator(), "split": data["split"],
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "date": time.strftime("%Y-%m-%d"),
            **({"teacher_train_accuracy": data["teacher_accuracy"]} if "teacher_accuracy" in data else {}),
            **({"unlabeled_rows": data["unlabeled_rows"]} if data.get("unlabeled_rows") else {})}
