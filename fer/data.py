"""FER2013 faces for the scripts: loading (parsed once, then cached), splits, model inputs.

Parsed arrays are cached under a key made from the file's bytes, so a second load is a hash and a read, and an
edited file is parsed anew.
"""
from __future__ import annotations

import math
import os
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from . import CLASSES, IMAGE_SIZE
from .atomic import atomic_path
from .errors import InputError
from .reading import PARSER_VERSION, Faces, check_labels, file_digest, read_faces


def load_faces(path, cache=True) -> Faces:
    """Parse any supported file; raise InputError naming the file and line on bad input.

    A pipe or FIFO (e.g. `--train <(xzcat train.csv.xz)`) is read once into a temporary file, so hashing it
    does not drain it; only regular files are cached, and only once their labels have been checked."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a directory, not a data file")
    if not path.is_file():
        return _load_stream(path)
    try:
        digest = file_digest(path)
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None
    cached = _cache_file(digest) if cache else None
    if cached is not None and cached.exists():
        try:
            return _read_cache(cached, path, digest)
        except (OSError, ValueError, KeyError, zlib.error):
            pass  # a damaged cache entry is parsed again and replaced
    faces = read_faces(path)  # labels checked there: nothing is cached that would be refused
    faces.digest = digest
    if cached is not None:
        _write_cache(cached, faces)
    return faces


def _load_stream(path, wait_s=5.0):
    """A pipe or FIFO's bytes, read once, then parsed as a file; errors still name `path`. A FIFO that no process
    writes to within `wait_s` seconds is refused instead of waited on forever."""
    try:
        raw = _read_stream(path, wait_s)
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not raw:
        raise InputError(path, f"file is empty (a pipe or FIFO that nothing wrote to within {wait_s:g} s)")
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / ("stream" + "".join(path.suffixes))
        copy.write_bytes(raw)
        try:
            faces = read_faces(copy)
        except InputError as exc:
            raise InputError(path, exc.problem, exc.line) from None
        faces.source, faces.digest = str(path), file_digest(copy)
    return faces


def _read_stream(path, wait_s):
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a plain open of a FIFO blocks until a writer comes
    with os.fdopen(fd, "rb", buffering=0) as stream:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                first = os.read(fd, 1 << 16)
            except BlockingIOError:  # a writer is there, with nothing written yet
                first = b""
                break
            if first:
                break
            if time.monotonic() > deadline:  # b"" each time: no writer has opened it
                return b""
            time.sleep(0.05)
        os.set_blocking(fd, True)
        return first + stream.read()


# ----------------------------------------------------------------------------- cache

def cache_dir() -> Path:
    return Path(os.environ.get("FER_CACHE", Path(__file__).resolve().parent.parent / "data" / "cache"))


def _cache_file(digest):
    return cache_dir() / f"{digest}-v{PARSER_VERSION}.npz"


def _read_cache(cached, path, digest):
    with np.load(cached, allow_pickle=False) as z:
        get = lambda k: z[k] if k in z.files else None  # noqa: E731
        return Faces(z["x"], get("y"), get("ids"), get("usage"), str(path), digest)


def _write_cache(cached, faces):
    arrays = {k: v for k, v in (("x", faces.x), ("y", faces.y), ("ids", faces.ids), ("usage", faces.usage))
              if v is not None}
    write_cache_entry(cached, lambda tmp: np.savez(tmp, **arrays))


def write_cache_entry(path, save):
    """Write a cache entry whole through `save(temporary path)`, or not at all where the cache folder cannot be
    written (atomic_path reports that as an InputError): a read-only checkout still works, just without it."""
    try:
        with atomic_path(path) as tmp:
            save(tmp)
    except (OSError, InputError):
        pass


# ----------------------------------------------------------------------------- splits

def load_labeled(path, cache=True) -> Faces:
    faces = load_faces(path, cache)
    if faces.y is None:
        raise InputError(path, "has no labels (an 'id,feature' test file?); training needs 'label,feature'")
    check_labels(faces)
    return faces


def split_train_val(faces: Faces, val_fraction=0.2, seed=0):
    """Indices (train, val): the file's own Usage column when it has one, else stratified and seeded.

    val_fraction 0 holds out nothing: every labeled row trains (fer2013.csv: Training and PublicTest)."""
    if faces.usage is not None:
        train = np.flatnonzero(faces.usage == "Training")
        val = np.flatnonzero(faces.usage == "PublicTest")
        if val_fraction == 0:
            return np.sort(np.concatenate([train, val])), val[:0]
        return train, val
    if not 0 < val_fraction < 1:
        all_rows = np.arange(len(faces))
        return all_rows, all_rows[:0]
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(faces))
    counts = np.bincount(faces.y, minlength=len(CLASSES))
    stratify = faces.y if counts[counts > 0].min() >= 2 else None  # tiny samples can't stratify
    # Held out as scikit-learn counts it; stratified, each side needs a face of every class present.
    held, present = math.ceil(val_fraction * len(rows)), int(np.sum(counts > 0)) if stratify is not None else 1
    if held < present or len(rows) - held < present:
        need = f"{present} faces, one of each class" if present > 1 else "one face"
        raise InputError("--val-fraction", f"{val_fraction:g} of the {len(rows):,} faces of {faces.source} would hold "
                                           f"out {held:,} and train on {len(rows) - held:,}; each side needs {need}")
    train, val = train_test_split(rows, test_size=val_fraction, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(val)


def repeats(x, of):
    """For each face of x, whether `of` holds the same face pixel for pixel. FER2013 holds some faces twice:
    in train.csv, 373 of the default split's 5,742 validation faces repeat one of its training faces."""
    seen = {face.tobytes() for face in np.asarray(of)}
    return np.array([face.tobytes() in seen for face in np.asarray(x)], bool)


def test_rows(faces: Faces):
    """The rows to predict: PrivateTest of fer2013.csv, otherwise every row."""
    if faces.usage is not None:
        return np.flatnonzero(faces.usage == "PrivateTest")
    return np.arange(len(faces))


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
                split=dict(file=str(path), digest=faces.digest, faces=faces.content(),
                           val_fraction=settings["val_fraction"],
                           seed=settings["split_seed"], train_rows=len(train), val_rows=len(val),
                           by_usage=faces.usage is not None, limit=settings.get("limit")))
    if settings["normalize"]:
        data["mean"], data["variance"] = float(x_train.mean()), float(x_train.var())
    return data


def as_input(x):
    """Faces as a model takes them: (n, 48, 48, 1) float32 raw pixels."""
    return x.reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1).astype("float32")


def one_hot(y):
    return np.eye(len(CLASSES), dtype="float32")[y]
