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
"""
import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="fer")
class RandomAffine(keras.layers.Layer):
    def __init__(self, rotation=30.0, shift=0.2, zoom=(0.8, 1.2), shear=0.2, flip=True,
                 fill_mode="nearest", seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # resampling stays in float32 under mixed precision
        super().__init__(**kwargs)
        self.rotation, self.shift, self.shear, self.flip = float(rotation), float(shift), float(shear), bool(flip)
        self.zoom = (float(zoom[0]), float(zoom[1]))
        self.fill_mode, self.seed = fill_mode, seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def sample_parameters(self, batch):
        """Per image: angle and shear (radians), shift (pixels), zoom x/y, flip sign."""
        def uniform(low, high):
            return keras.random.uniform((batch,), low, high, seed=self.seed_generator)

        deg = math.pi / 180
        size = 48.0
        flip = ops.where(uniform(0, 1) < 0.5, -1.0, 1.0) if self.flip else ops.ones((batch,))
        return {
            "angle": uniform(-self.rotation * deg, self.rotation * deg),
            "shear": uniform(-self.shear * deg, self.shear * deg),
            "tx": uniform(-self.shift * size, self.shift * size),
            "ty": uniform(-self.shift * size, self.shift * size),
            "zx": uniform(*self.zoom),
            "zy": uniform(*self.zoom),
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


def imagedatagenerator_flow(x, y, batch_size, seed):
    """The reports' own pipeline: ImageDataGenerator on the host, same settings."""
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    generator = ImageDataGenerator(rotation_range=30, width_shift_range=0.2, height_shift_range=0.2,
                                   zoom_range=[0.8, 1.2], shear_range=0.2, horizontal_flip=True,
                                   fill_mode="nearest")
    return generator.flow(x, y, batch_size=batch_size, seed=seed)
