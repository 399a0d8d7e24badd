"""Everything that differs between Keras backends lives here.

The scripts run on TensorFlow (the default) and on JAX (KERAS_BACKEND=jax).
"""
import importlib.util
import os
import platform
import types

import keras
import numpy as np

from .errors import InputError

PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def name():
    return keras.backend.backend()


def drop_retracing_warnings():
    """Each model of an ensemble traces its own predict function. TensorFlow's logger counts five such traces as
    a retracing problem and warns on stderr, though nothing is retraced twice."""
    if name() == "tensorflow":
        import tensorflow as tf

        tf.get_logger().addFilter(lambda record: "triggered tf.function retracing" not in record.getMessage())


drop_retracing_warnings()


def set_precision(precision):
    """float32, or mixed bfloat16/float16 (weights in float32, compute in 16 bits)."""
    keras.mixed_precision.set_global_policy(PRECISIONS[precision])


def accelerator():
    """'GPU: <name>' when the backend sees one, else 'CPU: <model name>, <n> cores'."""
    if name() == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        return f"GPU: {gpus[0].device_kind}" if gpus else f"CPU: {cpu_name()}"
    if name() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return f"GPU: {details.get('device_name', gpus[0].name)}"
    return f"CPU: {cpu_name()}"


def cpu_name():
    """The processor's model name and core count, for the records (e.g. 'AMD EPYC 7B13, 2 cores')."""
    name = cpuinfo("model name") or platform.processor() or platform.machine()
    return f"{name}, {os.cpu_count()} cores"


def cpuinfo(field):
    """The first value of a /proc/cpuinfo field, or '' where there is no such file or field."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith(field)), "")
    except OSError:
        return ""


def cpu_flags():
    return set(cpuinfo("flags").split())


def cpu_bfloat16_is_fast():
    """True where mixed bfloat16 trains faster than float32 on this CPU (bench/pipeline.py measures it).

    With AMX or AVX-512 bf16, TensorFlow's kernels run bfloat16 natively and faster; without them it emulates
    bfloat16, many times slower than float32. Those instructions are the tell; other backends stay in float32.
    """
    return name() == "tensorflow" and bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def array_feed(x, y, batch_size, seed, epoch=0):
    """fit()'s arguments for in-memory arrays, reshuffled every epoch, starting at epoch `epoch`.

    Each epoch's order follows from (seed, epoch), so a run resumed after `epoch` finished epochs gets the
    batches an uninterrupted run would have had. (Restarting the order instead replayed the first epoch's
    batches right after a resume, and inflated that epoch's training accuracy.)

    Under TensorFlow: a tf.data pipeline with autotuning off. Keras's own pipeline for arrays autotunes, and on
    a 2-core CPU the autotuner's threads compete with training's: whole epochs then ran much slower at random.
    Shuffling indices keeps a single copy of the faces. Other backends: ShuffledBatches."""
    if name() != "tensorflow":
        return dict(x=ShuffledBatches(x, y, batch_size, seed, epoch), shuffle=False)  # it shuffles, by epoch
    import tensorflow as tf

    faces, labels = tf.constant(x), tf.constant(y)
    steps = -(-len(x) // batch_size)
    # One repetition per epoch, each reshuffled: with steps_per_epoch given, Keras keeps one iterator across
    # epochs, so skipping the finished epochs' index batches puts a resumed run where it left off.
    batches = (tf.data.Dataset.range(len(x))
               .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
               .batch(batch_size)
               .repeat()
               .skip(epoch * steps)
               .map(lambda i: (tf.gather(faces, i), tf.gather(labels, i))))
    return dict(x=without_autotuning(batches), steps_per_epoch=steps, shuffle=False)  # the pipeline shuffles


class ShuffledBatches(keras.utils.PyDataset):
    """Training batches of in-memory arrays, each epoch's order drawn from (seed, epoch): the batches do not
    depend on the order Keras asks for them, and a run resumed at `epoch` gets those it would have had."""

    def __init__(self, x, y, batch_size, seed=0, epoch=0, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size, self.seed, self.epoch = x, y, batch_size, seed, epoch
        self.order = self.shuffled()

    def shuffled(self):
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.x))

    def rows(self, index):
        return self.order[index * self.batch_size:(index + 1) * self.batch_size]

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        rows = self.rows(index)
        return self.x[rows], self.y[rows]

    def on_epoch_end(self):
        self.epoch += 1
        self.order = self.shuffled()


def ordered_feed(x, y=None, batch_size=256):
    """predict()'s or evaluate()'s arguments for in-memory arrays, in order.

    Under TensorFlow: batches with autotuning off, for the same reason as array_feed."""
    if name() != "tensorflow":
        return dict(x=x, batch_size=batch_size, **({} if y is None else dict(y=y)))  # predict() takes no y
    import tensorflow as tf

    batches = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y)).batch(batch_size)
    return dict(x=without_autotuning(batches))


def validation_feed(x, y, batch_size=256):
    """fit()'s validation arguments: ordered_feed's batches under TensorFlow, else the arrays and batch size."""
    if name() != "tensorflow":
        return dict(validation_data=(x, y), validation_batch_size=batch_size)
    return dict(validation_data=ordered_feed(x, y, batch_size)["x"])


def evaluate(model, feed):
    """The model's loss and metrics on validation_feed()'s arguments, as fit() computes them, by name."""
    if "validation_batch_size" in feed:
        x, y = feed["validation_data"]
        return model.evaluate(x, y, batch_size=feed["validation_batch_size"], verbose=0, return_dict=True)
    return model.evaluate(feed["validation_data"], verbose=0, return_dict=True)


def without_autotuning(batches):
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return batches.prefetch(2).with_options(options)


def has_gpu():
    return accelerator().startswith("GPU")


def slow_training_note():
    """A note for training under JAX on a CPU, None elsewhere: XLA's CPU convolutions there reach a little over a
    third of what TensorFlow's oneDNN kernels do, so the whole step a quarter (bench/results/README.md)."""
    if name() != "jax" or has_gpu():
        return None
    tensorflow = importlib.util.find_spec("tensorflow") is not None
    return ("note: JAX trains on a CPU at about a quarter of TensorFlow's images/s"
            + ("; unset KERAS_BACKEND to train with TensorFlow" if tensorflow else
               "; with TensorFlow installed (requirements.txt) and KERAS_BACKEND unset, it trains faster"))


def gradient(fn, x):
    """d(sum of fn(x))/dx for a batch: fn maps a batch to one number per example.

    The only gradient code in the project; saliency and filter patterns build on it.
    """
    x = keras.ops.convert_to_tensor(x, "float32")
    if name() == "jax":
        import jax

        return jax.grad(lambda v: keras.ops.sum(fn(v)))(x)
    if name() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(fn(x))
        return tape.gradient(total, x)
    raise NotImplementedError(f"gradients on the {name()} backend")


# ----------------------------------------------------------------------------- fast batch norm on CPUs

FUSED_CHANNELS = 16  # layers whose channels are not a multiple of this train faster with Keras's own code


def fuse_batch_norm(model):
    """Under TensorFlow on a CPU, each BatchNormalization layer of `model` trains through TensorFlow's fused
    batch-norm kernel; returns how many layers were switched.

    Keras 3 computes batch norm in training as separate reductions and element-wise passes in float32, which on
    a CPU took about two thirds of the training step; the fused kernel computes the same statistics and
    gradients in one pass over the 16-bit activations. Only `call` of each layer instance changes: the layers
    stay Keras's own BatchNormalization, with the same variables, so a saved model is exactly what it was.
    Inference and every other case (JAX, GPUs, masks, renorm) keep Keras's code, and so do layers whose channels
    are not a multiple of FUSED_CHANNELS: there the fused kernel made the step slower, not faster (widths such
    as 1.25, bench/pipeline.py)."""
    if name() != "tensorflow" or has_gpu():
        return 0
    switched = 0
    for layer in model._flatten_layers(include_self=False):
        if (isinstance(layer, keras.layers.BatchNormalization) and not layer.renorm and layer.center
                and layer.scale and layer.axis in (-1, len(layer.input.shape) - 1)
                and layer.input.shape[-1] % FUSED_CHANNELS == 0):
            layer.call = types.MethodType(_fused_batch_norm_call, layer)
            switched += 1
    return switched


def _fused_batch_norm_call(layer, inputs, training=None, mask=None):
    """BatchNormalization.call with TensorFlow's fused kernel in training mode: the same normalization, the
    same biased batch variance in the moving statistics, the output in the layer's compute dtype."""
    if training is not True or not layer.trainable or mask is not None:
        return type(layer).call(layer, inputs, training=training, mask=mask)
    import tensorflow as tf

    rank, channels = len(inputs.shape), inputs.shape[-1]
    x = inputs if rank == 4 else tf.reshape(inputs, [-1, 1, 1, channels])  # the kernel takes NHWC
    y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        x, tf.cast(layer.gamma, "float32"), tf.cast(layer.beta, "float32"), epsilon=layer.epsilon,
        is_training=True)
    # The kernel returns the unbiased variance (n / (n - 1) times the biased one it normalizes with); Keras's
    # moving variance averages the biased one.
    n = tf.cast(tf.size(x) // channels, "float32")
    variance = variance * ((n - 1.0) / n)
    layer.moving_mean.assign(layer.moving_mean * layer.momentum + mean * (1.0 - layer.momentum))
    layer.moving_variance.assign(layer.moving_variance * layer.momentum + variance * (1.0 - layer.momentum))
    y = tf.cast(y, layer.compute_dtype)
    return y if rank == 4 else tf.reshape(y, tf.shape(inputs))


# ----------------------------------------------------------------------------- other file formats (TensorFlow)

def export_format(model, path, kind):
    """Write `model` as a TensorFlow SavedModel folder (kind "savedmodel") or a LiteRT/TFLite file ("litert")
    through Keras's own model.export. Both formats are TensorFlow's: TensorFlow must be installed."""
    _require_tensorflow(kind)
    keras_format = {"savedmodel": "tf_saved_model", "litert": "litert"}[kind]
    model.export(str(path), format=keras_format, verbose=False)


def predict_exported(path, kind, x):
    """Probabilities of the faces `x` from an exported SavedModel folder or LiteRT file."""
    import tensorflow as tf

    x = np.asarray(x, "float32")
    if kind == "savedmodel":
        loaded = tf.saved_model.load(str(path))  # held while it runs: its function refers to its variables
        return loaded.serve(x).numpy()
    interpreter = tf.lite.Interpreter(model_path=str(path))
    given, wanted = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(given["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(given["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(wanted["index"])


def _require_tensorflow(kind):
    if importlib.util.find_spec("tensorflow") is None:
        raise InputError("--format", f"{kind} is a TensorFlow format: install tensorflow to write it")
