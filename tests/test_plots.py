"""The history figure's legend says what the shaded tail trained on and from which epoch validation ran."""
import math

from fer import plots


def legend_of_history(monkeypatch, tmp_path, rows, **kwargs):
    labels = []

    def keep_labels(fig, path):
        labels.extend(text.get_text() for ax in fig.axes for text in ax.get_legend().get_texts())
        return path

    monkeypatch.setattr(plots, "save", keep_labels)
    plots.history_figure(rows, tmp_path / "history.png", "run", **kwargs)
    return labels


def history(epochs=6, validated_from=3, clean_from=5):
    return [dict(epoch=e, loss=2.0 / e, accuracy=0.3 + 0.05 * e, clean=float(e >= clean_from),
                 val_loss=math.nan if e < validated_from else 2.2 / e,
                 val_accuracy=math.nan if e < validated_from else 0.25 + 0.05 * e) for e in range(1, epochs + 1)]


def test_the_clean_tail_is_named_for_the_faces_it_trained_on(monkeypatch, tmp_path):
    plain = legend_of_history(monkeypatch, tmp_path, history())
    views = legend_of_history(monkeypatch, tmp_path, history(), tail_views=True)
    assert "clean tail: no warps or erasing" in plain and not any("zoom" in label for label in plain)
    assert "clean tail: --tta's zoom views, no erasing" in views and "clean tail: no warps or erasing" not in views
    assert not any("clean tail" in label for label in legend_of_history(monkeypatch, tmp_path, history(clean_from=9)))


def test_the_validation_curve_says_from_which_epoch_it_ran(monkeypatch, tmp_path):
    assert "validation (from epoch 3)" in legend_of_history(monkeypatch, tmp_path, history())
    assert "validation" in legend_of_history(monkeypatch, tmp_path, history(validated_from=1))
