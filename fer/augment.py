"""Augmentation inside the model, on the device, active only while training.

`RandomAffine` draws one affine matrix per image (rotation, shift, zoom, shear,
horizontal flip) and resamples each image once, as Keras's ImageDataGenerator
does. Chaining RandomRotation/RandomTranslation/RandomZoom/RandomShear instead
resamples four times: four times the cost and a blurrier image; and a model
holding Keras 3.15's RandomShear cannot be loaded back. This layer is one plain
serializable layer, so a saved model with it loads everywhere.

The defaults are the reports' ImageDataGenerator settings: rotation_range=30,
width/height_shift_range=0.2, zoom_range=[0.8, 1.2], shear_range=0.2,
horizontal_flip=True, fill_mode='nearest'. Like ImageDataGenerator, shear is an
angle in degrees, so 0.2 is a very small shear.

`RandomErasing` (Zhong et al. 2017) covers one random rectangle of a share of
the images with noise, so the network cannot rely on any one part of the face.
`RandomDegrade` blurs and noises a share of the images, as poorer cameras do.
`MixupBatches` (Zhang et al. 2018) blends pairs of training images and their
labels; it mixes labels, so it feeds fit() instead of living in the model.

`CleanTail` turns the warps and erasing off for a run's last share of epochs
(flips stay): trained only on warped faces, a network is tuned to a harder task
than the faces it is tested on, and a few clean epochs at a low learning rate
tune it to them. The price: it unlearns some of the invariance to zooms that
the zoom views of test-time augmentation rely on. With `views`, the tail trains
on those views instead (each face zoomed as --tta zooms it, mirrored half the
time), so it keeps that invariance.

`tta_views` is the deterministic side: each face as it is, mirrored, and
zoomed with the same warp, for averaging predictions (test-time augmentation).
"""
import math

import keras
import numpy as np
from keras import ops

from . import IMAGE_SIZE
from .backend import ShuffledBatches


class ScheduledAugmentation(keras.layers.Layer):
    """A training-only augmentation layer with a strength: how much of it a training step applies, 1 = all,
    0 = none (CleanTail sets it), and `views`: 1 while a clean tail trains on --tta's views. Variables, so that the
    compiled step reads them under every backend; the run's schedule, not part of the model, so files hold none
    of it."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")  # resampling and masks stay in float32 under mixed precision
        super().__init__(**kwargs)
        self.strength = self.add_weight(shape=(), initializer="ones", trainable=False, name="strength",
                                        dtype="float32")
        self.views = self.add_weight(shape=(), initializer="zeros", trainable=False, name="views", dtype="float32")

    def save_own_variables(self, store):
        pass

    def load_own_variables(self, store):
        pass


class CleanTail(keras.callbacks.Callback):
    """The last `tail` of a run trains on the faces as they are: from the first epoch whose middle lies past
    1 - tail of the run, every augmentation layer's strength is 0. `progress(epoch)`: the share of the run done
    at that epoch's middle (ClockSchedule's, in a run timed to the clock). views: the tail's faces are --tta's
    views, each face zoomed by one of TTA_ZOOMS["zoom"] drawn at random, instead of the faces as they are."""

    def __init__(self, tail, progress, views=False):
        super().__init__()
        self.tail, self.progress, self.views = tail, progress, views
        self.clean = False

    def on_epoch_begin(self, epoch, logs=None):
        clean = self.progress(epoch) >= 1 - self.tail
        if clean and not self.clean:
            faces = "--tta's zoom views" if self.views else "no warps"
            print(f"epoch {epoch + 1}: the clean tail begins, {faces} and no erasing, blur or noise from here on "
                  "(flips stay)", flush=True)
        self.clean = clean
        for layer in self.model.layers:
            if isinstance(layer, ScheduledAugmentation):
                layer.strength.assign(0.0 if clean else 1.0)
                layer.views.assign(1.0 if clean and self.views else 0.0)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:  # the history's "clean" column, which the history figure shades
            logs["clean"] = float(self.clean)


@keras.saving.register_keras_serializable(package="fer")
class RandomAffine(ScheduledAugmentation):
    def __init__(self, rotation=30.0, shift=0.2, zoom=(0.8, 1.2), shear=0.2, flip=True,
                 fill_mode="nearest", seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rotation, self.shift, self.shear, self.flip = float(rotation), float(shift), float(shear), bool(flip)
        self.zoom = (float(zoom[0]), float(zoom[1]))
        self.fill_mode, self.seed = fill_mode, seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        # TensorFlow has no XLA kernel for its resampling op (ImageProjectiveTransformV3), and Keras compiles
        # with XLA wherever TensorFlow sees a GPU: training would stop with "No registered OpKernel for
        # XLA_GPU_JIT". Saying so makes Keras train such a model without XLA. JAX compiles the warp like any op.
        if keras.backend.backend() == "tensorflow":
            self.supports_jit = False

    def sample_parameters(self, batch):
        """Per image: angle and shear (radians), shift (pixels), zoom x/y, flip sign."""
        def uniform(low, high):
            return keras.random.uniform((batch,), low, high, seed=self.seed_generator)

        deg = math.pi / 180
        size = float(IMAGE_SIZE)
        k = ops.cast(self.strength, "float32")  # 0 in a clean tail: the identity, flips aside
        flip = ops.where(uniform(0, 1) < 0.5, -1.0, 1.0) if self.flip else ops.ones((batch,))
        # In a tail on --tta's views: one of its zooms per face, the same on both axes, as tta_views zooms.
        zooms = ops.convert_to_tensor(TTA_ZOOMS["zoom"], "float32")
        pick = ops.minimum(ops.cast(uniform(0, len(TTA_ZOOMS["zoom"])), "int32"), len(TTA_ZOOMS["zoom"]) - 1)
        view_zoom = ops.cast(self.views, "float32") * (ops.take(zooms, pick) - 1.0)
        return {
            "angle": k * uniform(-self.rotation * deg, self.rotation * deg),
            "shear": k * uniform(-self.shear * deg, self.shear * deg),
            "tx": k * uniform(-self.shift * size, self.shift * size),
            "ty": k * uniform(-self.shift * size, self.shift * size),
            "zx": 1.0 + k * (uniform(*self.zoom) - 1.0) + view_zoom,
            "zy": 1.0 + k * (uniform(*self.zoom) - 1.0) + view_zoom,
            "flip": flip,
        }

    @staticmethod
    def transforms(p, height, width):
        """8-vectors for ops.image.affine_transform: output pixel -> input pixel.

        input = c + R(angle) @ Shear(shear) @ Zoom(zx, zy) @ Flip @ (output - c) + t
        """
        cos, sin = ops.cos(p["angle"]), ops.sin(p["angle"])
        sh_sin, sh_cos = ops.sin(p["shear"]), ops.cos(p["shear"])
        zx, zy = p["zx"] * p["flip"], p["zy"]
        # R @ Sh with Sh = [[1, -sin s], [0, cos s]] (ImageDataGenerator's shear), then zoom/flip columns.
        a00, a01 = cos * zx, (-cos * sh_sin - sin * sh_cos) * zy
        a10, a11 = sin * zx, (-sin * sh_sin + cos * sh_cos) * zy
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        a02 = cx + p["tx"] - a00 * cx - a01 * cy
        a12 = cy + p["ty"] - a10 * cx - a11 * cy
        zero = ops.zeros_like(a00)
        return ops.stack([a00, a01, a02, a10, a11, a12, zero, zero], axis=1)

    def call(self, images, training=None):
        if not training:
            return images
        shape = ops.shape(images)
        params = self.sample_parameters(shape[0])
        matrix = self.transforms(params, images.shape[1], images.shape[2])
        return ops.image.affine_transform(images, matrix, interpolation="bilinear", fill_mode=self.fill_mode)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "shift": self.shift, "zoom": list(self.zoom),
                "shear": self.shear, "flip": self.flip, "fill_mode": self.fill_mode, "seed": self.seed}


@keras.saving.register_keras_serializable(package="fer")
class RandomErasing(ScheduledAugmentation):
    """With probability `rate`, replace one rectangle of each image by uniform noise over the pixel range.

    The rectangle covers `area` (a share of the image, drawn uniformly) with height/width ratio drawn
    log-uniformly from `aspect`, clipped to the image, placed uniformly: the torchvision defaults.
    It runs on raw 0-255 pixels, before normalization, so the noise spans the pixels' own range.
    """

    def __init__(self, rate=0.5, area=(0.02, 0.33), aspect=(0.3, 3.3), value_range=(0.0, 255.0), seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate <= 1:
            raise ValueError(f"erasing rate must be between 0 and 1, got {rate}")
        self.rate, self.seed = float(rate), seed
        self.area, self.aspect = (float(area[0]), float(area[1])), (float(aspect[0]), float(aspect[1]))
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def masks(self, batch, height, width):
        """(batch, height, width, 1) floats: 1 inside each image's erased rectangle, else 0."""
        def uniform(low, high):
            return keras.random.uniform((batch, 1, 1, 1), low, high, seed=self.seed_generator)

        area = uniform(*self.area) * (height * width)
        aspect = ops.exp(uniform(math.log(self.aspect[0]), math.log(self.aspect[1])))
        h = ops.minimum(ops.sqrt(area * aspect), float(height))
        w = ops.minimum(ops.sqrt(area / aspect), float(width))
        top = uniform(0, 1) * (height - h)
        left = uniform(0, 1) * (width - w)
        rows = ops.reshape(ops.arange(height, dtype="float32"), (1, height, 1, 1))
        cols = ops.reshape(ops.arange(width, dtype="float32"), (1, 1, width, 1))
        inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
        chosen = uniform(0, 1) < self.rate * ops.cast(self.strength, "float32")
        return ops.cast(inside & chosen, "float32")

    def call(self, images, training=None):
        if not training or self.rate == 0:
            return images
        shape = ops.shape(images)
        mask = self.masks(shape[0], images.shape[1], images.shape[2])
        noise = keras.random.uniform(shape, *self.value_range, seed=self.seed_generator)
        return images * (1 - mask) + noise * mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "area": list(self.area), "aspect": list(self.aspect),
                "value_range": list(self.value_range), "seed": self.seed}


@keras.saving.register_keras_serializable(package="fer")
class RandomDegrade(ScheduledAugmentation):
    """With probability `rate`, blur an image part of the way (a share drawn uniformly) towards its Gaussian blur
    of `blur` pixels, and add Gaussian noise whose deviation is drawn uniformly up to `noise` grey levels: the
    faces of poorer cameras, which a network trained only on sharp faces reads badly (robustness.py). It runs on
    raw 0-255 pixels, before normalization, and keeps them within that range."""

    def __init__(self, rate=0.5, blur=2.0, noise=20.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate <= 1 or blur <= 0 or noise < 0:
            raise ValueError(f"degrading needs a rate within 0-1, a blur above 0 and noise >= 0; got {rate}, {blur}, "
                             f"{noise}")
        self.rate, self.blur, self.noise, self.seed = float(rate), float(blur), float(noise), seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.radius = max(1, int(4 * self.blur + 0.5))  # as scipy.ndimage.gaussian_filter truncates it
        taps = np.arange(-self.radius, self.radius + 1)
        gauss = np.exp(-taps ** 2 / (2 * self.blur ** 2))
        self.kernel = (np.outer(gauss, gauss) / gauss.sum() ** 2)[:, :, None, None].astype("float32")

    def blurred(self, images):
        """Each image under the full Gaussian blur, its border mirrored (a padding of zeros would darken it)."""
        r = self.radius
        padded = ops.pad(images, [[0, 0], [r, r], [r, r], [0, 0]], mode="symmetric")
        return ops.conv(padded, ops.convert_to_tensor(self.kernel), padding="valid")

    def call(self, images, training=None):
        if not training or self.rate == 0:
            return images
        shape = ops.shape(images)

        def uniform(low, high):
            return keras.random.uniform((shape[0], 1, 1, 1), low, high, seed=self.seed_generator)

        chosen = ops.cast(uniform(0, 1) < self.rate * ops.cast(self.strength, "float32"), "float32")
        out = images + uniform(0, 1) * chosen * (self.blurred(images) - images)
        out = out + uniform(0, self.noise) * chosen * keras.random.normal(shape, seed=self.seed_generator)
        return ops.clip(out, 0.0, 255.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "blur": self.blur, "noise": self.noise, "seed": self.seed}


class MixupBatches(ShuffledBatches):
    """Shuffled training batches in which every image is blended with another of the same batch.

    One weight lam ~ Beta(alpha, alpha) per batch: x = lam * x + (1 - lam) * x[perm], and the same for
    the one-hot labels. Each epoch reshuffles. Batches are drawn from (seed, epoch, index), so they do
    not depend on the order Keras asks for them, and a run resumed at `epoch` gets the batches it would
    have had.
    """

    def __init__(self, x, y, batch_size, alpha, seed=0, epoch=0, **kwargs):
        if alpha <= 0:
            raise ValueError(f"mixup alpha must be positive, got {alpha}")
        super().__init__(x, y, batch_size, seed, epoch, **kwargs)
        self.alpha = float(alpha)

    def __getitem__(self, index):
        rows = self.rows(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        lam = np.float32(rng.beta(self.alpha, self.alpha))
        partner = rng.permutation(len(rows))
        x, y = self.x[rows], self.y[rows]
        return lam * x + (1 - lam) * x[partner], lam * y + (1 - lam) * y[partner]


# Test-time views: zoom factors, each also mirrored. As in RandomAffine, a zoom below 1 magnifies the face.
# "zoom" was chosen by bench/tta.py for the shipped model, among 20 sets of zooms 0.85-1.2, on half of the
# validation split; on the other half it scored 0.6803 against 0.6635 with flips alone (bench/results/README.md).
TTA_ZOOMS = {"flip": (1.0,), "zoom": (1.0, 0.85, 1.15)}
TTA_DEFAULT = "zoom"  # what a bare --tta means


def tta_views(x, zooms=(1.0,)):
    """Yield (batch, 48, 48, 1) float32 views of x: for each zoom, the faces then their mirror images.

    Zoom 1 is exact (no resampling); other zooms resample once, bilinear, edge pixels filling the
    border, like the training warp.
    """
    x = np.asarray(x, "float32").reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)
    for zoom in zooms:
        view = x if zoom == 1.0 else fixed_warp(x, zoom=zoom)
        yield view
        yield view[:, :, ::-1]


def fixed_warp(x, angle=0.0, tx=0.0, ty=0.0, zoom=1.0):
    """(n, 48, 48, 1) float32 faces all warped alike (angle in radians, shifts in pixels, zoom below 1
    magnifies), resampled once as the training warp does: bilinear, edge pixels filling the border."""
    n = len(x)
    params = {"angle": ops.full((n,), float(angle)), "shear": ops.zeros((n,)), "tx": ops.full((n,), float(tx)),
              "ty": ops.full((n,), float(ty)), "zx": ops.full((n,), float(zoom)), "zy": ops.full((n,), float(zoom)),
              "flip": ops.ones((n,))}
    matrix = RandomAffine.transforms(params, IMAGE_SIZE, IMAGE_SIZE)
    return ops.convert_to_numpy(ops.image.affine_transform(x, matrix, interpolation="bilinear", fill_mode="nearest"))


def imagedatagenerator_flow(x, y, batch_size, seed):
    """The reports' own pipeline: ImageDataGenerator on the host, same settings."""
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    generator = ImageDataGenerator(rotation_range=30, width_shift_range=0.2, height_shift_range=0.2,
                                   zoom_range=[0.8, 1.2], shear_range=0.2, horizontal_flip=True,
                                   fill_mode="nearest")
    return generator.flow(x, y, batch_size=batch_size, seed=seed)
