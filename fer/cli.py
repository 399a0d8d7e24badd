"""What every script shares at its edges: clear errors, model loading, submissions."""
import io
import sys
from pathlib import Path

import numpy as np

from . import quiet_native_stderr
from .atomic import write_text
from .errors import InputError


ROOT = Path(__file__).resolve().parent.parent
TRAINED_MODEL = Path("models/cnn.keras")  # what train_cnn.py writes, relative to where it runs
SHIPPED_MODEL = ROOT / "models" / "pretrained" / "cnn.keras"


def default_model():
    """The model a script uses without --model: the one you trained here, else the shipped one."""
    if TRAINED_MODEL.exists() or not SHIPPED_MODEL.exists():
        return str(TRAINED_MODEL)
    print(f"using the shipped model {SHIPPED_MODEL.relative_to(ROOT)} (see models/pretrained/MODEL_CARD.md); "
          "train your own with train_cnn.py or pass --model", file=sys.stderr)
    return str(SHIPPED_MODEL)


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


def load_model(path):
    """Load a saved .keras model that takes 48x48x1 raw pixels, or raise InputError."""
    import keras

    from . import augment  # noqa: F401  (registers the custom layers)

    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such model file (train one with train_cnn.py, or pass --model)")
    try:
        # TensorFlow's oneDNN logs an E0000 line from C++ when it builds float16 weights (the shipped model's)
        # on a CPU without AVX-512 fp16, then runs them correctly: noise on the scripts' one-line stderr.
        with quiet_native_stderr():
            model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many kinds for a file that is not a model
        raise InputError(path, f"not a loadable Keras model ({type(exc).__name__}: {str(exc)[:120]})") from None
    shape = tuple(model.inputs[0].shape[1:])
    if shape != (48, 48, 1):
        raise InputError(path, f"model input is {shape}, expected (48, 48, 1) grayscale faces")
    return in_float32(model)


def in_float32(model):
    """The same model computing in float32.

    A model trained in mixed precision is saved with its 16-bit policy and would load computing in
    bfloat16: ten times slower on CPUs without AMX, and too coarse for gradients of explanations.
    Its weights are float32, so rebuilding from the config with float32 policies is exact. A model
    exported with float16 weights (export_model.py --half) is rebuilt the same way, its weights widened.
    """
    policies = {layer.dtype_policy.name for layer in model._flatten_layers()}
    if policies <= {"float32"}:
        return model
    return with_policy(model, "float32")


def with_policy(model, policy):
    """Rebuild a functional model with every layer under one dtype policy, weights cast to match."""
    def replace(node):
        if isinstance(node, dict):
            return {key: replace(value) for key, value in node.items()}
        if isinstance(node, list):
            return [replace(value) for value in node]
        return policy if node in ("float32", "float16", "mixed_bfloat16", "mixed_float16") else node

    rebuilt = model.__class__.from_config(replace(model.get_config()))
    rebuilt.set_weights([w.astype(v.dtype) for w, v in zip(model.get_weights(), rebuilt.weights)])
    return rebuilt


def predict_probabilities(models, x, tta=None, batch_size=256):
    """Mean softmax over models, and with tta ("flip" or "zoom", see fer.augment.TTA_ZOOMS) over views."""
    from . import backend
    from .augment import TTA_ZOOMS, tta_views

    x = x.reshape(-1, 48, 48, 1).astype("float32")
    views = list(tta_views(x, TTA_ZOOMS[tta])) if tta else [x]
    total = 0
    for view in views:
        feed = backend.ordered_feed(view, batch_size=batch_size)  # one feed (a copy under TensorFlow) per view
        for model in models:
            total = total + model.predict(**feed, verbose=0)
    return total / (len(models) * len(views))


def write_submission(path, ids, labels):
    buffer = io.StringIO()
    buffer.write("id,label\n")
    for i, label in zip(ids, labels):
        buffer.write(f"{int(i)},{int(label)}\n")
    write_text(path, buffer.getvalue())


def class_counts(labels):
    from . import CLASSES

    counts = np.bincount(labels, minlength=len(CLASSES))
    return ", ".join(f"{name} {c}" for name, c in zip(CLASSES, counts))


def load_test(path):
    """Faces to predict, with ids: test.csv's own ids, else row numbers (PrivateTest of fer2013.csv)."""
    from .data import load_faces, test_rows

    faces = load_faces(path)
    faces = faces.subset(test_rows(faces))
    if len(faces) == 0:
        raise InputError(path, "no rows to predict (fer2013.csv without PrivateTest rows?)")
    if faces.ids is None:
        faces.ids = np.arange(len(faces))
    return faces


def load_validation(data_path, model_paths):
    """The validation rows the models were trained without: the split their summaries record, when it matches."""
    _, validation, note = load_split(data_path, model_paths)
    return validation, note


def load_split(data_path, model_paths):
    """(training faces, validation faces, note) of the split the models' summaries record for this file.

    Models that held out different faces of it are refused: each would be scored, and their ensemble
    averaged, on faces some of them trained on."""
    from .data import load_labeled, split_train_val

    paths = [model_paths] if isinstance(model_paths, (str, Path)) else list(model_paths)
    faces = load_labeled(data_path)
    splits = [recorded_split(path, faces.digest) for path in paths]
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


def recorded_split(model_path, digest):
    """(validation fraction, split seed, recorded?) from a model's summary, for the file with this digest;
    train_cnn.py's defaults when the summary is missing or is about another file."""
    import json

    from .training import DEFAULTS

    summary = Path(model_path).with_name(Path(model_path).stem + "_summary.json")
    if summary.exists():
        split = json.loads(summary.read_text()).get("split", {})
        if split.get("digest") == digest:
            return split["val_fraction"], split["seed"], True
    return DEFAULTS["val_fraction"], DEFAULTS["split_seed"], False


def describe_split(split):
    return f"{split[0]:.0%} (split seed {split[1]})"
