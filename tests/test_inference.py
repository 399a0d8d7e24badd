"""Scoring every --tta kind from one set of views (predict.py --validate, export_model.py --validate,
bench/tta.py) gives what predicting with that --tta gives, and shows each model each view once."""
import keras
import numpy as np
import pytest

from fer import inference
from fer.augment import TTA_DEFAULT, TTA_ZOOMS, tta_views


class Counted:
    """A model that counts the times it is asked to predict (each time, every face of one view)."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def predict(self, x, **kwargs):
        self.calls += 1
        return self.model.predict(x, **kwargs)


def pixel_model(seed):
    """Softmax of a random linear map of the pixels: neither mirror- nor zoom-invariant, so every view differs."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((48, 48, 1))
    outputs = keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(inputs / 255.0))
    return keras.Model(inputs, outputs)


def mean_by_hand(models, x, zooms):
    """The models' mean softmax over the views of these zooms (None: the faces as they are), one view at a time."""
    views = list(tta_views(x, zooms)) if zooms else [x]
    return np.mean([model.predict(view, verbose=0) for view in views for model in models], axis=0)


@pytest.fixture(scope="module")
def faces():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (40, 48, 48, 1)).astype("float32"), rng.integers(0, 7, 40)


def test_every_kind_from_shared_views_is_what_predicting_with_that_tta_gives(faces):
    x, _ = faces
    models = [pixel_model(0), pixel_model(1)]
    views = inference.view_probabilities(models, x, batch_size=16)
    means = {}
    for kind in [None, *TTA_ZOOMS]:
        means[kind] = inference.mean_of_views(views, TTA_ZOOMS.get(kind))
        expected = mean_by_hand(models, x, TTA_ZOOMS.get(kind))
        np.testing.assert_allclose(means[kind], expected, atol=1e-6)
        np.testing.assert_allclose(inference.predict_probabilities(models, x, kind), expected, atol=1e-6)
    assert not np.allclose(means[None], means["flip"], atol=1e-3)  # the kinds do differ here
    assert not np.allclose(means["flip"], means["zoom"], atol=1e-3)


def test_each_model_sees_each_view_once(faces):
    x, _ = faces
    counted = [Counted(pixel_model(0)), Counted(pixel_model(1))]
    reported = []  # (done, count, key) and how many predictions had been made when it came
    views = inference.view_probabilities(
        counted, x, progress=lambda *step: reported.append((*step, [c.calls for c in counted])))
    zooms = set().union(*TTA_ZOOMS.values())
    assert [c.calls for c in counted] == [2 * len(zooms)] * 2  # each zoom once, and its mirror once
    assert all(set(member) == {(zoom, mirrored) for zoom in zooms for mirrored in (False, True)} for member in views)
    # a report after each view, once every model has read it
    assert [(done, count, calls) for done, count, _, calls in reported] == \
        [(i, 2 * len(zooms), [i, i]) for i in range(1, 2 * len(zooms) + 1)]
    assert [key for *_, key, _ in reported] == list(views[0])


def test_the_columns_name_each_kind_and_score_it(faces):
    x, y = faces
    models = [pixel_model(2)]
    columns = inference.tta_columns(mark_default=True)
    assert list(columns.values()) == [None, *TTA_ZOOMS] and TTA_ZOOMS["flip"] == (1.0,)
    assert [name for name in columns if "(--tta)" in name] == [f"{TTA_DEFAULT} TTA (--tta)"]
    views = inference.view_probabilities(models, x)
    kept = np.arange(len(y)) % 3 > 0
    scores = inference.column_accuracies(views, y, kept, mark_default=True)
    assert list(scores) == list(columns)
    for name, kind in columns.items():
        predicted = inference.predict_probabilities(models, x, kind).argmax(1)
        assert scores[name] == pytest.approx(np.mean((predicted == y)[kept]))
