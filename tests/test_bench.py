"""The benchmark scripts run and end with the JSON line they promise."""
import json
import subprocess
import sys

import numpy as np

from conftest import ROOT, subprocess_env, synthetic_faces


def test_pipeline_benchmark_times_all_three_feeds(tmp_path):
    x, y = synthetic_faces(64)
    np.savez(tmp_path / "faces.npz", x=x, y=y)
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "pipeline.py"), "--data", str(tmp_path / "faces.npz"),
                           "--width", "0.25", "--batch-size", "8", "--steps", "2", "--warmup", "1"],
                          env=subprocess_env(), capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rates = result["images_per_s"]
    assert set(rates) == {"a", "b", "c"} and all(v > 0 for v in rates.values())
    assert abs(result["a_over_b"] - rates["a"] / rates["b"]) < 0.01


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
