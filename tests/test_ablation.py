"""ablation.py: four runs that differ only in batch norm and augmentation, a plot, a table, reuse on rerun."""
import json

import keras

from conftest import read_rows, run_script
from fer import backend, inference, records
from fer.settings import DEFAULTS, as_record, frozen

TINY = ["--preset", "smoke", "--width", "0.25", "--batch-size", "32", "--lr", "3e-3", "--epochs", "2"]


def test_ablation_runs_four_variants_and_reuses_them(synthetic_files, tmp_path, capsys):
    """Here the runs without batch norm get a learning rate too small to move: they must be reported as not
    having learned, beside the majority-class share of the validation split."""
    args = ["--data", synthetic_files["train"], *TINY, "--erase", "0.5", "--clean-tail", "0.5", "--tail-views",
            "--no-bn-lr", "1e-9",
            "--models", tmp_path / "runs", "--out", tmp_path / "figs"]
    assert run_script("ablation.py", *args) == 0
    assert capsys.readouterr().out.count("DID NOT LEARN") >= 2
    record = json.loads((tmp_path / "figs" / "ablation.json").read_text())
    runs = {(r["batchnorm"], r["augmentation"]): r for r in record["runs"]}
    assert set(runs) == {(True, True), (True, False), (False, True), (False, False)}
    assert 0.14 <= record["majority_share"] < 0.2  # 7 nearly balanced classes
    for (batchnorm, _), r in runs.items():
        assert r["lr"] == (3e-3 if batchnorm else 1e-9)
        assert r["learned"] == (r["best_val_accuracy"] > record["majority_share"] + 0.01)
    assert not runs[(False, True)]["learned"] and not runs[(False, False)]["learned"]
    for r in runs.values():  # the table is each run's own record: its best epoch's validation accuracy
        stem = ("bn" if r["batchnorm"] else "no_bn") + ("_augmentation" if r["augmentation"] else "_no_augmentation")
        history = read_rows(tmp_path / "runs" / f"{stem}_history.csv")
        assert r["epochs"] == len(history) == 2
        assert r["best_val_accuracy"] == round(max(float(h["val_accuracy"]) for h in history), 4)
        settings = json.loads((tmp_path / "runs" / f"{stem}_summary.json").read_text())["settings"]
        tail = (settings["clean_tail"], settings["tail_views"])  # no augmentation: no tail to turn it off
        assert tail == ((0.5, True) if r["augmentation"] else (0.0, False)), stem
    assert (tmp_path / "figs" / "ablation.png").read_bytes().startswith(b"\x89PNG")
    # each contrast tested on the same faces: the counts are the two best models' own answers
    _, val, _ = records.load_split(synthetic_files["train"], tmp_path / "runs" / "bn_augmentation.keras")
    right = {p.stem: inference.right_answers(p, val.x, val.y) for p in (tmp_path / "runs").glob("*.keras")}
    for what, without in (("batch norm", "no_bn_augmentation"), ("augmentation", "bn_no_augmentation")):
        c = record["paired"][what]
        assert (c["a_only"], c["b_only"]) == (sum(right["bn_augmentation"] & ~right[without]),
                                              sum(right[without] & ~right["bn_augmentation"])), what
        assert c["faces"] == record["split"]["val_rows"] == len(val)
    assert record["paired"]["batch norm"]["significant"]  # a network that learned against one that did not
    for path in (tmp_path / "runs").glob("*.keras"):
        model = inference.load_model(path)
        has_bn = any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
        has_aug = any(layer.name == "augment" for layer in model.layers)
        assert has_bn == path.stem.startswith("bn"), path.stem
        assert has_aug == ("no_augmentation" not in path.stem), path.stem
        assert has_aug == any(layer.name == "erase" for layer in model.layers), path.stem  # erasing goes with it
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.keras")}
    capsys.readouterr()
    assert run_script("ablation.py", *args) == 0
    assert capsys.readouterr().out.count("reusing the finished run") == 4
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.keras")}


def test_a_finished_run_is_reused_only_for_the_same_network(tmp_path):
    """The runs' file names don't say the architecture or the dropout, so the summary must."""
    paths = records.output_paths(tmp_path / "run.keras", tmp_path)
    settings, data = frozen({**DEFAULTS, "preset": "cpu"}), {"split": {"val_fraction": 0.2, "train_rows": 10}}
    resnet, less_dropout = frozen({**settings, "arch": "resnet"}), frozen({**settings, "dropout": 0.25})
    summary = {"settings": as_record(settings), "split": data["split"], "backend": backend.name(),
               "architecture": "vgg"}
    paths["model"].write_text("a model")
    paths["history"].write_text("epoch\n1\n")
    paths["summary"].write_text(json.dumps(summary))
    assert records.finished_run(paths, settings, data) == summary
    assert records.finished_run(paths, resnet, data) is None
    assert records.finished_run(paths, less_dropout, data) is None
    # Written before the settings held the network: the default dropout, and the architecture its summary names.
    older = {**summary, "settings": {k: v for k, v in summary["settings"].items() if k not in ("arch", "dropout")}}
    paths["summary"].write_text(json.dumps(older))
    assert records.finished_run(paths, settings, data) == older
    assert records.finished_run(paths, less_dropout, data) is None
    older_resnet = {**older, "architecture": "resnet"}
    paths["summary"].write_text(json.dumps(older_resnet))
    assert records.finished_run(paths, settings, data) is None
    assert records.finished_run(paths, resnet, data) == older_resnet
