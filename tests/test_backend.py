"""The one gradient function, on whichever backend runs the tests."""
import keras
import numpy as np
import pytest
from keras import ops

from fer import backend


def test_gradient_of_a_per_example_function():
    x = np.random.default_rng(0).normal(size=(3, 48, 48, 1)).astype("float32")
    grad = backend.gradient(lambda v: ops.sum(v ** 2, axis=(1, 2, 3)) + ops.sum(v[:, :2], axis=(1, 2, 3)), x)
    expected = 2 * x
    expected[:, :2] += 1
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-5, atol=1e-5)


def test_precision_switch_and_device():
    backend.set_precision("bfloat16")
    try:
        import keras

        assert keras.mixed_precision.dtype_policy().name == "mixed_bfloat16"
    finally:
        backend.set_precision("float32")
    assert backend.accelerator().startswith(("CPU: ", "GPU: "))


def test_cpu_preset_takes_bfloat16_only_where_the_cpu_has_bfloat16_instructions(monkeypatch):
    from conftest import train_cnn_settings

    args = ["--train", "x.csv", "--preset", "cpu"]  # as a script that compares runs resolves it: fixed epochs
    monkeypatch.setattr(backend, "name", lambda: "tensorflow")
    for flags in ({"avx2", "amx_bf16", "amx_tile"}, {"avx2", "avx512f", "avx512_bf16"}):
        monkeypatch.setattr(backend, "cpu_flags", lambda: flags)
        assert train_cnn_settings(*args)["precision"] == "bfloat16"
        assert train_cnn_settings(*args)["epochs"] == 20  # the 30-minute budget buys more epochs
    monkeypatch.setattr(backend, "cpu_flags", lambda: {"avx2", "fma", "avx512f"})
    assert train_cnn_settings(*args)["precision"] == "float32"
    assert train_cnn_settings(*args)["epochs"] == 8
    monkeypatch.setattr(backend, "cpu_flags", lambda: {"amx_bf16"})
    monkeypatch.setattr(backend, "name", lambda: "jax")
    assert train_cnn_settings(*args)["precision"] == "float32"
    # an explicit flag wins
    args = ["--train", "x.csv", "--preset", "cpu", "--precision", "float32", "--epochs", "3"]
    monkeypatch.setattr(backend, "name", lambda: "tensorflow")
    assert (train_cnn_settings(*args)["precision"], train_cnn_settings(*args)["epochs"]) == ("float32", 3)


def test_a_model_saved_in_mixed_bfloat16_loads_computing_in_float32(tmp_path):
    import keras

    from fer import inference, models

    backend.set_precision("bfloat16")
    try:
        model = models.build_cnn("vgg", mean=100.0, variance=2500.0, width=0.25)
        model.save(tmp_path / "bf16.keras")
        weights = model.get_weights()
    finally:
        backend.set_precision("float32")
    assert {layer.dtype_policy.name for layer in model.layers} >= {"mixed_bfloat16"}
    loaded = inference.load_model(tmp_path / "bf16.keras")
    assert {layer.dtype_policy.name for layer in loaded._flatten_layers()} == {"float32"}
    for before, after in zip(weights, loaded.get_weights()):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))
    x = np.random.default_rng(0).integers(0, 256, (8, 48, 48, 1)).astype("float32")
    probabilities = loaded.predict(x, verbose=0)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert isinstance(loaded, keras.Model)


def test_width_comes_from_the_preset_unless_given(tmp_path, capsys):
    from conftest import ROOT, run_script, train_cnn_settings
    from fer.settings import PRESETS

    for preset in PRESETS:
        args = ["--train", "x.csv", "--preset", preset, "--precision", "float32", "--epochs", "1"]
        assert train_cnn_settings(*args)["width"] == PRESETS[preset]["width"]
    assert train_cnn_settings("--train", "x.csv", "--preset", "gpu", "--width", "0.5")["width"] == 0.5
    out = tmp_path / "cnn.keras"
    assert run_script("train_cnn.py", "--train", ROOT / "data/sample/train.csv.xz", "--preset", "smoke",
                      "--width", "0", "--model", out) == 2
    assert capsys.readouterr().err.strip() == "error: --width: must be between 0.03125 and 8, got 0.0"
    assert not out.exists()


def test_a_preset_may_change_a_default_and_the_flag_still_wins():
    from conftest import train_cnn_settings
    from fer.settings import DEFAULTS, PRESETS

    changed = {(preset, key) for preset, values in PRESETS.items() for key in values
               if key in DEFAULTS and values[key] != DEFAULTS[key]}
    assert ("gpu", "erase") in changed
    for preset, key in changed:
        args = ["--train", "x.csv", "--preset", preset, "--precision", "float32"]
        assert train_cnn_settings(*args)[key] == PRESETS[preset][key]
        if key not in PRESETS["cpu"]:
            assert train_cnn_settings(*args, "--preset", "cpu", "--epochs", "1")[key] == DEFAULTS[key]
    assert train_cnn_settings("--train", "x.csv", "--preset", "gpu", "--erase", "0")["erase"] == 0


def test_the_cpu_presets_clean_tail_gives_way_to_a_command_line_that_leaves_it_nothing_to_turn_off():
    from conftest import train_cnn_settings
    from fer.errors import InputError

    base = ["--train", "x.csv", "--preset", "cpu", "--precision", "float32", "--epochs", "1"]
    preset = train_cnn_settings(*base)
    assert (preset["clean_tail"], preset["tail_views"], preset["erase"]) == (0.15, True, 0.25)
    assert train_cnn_settings(*base, "--clean-tail", "0")["tail_views"] is False
    kept = train_cnn_settings(*base, "--no-tail-views")
    assert (kept["clean_tail"], kept["tail_views"]) == (0.15, False)
    erasing = train_cnn_settings(*base, "--augment", "none")  # erasing stays, so its tail does; no warps to view
    assert (erasing["clean_tail"], erasing["tail_views"]) == (0.15, False)
    bare = train_cnn_settings(*base, "--augment", "none", "--erase", "0")
    assert (bare["clean_tail"], bare["tail_views"]) == (0.0, False)
    with pytest.raises(InputError, match="--tail-views"):  # asked for on the command line, still refused
        train_cnn_settings(*base, "--clean-tail", "0", "--tail-views")
    with pytest.raises(InputError, match="--clean-tail"):
        train_cnn_settings(*base, "--augment", "none", "--erase", "0", "--clean-tail", "0.2")


class Seen(keras.layers.Layer):
    """Passes faces through, recording those of each training step (the model runs eagerly)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []

    def call(self, x, training=None):
        if training:
            self.seen.append(np.asarray(x)[:, 0].copy())
        return x


def batches_fit_sees(x, epochs, start_epoch=0):
    seen = Seen()
    model = keras.Sequential([keras.Input((1,)), seen, keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    model.fit(**backend.array_feed(x, 2 * x, 8, seed=0, epoch=start_epoch), epochs=epochs, verbose=0)
    return list(seen.seen)


def test_the_array_feed_gives_every_face_once_an_epoch_reshuffled_and_a_resumed_run_its_own_epochs():
    x = np.arange(50, dtype="float32").reshape(50, 1)
    batches = batches_fit_sees(x, 3)
    assert [len(b) for b in batches] == ([8] * 6 + [2]) * 3
    orders = [np.concatenate(batches[7 * e:7 * e + 7]) for e in range(3)]
    assert all(sorted(order) == list(range(50)) for order in orders)
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    assert not np.array_equal(orders[0], np.arange(50))
    # Resumed after two epochs, fit sees what the uninterrupted run saw in its third; restarting the order
    # replayed the first epoch instead, and inflated that epoch's training accuracy.
    np.testing.assert_array_equal(np.concatenate(batches_fit_sees(x, 1, start_epoch=2)), orders[2])
    feed = backend.array_feed(x, 2 * x, 8, seed=0)
    if backend.name() == "tensorflow":
        assert feed["x"].options().autotune.enabled is False  # Keras's autotuned feed made epochs slow at random
        pairs = [(np.asarray(a), np.asarray(b)) for a, b in feed["x"].take(7)]
    else:
        pairs = [feed["x"][i] for i in range(len(feed["x"]))]
    for a, b in pairs:
        np.testing.assert_array_equal(b, 2 * a)  # faces and labels stay paired


def test_the_ordered_feed_keeps_faces_in_order_in_full_batches():
    x = np.arange(50, dtype="float32").reshape(50, 1)
    for y in (None, 2 * x):
        feed = backend.ordered_feed(x, y, 16)
        if backend.name() != "tensorflow":
            assert feed["x"] is x and feed.get("y") is y and feed["batch_size"] == 16
            continue
        assert feed["x"].options().autotune.enabled is False  # as for training: steady speed
        batches = [tuple(np.asarray(t) for t in (b if y is not None else (b,))) for b in feed["x"]]
        assert [len(b[0]) for b in batches] == [16, 16, 16, 2]
        np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
        if y is not None:
            np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    validation = backend.validation_feed(x, 2 * x, 16)
    assert set(validation) == ({"validation_data"} if backend.name() == "tensorflow"
                               else {"validation_data", "validation_batch_size"})


def test_predictions_through_the_ordered_feed_match_the_model_called_directly():
    from fer.inference import predict_probabilities
    from fer.models import build_cnn

    model = build_cnn("vgg", 128.0, 4000.0, "none", width=0.25)
    x = np.random.default_rng(1).uniform(0, 255, (70, 48, 48, 1)).astype("float32")
    direct = np.asarray(model(x, training=False))
    np.testing.assert_allclose(predict_probabilities([model], x, batch_size=32), direct, atol=1e-5)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape", [(16, 6, 6, 32), (32, 32)])  # after a convolution, after a dense layer
def test_fused_batch_norm_trains_as_keras_batch_norm_does(precision, shape):
    """The fast path of training (TensorFlow on a CPU): outputs, gradients and moving statistics match Keras's
    own BatchNormalization; the layer stays one, and inference is untouched."""
    if backend.name() != "tensorflow" or backend.has_gpu():
        pytest.skip("the fused path is for TensorFlow on a CPU")
    import tensorflow as tf

    backend.set_precision(precision)
    try:
        x = tf.constant(np.random.default_rng(0).normal(3, 2, shape).astype("float32"))
        weights = np.random.default_rng(1).uniform(0, 1, shape).astype("float32")
        results = []
        for fused in (False, True):
            inputs = keras.Input(shape[1:])
            layer = keras.layers.BatchNormalization(momentum=0.9)
            model = keras.Model(inputs, layer(inputs))
            layer.gamma.assign(np.linspace(0.5, 2, shape[-1]))
            layer.beta.assign(np.linspace(-1, 1, shape[-1]))
            if fused:
                assert backend.fuse_batch_norm(model) == 1
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = model(x, training=True)
                loss = tf.reduce_sum(tf.cast(y, "float32") ** 2 * weights)  # per element: no cancelling
            grads = tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])
            assert y.dtype == keras.mixed_precision.dtype_policy().compute_dtype
            results.append([np.asarray(tf.cast(v, "float32")) for v in (y, *grads)]
                           + [np.asarray(layer.moving_mean), np.asarray(layer.moving_variance),
                              np.asarray(tf.cast(model(x, training=False), "float32"))])
            assert type(layer) is keras.layers.BatchNormalization
        tolerance = 2e-2 if precision == "bfloat16" else 1e-4
        for keras_value, fused_value in zip(*results):
            scale = np.abs(keras_value).max() + 1e-6
            np.testing.assert_allclose(fused_value / scale, keras_value / scale, atol=tolerance)
        # the moving variance is the biased batch variance's average, as Keras keeps it
        seen = tf.cast(tf.cast(x, keras.mixed_precision.dtype_policy().compute_dtype), "float32")  # as the layer does
        biased = np.var(np.asarray(seen).reshape(-1, shape[-1]), axis=0)
        np.testing.assert_allclose(results[1][5], 0.9 * 1.0 + 0.1 * biased, rtol=1e-4)
    finally:
        backend.set_precision("float32")


def test_fused_batch_norm_only_where_the_channels_suit_the_kernel():
    """Batch norm over 40 channels keeps Keras's code (the fused kernel was slower there); over 48 it switches."""
    inputs = keras.Input((6, 6, 3))
    narrow = keras.layers.BatchNormalization()
    wide = keras.layers.BatchNormalization()
    x = narrow(keras.layers.Conv2D(40, 3)(inputs))
    model = keras.Model(inputs, wide(keras.layers.Conv2D(48, 3)(x)))
    switched = backend.fuse_batch_norm(model)
    if backend.name() != "tensorflow" or backend.has_gpu():
        assert switched == 0
        return
    assert switched == 1
    assert "call" not in vars(narrow) and "call" in vars(wide)
    y = np.asarray(model(np.ones((4, 6, 6, 3), "float32"), training=True))
    assert y.shape == (4, 2, 2, 48) and np.isfinite(y).all()


def test_fused_batch_norm_leaves_saved_models_as_they_were(tmp_path):
    """A model trained on the fast path saves as plain Keras layers: the file loads without the project."""
    from fer import models

    model = models.build_cnn("vgg", mean=100.0, variance=2500.0, width=0.5, augment="none")  # 16 channels and up
    switched = backend.fuse_batch_norm(model)
    if backend.name() == "tensorflow" and not backend.has_gpu():
        assert switched == sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) > 0
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (8, 48, 48, 1)).astype("float32")
    model.fit(x, np.eye(7, dtype="float32")[np.arange(8) % 7], epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    import zipfile

    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        config = archive.read("config.json").decode()
    assert '"class_name": "BatchNormalization"' in config and "fer." not in config
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_training_under_jax_on_a_cpu_says_that_tensorflow_trains_faster(monkeypatch):
    monkeypatch.setattr(backend, "name", lambda: "jax")
    monkeypatch.setattr(backend, "has_gpu", lambda: False)
    assert "unset KERAS_BACKEND" in backend.slow_training_note()
    real_find_spec = backend.importlib.util.find_spec
    monkeypatch.setattr(backend.importlib.util, "find_spec",
                        lambda module, *a: None if module == "tensorflow" else real_find_spec(module, *a))
    assert "with TensorFlow installed" in backend.slow_training_note()
    monkeypatch.setattr(backend, "has_gpu", lambda: True)
    assert backend.slow_training_note() is None
    monkeypatch.setattr(backend, "has_gpu", lambda: False)
    monkeypatch.setattr(backend, "name", lambda: "tensorflow")
    assert backend.slow_training_note() is None
