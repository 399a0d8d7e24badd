"""RandomAffine: right geometry, right statistics, one resampling, survives save/load.
RandomErasing: one noise rectangle of the right size; RandomDegrade: part way to a true Gaussian blur, noise of
the drawn size; MixupBatches: blends that match their labels.
CleanTail: at strength 0 both layers leave each face as it is (or mirrored), in the compiled step too.
tta_views: the face, its mirror, and zooms that magnify below 1 and shrink above."""
import math

import keras
import numpy as np
import pytest
from keras import ops

from fer.augment import TTA_ZOOMS, CleanTail, MixupBatches, RandomAffine, RandomDegrade, RandomErasing, tta_views


def dot_image(row, col, size=48):
    img = np.zeros((size, size, 1), "float32")
    img[row - 1:row + 2, col - 1:col + 2] = 255.0
    return img


def center_of_mass(img):
    img = np.asarray(img)[..., 0]
    rows, cols = np.indices(img.shape)
    return (rows * img).sum() / img.sum(), (cols * img).sum() / img.sum()


def expected_position(p, row, col, size=48):
    """Invert input = c + R Sh Z F (out - c) + t for one dot."""
    a, s = p["angle"], p["shear"]
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    shear = np.array([[1, -math.sin(s)], [0, math.cos(s)]])
    m = rot @ shear @ np.diag([p["zx"] * p["flip"], p["zy"]])
    c = (size - 1) / 2
    out = np.linalg.solve(m, np.array([col - c - p["tx"], row - c - p["ty"]])) + c
    return out[1], out[0]


@pytest.mark.parametrize("seed", range(6))
def test_one_composed_warp_moves_a_dot_where_the_matrix_says(seed):
    rng = np.random.default_rng(seed)
    p = {"angle": rng.uniform(-0.5, 0.5), "shear": rng.uniform(-0.2, 0.2), "tx": rng.uniform(-6, 6),
         "ty": rng.uniform(-6, 6), "zx": rng.uniform(0.85, 1.15), "zy": rng.uniform(0.85, 1.15),
         "flip": rng.choice([-1.0, 1.0])}
    img = dot_image(18, 30)
    batch = {k: ops.convert_to_tensor([v], "float32") for k, v in p.items()}
    matrix = RandomAffine.transforms(batch, 48, 48)
    out = ops.image.affine_transform(img[None], matrix, fill_mode="constant")[0]
    np.testing.assert_allclose(center_of_mass(out), expected_position(p, 18, 30), atol=0.6)


def test_identity_parameters_leave_the_image_untouched():
    img = np.random.default_rng(0).uniform(0, 255, (1, 48, 48, 1)).astype("float32")
    p = {k: ops.convert_to_tensor([v], "float32") for k, v in
         dict(angle=0, shear=0, tx=0, ty=0, zx=1, zy=1, flip=1).items()}
    out = ops.image.affine_transform(img, RandomAffine.transforms(p, 48, 48))
    np.testing.assert_allclose(out, img, atol=1e-3)  # resampled once, at the pixel centres: no blur


def test_parameters_follow_the_imagedatagenerator_ranges():
    p = {k: np.asarray(v) for k, v in RandomAffine(seed=1).sample_parameters(20000).items()}
    deg = math.pi / 180
    assert np.abs(p["angle"]).max() <= 30 * deg and np.abs(p["angle"]).max() > 29 * deg
    assert abs(p["angle"].std() - 60 * deg / math.sqrt(12)) < 0.01  # uniform, not clustered
    assert np.abs(p["tx"]).max() <= 0.2 * 48 and np.abs(p["ty"]).max() > 0.19 * 48
    assert 0.8 <= p["zx"].min() and p["zy"].max() <= 1.2 and abs(p["zx"].mean() - 1) < 0.01
    assert np.abs(p["shear"]).max() <= 0.2 * deg  # ImageDataGenerator's shear is in degrees
    assert abs((p["flip"] < 0).mean() - 0.5) < 0.02
    assert abs(np.corrcoef(p["zx"], p["zy"])[0, 1]) < 0.05  # zoom drawn per axis


def test_layer_output_statistics_for_shifts_and_flips():
    layer = RandomAffine(rotation=0, shift=0.2, zoom=(1, 1), shear=0, flip=False, fill_mode="constant", seed=3)
    images = np.repeat(dot_image(24, 24)[None], 400, axis=0)
    out = np.asarray(layer(images, training=True))
    moved = np.array([center_of_mass(o) for o in out]) - 24
    assert np.abs(moved).max() <= 9.6 + 0.5
    assert np.all(np.abs(moved.std(0) - 19.2 / math.sqrt(12)) < 0.8)
    flip_only = RandomAffine(rotation=0, shift=0, zoom=(1, 1), shear=0, flip=True, seed=4)
    cols = np.array([center_of_mass(o)[1] for o in np.asarray(flip_only(np.repeat(dot_image(24, 10)[None], 400, 0),
                                                                          training=True))])
    assert np.all(np.isclose(cols, 10, atol=0.1) | np.isclose(cols, 37, atol=0.1))
    assert 0.4 < np.isclose(cols, 37, atol=0.1).mean() < 0.6


def test_inactive_at_inference():
    images = np.random.default_rng(0).uniform(0, 255, (4, 48, 48, 1)).astype("float32")
    np.testing.assert_array_equal(RandomAffine()(images, training=False), images)
    assert not np.allclose(RandomAffine(seed=0)(images, training=True), images)


def test_model_with_the_layer_round_trips_through_save_and_load(tmp_path):
    inputs = keras.Input((48, 48, 1))
    x = RandomAffine(rotation=12, shift=0.1, zoom=(0.9, 1.3), shear=5, flip=False, seed=7)(inputs)
    x = keras.layers.Flatten()(keras.layers.Conv2D(2, 3)(x))
    model = keras.Model(inputs, keras.layers.Dense(7)(x))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    layer = loaded.layers[1]
    assert isinstance(layer, RandomAffine)
    assert layer.get_config() == model.layers[1].get_config()
    assert (layer.rotation, layer.zoom, layer.shear, layer.flip) == (12.0, (0.9, 1.3), 5.0, False)
    images = np.random.default_rng(1).uniform(0, 255, (3, 48, 48, 1)).astype("float32")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-5)
    assert not np.allclose(layer(images, training=True), images)


def erased_boxes(before, after):
    """Per image: the bounding box (top, left, bottom, right) of the changed pixels, or None."""
    boxes = []
    for changed in np.asarray(after)[..., 0] != np.asarray(before)[..., 0]:
        rows, cols = np.nonzero(changed)
        boxes.append((rows.min(), cols.min(), rows.max() + 1, cols.max() + 1) if len(rows) else None)
    return boxes


def test_erasing_replaces_one_rectangle_of_the_documented_size_by_noise():
    images = np.full((500, 48, 48, 1), 128.0, "float32")
    out = np.asarray(RandomErasing(1.0, seed=5)(images, training=True))
    boxes = erased_boxes(images, out)
    assert all(b is not None for b in boxes)
    for img, (top, left, bottom, right) in zip(out[..., 0], boxes):
        box = img[top:bottom, left:right]
        # One solid rectangle: (almost) every pixel inside it changed, none outside.
        assert (box != 128.0).mean() > 0.99
        assert np.count_nonzero(img != 128.0) == np.count_nonzero(box != 128.0)
    areas = np.array([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]) / 48 ** 2
    assert areas.min() >= 0.01 and areas.max() <= 0.36 and 0.13 < areas.mean() < 0.2
    assert 0 <= out.min() and out.max() <= 255 and abs(out[out != 128.0].mean() - 127.5) < 3  # uniform noise
    # Placed anywhere: every quadrant of the face gets erased in some images.
    centres = np.array([((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in boxes])
    quadrants = {(r < 24, c < 24) for r, c in centres}
    assert len(quadrants) == 4


def test_erasing_rate_is_the_share_of_images_touched_and_inference_is_untouched():
    images = np.random.default_rng(0).uniform(0, 255, (2000, 48, 48, 1)).astype("float32")
    touched = [b is not None for b in erased_boxes(images, RandomErasing(0.3, seed=1)(images, training=True))]
    assert abs(np.mean(touched) - 0.3) < 0.04
    np.testing.assert_array_equal(RandomErasing(1.0)(images, training=False), images)
    np.testing.assert_array_equal(RandomErasing(0.0)(images, training=True), images)
    with pytest.raises(ValueError, match="between 0 and 1"):
        RandomErasing(1.5)


def test_model_with_erasing_round_trips_through_save_and_load(tmp_path):
    inputs = keras.Input((48, 48, 1))
    x = RandomErasing(0.7, area=(0.05, 0.2), seed=2)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(7)(keras.layers.Flatten()(x)))
    model.save(tmp_path / "m.keras")
    layer = keras.saving.load_model(tmp_path / "m.keras").layers[1]
    assert isinstance(layer, RandomErasing) and (layer.rate, layer.area) == (0.7, (0.05, 0.2))


def test_degrading_blurs_part_way_to_a_true_gaussian_blur():
    from scipy.ndimage import gaussian_filter

    images = np.random.default_rng(3).uniform(0, 255, (300, 48, 48, 1)).astype("float32")
    layer = RandomDegrade(1.0, blur=2.0, noise=0.0, seed=1)
    full = np.asarray(layer.blurred(images))
    # a mirrored border, as scipy's "reflect" mode, and the same truncation at 4 sigma
    np.testing.assert_allclose(full, gaussian_filter(images, sigma=(0, 2, 2, 0), mode="reflect"), atol=1e-3)
    out = np.asarray(layer(images, training=True))
    towards, away = (full - images).reshape(300, -1), (out - images).reshape(300, -1)
    shares = np.sum(towards * away, 1) / np.sum(towards * towards, 1)  # how far along the line to the blur
    np.testing.assert_allclose(away, shares[:, None] * towards, atol=1e-2)  # on that line, nowhere else
    assert shares.min() >= -1e-6 and shares.max() <= 1 + 1e-6 and shares.min() < 0.05 and shares.max() > 0.95


def test_degrading_noise_has_the_drawn_spread_and_the_rate_is_the_share_touched():
    grey = np.full((2000, 48, 48, 1), 128.0, "float32")
    spreads = np.asarray(RandomDegrade(1.0, noise=20.0, seed=2)(grey, training=True)).reshape(2000, -1).std(1)
    assert spreads.max() < 20.5 and spreads.min() < 1 and abs(spreads.mean() - 10) < 0.6  # uniform over 0-20
    images = np.random.default_rng(0).uniform(0, 255, (2000, 48, 48, 1)).astype("float32")
    out = np.asarray(RandomDegrade(0.3, seed=1)(images, training=True))
    assert abs(np.mean(np.any(out != images, axis=(1, 2, 3))) - 0.3) < 0.04 and 0 <= out.min() and out.max() <= 255
    np.testing.assert_array_equal(RandomDegrade(1.0)(images, training=False), images)
    np.testing.assert_array_equal(RandomDegrade(0.0)(images, training=True), images)
    layer = RandomDegrade(1.0)
    layer.strength.assign(0.0)  # a clean tail turns it off
    np.testing.assert_array_equal(layer(images, training=True), images)
    with pytest.raises(ValueError, match="a rate within 0-1"):
        RandomDegrade(1.5)


def test_a_model_with_degrading_round_trips_and_exports_without_it(tmp_path):
    from fer import inference
    from fer.models import build_cnn

    model = build_cnn(width=0.25, mean=100.0, variance=900.0, degrade=0.4, seed=3)
    model.save(tmp_path / "m.keras")
    layer = keras.saving.load_model(tmp_path / "m.keras").get_layer("degrade")
    assert isinstance(layer, RandomDegrade) and (layer.rate, layer.blur, layer.noise) == (0.4, 2.0, 20.0)
    portable = inference.with_policy(model, "float32", portable=True)
    assert not any(isinstance(layer, (RandomDegrade, RandomAffine)) for layer in portable.layers)
    x = np.random.default_rng(1).uniform(0, 255, (8, 48, 48, 1)).astype("float32")
    np.testing.assert_allclose(portable.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_at_strength_zero_each_face_comes_out_as_it_is_or_mirrored():
    images = np.random.default_rng(2).uniform(0, 255, (64, 48, 48, 1)).astype("float32")
    warp, erase = RandomAffine(seed=3), RandomErasing(1.0, seed=4)
    assert not np.allclose(warp(images, training=True), images, atol=1.0)
    assert all(b is not None for b in erased_boxes(images, erase(images, training=True)))
    warp.strength.assign(0.0)
    erase.strength.assign(0.0)
    np.testing.assert_array_equal(erase(images, training=True), images)
    out = np.asarray(warp(images, training=True))
    as_is = [np.allclose(o, i, atol=1e-3) for o, i in zip(out, images)]
    mirrored = [np.allclose(o, i[:, ::-1], atol=1e-3) for o, i in zip(out, images)]
    assert all(a or m for a, m in zip(as_is, mirrored))
    assert 16 < sum(mirrored) < 48  # flips stay: about half


def test_a_tail_on_the_views_gives_each_face_as_one_of_the_tta_views():
    """views = 1 at strength 0 (--tail-views): each face comes out zoomed as tta_views zooms it, by 1, 0.85 or
    1.15, mirrored or not, and each zoom is drawn for a fair share of the faces."""
    images = np.random.default_rng(5).uniform(0, 255, (96, 48, 48, 1)).astype("float32")
    warp = RandomAffine(seed=6)
    warp.strength.assign(0.0)
    warp.views.assign(1.0)
    out = np.asarray(warp(images, training=True))
    views = list(tta_views(images, TTA_ZOOMS["zoom"]))  # zoom 1, its mirror, 0.85, its mirror, 1.15, its mirror
    matches = [[k for k, view in enumerate(views) if np.allclose(o, view[i], atol=1e-2)] for i, o in enumerate(out)]
    assert all(len(m) == 1 for m in matches)
    picked = [m[0] for m in matches]
    assert all(20 < sum(k // 2 == z for k in picked) < 44 for z in range(3))  # a third each, about
    assert 30 < sum(k % 2 for k in picked) < 66  # mirrored: about half
    warp.views.assign(0.0)
    out = np.asarray(warp(images, training=True))  # back to the clean tail: as it is or mirrored, no zoom
    assert all(np.allclose(o, i, atol=1e-3) or np.allclose(o, i[:, ::-1], atol=1e-3) for o, i in zip(out, images))


def test_the_strength_is_not_saved_so_files_stay_as_they_were(tmp_path):
    import h5py
    import zipfile

    inputs = keras.Input((48, 48, 1))
    x = RandomErasing(0.5, seed=1, name="erase")(RandomAffine(seed=0, name="augment")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(7)(keras.layers.Flatten()(x)))
    model.get_layer("augment").strength.assign(0.0)
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        archive.extract("model.weights.h5", tmp_path)
    with h5py.File(tmp_path / "model.weights.h5") as weights:
        stored = []
        weights.visititems(lambda name, item: stored.append(name) if isinstance(item, h5py.Dataset) else None)
    assert len(stored) == 2 and not any("augment" in name or "erase" in name for name in stored)  # the Dense's
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert float(loaded.get_layer("augment").strength.numpy()) == 1.0  # a new run's layer starts at full strength


def test_a_clean_tail_reaches_the_compiled_training_step():
    """The training loss of each epoch shows whether its steps saw warped faces: with no learning, a clean
    epoch's loss is the loss on the faces as they are, and a warped one's is not."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (64, 48, 48, 1)).astype("float32") * np.linspace(0, 1, 48)[None, None, :, None]
    inputs = keras.Input((48, 48, 1))
    x = RandomErasing(0.5, seed=1)(RandomAffine(flip=False, seed=0)(inputs))
    mean = keras.layers.Dense(1, kernel_initializer="ones", use_bias=False)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, mean)
    model.compile(keras.optimizers.SGD(0.0), "mse")
    target = np.zeros((64, 1), "float32")
    epochs = 4
    history = model.fit(images, target, batch_size=16, epochs=epochs, verbose=0, shuffle=False,
                        callbacks=[CleanTail(0.5, lambda epoch: (epoch + 0.5) / epochs)])
    clean_loss = model.evaluate(images, target, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert all(abs(loss - clean_loss) > 1e-3 * clean_loss for loss in losses[:2])  # warped and erased
    np.testing.assert_allclose(losses[2:], clean_loss, rtol=1e-4)


def labelled_ramps(n=300):
    """Image i is constant i with its own one-hot label i: a blend shows which images went in, and how much."""
    x = np.arange(n, dtype="float32")[:, None, None, None] * np.ones((1, 48, 48, 1), "float32")
    return x, np.eye(n, dtype="float32")


def test_mixup_blends_images_and_labels_with_the_same_weight():
    x, y = labelled_ramps()
    batches = MixupBatches(x, y, batch_size=64, alpha=0.4, seed=3)
    assert len(batches) == 5
    weights = []
    for index in range(len(batches)):
        bx, by = batches[index]
        rows = batches.order[index * 64:(index + 1) * 64]
        assert len(bx) == len(rows) and bx.shape[1:] == (48, 48, 1) and np.allclose(by.sum(1), 1)
        lam = by[np.arange(len(rows)), rows]
        others = by.copy()
        others[np.arange(len(rows)), rows] = 0
        partner = np.where(others.max(1) > 0, others.argmax(1), rows)
        assert set(partner) <= set(rows)  # partners come from the same batch
        assert np.all(others.sum(1) == others.max(1))  # at most two images per blend
        np.testing.assert_allclose(bx[:, 0, 0, 0], lam * rows + (1 - lam) * partner, rtol=1e-4, atol=1e-3)
        assert np.all(bx == bx[:, :1, :1])  # the same blend everywhere in the image
        weights.append(float(np.median(np.maximum(lam, 1 - lam))))
    assert np.std(weights) > 0.01  # a fresh weight per batch
    assert sorted(batches.order) == list(range(300))


def test_mixup_reshuffles_each_epoch_and_repeats_with_its_seed():
    x, y = labelled_ramps()
    first = MixupBatches(x, y, 64, 0.2, seed=9)
    again = MixupBatches(x, y, 64, 0.2, seed=9)
    np.testing.assert_array_equal(first[2][0], again[2][0])
    order = first.order.copy()
    first.on_epoch_end()
    assert not np.array_equal(order, first.order) and sorted(first.order) == list(range(300))
    resumed = MixupBatches(x, y, 64, 0.2, seed=9, epoch=1)  # a run resumed after one epoch
    np.testing.assert_array_equal(resumed.order, first.order)
    np.testing.assert_array_equal(resumed[3][1], first[3][1])
    with pytest.raises(ValueError, match="positive"):
        MixupBatches(x, y, 64, 0.0)


def bright_width(img):
    """Width in pixels of the bright square along the middle row, to a sub-pixel."""
    return float(np.clip(np.asarray(img)[24, :, 0] / 255.0, 0, 1).sum())


def test_tta_views_are_the_face_its_mirror_and_zooms_about_the_centre():
    rng = np.random.default_rng(0)
    faces = rng.uniform(0, 255, (3, 48, 48, 1)).astype("float32")
    square = np.zeros((1, 48, 48, 1), "float32")
    square[:, 18:30, 14:26] = 255.0  # 12 x 12, left of centre
    views = list(tta_views(np.concatenate([faces, square]), (1.0, 0.8, 1.25)))
    assert len(views) == 6 and all(v.shape == (4, 48, 48, 1) and v.dtype == np.float32 for v in views)
    np.testing.assert_array_equal(views[0][:3], faces)  # zoom 1: exact, no resampling
    np.testing.assert_array_equal(views[1][:3], faces[:, :, ::-1])
    for plain, mirrored in zip(views[::2], views[1::2]):
        np.testing.assert_array_equal(mirrored, plain[:, :, ::-1])
    widths = [bright_width(v[3]) for v in views[::2]]
    np.testing.assert_allclose(widths, [12, 12 / 0.8, 12 / 1.25], atol=0.6)
    # zooming keeps the centre fixed: the square's centre moves away from it when magnified, towards it when shrunk
    centres = [center_of_mass(v[3])[1] for v in views[::2]]
    c = 23.5
    np.testing.assert_allclose(np.array(centres) - c, (19.5 - c) / np.array([1.0, 0.8, 1.25]), atol=0.3)


@pytest.mark.parametrize("augment", ["affine", "none"])
def test_training_works_where_keras_compiles_with_xla(augment):
    """Keras compiles with XLA wherever TensorFlow sees a GPU (and always under JAX). TensorFlow's resampling op has
    no XLA kernel, so the warp must make Keras fall back instead of stopping with an error; the rest of the
    network must compile under XLA as it is."""
    from fer.models import build_cnn

    x = np.random.default_rng(0).uniform(0, 255, (64, 48, 48, 1)).astype("float32")
    y = np.eye(7, dtype="float32")[np.arange(64) % 7]
    model = build_cnn("vgg", 128.0, 4000.0, augment, width=0.25, erase=0.5)
    model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile=True)
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    warp_needs_fallback = augment == "affine" and keras.backend.backend() == "tensorflow"
    assert model.jit_compile is not warp_needs_fallback
