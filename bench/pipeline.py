#!/usr/bin/env python3
"""What limits a training step? Training images/s of one model fed three ways, in one run:

    (a) the project's pipeline: augmentation as a layer inside the model, arrays in memory (train_cnn.py)
    (b) the limit: the same network without augmentation, fed ready tensors
    (c) ImageDataGenerator: the reports' host-side augmentation feeding the network of (b)
    (k) where fer.backend.fuse_batch_norm applies (TensorFlow on a CPU): (a) with Keras's own batch norm
    (v) the network's convolutions alone at the same shapes, batch and precision, forward and backward

conv_share = the training FLOP rate of (a) / the FLOP rate of (v): the share of what the convolutions alone
reach that the whole step keeps (1.0 = everything besides the convolutions is free).

Each is compiled exactly as train_cnn.py compiles, warmed up for --warmup steps, then timed over
--steps steps. Ends with one JSON line.

    python bench/pipeline.py --data ../shared/fer2013/train.npz.xz
    KERAS_BACKEND=jax python bench/pipeline.py --data train.npz --steps 200 --precision bfloat16
"""
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def parse_args():
    from fer import cli

    parser = cli.parser(__doc__)
    parser.add_argument("--data", default="../shared/fer2013/train.npz.xz", help="labeled faces (CSV or .npz)")
    parser.add_argument("--arch", default="vgg")
    from fer.settings import PRESETS

    parser.add_argument("--width", type=cli.number(float, 1 / 32, 8), default=PRESETS["gpu"]["width"],
                        help=f"channel multiplier (default {PRESETS['gpu']['width']:g}, the default recipe's)")
    parser.add_argument("--batch-size", type=cli.POSITIVE_INT, default=128)
    parser.add_argument("--steps", type=cli.POSITIVE_INT, default=24, help="timed steps per feed (default 24)")
    parser.add_argument("--warmup", type=cli.POSITIVE_INT, default=4,
                        help="untimed steps first, compilation included")
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--augment-scale", type=cli.number(float, 0, 2), default=1.0)
    return parser.parse_args()


class StepTimer:
    """Wall time from the end of the last warm-up step to the end of the last timed one.

    Keras calls the hook once a step's results exist. It is marked async-safe, like train_cnn.py's own
    callbacks, so under JAX the host prepares the next steps while the device computes, as in training. Such
    hooks may finish out of order: the warm-up step's after a timed one's (which once timed 0 s). Any hook of
    that step or a later one runs after the warm-up step has ended, so the earliest of them starts the clock."""

    def __init__(self, warmup):
        import keras

        class Callback(keras.callbacks.Callback):
            async_safe = True

            def on_train_batch_end(cb, batch, logs=None):
                self.ended[batch] = time.perf_counter()

        self.callback, self.warmup, self.ended = Callback(), warmup, {}

    def seconds(self, total):
        if sorted(self.ended) != list(range(total)):
            raise RuntimeError(f"the feed ran {len(self.ended)} steps, not the {total} timed")
        start = min(t for batch, t in self.ended.items() if batch >= self.warmup - 1)
        return max(self.ended.values()) - start


def images_per_second(model, feed, settings, args, steps_per_epoch, fast_batch_norm=True):
    """Compile as train_cnn.py does, fit for warm-up + timed steps and return the timed rate."""
    from fer import training

    training.compile_model(model, settings, steps_per_epoch, fast_batch_norm)
    return timed_rate(model, feed, args)


def timed_rate(model, feed, args):
    timer = StepTimer(args.warmup)
    total = args.warmup + args.steps
    feed(model, total, timer.callback)
    return args.steps * args.batch_size / timer.seconds(total)


def training_flops(model):
    """One image's training FLOPs in the Conv2D and Dense layers: forward, weight gradient and input gradient,
    each as much as the forward pass, except the first such layer, whose input needs no gradient."""
    from fer.models import layer_flops

    forward = [flops for flops in map(layer_flops, model.layers) if flops]
    return 2 * forward[0] + 3 * sum(forward[1:])


def convolutions_alone(model, batch_size):
    """A model that runs each Conv2D layer of `model` on a fixed random input of that layer's shape, scaled by
    one trainable number (so that its input gradient is computed, as in training; not for the first layer).
    Its input is a dummy column: the feed costs nothing."""
    import keras
    import numpy as np

    class FixedInput(keras.layers.Layer):
        def __init__(self, shape, needs_gradient, **kwargs):
            super().__init__(**kwargs)
            self.value = self.add_weight(shape=(batch_size, *shape), trainable=False, dtype=self.compute_dtype,
                                         initializer=keras.initializers.RandomNormal())
            self.scale = self.add_weight(shape=(), initializer="ones", trainable=needs_gradient)

        def call(self, dummy):
            return self.value * keras.ops.cast(self.scale, self.compute_dtype)

    dummy = keras.Input((1,))
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    outputs = []
    for i, conv in enumerate(convs):
        copy = keras.layers.Conv2D(conv.filters, conv.kernel_size, padding=conv.padding, use_bias=conv.use_bias)
        x = copy(FixedInput(conv.input.shape[1:], needs_gradient=i > 0)(dummy))
        outputs.append(keras.layers.GlobalAveragePooling2D(dtype="float32")(x))
    alone = keras.Model(dummy, keras.layers.Concatenate()(outputs))
    return alone, np.zeros((1, 1), "float32"), np.zeros((1, alone.output.shape[-1]), "float32")


def significant(value, digits=5):
    """Rounded to significant digits, not decimals: a small network's TFLOP/s is 0.01, a GPU's is 100."""
    return float(f"{value:.{digits}g}")


def main():
    args = parse_args()
    import keras
    import numpy as np

    from fer import backend
    from fer.augment import imagedatagenerator_flow
    from fer.data import load_labeled
    from fer.models import build_cnn
    from fer.data import as_input, one_hot
    from fer.settings import DEFAULTS

    backend.set_precision(args.precision)
    faces = load_labeled(args.data)
    n = args.batch_size * (args.warmup + args.steps)
    # Every feed runs exactly warm-up + timed full batches: a smaller file (the bundled sample) is drawn from
    # with replacement. (Fewer rows than that once ended the array feeds' epoch early, and its rate was then
    # computed for steps it never ran.)
    rows = np.random.default_rng(0).choice(len(faces), n, replace=len(faces) < n)
    x, y = as_input(faces.x[rows]), one_hot(faces.y[rows])
    mean, variance = float(x.mean()), float(x.var())
    settings = {**DEFAULTS, "epochs": 1, "lr": 1e-3}
    steps = len(x) // args.batch_size

    def arrays(model, total, callback):  # one epoch over exactly `total` batches, fed as train_cnn.py feeds them
        k = total * args.batch_size
        model.fit(**backend.array_feed(x[:k], y[:k], args.batch_size, seed=0), epochs=1, callbacks=[callback],
                  verbose=0)

    def generator(model, total, callback):
        flow = imagedatagenerator_flow(x, y, args.batch_size, seed=0)
        model.fit(flow, steps_per_epoch=total, epochs=1, callbacks=[callback], verbose=0)

    feeds = {
        "a": ("project pipeline (in-model augmentation)", "affine", arrays),
        "b": ("ready tensors, no augmentation (limit)", "none", arrays),
        "c": ("ImageDataGenerator on the host", "none", generator),
    }
    def network(augment):
        return build_cnn(args.arch, mean, variance, augment, width=args.width, augment_scale=args.augment_scale)

    rates = {}
    for key, (label, augment, feed) in feeds.items():
        rates[key] = images_per_second(network(augment), feed, settings, args, steps)
        print(f"({key}) {label:<42} {rates[key]:8.0f} images/s", flush=True)
    if backend.fuse_batch_norm(network("affine")):
        rates["k"] = images_per_second(network("affine"), arrays, settings, args, steps, fast_batch_norm=False)
        label = "(a) with Keras's own batch norm"
        print(f"(k) {label:<42} {rates['k']:8.0f} images/s", flush=True)

    model = network("affine")
    alone, column, target = convolutions_alone(model, args.batch_size)
    conv_flops = training_flops(alone)  # per image: each fixed input holds a batch of faces

    def fixed(model, total, callback):  # the same dummy row every step: the inputs are the model's weights
        model.fit(np.repeat(column, total, 0), np.repeat(target, total, 0), batch_size=1, epochs=1,
                  callbacks=[callback], verbose=0, shuffle=False)

    alone.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="mse")  # a loss that is cheap on any output
    conv_rate = timed_rate(alone, fixed, args)
    rates["v"] = conv_rate
    print(f"(v) {'convolutions alone, forward and backward':<42} {conv_rate:8.0f} images/s", flush=True)
    step_flops = training_flops(model)  # per image, like conv_flops
    step_tflops = step_flops * rates["a"] / 1e12
    conv_tflops = conv_flops * conv_rate / 1e12
    conv_share = step_tflops / conv_tflops

    device = backend.accelerator()
    print(f"\n{args.arch} x{args.width:g}, batch {args.batch_size}, {args.precision}, {backend.name()} on {device}, "
          f"{args.steps} timed steps after {args.warmup} warm-up")
    print(f"a/b = {rates['a'] / rates['b']:.2f}   (1.0 = augmentation costs nothing)")
    print(f"a/c = {rates['a'] / rates['c']:.2f}   (>1 = faster than ImageDataGenerator)")
    if "k" in rates:
        print(f"a/k = {rates['a'] / rates['k']:.2f}   (the fused batch norm's speed-up)")
    print(f"conv_share = {conv_share:.2f}   ({step_tflops:.3f} TFLOP/s in training (a), {conv_tflops:.3f} in the "
          f"convolutions alone (v); 1.0 = the rest of the step is free)")
    print(json.dumps({"bench": "pipeline", "arch": args.arch, "width": args.width, "batch_size": args.batch_size,
                      "precision": args.precision, "backend": backend.name(), "device": device,
                      "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
                      "images_per_s": {k: round(v, 1) for k, v in rates.items()},
                      "a_over_b": round(rates["a"] / rates["b"], 3), "a_over_c": round(rates["a"] / rates["c"], 3),
                      "a_over_k": round(rates["a"] / rates["k"], 3) if "k" in rates else None,
                      "train_gflop_per_image": significant(step_flops / 1e9),
                      "conv_gflop_per_image": significant(conv_flops / 1e9),
                      "train_tflops": significant(step_tflops), "conv_tflops": significant(conv_tflops),
                      "conv_share": round(conv_share, 3)}))


if __name__ == "__main__":
    main()
