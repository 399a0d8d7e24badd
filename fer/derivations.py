"""The report's derivations, written out in NumPy and checked against Keras and autodiff.

    conv_output_size      (n + 2p - d(k - 1) - 1) // s + 1
    batchnorm_backward    dl/dx_hat, dl/dvar, dl/dmean, dl/dx, dl/dgamma, dl/dbeta
    softmax_xent_grad     dl/dz = softmax(z) - y

`checks()` runs every comparison on random inputs and returns one row per
quantity with its largest error; the tests and report.py both use it.
"""
import keras
import numpy as np
from keras import ops

from . import backend

FORMULAS = {
    "conv_output_size": r"o = \lfloor (n + 2p - d(k-1) - 1) / s \rfloor + 1; \mathrm{same}: o = \lceil n / s \rceil",
    "batchnorm_forward": r"\mu = \frac{1}{m}\sum_i x_i,\ \sigma^2 = \frac{1}{m}\sum_i (x_i-\mu)^2,\ "
                         r"\hat x_i = \frac{x_i-\mu}{\sqrt{\sigma^2+\epsilon}},\ y_i = \gamma\hat x_i + \beta",
    "dl/dx_hat": r"\frac{\partial l}{\partial \hat x_i} = \frac{\partial l}{\partial y_i}\gamma",
    "dl/dvar": r"\frac{\partial l}{\partial \sigma^2} = \sum_i \frac{\partial l}{\partial \hat x_i}(x_i-\mu)"
               r"\cdot -\frac{1}{2}(\sigma^2+\epsilon)^{-3/2}",
    "dl/dmean": r"\frac{\partial l}{\partial \mu} = -\sum_i \frac{\partial l}{\partial \hat x_i}"
                r"\frac{1}{\sqrt{\sigma^2+\epsilon}} + \frac{\partial l}{\partial \sigma^2}\frac{-2}{m}"
                r"\sum_i (x_i-\mu)",
    "dl/dx": r"\frac{\partial l}{\partial x_i} = \frac{\partial l}{\partial \hat x_i}\frac{1}{\sqrt{\sigma^2+"
             r"\epsilon}} + \frac{\partial l}{\partial \sigma^2}\frac{2(x_i-\mu)}{m} + "
             r"\frac{\partial l}{\partial \mu}\frac{1}{m}",
    "dl/dgamma": r"\frac{\partial l}{\partial \gamma} = \sum_i \frac{\partial l}{\partial y_i}\hat x_i",
    "dl/dbeta": r"\frac{\partial l}{\partial \beta} = \sum_i \frac{\partial l}{\partial y_i}",
    "softmax_xent_grad": r"l = -\sum_k y_k \log \mathrm{softmax}(z)_k \Rightarrow "
                         r"\frac{\partial l}{\partial z} = \mathrm{softmax}(z) - y",
}


def conv_output_size(n, kernel, stride=1, padding="valid", dilation=1):
    """Output length of a convolution or pooling along one axis; padding 'valid', 'same' or a number."""
    if padding == "same":
        return -(-n // stride)
    pad = 0 if padding == "valid" else int(padding)
    return (n + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def batchnorm_forward(x, gamma, beta, eps=1e-3):
    """Training-mode batch norm over every axis but the last (channels); returns y and what backward needs."""
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axes)
    var = x.var(axes)
    x_hat = (x - mean) / np.sqrt(var + eps)
    return gamma * x_hat + beta, dict(x=x, mean=mean, var=var, x_hat=x_hat, gamma=gamma, eps=eps, axes=axes)


def batchnorm_backward(dy, cache):
    """The chain rule through batch norm, term by term as the report derives it."""
    x, mean, var, x_hat, gamma, eps, axes = (cache[k] for k in ("x", "mean", "var", "x_hat", "gamma", "eps", "axes"))
    m = x.size // x.shape[-1]
    inv_std = 1.0 / np.sqrt(var + eps)
    dx_hat = dy * gamma
    dvar = np.sum(dx_hat * (x - mean), axes) * -0.5 * inv_std ** 3
    dmean = -np.sum(dx_hat, axes) * inv_std + dvar * -2.0 * np.sum(x - mean, axes) / m
    dx = dx_hat * inv_std + dvar * 2.0 * (x - mean) / m + dmean / m
    return dict(dx_hat=dx_hat, dvar=dvar, dmean=dmean, dx=dx, dgamma=np.sum(dy * x_hat, axes),
                dbeta=np.sum(dy, axes))


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def softmax_xent_grad(logits, y):
    """d/dz of -sum_k y_k log softmax(z)_k, per example: softmax(z) - y."""
    return softmax(logits) - y


# ----------------------------------------------------------------------------- checks

def _conv_shape_checks():
    """Every configuration's formula against Keras's own output shape."""

    worst, count = 0, 0
    for n in (48, 47, 24, 7):
        for kernel in (1, 3, 5):
            for stride in (1, 2, 3):
                for padding in ("valid", "same"):
                    for dilation in (1, 2):
                        if stride > 1 and dilation > 1 or dilation * (kernel - 1) >= n:
                            continue  # Keras refuses strided dilation; a kernel wider than the input is empty
                        layer = keras.layers.Conv2D(4, kernel, strides=stride, padding=padding,
                                                    dilation_rate=dilation)
                        keras_n = layer.compute_output_shape((None, n, n, 1))[1]
                        worst = max(worst, abs(keras_n - conv_output_size(n, kernel, stride, padding, dilation)))
                        count += 1
                    pool = keras.layers.MaxPooling2D(kernel, strides=stride, padding=padding)
                    if kernel <= n:
                        keras_n = pool.compute_output_shape((None, n, n, 1))[1]
                        worst = max(worst, abs(keras_n - conv_output_size(n, kernel, stride, padding)))
                        count += 1
    return [("conv_output_size", f"{count} conv/pool configurations vs Keras compute_output_shape", float(worst))]


def _batchnorm_checks(seed):
    """Forward against keras.layers.BatchNormalization in training mode; each gradient against autodiff."""

    rng = np.random.default_rng(seed)
    x = rng.normal(2.0, 3.0, (16, 5, 5, 3)).astype("float64")
    gamma, beta = rng.normal(1, 0.5, 3), rng.normal(0, 0.5, 3)
    dy = rng.normal(0, 1, x.shape)
    eps = 1e-3
    y, cache = batchnorm_forward(x, gamma, beta, eps)
    grads = batchnorm_backward(dy, cache)

    layer = keras.layers.BatchNormalization(epsilon=eps)
    layer.build(x.shape)
    layer.gamma.assign(gamma.astype("float32"))
    layer.beta.assign(beta.astype("float32"))
    keras_y = np.asarray(layer(x.astype("float32"), training=True))
    upstream = ops.convert_to_tensor(dy, "float32")

    def loss_of_x(v):  # sum(dy * BN(x)), through the Keras layer itself
        return ops.sum(upstream * layer(v, training=True))

    # The intermediate quantities are gradients of the same loss with respect to x_hat, var and mean,
    # computed by autodiff of a forward pass in which that quantity is the free variable.
    axes = cache["axes"]
    mean, var = cache["mean"], cache["var"]
    t = lambda a: ops.convert_to_tensor(a, "float32")  # noqa: E731

    def loss_of_x_hat(x_hat):
        return ops.sum(upstream * (t(gamma) * x_hat + t(beta)))

    def loss_of_var(v):  # x_hat depends on var directly (the path through mean is held fixed)
        return ops.sum(upstream * (t(gamma) * (t(x) - t(mean)) / ops.sqrt(v + eps) + t(beta)))

    def loss_of_mean(mu):  # through both x - mu and var(mu) = mean((x - mu)^2)
        v = ops.mean((t(x) - mu) ** 2, axis=axes)
        return ops.sum(upstream * (t(gamma) * (t(x) - mu) / ops.sqrt(v + eps) + t(beta)))

    def loss_of_gamma(g):
        return ops.sum(upstream * (g * t(cache["x_hat"]) + t(beta)))

    def loss_of_beta(b):
        return ops.sum(upstream * (t(gamma) * t(cache["x_hat"]) + b))

    auto = {
        "dx_hat": backend.gradient(loss_of_x_hat, cache["x_hat"]),
        "dvar": backend.gradient(loss_of_var, var),
        "dmean": backend.gradient(loss_of_mean, mean),
        "dx": backend.gradient(loss_of_x, x),
        "dgamma": backend.gradient(loss_of_gamma, gamma),
        "dbeta": backend.gradient(loss_of_beta, beta),
    }
    rows = [("batchnorm_forward", "vs keras.layers.BatchNormalization(training=True)",
             _relative_error(y, keras_y))]
    for key, label in [("dx_hat", "dl/dx_hat"), ("dvar", "dl/dvar"), ("dmean", "dl/dmean"), ("dx", "dl/dx"),
                       ("dgamma", "dl/dgamma"), ("dbeta", "dl/dbeta")]:
        against = "autodiff through the Keras layer" if key == "dx" else "autodiff"
        rows.append((label, f"vs {against}", _relative_error(grads[key], np.asarray(auto[key]))))
    return rows


def _softmax_checks(seed):

    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (32, 7))
    y = np.eye(7)[rng.integers(0, 7, 32)]
    loss = keras.losses.CategoricalCrossentropy(from_logits=True, reduction="sum")
    auto = backend.gradient(lambda z: loss(ops.convert_to_tensor(y, "float32"), z), logits)
    return [("softmax_xent_grad", "vs autodiff of keras CategoricalCrossentropy(from_logits=True)",
             _relative_error(softmax_xent_grad(logits, y), np.asarray(auto)))]


def _relative_error(ours, theirs):
    ours, theirs = np.asarray(ours, "float64"), np.asarray(theirs, "float64")
    return float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-12))


def checks(seed=0):
    """[(quantity, compared with, largest error)]: shape checks in output pixels, the rest relative to
    the largest reference value. Keras computes in float32, so ~1e-6 is agreement."""
    return _conv_shape_checks() + _batchnorm_checks(seed) + _softmax_checks(seed)
