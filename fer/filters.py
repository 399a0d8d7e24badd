"""What do the filters respond to? Gradient ascent in input space, and feature maps.

All filters of a layer are optimized together: image i of the batch climbs the
mean activation of filter i, so one gradient call serves every filter, instead
of a Python loop with one call per filter (`ascend_one_by_one`, kept to measure
the difference). Regularizers keep the patterns readable: random jitter each
step, a light blur every few steps, and decay toward mid-grey.
"""
import numpy as np
from keras import ops

from . import IMAGE_SIZE, backend
from .layers import conv_activations, layer_model

def resolve_layer(model, which):
    """A layer by name, or by index into the list of convolutional activations."""
    names = conv_activations(model)
    if isinstance(which, str) and not which.lstrip("-").isdigit():
        try:
            return model.get_layer(which)
        except ValueError:
            raise ValueError(f"no layer named {which!r}; convolutional layers: {', '.join(names)}") from None
    index = int(which)
    if not -len(names) <= index < len(names):
        raise ValueError(f"layer index {index} out of range: the model has {len(names)} convolutional layers")
    return model.get_layer(names[index])


def _blur(x):
    kernel = np.array([1, 2, 1], "float32")
    kernel = np.outer(kernel, kernel) / 16
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    return sum(kernel[i, j] * padded[:, i:i + IMAGE_SIZE, j:j + IMAGE_SIZE] for i in range(3) for j in range(3))


def ascend(model, layer, filters, steps=80, step_size=8.0, seed=0):
    """Images (len(filters), 48, 48) in 0-255 that maximize each filter's mean activation, and those activations."""
    features = layer_model(model, layer.output)
    filters = np.asarray(filters)
    choose = ops.one_hot(filters, layer.output.shape[-1])[:, None, None, :]

    def objective(x):  # one number per image: its own filter's mean activation
        return ops.mean(ops.sum(ops.cast(features(x, training=False), "float32") * choose, axis=-1), axis=(1, 2))

    rng = np.random.default_rng(seed)
    x = 128 + rng.normal(0, 8, (len(filters), IMAGE_SIZE, IMAGE_SIZE, 1)).astype("float32")
    for step in range(steps):
        dy, dx = rng.integers(-2, 3, 2)
        x = np.roll(x, (dy, dx), axis=(1, 2))
        grad = np.array(backend.gradient(objective, x))
        grad /= grad.std(axis=(1, 2, 3), keepdims=True) + 1e-8  # same step size for every filter
        x = x + step_size * grad
        x = np.roll(x, (-dy, -dx), axis=(1, 2))
        if step % 4 == 3:
            x = _blur(x)
        x = np.clip(128 + 0.995 * (x - 128), 0, 255).astype("float32")
    return x[..., 0], np.asarray(objective(x))


def ascend_one_by_one(model, layer, filters, steps=80, step_size=8.0, seed=0):
    """The same optimization, one filter at a time: the slow way, for comparison."""
    results = [ascend(model, layer, [f], steps, step_size, seed) for f in filters]
    return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])


def mean_activation(model, layer, images, filters):
    images = np.asarray(images, "float32").reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)
    out = np.asarray(layer_model(model, layer.output)(images, training=False), "float32")
    return out[np.arange(len(filters)), :, :, np.asarray(filters)].mean(axis=(1, 2))


def feature_maps(model, layer, image):
    """The layer's outputs for one face: (h, w, channels)."""
    face = np.asarray(image, "float32").reshape(1, IMAGE_SIZE, IMAGE_SIZE, 1)
    out = layer_model(model, layer.output)(face, training=False)
    return np.asarray(out, "float32")[0]


def dead_filters(model, layer, images, batch=128):
    """Filters of `layer` whose activation is zero at every position of every one of `images`."""
    features = layer_model(model, layer.output)
    x = np.asarray(images, "float32").reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)
    peak = np.max([np.asarray(features(x[i:i + batch], training=False), "float32").max(axis=(0, 1, 2))
                   for i in range(0, len(x), batch)], axis=0)
    return np.flatnonzero(peak <= 0)
