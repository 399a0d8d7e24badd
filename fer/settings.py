"""A run's settings: the presets, the defaults, and resolve(), which turns a script's flags into one immutable
mapping that every part of a run reads and none changes."""
import json
from types import MappingProxyType

from . import backend
from .errors import InputError
from .models import DROPOUT


# Budgets. Flags given on the command line override the preset's values. Each choice below won on the
# validation split; the runs behind it are in bench/results/ (TABLE.md, README.md).
PRESETS = {
    "smoke": dict(epochs=2, batch_size=32, precision="float32", limit=512, lr=2e-3, augment_scale=0.5, width=1.0),
    "sample": dict(epochs=12, batch_size=32, precision="float32", limit=None, lr=2e-3, augment_scale=0.5, width=1.0),
    # precision "auto": bfloat16 only where the CPU has bfloat16 instructions; elsewhere TensorFlow emulates it
    # and trains far slower than in float32.
    # epochs "auto": train_cnn.py times the run to CPU_MINUTES, so the half hour is used on any CPU; scripts
    # that compare runs take a fixed count instead (resolve()).
    # Width 1.0: at equal time a wider network did no better (where too few epochs fit, a narrower one does:
    # fer.clock.narrower_advice). lr 4e-3: better than 2e-3 in the half hour, and sooner at 60%.
    # Three-quarter warps, erasing on a quarter of the faces, and the last 15% on --tta's views alone: better than
    # half-strength warps and no tail on each of three seeds on the same CPU, plain and with --tta.
    "cpu": dict(epochs="auto", batch_size=128, precision="auto", limit=None, lr=4e-3, augment_scale=0.75, width=1.0,
                erase=0.25, clean_tail=0.15, tail_views=True),
    # 1.5x the channels: better than 1.0x at 60 epochs, and the widest whose float16 file stays under 10 MB.
    # 120 epochs with random erasing on half the faces: better than 60 without it on two seeds, by more than
    # seeds differ, and still minutes on a GPU.
    "gpu": dict(epochs=120, batch_size=128, precision="bfloat16", limit=None, lr=1e-3, augment_scale=1.0, width=1.5,
                erase=0.5),
}


# The network (arch, dropout; and the preset's width) is a setting too, so that a resumed or reused run is
# the same network: the records and resume backups compare settings.
DEFAULTS = dict(arch="vgg", dropout=DROPOUT, val_fraction=0.2, split_seed=0, seed=0, optimizer="adamw",
                weight_decay=0.01, label_smoothing=0.1, warmup_epochs=1, augment="affine", normalize=True,
                batchnorm=True, erase=0.0, degrade=0.0, mixup=0.0, ema=0.0, clean_tail=0.0, tail_views=False,
                validate_from=0.0, minutes=None, teachers=(), distill=0.0, unlabeled=(), init=None, teacher_tta=None)
DISTILL = 0.5  # --teacher's default weight of the teachers' probabilities in each training target
CPU_MINUTES = 30  # the cpu preset's whole run, data loading and submission included


def resolve(args, network=True, timed=False):
    """Preset values, then defaults, then whatever the command line said: one immutable mapping.

    network: the script trains CNNs, so the width is a setting of its runs (not of train_dnn.py's);
    timed: the script takes --minutes, so the cpu preset's "auto" epochs mean its half hour (train_cnn.py),
    where scripts that compare runs take a fixed count instead."""
    flags = vars(args)
    preset = flags.get("preset") or "auto"
    if preset == "auto":
        preset = "gpu" if backend.has_gpu() else "cpu"
    chosen = {**DEFAULTS, **PRESETS[preset], "preset": preset}
    for key in [*PRESETS["cpu"], *DEFAULTS]:
        if flags.get(key) is not None:
            chosen[key] = flags[key]
    if chosen["minutes"] is not None:
        if flags.get("epochs") is not None:
            raise InputError("--minutes", "give --minutes or --epochs, not both")
        chosen["epochs"] = "auto"
    elif chosen["epochs"] == "auto" and timed:
        chosen["minutes"] = CPU_MINUTES  # train_cnn.py: fit the epochs to the preset's half hour
    fast_bfloat16 = "auto" in (chosen["precision"], chosen["epochs"]) and backend.cpu_bfloat16_is_fast()
    if chosen["precision"] == "auto":
        chosen["precision"] = "bfloat16" if fast_bfloat16 else "float32"
    if chosen["epochs"] == "auto" and chosen["minutes"] is None:
        # Scripts that compare runs (ablation, semi-supervised, the DNN) need one fixed count.
        chosen["epochs"] = 20 if chosen["precision"] == "bfloat16" and fast_bfloat16 else 8
    if not network:  # train_dnn.py: the CNN's architecture and width are not settings of its runs
        del chosen["width"], chosen["arch"]
    # A preset's clean tail (and its views) gives way to a command line that leaves it nothing to turn off;
    # one the command line asked for is checked below instead.
    asked = {key for key in ("clean_tail", "tail_views") if flags.get(key) is not None}
    chosen = without_idle_tail(chosen, asked)
    if chosen["clean_tail"] and nothing_for_a_tail(chosen):
        raise InputError("--clean-tail", "turns off the in-model warps and erasing, and this run has neither")
    if chosen["tail_views"] and no_warps_in_a_tail(chosen):
        raise InputError("--tail-views", "needs a clean tail of the in-model warps: give --clean-tail SHARE "
                                         "(and --augment affine)")
    if chosen["validate_from"] and chosen["val_fraction"] == 0:
        raise InputError("--validate-from", "needs held-out faces to validate on: --val-fraction 0 holds out none")
    if chosen["mixup"] and chosen["augment"] == "imagedatagenerator":
        raise InputError("--mixup", "works with the in-model augmentation, not --augment imagedatagenerator")
    if chosen["teachers"] and flags.get("distill") is None:
        chosen["distill"] = DISTILL
    if chosen["distill"] and not chosen["teachers"]:
        raise InputError("--distill", "needs the models to learn from: give --teacher")
    if chosen["unlabeled"] and not chosen["teachers"]:
        raise InputError("--unlabeled", "needs the models that label them: give --teacher")
    if chosen["teacher_tta"] and not chosen["teachers"]:
        raise InputError("--teacher-tta", "needs the models whose views it averages: give --teacher")
    chosen["teachers"] = tuple(str(path) for path in chosen["teachers"])
    chosen["init"] = None if chosen["init"] is None else str(chosen["init"])
    chosen["unlabeled"] = tuple(str(path) for path in chosen["unlabeled"])
    return frozen(chosen)


def without_idle_tail(settings, asked=()):
    """The settings with no clean tail where there is nothing for it to turn off (no in-model warps, no erasing),
    and no tail views without a tail of the warps; `asked` names those of the two that are kept as given."""
    chosen = dict(settings)
    if "clean_tail" not in asked and nothing_for_a_tail(chosen):
        chosen["clean_tail"] = 0.0
    if "tail_views" not in asked and no_warps_in_a_tail(chosen):
        chosen["tail_views"] = False
    return chosen


def nothing_for_a_tail(settings):
    """A clean tail turns off the in-model warps, erasing, blur and noise: whether the run has none of them."""
    return settings["augment"] != "affine" and not settings["erase"] and not settings["degrade"]


def no_warps_in_a_tail(settings):
    """Tail views replace a clean tail's warps with --tta's: whether there is no such tail to take them."""
    return not settings["clean_tail"] or settings["augment"] != "affine"


def frozen(settings):
    """An immutable copy: a variant of a run is made with `frozen({**settings, key: value})`."""
    return MappingProxyType(dict(settings))


def as_record(settings):
    """The settings as JSON would give them back (tuples as lists), for the records and their comparisons."""
    return json.loads(json.dumps({k: v for k, v in settings.items() if k != "preset"}))


def with_new_defaults(before, now):
    """A run's recorded settings, plus the settings added since then that hold their default now:
    such a setting counts as unchanged."""
    defaults = as_record(DEFAULTS)
    added = {k: v for k, v in defaults.items() if k not in before and now.get(k) == v}
    return {**before, **added}


def require_validation(settings, script):
    """Refuse --val-fraction 0 in a script whose results are validation accuracies."""
    if settings["val_fraction"] == 0:
        raise InputError("--val-fraction", f"{script} compares validation accuracies, so it needs held-out faces: "
                                           "give a share above 0")
