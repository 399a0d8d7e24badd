"""Shared code of the FER2013 scripts: data, models, training, figures.

Importing this package first imports Keras with TensorFlow's start-up chatter
hidden (it is printed by C++ before logging is configured, so no setting stops
it), so that the scripts' stderr holds only what matters: errors are one line.
"""
import contextlib
import os
import sys

CLASSES = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
PROBABILITY_COLUMNS = tuple(f"p_{name}" for name in CLASSES)  # the CSVs that hold all 7: faces, video, predict
IMAGE_SIZE = 48
PIXELS = IMAGE_SIZE * IMAGE_SIZE


@contextlib.contextmanager
def quiet_native_stderr():
    """Send what C++ libraries print to file descriptor 2 to /dev/null meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
try:
    with quiet_native_stderr():
        import keras  # noqa: E402

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # device set-up prints a failed cuInit on CPU-only machines
except (ValueError, ImportError) as exc:  # KERAS_BACKEND names a backend Keras does not know, or not installed
    print(f"error: KERAS_BACKEND={os.environ.get('KERAS_BACKEND', '')}: Keras cannot use it ({exc}); "
          "use tensorflow or jax", file=sys.stderr)
    sys.exit(2)
