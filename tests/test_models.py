"""Architectures build, and the DNN matches a CNN's trainable parameters within 1%."""
import pytest

from fer.models import ARCHITECTURES, build_cnn, build_dnn, dnn_parameters, match_widths, trainable_parameters


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_dnn_matches_each_registered_cnn_within_one_percent(arch):
    cnn = build_cnn(arch, mean=100.0, variance=2500.0)
    target = trainable_parameters(cnn)
    assert cnn.output_shape == (None, 7)
    widths = match_widths(target, depth=3)
    dnn = build_dnn(widths, mean=100.0, variance=2500.0)
    assert trainable_parameters(dnn) == dnn_parameters(widths)
    assert abs(trainable_parameters(dnn) - target) / target < 0.01


@pytest.mark.parametrize("target,depth", [(400_000, 1), (150_000, 2), (777_777, 3), (4_100_000, 4), (123_456, 5)])
def test_matching_across_sizes_and_depths(target, depth):
    widths = match_widths(target, depth)
    assert len(widths) == depth
    assert abs(dnn_parameters(widths) - target) / target < 0.01


def test_width_multiplier_scales_the_default():
    small, full = (trainable_parameters(build_cnn("vgg", width=w)) for w in (0.5, 1.0))
    assert 3.2 < full / small < 4.2  # conv weights scale with width squared


def test_a_single_layer_cannot_match_a_small_cnn_and_train_dnn_says_so(tmp_path, capsys):
    widths = match_widths(20_000, 1)  # one layer moves in steps of 2,314 parameters
    assert abs(dnn_parameters(widths) - 20_000) / 20_000 > 0.01
    from conftest import ROOT, run_script

    assert run_script("train_dnn.py", "--train", ROOT / "data/sample/train.csv.xz", "--preset", "smoke",
                      "--params", "20000", "--depth", "1", "--model", tmp_path / "dnn.keras") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --depth: 1 hidden layer(s) can't come within 1% of 20,000 parameters") and \
        "use --depth 2" in err and err.count("\n") == 1
    assert not (tmp_path / "dnn.keras").exists()


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_without_batchnorm_every_norm_layer_is_gone_and_convolutions_get_biases(arch):
    import keras

    with_bn, without = build_cnn(arch, width=0.25), build_cnn(arch, width=0.25, batchnorm=False)
    kinds = lambda m: [type(layer) for layer in m.layers]  # noqa: E731
    assert keras.layers.BatchNormalization in kinds(with_bn)
    assert keras.layers.BatchNormalization not in kinds(without)
    convs = [layer for layer in without.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(layer.use_bias for layer in convs)


def test_forward_flops_counts_convolutions_and_dense_layers():
    import keras

    from fer.models import forward_flops

    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(8, 5, padding="valid")(x)  # 24 -> 20
    outputs = keras.layers.Dense(7)(keras.layers.Flatten()(x))
    expected = 2 * (48 * 48 * 9 * 1 * 4 + 20 * 20 * 25 * 4 * 8 + 20 * 20 * 8 * 7)
    assert forward_flops(keras.Model(inputs, outputs)) == expected


def test_resnet_is_the_vgg_with_a_projected_shortcut_around_each_stage():
    """Same stages, head and (within 4%) FLOPs and parameters: the comparison is about the shortcuts alone."""
    import keras

    from fer.models import forward_flops

    vgg, resnet = build_cnn("vgg"), build_cnn("resnet")
    sums = [layer for layer in resnet.layers if isinstance(layer, keras.layers.Add)]
    assert len(sums) == 4 and not any(isinstance(layer, keras.layers.Add) for layer in vgg.layers)
    assert [resnet.get_layer(f"shortcut{i}").kernel_size for i in range(1, 5)] == [(1, 1)] * 4
    assert 1 < forward_flops(resnet) / forward_flops(vgg) < 1.04
    assert 1 < trainable_parameters(resnet) / trainable_parameters(vgg) < 1.04
    # every stage's sum feeds its ReLU, whose maps are what the next stage and the explanations see
    assert [resnet.get_layer(f"block{i}").input.shape[1] for i in range(1, 5)] == [48, 24, 12, 6]
