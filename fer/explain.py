"""Saliency methods, all behind one call shape:

    maps = METHODS[name](model, images, classes)    # images (n,48,48[,1]) raw pixels -> (n,48,48) >= 0

so adding a method is adding one decorated function. Every method works on a
whole batch at once, and differentiates through `backend.gradient`, so it runs
the same under TensorFlow and JAX. Scores are the logits (pre-softmax) of the
explained class: probabilities saturate and hide gradients.
"""
import keras
import numpy as np
from keras import ops

from . import CLASSES, IMAGE_SIZE, backend
from .errors import InputError
from .inference import predict_probabilities
from .layers import conv_activations, layer_model
from .records import load_validation

METHODS = {}
CAM_METHODS = ("gradcam", "hirescam")  # these explain a convolutional layer (option layer=, default the last)


def method(name):
    def register(fn):
        METHODS[name] = fn
        return fn
    return register


def head_logits(model, features):
    """Pre-softmax scores from what enters the softmax Dense named 'predictions'."""
    head = model.get_layer("predictions")
    return ops.matmul(ops.cast(features, "float32"), head.kernel) + head.bias


def logits_function(model):
    """x -> logits, for models whose last layer is the softmax Dense named 'predictions'."""
    features = layer_model(model, model.get_layer("predictions").input)
    return lambda x: head_logits(model, features(x, training=False))


def class_scores(logits, classes):
    return lambda x: ops.sum(logits(x) * ops.one_hot(classes, len(CLASSES)), axis=1)


def _as_batch(images):
    return np.asarray(images, "float32").reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)


@method("gradient")
def vanilla_gradient(model, images, classes):
    """|d score / d pixel| (Simonyan et al., 2014), the reports' saliency map."""
    x = _as_batch(images)
    grad = backend.gradient(class_scores(logits_function(model), np.asarray(classes)), x)
    return np.abs(np.asarray(grad))[..., 0]


@method("smoothgrad")
def smoothgrad(model, images, classes, samples=16, noise=0.15, seed=0):
    """Gradients averaged over noisy copies (Smilkov et al., 2017): noise = 15% of the 0-255 range."""
    x = _as_batch(images)
    rng = np.random.default_rng(seed)
    noisy = np.repeat(x, samples, axis=0) + rng.normal(0, noise * 255, (len(x) * samples, IMAGE_SIZE, IMAGE_SIZE, 1))
    grad = backend.gradient(class_scores(logits_function(model), np.repeat(classes, samples)),
                            noisy.astype("float32"))
    return np.abs(np.asarray(grad).reshape(len(x), samples, IMAGE_SIZE, IMAGE_SIZE).mean(1))


@method("integrated")
def integrated_gradients(model, images, classes, steps=32, baseline=0.0):
    """Path integral of gradients from a black image (Sundararajan et al., 2017), |attribution|."""
    x = _as_batch(images)
    alphas = (np.arange(steps, dtype="float32") + 0.5) / steps  # midpoint rule
    path = baseline + alphas[None, :, None, None, None] * (x[:, None] - baseline)
    grad = backend.gradient(class_scores(logits_function(model), np.repeat(classes, steps)),
                            path.reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1))
    mean_grad = np.asarray(grad).reshape(len(x), steps, IMAGE_SIZE, IMAGE_SIZE, 1).mean(1)
    return np.abs(mean_grad * (x - baseline))[..., 0]


def last_conv_layer(model):
    """The last layer with a spatial (4-D) output before the classifier: Grad-CAM's feature maps."""
    spatial = [layer for layer in model.layers[1:] if len(layer.output.shape) == 4
               and layer.output.shape[1] > 1 and not layer.name.startswith(("augment", "normalize"))]
    if not spatial:
        raise ValueError("the model has no convolutional feature maps (a DNN?)")
    conv = [layer for layer in spatial if "pool" not in layer.name and "dropout" not in layer.name]
    return (conv or spatial)[-1]


def _activations_and_gradients(model, images, classes, layer=None):
    """A convolutional layer's feature maps for a batch, and the class logits' gradient with respect to them."""
    x = _as_batch(images)
    layer = layer or last_conv_layer(model)
    activations = np.asarray(layer_model(model, layer.output)(x, training=False), "float32")
    tail = tail_model(model, layer)
    grad = np.asarray(backend.gradient(
        class_scores(lambda a: head_logits(model, tail(a, training=False)), np.asarray(classes)), activations))
    return activations, grad


def tail_model(model, layer):
    """`layer`'s feature maps -> what enters the softmax: the rest of the network as a model of its own.

    Only a layer whose maps alone decide the prediction has one: not a layer inside a residual block,
    whose sum also takes the block's input through the shortcut."""
    tail = _tail_or_none(model, layer)
    if tail is None:
        raise ValueError(f"{layer.name} is inside a residual block, so the prediction depends on more than its "
                         f"maps; choose a block output ({', '.join(cam_layers(model))})")
    return tail


def cam_layers(model):
    """The convolutional activations CAM methods can explain: those whose maps alone decide the prediction."""
    return [name for name in conv_activations(model) if _tail_or_none(model, model.get_layer(name)) is not None]


def _tail_or_none(model, layer):
    try:
        return keras.Model(layer.output, model.get_layer("predictions").input)
    except ValueError:  # Keras: the output is "not connected" to these inputs alone
        return None


def _upsampled(cam):
    """relu, bilinear to 48x48, each map scaled to a maximum of 1."""
    cam = np.maximum(cam, 0)
    cam = np.asarray(ops.image.resize(cam[..., None], (IMAGE_SIZE, IMAGE_SIZE), interpolation="bilinear"))[..., 0]
    return cam / np.maximum(cam.max(axis=(1, 2), keepdims=True), 1e-12)


@method("gradcam")
def grad_cam(model, images, classes, layer=None):
    """Grad-CAM (Selvaraju et al., 2017) on the last convolutional block, upsampled to 48x48, in [0, 1].

    Each channel is weighted by its spatially averaged gradient. Faithful for a global-average-pooling
    head; behind Flatten+Dense the averaged gradients can cancel and the map goes blank (use hirescam)."""
    activations, grad = _activations_and_gradients(model, images, classes, layer)
    return _upsampled((grad.mean(axis=(1, 2), keepdims=True) * activations).sum(-1))


@method("hirescam")
def hires_cam(model, images, classes, layer=None):
    """HiResCAM (Draelos & Carin, 2020): gradient times activation, summed over channels, per location.

    Behind Flatten+Dense the unclipped map sums exactly to the class logit minus its bias: each cell's
    share of the score. Upsampled to 48x48 and scaled to [0, 1] like Grad-CAM."""
    activations, grad = _activations_and_gradients(model, images, classes, layer)
    return _upsampled((grad * activations).sum(-1))


def check_explainable(model, path, names):
    """Refuse in one line a model that the methods `names` cannot explain: every method reads the logits entering
    the softmax Dense layer named 'predictions', and the CAM methods need convolutional feature maps."""
    try:
        head = model.get_layer("predictions")
    except ValueError:
        raise InputError(path, "has no softmax Dense layer named 'predictions' (as train_cnn.py and train_dnn.py "
                               "write), so its logits cannot be explained") from None
    if not isinstance(head, keras.layers.Dense):
        raise InputError(path, f"its 'predictions' layer is a {type(head).__name__}, not the softmax Dense layer")
    cams = [name for name in names if name in CAM_METHODS]
    if cams and not conv_activations(model):
        others = ", ".join(m for m in METHODS if m not in CAM_METHODS)
        raise InputError(path, f"has no convolution layers (a DNN?), and {', '.join(cams)} explain convolutional "
                               f"feature maps: choose --method among {others}")


def explain(name, model, images, classes, **options):
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name](model, images, np.asarray(classes), **options)


def randomized_copy(model, seed=0):
    """Same architecture and preprocessing, freshly initialized weights (Adebayo et al., 2018).

    The normalization statistics live in the layer's config, so the clone keeps them."""
    keras.utils.set_random_seed(seed)
    return keras.models.clone_model(model)


def rank_correlation(a, b):
    """Spearman correlation between two maps, per image; 0 where a map is constant (it ranks nothing)."""
    from scipy.stats import spearmanr

    return np.array([spearmanr(x.ravel(), y.ravel())[0] if x.std() > 0 and y.std() > 0 else 0.0
                     for x, y in zip(a, b)])


def faces_to_explain(model, data_path, model_path, index=None):
    """One validation face per class, with the model's probabilities for them and a note on the split."""
    validation, note = load_validation(data_path, model_path)
    probabilities = predict_probabilities([model], validation.x)
    rows = one_face_per_class(validation, probabilities.argmax(1), index)
    return validation.subset(rows), rows, probabilities[rows], note


def one_face_per_class(faces, predicted, index=None):
    """Validation rows to explain, one per class: the given ones, else the first the model gets right."""
    if index:
        if max(index) >= len(faces) or min(index) < 0:
            raise InputError("--index", f"rows must be in 0..{len(faces) - 1} (the validation split)")
        return np.array(index)
    rows = []
    for c in range(len(CLASSES)):
        right = np.flatnonzero((faces.y == c) & (predicted == c))
        anyone = np.flatnonzero(faces.y == c)
        rows.append(right[0] if len(right) else anyone[0] if len(anyone) else 0)
    return np.array(rows)
