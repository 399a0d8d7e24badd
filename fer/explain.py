"""Saliency methods, all behind one call shape:

    maps = METHODS[name](model, images, classes)    # images (n,48,48[,1]) raw pixels -> (n,48,48)

so adding a method is adding one decorated function. Maps are >= 0 except for the SIGNED methods, whose
negative values mark pixels that speak against the class. Every method works on a whole batch at once and
differentiates through `backend.gradient`, so it runs the same under TensorFlow and JAX. Scores are the
logits (pre-softmax) of the explained class: probabilities saturate and hide gradients.
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
SIGNED = ("integrated", "occlusion", "lime")  # evidence for (+) and against (-) the class
BLUR_SIGMA = 6.0  # the "absent" face of IG, occlusion and the faithfulness curves: the face blurred this much


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


def blurred(images, sigma=BLUR_SIGMA):
    """Each face blurred: its brightness kept, its features gone (a baseline that stays a plausible input,
    unlike a black image, whose attributions light up bright background)."""
    from scipy.ndimage import gaussian_filter

    x = np.asarray(images, "float32").reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    return np.stack([gaussian_filter(face, sigma, mode="nearest") for face in x])


def _batched_gradient(model, x, classes, batch=512):
    logits = logits_function(model)
    return np.concatenate([np.asarray(backend.gradient(class_scores(logits, classes[i:i + batch]), x[i:i + batch]))
                           for i in range(0, len(x), batch)])


@method("smoothgrad")
def smoothgrad(model, images, classes, samples=50, noise=0.15, seed=0):
    """SmoothGrad (Smilkov et al., 2017) as the paper recommends: the gradient averaged over 50 noisy copies
    (noise 15% of the 0-255 range), shown as its absolute value. Averaging before the absolute value lets the
    noise's gradients cancel; the absolute value of each copy's gradient would keep them."""
    x = _as_batch(images)
    rng = np.random.default_rng(seed)
    noisy = np.repeat(x, samples, axis=0) + rng.normal(0, noise * 255, (len(x) * samples, IMAGE_SIZE, IMAGE_SIZE, 1))
    grad = _batched_gradient(model, noisy.astype("float32"), np.repeat(classes, samples))
    return np.abs(grad.reshape(len(x), samples, IMAGE_SIZE, IMAGE_SIZE).mean(1))


@method("integrated")
def integrated_gradients(model, images, classes, steps=64):
    """Integrated Gradients (Sundararajan et al., 2017) from the blurred face, signed: the attributions sum to
    the class logit of the face minus that of its blur (64 midpoint steps keep that within a few percent)."""
    x = _as_batch(images)
    baseline = blurred(x)[..., None]
    alphas = (np.arange(steps, dtype="float32") + 0.5) / steps
    path = baseline[:, None] + alphas[None, :, None, None, None] * (x - baseline)[:, None]
    grad = _batched_gradient(model, path.reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1).astype("float32"),
                             np.repeat(classes, steps))
    mean_grad = grad.reshape(len(x), steps, IMAGE_SIZE, IMAGE_SIZE, 1).mean(1)
    return (mean_grad * (x - baseline))[..., 0]


@method("occlusion")
def occlusion(model, images, classes, patch=8, stride=4):
    """How much the class logit falls when a patch of the face is blurred away (Zeiler & Fergus, 2014),
    averaged over the patches covering each pixel: signed, in logit units."""
    x = _as_batch(images)[..., 0]
    base = blurred(x)
    starts = range(0, IMAGE_SIZE - patch + 1, stride)
    corners = [(r, c) for r in starts for c in starts]
    copies = np.repeat(x[:, None], len(corners), axis=1)
    for k, (r, c) in enumerate(corners):
        copies[:, k, r:r + patch, c:c + patch] = base[:, r:r + patch, c:c + patch]
    logits = logits_function(model)
    flat = copies.reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)
    occluded = np.concatenate([np.asarray(logits(flat[i:i + 512]), "float32") for i in range(0, len(flat), 512)])
    occluded = occluded[np.arange(len(flat)), np.repeat(classes, len(corners))].reshape(len(x), len(corners))
    drop = np.asarray(class_scores(logits, classes)(x[..., None]), "float32")[:, None] - occluded
    total, count = np.zeros_like(x), np.zeros((IMAGE_SIZE, IMAGE_SIZE), "float32")
    for k, (r, c) in enumerate(corners):
        total[:, r:r + patch, c:c + patch] += drop[:, k, None, None]
        count[r:r + patch, c:c + patch] += 1
    return total / count


@method("lime")
def lime(model, images, classes, samples=1000, segments=40, seed=0):
    """LIME (Ribeiro et al., 2016) on SLIC superpixels: each pixel gets its region's weight for the class in a
    linear model fitted to the network's answers on copies with regions greyed out. Signed."""
    return np.stack([region_weights(lime_explanation(model, face, samples, segments, seed + k, labels=(int(c),)),
                                    int(c)) for k, (face, c) in enumerate(zip(_as_batch(images)[..., 0], classes))])


def lime_explanation(model, face, samples=1000, segments=40, seed=0, labels=None):
    """The `lime` package's explanation of one face (for `labels`, else the top prediction)."""
    import os

    os.environ.setdefault("TQDM_DISABLE", "1")  # lime draws a progress bar per face
    from lime import lime_image
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    def classify(rgb_batch):  # LIME works on RGB; the faces are grey, so one channel carries everything
        return predict_probabilities([model], rgb_batch[..., 0])

    segmenter = SegmentationAlgorithm("slic", n_segments=segments, compactness=0.1, sigma=1, channel_axis=None,
                                      start_label=0)
    explainer = lime_image.LimeImageExplainer(random_state=seed)
    rgb = np.repeat(np.asarray(face, "float64")[..., None], 3, axis=-1)
    which = dict(labels=labels, top_labels=None) if labels is not None else dict(top_labels=1)
    return explainer.explain_instance(rgb, classify, hide_color=128, num_samples=samples, batch_size=250,
                                      segmentation_fn=lambda image: segmenter(image[..., 0]), random_seed=seed,
                                      **which)


def region_weights(explanation, label):
    """Each pixel coloured by its superpixel's LIME weight for `label`."""
    weights = dict(explanation.local_exp[label])
    return np.vectorize(lambda s: weights.get(s, 0.0))(explanation.segments).astype("float32")


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


def faces_to_explain(model, data_path, model_path, index=None):
    """One validation face per class, with the model's probabilities for them and a note on the split."""
    validation, note = load_validation(data_path, model_path)
    probabilities = predict_probabilities([model], validation.x)
    rows = one_face_per_class(validation, probabilities.argmax(1), index)
    return validation.subset(rows), rows, probabilities[rows], note


def confused_faces(faces, predicted, probabilities, pairs):
    """For each (true, predicted) class pair, the validation row the model gets that wrong most confidently
    (pairs without such a face are skipped)."""
    chosen = []
    for truth, guess in pairs:
        rows = np.flatnonzero((faces.y == truth) & (predicted == guess))
        if len(rows):
            chosen.append((int(rows[np.argmax(probabilities[rows, guess])]), truth, guess))
    return chosen


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
