"""The command line every script shares: its flag groups, the default model, and one-line errors."""
import argparse
import math
import re
import sys
from pathlib import Path

from . import backend
from .augment import TTA_DEFAULT, TTA_ZOOMS
from .calibration import TEMPERATURES
from .errors import InputError
from .models import ARCHITECTURES, DROPOUT
from .outputs import check_outputs
from .records import ROOT, SHIPPED_MODEL, TRAINED_CNN, ensemble_members
from .settings import CPU_MINUTES, DISTILL, PRESETS


def run(main):
    """Call main(); bad input becomes one `error:` line on stderr and exit status 2."""
    try:
        main()
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def default_models(ensemble=True, announce=True):
    """The models a script uses without --model: the one you trained here, else the shipped ensemble (or,
    where one model is needed, its first member). announce=False resolves them silently, for a script that
    must refuse its outputs first (one error line); it calls announce_models after."""
    if TRAINED_CNN.exists() or not SHIPPED_MODEL.exists():
        return [str(TRAINED_CNN)]
    # the shipped ensemble: cnn.keras (the model explanations use), then any cnn_*.keras beside it
    members = [str(path) for path in (ensemble_members(SHIPPED_MODEL) if ensemble else [SHIPPED_MODEL])]
    if announce:
        announce_models(members)
    return members


def announce_models(paths):
    """Says on stderr when paths are the shipped models, which a user who passed no --model may not expect."""
    shipped = [Path(path) for path in paths]
    if not shipped or any(path.parent != SHIPPED_MODEL.parent for path in shipped):
        return
    names = " + ".join(str(path.relative_to(ROOT)) for path in shipped)
    print(f"using the shipped model{'s' if len(shipped) > 1 else ''} {names} (see models/pretrained/MODEL_CARD.md); "
          "train your own with train_cnn.py or pass --model", file=sys.stderr)


def compared_outputs(args, script, named, ensemble=False):
    """(paths, [png, json, csv]) of a script that scores each --model (default: yours, else the shipped CNN) and
    names its files after them: SCRIPT.png for one model, SCRIPT_A_vs_B.png for several; with `ensemble`, their
    mean as one (default: yours, else the shipped ensemble), SCRIPT_ensemble.png. Refused before any work: two
    models of one name (`named`: what is named after the files) and outputs that cannot be written; the shipped
    models are announced only after that, so that a refusal stays one line."""
    paths = args.model or default_models(ensemble=ensemble, announce=False)
    if len({Path(p).stem for p in paths}) < len(paths) and not ensemble:
        raise InputError("--model", f"two models share a name; {named} are named after the files")
    stem = (f"{script}_ensemble" if ensemble else script if len(paths) == 1 else
            f"{script}_" + "_vs_".join(Path(p).stem for p in paths))
    outputs = [Path(args.out) / f"{stem}{suffix}" for suffix in (".png", ".json", ".csv")]  # a stem may hold dots
    check_outputs(outputs, inputs=[args.data, args.test, *paths])  # before any work: a run must not fail at its end
    announce_models(paths)
    return paths, outputs


def default_model():
    """The one model a script uses without --model (explanations, filters, the report)."""
    return default_models(ensemble=False)[0]


DEFAULT_MODEL_WORDS = f"{TRAINED_CNN}, else the shipped {SHIPPED_MODEL.relative_to(ROOT)}"
ENSEMBLE_WORDS = f"{TRAINED_CNN}, else the shipped ensemble {SHIPPED_MODEL.parent.relative_to(ROOT)}/cnn*.keras"
SEED = dict(low=0, high=2**32 - 1)  # what NumPy and scikit-learn accept


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one `error:` line and exit status 2, like every other bad input."""

    def error(self, message):
        message = re.sub(r"^argument ([^:]+): ", r"\1: ", message)  # "--width: ...", as other errors name a flag
        self.exit(2, f"error: {message}\n")


def parser(doc):
    """A script's parser: its docstring as the description, one-line errors."""
    return Parser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def number(kind=float, low=None, high=None, above=False, below=False):
    """An argparse type: a finite number of `kind` within [low, high] (`above`/`below`: the bound excluded)."""
    def parse(text):
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {'a whole' if kind is int else 'a'} number, got {text!r}")
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if (low is not None and (value < low or above and value == low)
                or high is not None and (value > high or below and value == high)):
            raise argparse.ArgumentTypeError(f"must be {bounds(low, high, above, below)}, got {value}")
        return value
    return parse


def bounds(low, high, above, below):
    def say(v):
        return str(v) if isinstance(v, int) else f"{v:g}"

    if high is None:
        return ("positive" if above else "0 or more") if low == 0 else f"{'above' if above else 'at least'} {say(low)}"
    if low is None:
        return f"{'below' if below else 'at most'} {say(high)}"
    if not above and not below:
        return f"between {say(low)} and {say(high)}"
    return f"{'above' if above else 'at least'} {say(low)} and {'below' if below else 'at most'} {say(high)}"


POSITIVE_INT = number(int, 1)


# ----------------------------------------------------------------------------- flag groups

def add_data_flags(parser: argparse.ArgumentParser, labeled="--train", test=True):
    """The labeled file (--train, or --data in the scripts that compare runs), its split, and --test."""
    data = parser.add_argument_group("data")
    data.add_argument(labeled, required=True, metavar="CSV",
                      help="labeled faces: train.csv (label,feature), fer2013.csv, or an .npz; plain, .gz or .xz")
    if test:
        data.add_argument("--test", metavar="CSV", help="also write a Kaggle submission for this test.csv (id,feature)")
    data.add_argument("--val-fraction", type=number(float, 0, 1, below=True),
                      help="held-out share of the training file, stratified (0.2); "
                      "fer2013.csv uses its own PublicTest rows. 0: hold out nothing, train on every labeled row "
                      "(fer2013.csv: Training and PublicTest) and keep the last epoch, the final fit of a recipe "
                      "already chosen on a validation split, for a submission")
    data.add_argument("--split-seed", type=number(int, **SEED),
                      help="which faces are held out (0); --seed leaves them alone, so "
                      "runs of several seeds share one validation split and their ensemble can be scored on it")
    data.add_argument("--limit", type=POSITIVE_INT,
                      metavar="N", help="train on N rows of the training split (quick runs)")


def add_face_flags(parser, image, search_side):
    """What faces.py and video.py share: the models, test-time views, and the face detector's limits, in the
    pixels of each `image` ("photo", "frame")."""
    parser.add_argument("--model", action="append", metavar="M.keras",
                        help=f"repeat to average several (default {ENSEMBLE_WORDS})")
    parser.add_argument("--tta", nargs="?", const=TTA_DEFAULT, choices=list(TTA_ZOOMS),
                        help="average each face with its mirror image (and zooms), as predict.py --tta: more often "
                             "right, with probabilities that read lower than that (calibration.py --tta fits the "
                             "--temperature that corrects it)")
    add_temperature_flag(parser)
    parser.add_argument("--min-face", type=number(int, 12), default=30, metavar="PIXELS",
                        help=f"smallest face to look for, in the {image}'s pixels (default 30; below the detector's "
                             f"window of 24, the {image} is searched enlarged: more faces found, and more mistakes)")
    parser.add_argument("--search-size", type=number(int, 64), default=search_side, metavar="PIXELS",
                        help=f"a {image} is searched scaled down to this longer side at most (default {search_side}): "
                             "at full resolution the detector finds faces in fine texture; give the "
                             f"{image}'s own size to find faces smaller than about a fortieth of it")


def add_temperature_flag(parser):
    """--temperature: the correction calibration.py fits, applied to the probabilities a script prints and writes."""
    parser.add_argument("--temperature", type=number(float, *TEMPERATURES), default=1.0,
                        metavar="T", help="calibrate the probabilities: raised to 1/T and renormalized (below 1 "
                                          "sharpens them, above 1 softens them; no label changes). calibration.py "
                                          "fits T for your models and views (default 1: as the models give them)")


def add_run_flags(parser, variants=False):
    """How a run trains. variants: the script itself varies batch norm and augmentation (ablation.py), so
    those flags are left out."""
    run = parser.add_argument_group("run")
    run.add_argument("--preset", choices=[*PRESETS, "auto"], default="auto",
                     help="budget: smoke (seconds), sample, cpu (~30 min on 2 cores), gpu; auto = gpu if one is "
                          "visible, else cpu")
    run.add_argument("--epochs", type=POSITIVE_INT)
    run.add_argument("--batch-size", type=POSITIVE_INT)
    run.add_argument("--lr", type=number(float, 0, above=True),
                     help="peak learning rate (after warm-up, then cosine decay to 0)")
    run.add_argument("--optimizer", choices=["adamw", "sgd"])
    run.add_argument("--weight-decay", type=number(float, 0))
    run.add_argument("--label-smoothing", type=number(float, 0, 1, below=True))
    run.add_argument("--precision", choices=list(backend.PRECISIONS),
                     help="bfloat16 = mixed precision (about 2x conv throughput on recent CPUs and GPUs)")
    run.add_argument("--seed", type=number(int, **SEED), help="initialization, shuffling and augmentation draws (0)")
    if not variants:
        run.add_argument("--augment", choices=["affine", "imagedatagenerator", "none"],
                         help="affine: one in-model warp per image (default); imagedatagenerator: the reports' "
                              "host-side pipeline; none")
        run.add_argument("--no-augment", dest="augment", action="store_const", const="none")
    run.add_argument("--augment-scale", type=number(float, 0, 2),
                     help="shrink the reports' warp ranges: 1.0 = rotation 30, shift 0.2, zoom 0.8-1.2, shear 0.2 "
                          "(gpu preset); cpu preset 0.75")
    run.add_argument("--erase", type=number(float, 0, 1), metavar="P",
                     help="random erasing: share of training images with one rectangle (2-33%% of the face) "
                          "replaced by noise (0 = off; cpu preset 0.25, gpu preset 0.5)")
    run.add_argument("--degrade", type=number(float, 0, 1), metavar="P",
                     help="share of training images blurred (part way to 2 pixels) and noised (up to 20 grey "
                          "levels), as poorer cameras do: robustness.py shows what it buys (0 = off, the default)")
    run.add_argument("--clean-tail", type=number(float, 0, 1, below=True), metavar="SHARE",
                     help="train the last SHARE of the run on the faces as they are: no warps, erasing, blur or "
                          "noise, flips stay (0 = off; cpu preset 0.15, on --tta's views); better plain predictions, "
                          "less gain from --tta's zooms")
    run.add_argument("--tail-views", action=argparse.BooleanOptionalAction, default=None,
                     help="in the clean tail, train on --tta's views instead: each face zoomed by 1, 0.85 or 1.15 "
                          "at random, so the zooms of --tta keep their gain (the cpu preset's)")
    run.add_argument("--mixup", type=number(float, 0), metavar="ALPHA",
                     help="blend pairs of training images and their labels, weight ~ Beta(ALPHA, ALPHA) per "
                          "batch (0 = off, the default; 0.2 is the usual setting)")
    run.add_argument("--ema", type=number(float, 0, 1, below=True), metavar="MOMENTUM",
                     help="validate and keep the exponential moving average of the weights, updated each step "
                          "with this momentum (0 = off, the default; 0.998 averages about the last 500 steps)")
    if not variants:  # ablation.py compares whole validation curves
        run.add_argument("--validate-from", type=number(float, 0, 1, below=True), metavar="SHARE",
                         help="validate only from this share of the run on: earlier epochs skip the validation "
                              "pass, so a timed run fits more epochs, and the model kept is the best of the "
                              "validated ones; the last epoch always is (0 = every epoch, the default)")
    run.add_argument("--no-normalize", dest="normalize", action="store_false", default=None,
                     help="feed raw 0-255 pixels (ablation)")
    run.add_argument("--fresh", action="store_true", help="discard an interrupted run's backup and start over")


def add_distill_flags(parser):
    teach = parser.add_argument_group("distillation")
    teach.add_argument("--teacher", dest="teachers", nargs="+", metavar="MODEL.keras",
                       help="learn from these trained models too: each training face's target blends its label "
                            "with the models' mean probabilities on it. With validation, each must have held out "
                            "the same faces of the same file (its summary JSON says so)")
    teach.add_argument("--distill", type=number(float, 0, 1, above=True), metavar="W",
                       help=f"the teachers' weight in the targets, above 0 and at most 1 ({DISTILL} with --teacher)")
    teach.add_argument("--unlabeled", nargs="+", metavar="CSV",
                       help="also train on these faces, e.g. test.csv, their targets the teachers' mean "
                            "probabilities alone (labels in the file are not used; faces identical to a validation "
                            "face are left out)")
    teach.add_argument("--teacher-tta", choices=sorted(TTA_ZOOMS),
                       help="each teacher's probabilities averaged over these test-time views, as predict.py "
                            "--tta KIND averages them; the teachers take 2 (flip) or 6 (zoom) times as long the "
                            "first time (each teacher's probabilities are cached in data/cache/ by its file and "
                            "the faces)")


def add_output_flags(parser, default_model):
    out = parser.add_argument_group("outputs")
    out.add_argument("--model", default=str(default_model), metavar="OUT.keras", help=f"(default {default_model})")
    out.add_argument("--figures", default="figures", metavar="DIR")
    out.add_argument("--submission", metavar="CSV", help="(default models/<name>_submission.csv)")


def add_network_flags(parser, variants=False):
    """The CNN: architecture, width, dropout, and (unless the script varies it) batch norm."""
    net = parser.add_argument_group("network")
    net.add_argument("--arch", choices=list(ARCHITECTURES),
                     help="; ".join(f"{k}: {v.about}" for k, v in ARCHITECTURES.items()) + " (default vgg)")
    net.add_argument("--width", type=number(float, 1 / 32, 8), help="channel multiplier (default: the preset's, "
                     + ", ".join(f"{name} {p['width']:g}" for name, p in PRESETS.items()) + ")")
    net.add_argument("--dropout", type=number(float, 0, 1, below=True),
                     help=f"before the classifier ({DROPOUT:g})")
    if not variants:
        net.add_argument("--no-batchnorm", dest="batchnorm", action="store_false", default=None,
                         help="leave out every BatchNormalization layer (ablation)")


def add_explain_flags(parser, compare=False, test=False):
    """--model (repeated with compare), --data and --out of the scripts that score or explain a trained model;
    test: --test instead of --data scores labeled test faces."""
    parser.add_argument("--model", action="append" if compare else "store", metavar="M.keras",
                        help=f"{'repeat to compare ' if compare else ''}(default {DEFAULT_MODEL_WORDS})")
    if test:
        add_scored_flags(parser)
    else:
        parser.add_argument("--data", required=True, metavar="CSV", help="the labeled file the model was trained on")
    parser.add_argument("--out", default="figures", metavar="DIR")


def add_scored_flags(parser):
    """--data (its validation split) or --test (labeled test faces): the faces a script scores models on."""
    faces = parser.add_mutually_exclusive_group(required=True)
    faces.add_argument("--data", metavar="CSV", help="the labeled file the models were trained on: they are scored "
                                                     "on the validation split it held out")
    faces.add_argument("--test", metavar="CSV", help="score on labeled test faces instead: the PrivateTest rows of "
                                                     "fer2013.csv, or the test faces as 'label,feature'")


def add_init_flag(parser):
    parser.add_argument("--init", metavar="MODEL.keras",
                        help="start from this trained model's weights instead of random ones (same --arch and "
                             "--width; with validation, it must have held out the same faces): a fine-tune, or a "
                             "warm restart whose model can join the first in an ensemble")


def add_minutes_flag(parser):
    parser.add_argument("--minutes", type=number(float, 0, above=True),
                        help="time the whole command to this many minutes: the epochs are planned from the "
                             "speed measured here, the learning rate follows the clock, and training stops in "
                             f"time (the cpu preset does this for {CPU_MINUTES} minutes unless --epochs is given)")
