"""Networks: a registry of CNN bodies, and a fully connected net matched in parameters.

Every model takes raw 0-255 pixels, shape (48, 48, 1): augmentation (training
only) and normalization (statistics of the training split) are its first
layers, so a saved model needs no preprocessing anywhere.
"""
import keras
from keras import layers

from . import CLASSES, IMAGE_SIZE
from .augment import RandomAffine, RandomDegrade, RandomErasing

ARCHITECTURES = {}
DROPOUT = 0.4  # --dropout: a CNN's before its classifier, the DNN's after each hidden layer


def BatchNorm():
    # Keras's default momentum (0.99) leaves ~3% of the initial variance (1.0) in the moving statistics
    # after 360 steps, which swamps deep layers whose true variance is ~0.01: inference then predicts one
    # class. 0.9 (PyTorch's default) settles within ~50 steps, so short runs validate correctly.
    return layers.BatchNormalization(momentum=0.9)


def architecture(name, about):
    def register(body):
        body.about = about
        ARCHITECTURES[name] = body
        return body
    return register


def _conv_bn(x, filters, activation="relu", kernel=3, norm=BatchNorm):
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=norm is None)(x)  # BN's beta is the bias
    if norm is not None:
        x = norm()(x)
    return layers.LeakyReLU(0.1)(x) if activation == "leaky" else layers.Activation(activation)(x)


@architecture("vgg", "project default: 4 VGG stages of two 3x3 conv+BN+ReLU (32-64-128-256), dense 256")
def vgg(x, width=1.0, dropout=DROPOUT, norm=BatchNorm):
    for filters in (32, 64, 128, 256):
        filters = int(filters * width)
        x = _conv_bn(x, filters, norm=norm)
        x = _conv_bn(x, filters, norm=norm)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.1)(x)  # light: heavier per-stage dropout slowed short runs ~2x
    return _dense_head(x, width, dropout, norm)


@architecture("resnet", "vgg with residual shortcuts: each stage one basic block (two 3x3 conv+BN plus a 1x1 "
                        "projection, ReLU after the sum), same stages, FLOPs and head")
def resnet(x, width=1.0, dropout=DROPOUT, norm=BatchNorm):
    for stage, filters in enumerate((32, 64, 128, 256), 1):
        filters = int(filters * width)
        # Named, so that the figure scripts can tell the projection from the stage's convolutions.
        shortcut = layers.Conv2D(filters, 1, use_bias=norm is None, name=f"shortcut{stage}")(x)
        if norm is not None:
            shortcut = norm()(shortcut)
        y = _conv_bn(x, filters, norm=norm)
        y = layers.Conv2D(filters, 3, padding="same", use_bias=norm is None)(y)
        if norm is not None:
            y = norm()(y)
        x = layers.Activation("relu", name=f"block{stage}")(layers.Add()([y, shortcut]))
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.1)(x)
    return _dense_head(x, width, dropout, norm)


def _dense_head(x, width, dropout, norm):
    x = layers.Flatten()(x)
    x = layers.Dense(int(256 * width), use_bias=norm is None)(x)
    if norm is not None:
        x = norm()(x)
    x = layers.Activation("relu")(x)
    return layers.Dropout(dropout)(x)


@architecture("report5", "the best report's network: 5 conv blocks 64-512-512-256-128, LeakyReLU, dense 512-256")
def report5(x, width=1.0, dropout=DROPOUT, norm=BatchNorm):
    for filters in (64, 512, 512, 256, 128):
        x = _conv_bn(x, int(filters * width), activation="leaky", norm=norm)
        x = layers.MaxPooling2D(2, padding="same")(x)
        x = layers.Dropout(dropout * 0.75)(x)
    x = layers.Flatten()(x)
    for units in (512, 256):
        x = layers.Dense(int(units * width))(x)
        x = layers.LeakyReLU(0.1)(x)
        if norm is not None:
            x = norm()(x)
        x = layers.Dropout(dropout)(x)
    return x


@architecture("report4", "a smaller report network: 4 conv blocks 32-64-64-32, dense 128")
def report4(x, width=1.0, dropout=DROPOUT, norm=BatchNorm):
    for filters in (32, 64, 64, 32):
        x = _conv_bn(x, int(filters * width), activation="leaky", norm=norm)
        x = layers.MaxPooling2D(2, padding="same")(x)
        x = layers.Dropout(dropout * 0.5)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(int(128 * width))(x)
    x = layers.LeakyReLU(0.1)(x)
    return layers.Dropout(dropout)(x)


PREPROCESSING_LAYERS = ("augment", "erase", "degrade", "normalize")  # the names preprocessing() gives its layers


def preprocessing(inputs, mean, variance, augment, seed, augment_scale=1.0, erase=0.0, degrade=0.0):
    """Raw pixels -> (augmented) -> (erased) -> (blurred and noised) -> standardized. `mean=None` leaves pixels as
    0-255.

    augment_scale shrinks the reports' ranges (1.0 = rotation 30, shift 0.2, zoom 0.8-1.2, shear 0.2).
    erase: the share of training images with one rectangle replaced by noise (0 = no layer).
    degrade: the share of training images blurred and noised (0 = no layer).
    """
    x = inputs
    if augment == "affine":
        k = augment_scale
        x = RandomAffine(rotation=30 * k, shift=0.2 * k, zoom=(1 - 0.2 * k, 1 + 0.2 * k), shear=0.2 * k, seed=seed,
                         name="augment")(x)
    if erase:
        x = RandomErasing(erase, seed=None if seed is None else seed + 1, name="erase")(x)
    if degrade:
        x = RandomDegrade(degrade, seed=None if seed is None else seed + 2, name="degrade")(x)
    if mean is not None:
        x = layers.Normalization(mean=mean, variance=variance, name="normalize")(x)
    return x


def classifier_head(x):
    # float32 softmax: stable probabilities under mixed precision.
    return layers.Dense(len(CLASSES), activation="softmax", dtype="float32", name="predictions")(x)


def build_cnn(arch="vgg", mean=None, variance=None, augment="affine", width=1.0, dropout=DROPOUT, seed=0,
              augment_scale=1.0, batchnorm=True, erase=0.0, degrade=0.0):
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown --arch {arch!r}; choose from {', '.join(ARCHITECTURES)}")
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="pixels")
    x = preprocessing(inputs, mean, variance, augment, seed, augment_scale, erase, degrade)
    x = ARCHITECTURES[arch](x, width=width, dropout=dropout, norm=BatchNorm if batchnorm else None)
    return keras.Model(inputs, classifier_head(x), name=f"cnn_{arch}")


# ----------------------------------------------------------------------------- the DNN

def dnn_parameters(widths, inputs=IMAGE_SIZE * IMAGE_SIZE, classes=len(CLASSES)):
    """Trainable parameters of Dense(+bias) -> BatchNorm(gamma, beta) per hidden layer, then softmax."""
    total, previous = 0, inputs
    for w in widths:
        total += previous * w + w + 2 * w
        previous = w
    return total + previous * classes + classes


def match_widths(target, depth=3):
    """Hidden widths whose parameter count is closest to `target`.

    All layers share one width, found by bisection; the last layer's width is
    then tuned alone, which moves the count in steps of about one layer's fan-in,
    fine enough to land within 1% of any CNN bigger than a few thousand weights.
    """
    if depth < 1:
        raise ValueError("--depth must be at least 1")
    low, high = 1, 1
    while dnn_parameters([high] * depth) < target:
        high *= 2
    while low < high:
        mid = (low + high) // 2
        if dnn_parameters([mid] * depth) < target:
            low = mid + 1
        else:
            high = mid
    best = None
    for width in {max(1, low - 1), low}:
        for last in range(1, 2 * width + 2):
            widths = [width] * (depth - 1) + [last]
            error = abs(dnn_parameters(widths) - target)
            if best is None or error < best[0]:
                best = (error, widths)
    return best[1]


def build_dnn(widths, mean=None, variance=None, augment="affine", dropout=DROPOUT, seed=0, augment_scale=1.0,
              erase=0.0, degrade=0.0):
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="pixels")
    x = preprocessing(inputs, mean, variance, augment, seed, augment_scale, erase, degrade)
    x = layers.Flatten()(x)
    for w in widths:
        x = layers.Dense(w)(x)
        x = BatchNorm()(x)
        x = layers.Activation("relu")(x)
        x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, classifier_head(x), name="dnn_" + "-".join(map(str, widths)))


def trainable_parameters(model):
    return int(sum(keras.ops.size(w) for w in model.trainable_weights))


def forward_flops(model):
    """Multiply-adds x 2 of one image's forward pass through the Conv2D and Dense layers (the rest is
    under 1%). A training step costs about 3x this: the forward pass, and gradients for inputs and weights."""
    return int(sum(layer_flops(layer) for layer in model.layers))


def layer_flops(layer):
    """Multiply-adds x 2 of one image through a Conv2D or Dense layer; 0 for any other layer."""
    if isinstance(layer, layers.Conv2D):
        _, h, w, c_out = layer.output.shape
        kh, kw = layer.kernel_size
        return 2 * h * w * kh * kw * layer.input.shape[-1] * c_out
    if isinstance(layer, layers.Dense):
        return 2 * layer.input.shape[-1] * layer.units
    return 0
