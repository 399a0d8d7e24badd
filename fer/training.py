"""Training shared by train_cnn.py and train_dnn.py: building, compiling and fitting a model, and what a run
leaves behind when it ends (fer.records says where).

Killed runs resume (fer.resume); runs timed to the clock plan their epochs with fer.clock.
"""
import contextlib
import functools
import json
import math
import shutil
import sys
import time

import keras
import numpy as np

from . import backend, clock
from .atomic import atomic_path, write_text
from .augment import CleanTail, MixupBatches, imagedatagenerator_flow
from .errors import InputError
from .inference import load_model, predict_probabilities, write_submission
from .models import PREPROCESSING_LAYERS, build_cnn
from .plots import history_figure
from .records import (describe_run, kept_row, print_table, read_history, validated_rows, write_history,
                      write_summary)
from .resume import AtomicBackupAndRestore, backed_up_epochs, check_resume, only_run, resume_key, resumes
from .settings import frozen


def compile_model(model, settings, steps_per_epoch, fast_batch_norm=True):
    if settings.get("minutes"):
        schedule = float(settings["lr"])  # a variable, which ClockSchedule sets at each epoch
    else:
        total = settings["epochs"] * steps_per_epoch
        warmup = min(settings["warmup_epochs"] * steps_per_epoch, total // 2)
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=settings["lr"] / 10, decay_steps=max(1, total - warmup),
            warmup_target=settings["lr"], warmup_steps=warmup)
    # Weight averaging (--ema): the optimizer keeps the average; EMAWeights puts it in the model to validate
    # and to save, and takes it out again to train on.
    ema = dict(use_ema=True, ema_momentum=settings["ema"]) if settings.get("ema") else {}
    if settings["optimizer"] == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True,
                                         weight_decay=settings["weight_decay"], **ema)
    else:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=settings["weight_decay"], **ema)
    if fast_batch_norm:
        backend.fuse_batch_norm(model)  # TensorFlow on a CPU: batch norm through the fused kernel (same numerics)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=settings["label_smoothing"]),
                  metrics=["accuracy"])


def build_for(settings, data):
    """The CNN these settings describe (architecture, width, dropout, augmentation...), with the data's
    normalization."""
    backend.set_precision(settings["precision"])
    keras.utils.set_random_seed(settings["seed"])
    return build_cnn(settings["arch"], data["mean"], data["variance"], settings["augment"], settings["width"],
                     settings["dropout"], settings["seed"], settings["augment_scale"],
                     batchnorm=settings["batchnorm"], erase=settings["erase"], degrade=settings["degrade"])


def train_cnn(data, settings, paths, fresh=False, started=None):
    """Build the CNN for these settings, say what it is, fit it; returns the run's summary.

    With settings["minutes"] the run is timed from `started` (default: when this module loaded)."""
    budget = None
    started = clock.PROCESS_START if started is None else started
    if settings["epochs"] == "auto":
        cap, budget = epochs_for_budget(data, settings, paths, fresh, started)
        settings = frozen({**settings, "epochs": cap})
    model = build_for(settings, data)
    if settings.get("init") and not resumes(paths["resume"], fresh):
        start_from(model, settings["init"])  # a resumed run's weights come from its backup instead
    run = describe_run(paths["model"].stem, settings["arch"], model, settings, data)
    unlabeled = f" and {data['unlabeled_rows']:,} unlabeled faces" if data.get("unlabeled_rows") else ""
    print(f"{run['name']}: {settings['arch']}, {run['trainable_parameters']:,} trainable parameters, "
          f"{data['split']['train_rows']:,} training rows{unlabeled}"
          f"{'' if len(data['x_val']) else ' (every labeled row: no validation, the last epoch is the model)'}, "
          f"preset {settings['preset']}, "
          f"{backend.name()} on {run['device']}", flush=True)
    note = backend.slow_training_note()
    if note:
        print(note, flush=True)
    if budget:
        # A first session's time so far, the measurement and this build included; a resumed one keeps its own.
        budget.setdefault("seconds_before_training", round(time.perf_counter() - started, 1))
        run["budget"] = budget
        print(f"about {clock.epochs_fit(budget['planned_epochs'])} {settings['minutes']:g} minutes here "
              f"({budget['train_images_per_second']:,.0f} training and {budget['val_images_per_second']:,.0f} "
              f"validation images/s measured, ~{budget['epoch_seconds']:.0f} s an epoch); the learning rate "
              f"follows the clock, so the run ends on time even if the machine slows down (the epoch counter "
              f"below runs to a cap of {settings['epochs']}, room for a machine that speeds up)", flush=True)
        advice = clock.narrower_advice(budget["planned_epochs"], settings["width"])
        if advice:
            print(advice, flush=True)
    run.update(fit(model, data, settings, paths, fresh=fresh, budget=budget))
    return run


def start_from(model, path):
    """Put the weights of a trained model (--init) into `model`, layer by layer; the preprocessing (warps,
    erasing, normalization) stays this run's own. Refused in one line if its layers differ (another --arch or
    --width). train_cnn.py has already checked that it held out this run's validation faces."""
    source = load_model(path)
    ours, theirs = learned_layers(model), learned_layers(source)
    our_shapes, their_shapes = weight_shapes(ours), weight_shapes(theirs)
    if our_shapes != their_shapes:
        raise InputError(path, f"its layers differ from this run's {model.name} ({len(their_shapes)} weights "
                               f"against {len(our_shapes)}, or of other shapes): give the --arch and --width it "
                               "was trained with")
    for mine, its in zip(ours, theirs):
        mine.set_weights(its.get_weights())
    print(f"starting from the weights of {path}", flush=True)


def learned_layers(model):
    return [layer for layer in model.layers if layer.weights and layer.name not in PREPROCESSING_LAYERS]


def weight_shapes(layers):
    return [tuple(weight.shape) for layer in layers for weight in layer.weights]


def epochs_for_budget(data, settings, paths, fresh=False, started=None):
    """The epoch cap and plan of a run timed to settings["minutes"]: returns (cap, budget).

    The plan is as many epochs as fit the time left, counted from `started` (the process start), at the speed
    this machine shows on a few steps of the same network; the cap leaves room for it to run faster.
    ClockSchedule then paces the learning rate by the clock. A run that resumes keeps its cap and budget."""
    saved = None if fresh else clock.saved_plan(paths["resume"] / "budget.json", settings["minutes"])
    if saved:
        return saved
    rates = measure_speed(data, settings)
    started = clock.PROCESS_START if started is None else started
    return clock.plan(settings["minutes"], len(data["x_train"]), len(data["x_val"]), rates, started,
                      validated=1 - settings.get("validate_from", 0))


def measure_speed(data, settings, steps=6, warmup=2):
    """Training and validation images/s of the run's network here, timed on a throwaway copy after `warmup`
    steps (compilation). The session is cleared afterwards so the real network gets the same layer names
    as in a run that resumes without measuring (its backup is matched by name)."""
    model = build_for(settings, data)
    compile_model(model, {**settings, "epochs": 1}, warmup + steps)
    n = min(settings["batch_size"], len(data["x_train"]))
    x, y = data["x_train"][:n], data["y_train"][:n]
    rates = {name: clock.images_per_second(functools.partial(step, x, y), n, steps, warmup)
             for name, step in (("train", model.train_on_batch), ("val", model.test_on_batch))}
    del model
    keras.backend.clear_session()
    return rates


def fit(model, data, settings, paths, fresh=False, budget=None):
    """Train with checkpoint-on-best, atomic CSV history, resume; returns the summary dict.

    With a budget (settings["minutes"]), ClockSchedule sets the learning rate and ends the run on time."""
    with only_run(paths["resume"], paths["model"]):
        return _fit(model, data, settings, paths, fresh, budget)


def _fit(model, data, settings, paths, fresh, budget):
    steps = -(-len(data["x_train"]) // settings["batch_size"])
    compile_model(model, settings, steps)
    check_resume(paths["resume"], settings, data["split"], fresh, model.name)
    # Resuming means this run finished an epoch and backed it up; an older run's history doesn't count.
    done = backed_up_epochs(paths["resume"])
    averaged = EMAWeights() if settings.get("ema") else None
    validation = backend.validation_feed(data["x_val"], data["y_val"]) if len(data["x_val"]) else {}
    validate = (lambda: backend.evaluate(model, validation)) if validation else None
    recorder = EpochRecorder(paths, len(data["x_train"]), resuming=done > 0, averaged=averaged, validate=validate)
    write_text(paths["resume"] / "settings.json", json.dumps(resume_key(settings, data["split"], model.name), indent=1))
    # The guard comes first, so that a diverged epoch is neither kept as the best model nor backed up.
    # The backup comes after the recorder, and holds the raw weights with their average in the optimizer.
    callbacks = [StopOnNonFiniteLoss(paths["model"]), *filter(None, [averaged]), recorder,
                 AtomicBackupAndRestore(str(paths["resume"]))]
    if budget:
        write_text(paths["resume"] / "budget.json", json.dumps(budget, indent=1))
        rows = recorder.rows[:done]
        schedule = clock.ClockSchedule(
            settings["lr"], settings["warmup_epochs"], settings["epochs"],
            budget_s=budget["minutes"] * 60 - clock.BUDGET_RESERVE_S,
            spent_s=budget["seconds_before_training"] + sum(r["epoch_seconds"] for r in rows),
            epoch_s=budget["epoch_seconds"], done_rows=rows)
        callbacks.insert(0, schedule)
    # The share of the run done at an epoch's middle: by the clock in a timed run, else by the epoch count
    progress = (lambda epoch: schedule.progress) if budget else (lambda epoch: (epoch + 0.5) / settings["epochs"])
    if settings.get("clean_tail"):
        # after the schedule, whose progress it reads in a timed run
        callbacks.insert(1 if budget else 0, CleanTail(settings["clean_tail"], progress,
                                                           views=settings.get("tail_views", False)))
    if validation and settings.get("validate_from"):
        validation["validation_freq"] = ValidatedEpochs(settings["validate_from"], progress)
    verbose = 1 if sys.stdout.isatty() else 2
    started = time.perf_counter()
    model.fit(**training_feed(data, settings, steps, done), epochs=settings["epochs"], **validation,
              callbacks=callbacks, verbose=verbose)
    shutil.rmtree(paths["resume"], ignore_errors=True)
    return recorder.summary(time.perf_counter() - started)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Ends a run whose loss is no longer a number (too high a learning rate, say) in one line, before that
    epoch's model or backup is written: the outputs of earlier epochs stay as they were."""

    async_safe = True

    def __init__(self, model_path):
        super().__init__()
        self.model_path = model_path

    def on_epoch_end(self, epoch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            raise InputError(self.model_path, f"training diverged: the loss was {loss} in epoch {epoch + 1}, so "
                                              "nothing of that epoch was written; try a lower --lr (with --fresh)")


def training_feed(data, settings, steps, done):
    """fit()'s training inputs: the arrays reshuffled each epoch or mixup's blended batches, both continuing
    after the `done` epochs of a resumed run, or the reports' ImageDataGenerator."""
    x, y, batch_size = data["x_train"], data["y_train"], settings["batch_size"]
    if settings["augment"] == "imagedatagenerator":
        return dict(x=imagedatagenerator_flow(x, y, batch_size, settings["seed"]), steps_per_epoch=steps)
    if settings["mixup"]:
        return dict(x=MixupBatches(x, y, batch_size, settings["mixup"], settings["seed"], epoch=done), shuffle=False)
    return backend.array_feed(x, y, batch_size, settings["seed"], epoch=done)


class ValidatedEpochs(list):
    """fit()'s validation_freq for --validate-from: Keras validates epoch N (1-based) if `N in validation_freq`,
    which is asked after the epoch's training, when the share of the run done at its middle is known. Earlier
    epochs skip the validation pass and their history holds NaN there; EpochRecorder validates the last epoch
    if none reached the share."""

    def __init__(self, share, progress):
        super().__init__()
        self.share, self.progress = share, progress

    def __contains__(self, epoch):
        return self.progress(epoch - 1) >= self.share


class EMAWeights(keras.callbacks.SwapEMAWeights):
    """The weights' moving average in the model while it is validated (Keras's callback) and while the
    recorder saves it (`with averaged_in():`); the raw weights otherwise, so training and backups go on."""

    @contextlib.contextmanager
    def averaged_in(self):
        self.on_test_begin()
        try:
            yield
        finally:
            self.on_test_end()


class EpochRecorder(keras.callbacks.Callback):
    """Times epochs, keeps the best model (atomically) and rewrites the CSV history each epoch.

    Without validation (--val-fraction 0) the model kept is the latest epoch's."""

    # Under JAX, Keras runs batch-end hooks on a worker thread only if every callback says it may; a
    # synchronous hook makes each step wait for the device before the host prepares the next one.
    async_safe = True

    def __init__(self, paths, n_train, resuming, averaged=None, validate=None):
        super().__init__()
        self.paths, self.n_train, self.averaged, self.validate = paths, n_train, averaged, validate
        self.rows = read_history(paths["history"]) if resuming else []
        has_model = paths["model"].exists()
        self.best = max((r["val_accuracy"] for r in validated_rows(self.rows)), default=-1.0) if has_model else -1.0
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
        if self.validate and "val_accuracy" not in logs:  # an epoch before --validate-from's share
            logs.update(val_loss=math.nan, val_accuracy=math.nan)
        row = {"epoch": epoch + 1, **logs, "lr": float(np.asarray(self.model.optimizer.learning_rate)),
               "train_seconds": self.t_train - self.t0, "epoch_seconds": now - self.t0,
               "warm": int(not self.first_epoch_of_session)}  # the first epoch of a session compiles
        self.first_epoch_of_session = False
        # A run killed after this row but before its backup redoes the epoch: replace, don't repeat.
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        self.keep_if_best(row)
        write_history(self.paths["history"], self.rows)

    def on_train_end(self, logs=None):
        # The last epoch is always validated, also where its middle came before --validate-from's share (a short
        # run, or one the clock ended early), so that the run keeps a validated model.
        if self.validate and self.rows and math.isnan(self.rows[-1].get("val_accuracy", 0.0)):
            with self.averaged_in():
                scores = self.validate()
            self.rows[-1] = {**self.rows[-1], "val_loss": float(scores["loss"]),
                             "val_accuracy": float(scores["accuracy"])}
            self.keep_if_best(self.rows[-1])
            write_history(self.paths["history"], self.rows)

    def keep_if_best(self, row):
        """Save the model if this epoch's validation is the best yet (NaN: not validated), or every epoch in a
        run without validation."""
        if row.get("val_accuracy", np.inf) > self.best:
            self.best = row.get("val_accuracy", -1.0)
            with atomic_path(self.paths["model"]) as tmp, self.averaged_in():
                self.model.save(tmp)

    def averaged_in(self):
        return self.averaged.averaged_in() if self.averaged else contextlib.nullcontext()

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


def finish(paths, summary, test=None, figures_title=""):
    """After fit: history figure, submission from the best checkpoint, summary JSON, table."""
    rows = read_history(paths["history"])
    validated = summary["best_val_accuracy"] is not None
    history_figure(rows, paths["figure"], f"{figures_title}: " + (
        f"best validation accuracy {summary['best_val_accuracy']:.4f}" if validated
        else f"every labeled row trained ({summary['split']['train_rows']:,}), no validation"),
        tail_views=summary["settings"].get("tail_views", False))
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
