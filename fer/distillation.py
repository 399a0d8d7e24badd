"""Knowledge distillation (train_cnn.py --teacher): soft targets from trained models, and the checks that keep
validation honest."""
import hashlib
import time

import numpy as np

from . import CLASSES, IMAGE_SIZE
from .data import as_input, cache_dir, load_faces, repeats, write_cache_entry
from .errors import InputError
from .inference import load_model, model_file, predict_probabilities
from .reading import file_digest
from .records import recorded_split, summary_path


def distill(data, settings):
    """Blend each training face's one-hot target with the teachers' mean probabilities on it, weight
    settings["distill"]: the student learns which faces are ambiguous, and between which expressions.
    With settings["unlabeled"], the faces of those files train too, their targets the teachers' mean alone.

    The teachers see the faces as they are (no augmentation), or with settings["teacher_tta"] the mean over
    predict.py's test-time views of them; the student sees them warped, as usual. Each teacher's probabilities
    are cached beside the parsed data, so a second run with the same teacher file and faces skips the predictions.
    With validation, a teacher that trained on any of the validation faces is refused: its probabilities would
    pass what it learned from them on to the student, whose validation accuracy would then overstate it.
    For the same reason an unlabeled face identical to a validation face is left out."""
    if not settings["teachers"]:
        return data
    for path in settings["teachers"]:
        check_held_out(path, data["split"], "--teacher")
    unlabeled = unlabeled_faces(settings["unlabeled"], data["x_val"])  # read before the teachers' slow work
    models = [load_model(path) for path in settings["teachers"]]
    labels = data["y_train"].argmax(1)
    n = len(labels)  # the labeled faces come first, the unlabeled ones after them
    x = np.concatenate([data["x_train"], unlabeled]) if len(unlabeled) else data["x_train"]  # no copy if none
    views = f" ({settings['teacher_tta']} TTA)" if settings["teacher_tta"] else ""
    faces = hashlib.blake2b(x.tobytes(), digest_size=16).hexdigest()
    total = 0
    for i, (path, model) in enumerate(zip(settings["teachers"], models), 1):
        t0 = time.perf_counter()
        probabilities, cached = teacher_probabilities(path, model, x, faces, settings["teacher_tta"])
        total = total + probabilities
        took = "cached" if cached else f"{time.perf_counter() - t0:.0f} s"
        print(f"teacher {i}/{len(models)} {path}{views}: {np.mean(probabilities[:n].argmax(1) == labels):.4f} on "
              f"the {n:,} training faces ({took})", flush=True)
    teachers = total / len(models)
    weight = settings["distill"]
    accuracy = round(float(np.mean(teachers[:n].argmax(1) == labels)), 4)
    print(f"targets: {1 - weight:g} x label + {weight:g} x the {len(models)} teachers' mean "
          f"({accuracy:.4f} on the training faces)", flush=True)
    if len(unlabeled):
        print(f"and {len(unlabeled):,} unlabeled faces, each the teachers' mean alone", flush=True)
    targets = np.concatenate([(1 - weight) * data["y_train"] + weight * teachers[:n], teachers[n:]])
    return {**data, "x_train": x, "y_train": targets.astype("float32"), "unlabeled_rows": len(unlabeled),
            "teacher_accuracy": accuracy}


def teacher_probabilities(path, model, x, faces, tta):
    """(probabilities of `model` on x, whether they came from the cache). The cache key is the model file's
    bytes, the faces' (digest `faces`) and the views, so a retrained teacher or other faces are predicted anew."""
    cached = cache_dir() / f"teacher-{file_digest(path)}-{faces}-{tta or 'plain'}.npy"
    if cached.is_file():
        try:
            probabilities = np.load(cached, allow_pickle=False)
            if probabilities.shape == (len(x), len(CLASSES)):
                return probabilities, True
        except (OSError, ValueError):
            pass  # a damaged entry is predicted again and replaced
    probabilities = predict_probabilities([model], x, tta)
    write_cache_entry(cached, lambda tmp: np.save(tmp, probabilities))
    return probabilities, False


def unlabeled_faces(paths, x_val):
    """The faces of `paths` as model inputs, less any identical to a validation face."""
    if not paths:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 1), "float32")
    kept = []
    for path in paths:
        faces = as_input(load_faces(path).x)
        fresh = ~repeats(faces, x_val)
        if not fresh.all():
            print(f"{path}: left out {np.sum(~fresh):,} of {len(faces):,} faces identical to validation faces",
                  flush=True)
        kept.append(faces[fresh])
    return np.concatenate(kept)


def check_held_out(path, split, flag):
    """Refuse a model (given with `flag`) whose summary does not show it held out this run's validation faces."""
    model_file(path, flag)  # there, and a file
    if split["val_rows"] == 0:
        return  # a final fit: no face is held out, so no model can have trained on one
    fraction, seed, recorded = recorded_split(path, split["digest"], split.get("faces"))
    if not recorded:
        raise InputError(path, f"its summary JSON ({summary_path(path).name}) does not show which faces of "
                               f"{split['file']} it held out, so it may have trained on this run's validation faces; "
                               f"give a {flag} trained on this file with this run's --val-fraction and --split-seed")
    same = (fraction > 0 if split["by_usage"]  # fer2013.csv: Usage fixes the split, unless nothing was held out
            else (fraction, seed) == (split["val_fraction"], split["seed"]))
    if not same:
        raise InputError(path, f"held out {fraction:.0%} (split seed {seed}) of {split['file']}, this run "
                               f"{split['val_fraction']:.0%} (split seed {split['seed']}): it trained on some of "
                               "this run's validation faces")
