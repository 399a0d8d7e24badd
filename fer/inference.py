"""Using trained models: loading them (in float32), predicting with ensembles and test-time augmentation,
and the Kaggle submission."""
import io
import time
from pathlib import Path

import keras
import numpy as np

from . import CLASSES, IMAGE_SIZE, PROBABILITY_COLUMNS, backend, quiet_native_stderr
from .atomic import write_text
# importing fer.augment registers the training-only layers that saved models name
from .augment import TTA_DEFAULT, TTA_ZOOMS, RandomAffine, RandomDegrade, RandomErasing, tta_views
from .calibration import with_temperature
from .data import as_input, load_faces, test_rows
from .errors import InputError


TRAINING_ONLY = {RandomAffine.__name__, RandomErasing.__name__, RandomDegrade.__name__}


def model_file(path, flag="--model"):
    """`path` as a Path when a model file is there to read, or raise InputError naming the flag that gave it."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, f"no such model file (train one with train_cnn.py, or pass {flag})")
    if not path.is_file():
        raise InputError(path, "is not a file (a .keras model is one zip file)")
    return path


def load_model(path, flag="--model"):
    """Load a saved .keras model that takes 48x48x1 raw pixels, or raise InputError (`flag`: the option that
    named it, for the hint when it is missing)."""
    path = model_file(path, flag)
    try:
        # TensorFlow's oneDNN logs an E0000 line from C++ when it builds float16 weights (the shipped model's)
        # on a CPU without AVX-512 fp16, then runs them correctly: noise on the scripts' one-line stderr.
        with quiet_native_stderr():
            model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many kinds for a file that is not a model
        raise InputError(path, f"not a loadable Keras model ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(model, keras.Model) or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputError(path, "expected a model with one input and one output "
                               f"(has {len(getattr(model, 'inputs', []))} and {len(getattr(model, 'outputs', []))})")
    shape, output = tuple(model.inputs[0].shape[1:]), tuple(model.outputs[0].shape[1:])
    if shape != (IMAGE_SIZE, IMAGE_SIZE, 1):
        raise InputError(path, f"model input is {shape}, expected ({IMAGE_SIZE}, {IMAGE_SIZE}, 1) grayscale faces")
    if output != (len(CLASSES),):
        raise InputError(path, f"model output is {output}, expected the {len(CLASSES)} expression probabilities")
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


def with_policy(model, policy, portable=False):
    """Rebuild a functional model with every layer under one dtype policy, weights cast to match.

    portable: the training-only layers (the augmentation warp, random erasing: the identity at inference) become
    Keras's own Identity layers, so that the file loads with plain `keras.saving.load_model` anywhere, without
    this project's code, and predicts the same."""
    def replace(node):
        if isinstance(node, dict):
            if portable and node.get("class_name") in TRAINING_ONLY:
                return {"module": "keras.layers", "class_name": "Identity", "registered_name": None,
                        "config": {"name": node["config"]["name"], "trainable": False, "dtype": policy},
                        **({"inbound_nodes": replace(node["inbound_nodes"])} if "inbound_nodes" in node else {}),
                        "name": node.get("name", node["config"]["name"])}
            return {key: replace(value) for key, value in node.items()}
        if isinstance(node, list):
            return [replace(value) for value in node]
        return policy if node in ("float32", "float16", "mixed_bfloat16", "mixed_float16") else node

    rebuilt = model.__class__.from_config(replace(model.get_config()))
    # layer by layer: the portable Identity layers hold nothing of what the training-only layers held
    for layer in rebuilt.layers:
        if layer.weights:
            source = model.get_layer(layer.name).get_weights()
            layer.set_weights([w.astype(v.dtype) for w, v in zip(source, layer.weights)])
    return rebuilt


def right_answers(path, x, labels):
    """Whether the model file at `path` gets each face right (plain views, float32): what a paired test of two
    models on the same faces compares."""
    return predict_probabilities([load_model(path)], x).argmax(1) == np.asarray(labels)


def predict_probabilities(models, x, tta=None, batch_size=256, progress=None, temperature=1.0):
    """Mean softmax over models, and with tta ("flip" or "zoom", see fer.augment.TTA_ZOOMS) over views; then,
    unless temperature is 1, calibrated with it (fer.calibration.with_temperature).
    progress: called as progress(done, count, key) after each of the count views has been shown to every model."""
    if tta:
        zooms = TTA_ZOOMS[tta]
        mean = mean_of_views(view_probabilities(models, x, zooms, batch_size, progress), zooms)
    else:
        feed = backend.ordered_feed(as_input(x), batch_size=batch_size)
        mean = np.mean([model.predict(**feed, verbose=0) for model in models], axis=0)
    return mean if temperature == 1 else with_temperature(mean, temperature).astype(mean.dtype)


def view_probabilities(models, x, zooms=None, batch_size=256, progress=None):
    """Each model's probabilities on each test-time view of x, every view computed once and shown to every model:
    a list (one per model) of {(zoom, mirrored): probabilities}. zooms: those of every --tta kind by default.
    progress: as for predict_probabilities."""
    zooms = tuple(zooms or dict.fromkeys(zoom for kind in TTA_ZOOMS.values() for zoom in kind))
    keyed = (((zooms[i // 2], i % 2 == 1), view)  # a zoom, then its mirror
             for i, view in enumerate(tta_views(as_input(x), zooms)))
    return keyed_view_probabilities(models, keyed, batch_size, progress, 2 * len(zooms))


def view_progress(faces, model_count):
    """A line after each test-time view: how far, and how long so far (a progress for view_probabilities)."""
    started = time.perf_counter()

    def report(done, count, key):
        zoom, mirrored = key
        print(f"  {faces}, {model_count} model(s): view {done} of {count} (zoom {zoom:g}"
              f"{', mirrored' if mirrored else ''}) after {time.perf_counter() - started:.0f} s", flush=True)
    return report


def keyed_view_probabilities(models, keyed_views, batch_size=256, progress=None, count=None):
    """Each model's probabilities on each (key, view) of keyed_views, every view shown to every model once:
    a list (one per model) of {key: probabilities}; progress(done, count, key) after each view."""
    views = [{} for _ in models]
    for done, (key, view) in enumerate(keyed_views, 1):
        feed = backend.ordered_feed(view, batch_size=batch_size)
        for member, model in zip(views, models):
            member[key] = model.predict(**feed, verbose=0)
        if progress:
            progress(done, count, key)
    return views


def mean_of_views(views, zooms=None):
    """The mean probabilities of view_probabilities' models over these zooms' views, each zoom also mirrored,
    or (zooms None) over the faces as they are: what predict_probabilities computes with the matching --tta."""
    keys = [(1.0, False)] if zooms is None else [(zoom, mirrored) for zoom in zooms for mirrored in (False, True)]
    return np.mean([member[key] for member in views for key in keys], axis=0)


def tta_columns(mark_default=False):
    """The accuracy columns that predict.py --validate prints and the model card shows, each with the --tta kind
    it scores (None: plain); mark_default names the default of a bare --tta."""
    return {"plain": None, **{f"{kind} TTA" + (" (--tta)" if mark_default and kind == TTA_DEFAULT else ""): kind
                              for kind in TTA_ZOOMS}}


def column_right(views, y, mark_default=False):
    """Whether view_probabilities' models averaged get each face right, for each column of tta_columns."""
    return {column: mean_of_views(views, TTA_ZOOMS.get(kind)).argmax(1) == y
            for column, kind in tta_columns(mark_default).items()}


def column_accuracies(views, y, kept=None, mark_default=False):
    """Accuracy of view_probabilities' models averaged, for each column of tta_columns; kept: a mask of faces."""
    kept = np.ones(len(y), bool) if kept is None else kept
    return {column: float(np.mean(right[kept])) for column, right in column_right(views, y, mark_default).items()}


def write_submission(path, ids, labels):
    buffer = io.StringIO()
    buffer.write("id,label\n")
    for i, label in zip(ids, labels):
        buffer.write(f"{int(i)},{int(label)}\n")
    write_text(path, buffer.getvalue())


def write_probabilities(path, ids, probabilities):
    """Each face's id and its 7 probabilities (6 decimals), in the submission's order."""
    buffer = io.StringIO()
    buffer.write(",".join(["id", *PROBABILITY_COLUMNS]) + "\n")
    for i, row in zip(ids, probabilities):
        buffer.write(f"{int(i)}," + ",".join(f"{p:.6f}" for p in row) + "\n")
    write_text(path, buffer.getvalue())


def class_counts(labels):
    counts = np.bincount(labels, minlength=len(CLASSES))
    return ", ".join(f"{name} {c}" for name, c in zip(CLASSES, counts))


def load_test(path):
    """Faces to predict, with ids: test.csv's own ids, else row numbers (PrivateTest of fer2013.csv)."""
    faces = load_faces(path)
    faces = faces.subset(test_rows(faces))
    if len(faces) == 0:
        raise InputError(path, "no rows to predict (fer2013.csv without PrivateTest rows?)")
    if faces.ids is None:
        faces.ids = np.arange(len(faces))
    return faces
