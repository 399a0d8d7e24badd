"""The benchmark scripts run and end with the JSON line they promise."""
import json
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest

from conftest import ROOT, subprocess_env, synthetic_faces


def bench_script(name):
    """bench/NAME.py as a module, for tests of its functions (bench/ is scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{name}_bench", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("faces", [64, 12])  # 12: fewer than the 3 x 8 the steps take, drawn again
def test_pipeline_benchmark_times_all_three_feeds(tmp_path, faces):
    x, y = synthetic_faces(faces)
    np.savez(tmp_path / "faces.npz", x=x, y=y)
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "pipeline.py"), "--data", str(tmp_path / "faces.npz"),
                           "--width", "0.25", "--batch-size", "8", "--steps", "2", "--warmup", "1"],
                          env=subprocess_env(), capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rates = result["images_per_s"]
    fused = result["backend"] == "tensorflow" and result["device"].startswith("CPU")
    assert set(rates) == {"a", "b", "c", "v"} | ({"k"} if fused else set()) and all(v > 0 for v in rates.values())
    assert abs(result["a_over_b"] - rates["a"] / rates["b"]) < 0.01
    assert (result["a_over_k"] is None) != fused
    # per image, the network's training FLOPs are its convolutions' and a little more (the dense layers)
    train, conv = result["train_gflop_per_image"], result["conv_gflop_per_image"]
    assert 1 < train / conv < 1.5
    # conv_share: the step's FLOP rate over the convolutions' alone, both from the rates and counts it printed
    assert abs(result["train_tflops"] - train * rates["a"] / 1e3) < 1e-3 * result["train_tflops"]
    assert abs(result["conv_tflops"] - conv * rates["v"] / 1e3) < 1e-3 * result["conv_tflops"]
    share = result["train_tflops"] / result["conv_tflops"]
    assert result["conv_share"] > 0 and abs(result["conv_share"] - share) < 0.002


def test_speed_benchmark_reads_a_run_and_counts_its_flops(trained):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "speed.py"), "--data", "unused", "--reuse",
                           "--model", str(trained / "cnn.keras"), "--target", "0.5", "--peak-tflops", "1"],
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    history = (trained / "cnn_history.csv").read_text().splitlines()
    assert result["epochs"] == len(history) - 1
    assert result["seconds_to_target"] is not None and 0 < result["seconds_to_target"] <= result["seconds_total"]
    expected = result["images_per_s"] * 3 * result["forward_flops_per_image"] / 1e12
    assert abs(result["achieved_tflops"] - expected) < 1e-3 and result["fraction_of_peak"] == round(expected, 5)


def test_gpu_script_trains_measures_and_brings_back_exported_models(tmp_path):
    """bench/gpu.sh end to end on the CPU with a tiny budget: the JSON lines (default, pipeline, candidate,
    resnet), the ensemble table of the validated models, the final fit on every face, and in $OUT only the log
    and one tar per model (float16, no optimizer state, with its records), nothing written into the repo."""
    x, y = synthetic_faces(96)
    np.savez(tmp_path / "faces.npz", x=x, y=y)
    out, models = tmp_path / "out", tmp_path / "models"
    started = time.time()
    env = subprocess_env(DATA=str(tmp_path / "faces.npz"), OUT=str(out), MODELS=str(models), PYTHON=sys.executable,
                         BUDGET_S="800", SEED="3", TRAIN_ARGS="--preset smoke --epochs 1 --width 0.25 --batch-size 16",
                         CANDIDATE_ARGS="--preset smoke --epochs 1 --width 0.5 --batch-size 16",
                         RESNET_ARGS="--preset smoke --epochs 1 --width 0.25 --batch-size 16 --arch resnet",
                         FINAL_ARGS="--preset smoke --epochs 1 --width 0.25 --batch-size 16 --val-fraction 0",
                         PIPELINE_ARGS="--width 0.25 --batch-size 8 --steps 1 --warmup 1")
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh")], env=env, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    log = (out / "gpu.log").read_text()
    results = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert [r["bench"] for r in results] == ["speed", "pipeline", "speed", "speed"]
    assert results[0]["backend"] == "jax" and results[0]["epochs"] == 1
    assert results[2]["parameters"] > 3 * results[0]["parameters"] and "--width 0.5" in results[2]["command"]
    assert "--arch resnet" in results[3]["command"] and results[3]["parameters"] > results[0]["parameters"]
    assert "ensemble of 4" in log
    assert sorted(p.name for p in out.iterdir()) == ["cnn_candidate.tar", "cnn_final.tar", "cnn_gpu.tar",
                                                     "cnn_gpu_s1.tar", "cnn_resnet.tar", "gpu.log"]
    for name in ["cnn_gpu", "cnn_gpu_s1", "cnn_candidate", "cnn_resnet", "cnn_final"]:
        with tarfile.open(out / f"{name}.tar") as bundle:
            bundle.extractall(tmp_path / "back", filter="data")
        exported, checkpoint = tmp_path / "back" / f"{name}.keras", models / f"{name}.keras"
        assert exported.stat().st_size < 0.4 * checkpoint.stat().st_size  # no optimizer moments, float16
        summary = json.loads((tmp_path / "back" / f"{name}_summary.json").read_text())
        assert summary["epochs"] == 1 and summary["weights"] == "float16"
        assert summary["settings"]["seed"] == {"cnn_gpu": 3, "cnn_gpu_s1": 1}.get(name, 0)  # SEED: the default's
        assert (summary["split"]["val_rows"] == 0) == (name == "cnn_final")
        assert (tmp_path / "back" / f"{name}_history.csv").exists()
    written = [p for folder in ["models", "figures"] for pattern in ["cnn_gpu.*", "cnn_gpu_*"]
               for p in (ROOT / folder).glob(pattern) if p.stat().st_mtime >= started]
    assert not written, written


def test_gpu_script_trains_side_by_side_runs_in_place_of_the_later_steps(tmp_path):
    """SIDE_BY_SIDE: the listed runs train at once with their own arguments (timed to the budget's end unless
    given --epochs), in place of the candidate, second seed, resnet and final fit; each comes back, and the
    ensemble of those that held out faces is scored. TRAIN_ARGS empty skips the default recipe alone, and
    PIPELINE_ARGS empty the pipeline."""
    x, y = synthetic_faces(96)
    np.savez(tmp_path / "faces.npz", x=x, y=y)
    out, models = tmp_path / "out", tmp_path / "models"
    tiny = "--preset smoke --width 0.25 --batch-size 16 --epochs 1"
    env = subprocess_env(DATA=str(tmp_path / "faces.npz"), OUT=str(out), MODELS=str(models), PYTHON=sys.executable,
                         BUDGET_S="800", TRAIN_ARGS="", PIPELINE_ARGS="",
                         SIDE_BY_SIDE=f"side:{tiny} --arch resnet --seed 5;plain:{tiny};all:{tiny} --val-fraction 0")
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh")], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    log = (out / "gpu.log").read_text()
    assert "pipeline overhead" not in log and "train cnn_gpu" not in log and "side by side with 2 others" in log
    assert "ensemble of 2" in log and "models/all.keras" not in log.split("validation: each model")[1]
    assert sorted(p.name for p in out.iterdir()) == ["all.tar", "gpu.log", "plain.tar", "side.tar"]
    summaries = {name: json.loads((models / f"{name}_summary.json").read_text()) for name in ["side", "plain", "all"]}
    assert summaries["plain"]["settings"]["seed"] == 0 and summaries["plain"]["architecture"] == "vgg"
    assert summaries["side"]["architecture"] == "resnet" and summaries["side"]["settings"]["seed"] == 5
    assert summaries["all"]["split"]["val_rows"] == 0 and summaries["all"]["settings"]["seed"] == 0
    assert all(s["epochs"] == 1 and s["settings"]["minutes"] is None for s in summaries.values())


def test_curves_tables_each_runs_best_epoch_and_refuses_a_missing_record(tmp_path):
    from fer.records import write_history

    for name, accuracies in [("slow", [0.3, 0.5, 0.6]), ("fast", [0.4, 0.62, 0.61])]:
        write_history(tmp_path / f"{name}_history.csv",
                      [dict(epoch=i + 1, accuracy=a, loss=1.0, val_accuracy=a, val_loss=1.0, epoch_seconds=10.0)
                       for i, a in enumerate(accuracies)])
    (tmp_path / "fast_summary.json").write_text(json.dumps(dict(
        preset="gpu", architecture="vgg", trainable_parameters=7_050_055, precision="bfloat16",
        settings=dict(epochs=3, optimizer="adamw", lr=1e-3, augment_scale=1.0),
        wall_seconds=31.0, train_images_per_second=500.0, device="GPU", backend="jax")))
    figure = tmp_path / "curves.png"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "curves.py"), str(tmp_path / "slow.keras"),
                           str(tmp_path / "fast_history.csv"), "--out", str(figure)],
                          env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("| ")}
    assert "| 0.6000 | 3 of 3 | 30 s | ? |" in rows["slow"] and "still training" in rows["slow"]
    assert "| 0.6200 | 2 of 3 | 31 s | 500 | GPU, jax |" in rows["fast"] and "gpu: vgg 7.1M, 3 ep" in rows["fast"]
    assert figure.stat().st_size > 10_000

    missing = subprocess.run([sys.executable, str(ROOT / "bench" / "curves.py"), str(tmp_path / "none.keras"),
                              "--out", str(tmp_path / "other.png")],
                             env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "none_history.csv" in missing.stderr
    assert not (tmp_path / "other.png").exists()

    write_history(tmp_path / "final_history.csv", [dict(epoch=1, accuracy=0.5, loss=1.0, epoch_seconds=10.0)])
    unvalidated = subprocess.run([sys.executable, str(ROOT / "bench" / "curves.py"), str(tmp_path / "fast.keras"),
                                  str(tmp_path / "final.keras"), "--out", str(tmp_path / "other.png")],
                                 env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert unvalidated.returncode == 2 and unvalidated.stderr.count("\n") == 1
    assert "final_history.csv: has no validation curve" in unvalidated.stderr
    assert "--val-fraction 0" in unvalidated.stderr
    assert not (tmp_path / "other.png").exists()


def test_tta_benchmark_chooses_on_one_half_and_scores_the_other(trained, synthetic_files):
    from fer import inference, records

    model = trained / "cnn.keras"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "tta.py"), "--model", str(model),
                           "--data", str(synthetic_files["train"]), "--zooms", "0.9", "1.1"],
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    # 1; 1+0.9; 1+1.1; 1+0.9+1.1; and predict.py's --tta zoom set
    table = [line.split("<-")[0].split() for line in lines[2:-1]]
    half_a = {tuple(map(float, row[:-3])): float(row[-3]) for row in table}
    assert len(table) == len(half_a) == 5 and (1.0,) in half_a and (1.0, 0.9, 1.1) in half_a
    assert result["chosen_half_a"] == max(half_a.values()) == half_a[tuple(result["chosen_on_half_a"])]
    # the flips-alone and --tta zoom scores are what predict.py's own views give
    _, val, _ = records.load_split(synthetic_files["train"], model)
    loaded = inference.load_model(model)
    for key, tta in (("flips_all", "flip"), ("tta_zoom_all", "zoom")):
        expected = np.mean(inference.predict_probabilities([loaded], val.x, tta).argmax(1) == val.y)
        assert abs(result[key] - expected) < 1e-4, key
    plain = np.mean(inference.predict_probabilities([loaded], val.x).argmax(1) == val.y)
    assert abs(result["plain_all"] - plain) < 1e-4
    assert result["val_rows"] == len(val)


def test_tta_benchmark_adds_shifted_turned_and_relit_views_to_the_zoom_set(trained, synthetic_files):
    from fer import inference, records
    from fer.augment import TTA_ZOOMS

    model = trained / "cnn.keras"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "tta.py"), "--model", str(model),
                           "--data", str(synthetic_files["train"]), "--zooms", "0.9", "--extra", "shift", "rotate",
                           "--shift", "3"], env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    extra = {row["set"]: row for row in json.loads(done.stdout.strip().splitlines()[-1])["extra"]}
    zooms = " ".join(f"{z:g}" for z in TTA_ZOOMS["zoom"])
    assert set(extra) == {f"{zooms} + shifts 3px", f"{zooms} + turns 8deg", f"{zooms} + shifts 3px + turns 8deg"}
    # the shifted views are the faces moved 3 whole pixels each way, the border filled from the edge, and mirrored
    bench = bench_script("tta")
    _, val, _ = records.load_split(synthetic_files["train"], model)
    loaded = inference.load_model(model)
    faces = val.x.reshape(-1, 48, 48, 1).astype("float32")
    padded = np.pad(faces, ((0, 0), (3, 3), (3, 3), (0, 0)), mode="edge")
    moved = [padded[:, 3 - dy:51 - dy, 3 - dx:51 - dx] for dx, dy in ((-3, 0), (3, 0), (0, -3), (0, 3))]
    expected = [loaded.predict(v[:, :, ::-1] if mirrored else v, verbose=0) for v in moved for mirrored in (0, 1)]
    got = bench.extra_probabilities([loaded], val.x, ["shift"], 3, 8.0, 1.25, 64)[0]
    assert len(got) == len(expected) == 8
    for p, q in zip(got.values(), expected):
        np.testing.assert_allclose(p, q, atol=1e-5)
    # and the benchmark's score is the accuracy of the mean over the zoom set's views and these
    views = inference.view_probabilities([loaded], val.x, TTA_ZOOMS["zoom"])[0]
    mean = np.mean(list(views.values()) + expected, axis=0)
    assert abs(extra[f"{zooms} + shifts 3px"]["all"] - np.mean(mean.argmax(1) == val.y)) < 1e-4
    # relit views: mid-tones lightened (pixels 0-1 to the power 1/G) and darkened (to G), each mirrored
    relit = [255 * (faces / 255) ** g for g in (0.5, 2.0)]
    expected = [loaded.predict(v[:, :, ::-1] if mirrored else v, verbose=0) for v in relit for mirrored in (0, 1)]
    got = bench.extra_probabilities([loaded], val.x, ["gamma"], 3, 8.0, 2.0, 64)[0]
    assert list(got) == [("gamma", label, mirrored) for label in ("^0.5", "^2") for mirrored in (False, True)]
    for p, q in zip(got.values(), expected):
        np.testing.assert_allclose(p, q, atol=1e-5)


def test_table_ranks_runs_and_lists_each_pipeline_record(tmp_path):
    import shutil

    results = ROOT / "bench" / "results"
    for name in ["cnn_cpu_runsh", "cnn_long_ema"]:
        for suffix in ["_summary.json", "_history.csv"]:
            shutil.copy(results / f"{name}{suffix}", tmp_path)
    line = dict(bench="pipeline", width=1.0, batch_size=128, precision="bfloat16", backend="tensorflow",
                device="CPU: Test CPU, 2 cores", images_per_s=dict(a=700.0, k=350.0), conv_share=0.8)
    (tmp_path / "pipeline_test.json").write_text("timing noise\n" + json.dumps(line) + "\n")
    table = ROOT / "bench" / "table.py"
    done = subprocess.run([sys.executable, str(table), "--results", str(tmp_path), "--out", "-"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [row for row in done.stdout.splitlines() if row.startswith("| cnn_") or row.startswith("| pipeline_")]
    assert [row.split(" | ")[0] for row in rows] == ["| cnn_long_ema", "| cnn_cpu_runsh", "| pipeline_test"]
    assert "| 700 | 350 | 2.00 | 0.80 |" in rows[-1] and "Test CPU" in rows[-1]
    (tmp_path / "pipeline_bad.json").write_text("real 0m57s\n")
    done = subprocess.run([sys.executable, str(table), "--results", str(tmp_path), "--out", "-"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "pipeline_bad.json" in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr


def confidently_wrong_copy(model_path, out, label):
    """The trained model, its output layer rewired to answer `label` for every face, its summary beside it."""
    import shutil

    import keras
    from fer import inference, records

    model = inference.load_model(model_path)
    last = [layer for layer in model.layers if layer.weights][-1]
    kernel, bias = last.get_weights()
    last.set_weights([np.zeros_like(kernel), np.eye(len(bias), dtype=bias.dtype)[label] * 20])
    keras.saving.save_model(model, out)
    shutil.copy(records.summary_path(model_path), records.summary_path(out))
    return out


def test_ensemble_benchmark_chooses_members_on_one_half_and_scores_the_other(trained, synthetic_files, tmp_path):
    from fer import inference, records

    good = trained / "cnn.keras"
    _, val, _ = records.load_split(synthetic_files["train"], good)
    rarest = int(np.bincount(val.y, minlength=7).argmin())
    wrong = confidently_wrong_copy(good, tmp_path / "wrong.keras", rarest)
    command = [sys.executable, str(ROOT / "bench" / "ensemble.py"), "--data", str(synthetic_files["train"]),
               "--model", str(wrong), "--model", str(good), "--cache", str(tmp_path / "views")]
    done = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # the member that always answers the rarest class is left out, whichever half chooses
    assert result["chosen_on_half_a"]["members"] == result["chosen_on_half_b"]["members"] == [str(good)]
    assert result["reference"]["members"] == [str(wrong), str(good)]
    loaded = [inference.load_model(path) for path in (good, wrong)]
    for members, row in ((loaded[:1], result["chosen_on_half_a"]), (loaded, result["reference"])):
        for column, tta in (("plain", None), ("flip", "flip"), ("zoom", "zoom")):
            expected = np.mean(inference.predict_probabilities(members, val.x, tta).argmax(1) == val.y)
            assert abs(row[column]["all"] - expected) < 1e-4, column
    gains = (result["chosen_on_half_a"]["zoom"]["half_b"] - result["reference"]["zoom"]["half_b"],
             result["chosen_on_half_b"]["zoom"]["half_a"] - result["reference"]["zoom"]["half_a"])
    assert min(gains) > 0 and abs(result["mean_gain"] - sum(gains) / 2) < 1e-3
    # each held-out gain tested on its half's faces: the wrong member only ever takes faces away
    half_a = np.random.default_rng(0).permutation(len(val)) < len(val) // 2
    from fer.scores import paired_comparison

    alone, both = (inference.predict_probabilities(m, val.x, "zoom").argmax(1) == val.y for m in (loaded[:1], loaded))
    for half, key in ((~half_a, "p_half_b"), (half_a, "p_half_a")):
        assert result[key] == paired_comparison(alone[half], both[half])["p_value"] < 1, key
    # the reference's own remedies, each fitted on one half: less weight on the member that is always wrong, a
    # lower score for the class it always answers; scored on the other half, where they were not fitted
    views = [inference.predict_probabilities([model], val.x, "zoom") for model in reversed(loaded)]
    weights_a, weights_b = result["weights"]["fitted"]
    assert weights_a[0] < weights_a[1] and weights_b[0] < weights_b[1]
    weighted = np.tensordot(weights_a, views, 1).argmax(1) == val.y
    assert abs(result["weights"]["on_half_b"] - weighted[~half_a].mean()) < 1e-4
    for shifts in result["shifts"]["fitted"]:
        assert shifts[rarest] < np.mean(np.delete(shifts, rarest))
    assert result["weights"]["mean_gain"] > 0 and result["shifts"]["mean_gain"] > 0
    # a second run reads every model's views from the cache and prints the same line
    assert len(list((tmp_path / "views").glob("*.npz"))) == 2
    again = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert again.stdout.strip().splitlines()[-1] == done.stdout.strip().splitlines()[-1]
    missing = subprocess.run(command[:-4] + ["--model", str(tmp_path / "gone.keras")], env=subprocess_env(),
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and missing.stderr == (f"error: {tmp_path / 'gone.keras'}: no such model file "
                                                          "(train one with train_cnn.py, or pass --model)\n")
    small = subprocess.run(command + ["--max-mb", "0.001"], env=subprocess_env(), capture_output=True, text=True,
                           timeout=300)
    assert small.returncode == 2 and small.stderr.startswith("error: --max-mb: no candidate fits in 0.001 MB: the "
                                                             "smallest file is "), small.stderr


def test_ensemble_benchmark_chooses_only_among_subsets_whose_files_fit_the_size_limit():
    bench = bench_script("ensemble")
    scores = {(0,): {"zoom": (0.60, 0.64, 0.62)}, (1,): {"zoom": (0.63, 0.61, 0.62)},
              (0, 1): {"zoom": (0.70, 0.70, 0.70)}}
    assert bench.chosen(scores, "zoom", 0) == bench.chosen(scores, "zoom", 1) == (0, 1)
    fits = bench.within([30e6, 20e6], 40)  # the pair's 50 MB are over the limit, each alone is under it
    assert (bench.chosen(scores, "zoom", 0, fits), bench.chosen(scores, "zoom", 1, fits)) == ((1,), (0,))
    assert bench.within([30e6, 20e6], 50)((0, 1)) and not bench.within([30e6, 20e6], 49.9)((0, 1))


@pytest.mark.parametrize("flags, words", [([], "give 2 to 12 candidates"),
                                          (["--model", "A.keras"], "a candidate is given twice"),
                                          (["--model", "B.keras", "--reference", "3"], "--reference: 3 is more than")])
def test_ensemble_benchmark_refuses_bad_candidate_lists(flags, words):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "ensemble.py"), "--data", "x.csv",
                           "--model", "A.keras", *flags], env=subprocess_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and words in done.stderr, done.stderr


def test_upscale_benchmark_scores_each_enlargement_and_marks_the_one_faces_py_uses(trained, synthetic_files):
    from fer import inference, records
    from fer.embedding import chosen_faces

    upscale = bench_script("upscale")
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48)).astype(np.uint8)
    blocks = x.reshape(3, 24, 2, 24, 2).mean((2, 4))  # shrunk to 24 by area: each 2x2 block's mean
    repeated = np.repeat(np.repeat(blocks, 2, 1), 2, 2)  # enlarged by area: each pixel repeated in a 2x2 block
    assert np.abs(upscale.enlarged(x, 24, "area").astype(float) - repeated).max() <= 0.5
    assert all(upscale.product_choice(side) == "cubic" for side in upscale.SIDES)

    model = trained / "cnn.keras"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "upscale.py"), "--model", str(model),
                           "--data", str(synthetic_files["train"]), "--faces", "50"],
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    faces, _, _ = records.load_scored(synthetic_files["train"], None, [model])
    faces = faces.subset(chosen_faces(50, len(faces), 0))
    loaded = inference.load_model(model)

    def accuracy(x):
        return np.mean(inference.predict_probabilities([loaded], x.astype("float32")).argmax(1) == faces.y)

    assert result["faces"] == 50 and abs(result["clean"] - accuracy(faces.x)) < 1e-4
    assert [row["side"] for row in result["sides"]] == list(upscale.SIDES)
    row = result["sides"][2]
    assert row["used"] == "cubic"
    for name in ("area", "cubic"):
        assert abs(row["accuracy"][name] - accuracy(upscale.enlarged(faces.x, row["side"], name))) < 1e-4
