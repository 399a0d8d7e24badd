#!/usr/bin/env python3
"""Training speed of the default recipe: time to a target validation accuracy, time to the final model,
images/s after warm-up, and that rate against what the model's FLOPs allow on this device.

Runs train_cnn.py (any of its flags after --), then reads the run's history and summary.
FLOPs are counted from the layers (fer.models.forward_flops: 2 x multiply-adds of every Conv2D and
Dense); a training step is taken as 3x the forward pass. The device's peak comes from --peak-tflops
or, for known GPUs, from the table below (dense bf16 tensor-core peak of the vendor's data sheet).
Ends with one JSON line.

    KERAS_BACKEND=jax python bench/speed.py --data train.npz -- --preset gpu
    python bench/speed.py --data data/train.csv --target 0.55 -- --preset cpu --epochs 8
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "V100": 125.0, "T4": 65.0}


def parse_args():
    from fer import cli

    parser = cli.parser(__doc__)
    parser.add_argument("--data", required=True, help="labeled faces for train_cnn.py --train")
    parser.add_argument("--target", type=cli.number(float, 0, 1, above=True), default=0.70,
                        help="validation accuracy to time (default 0.70)")
    parser.add_argument("--model", default="models/bench_speed.keras", metavar="OUT.keras")
    parser.add_argument("--peak-tflops", type=cli.number(float, 0, above=True),
                        help="the device's peak (default: looked up for known GPUs)")
    parser.add_argument("--reuse", action="store_true", help="don't train; read the records of --model")
    parser.add_argument("train_args", nargs="*", help="after --: flags for train_cnn.py")
    return parser.parse_args()


def peak_for(device):
    return next((tflops for name, tflops in PEAK_TFLOPS.items() if name in device), None)


def main():
    args = parse_args()
    model_path = Path(args.model)
    if not args.reuse:
        command = [sys.executable, str(ROOT / "train_cnn.py"), "--train", args.data, "--model", str(model_path),
                   "--fresh", *args.train_args]
        if subprocess.run(command).returncode != 0:
            sys.exit("training failed")
    from fer import inference
    from fer.models import forward_flops
    from fer.records import history_path, read_history, read_summary, validation_words

    summary = read_summary(model_path)
    history = read_history(history_path(model_path))
    elapsed, to_target = 0.0, None
    for row in history:
        elapsed += row["epoch_seconds"]
        if to_target is None and row.get("val_accuracy", 0.0) >= args.target:
            to_target = (elapsed, row["epoch"])
    flops = forward_flops(inference.load_model(model_path))
    rate = summary["train_images_per_second"]
    achieved = rate * 3 * flops / 1e12
    peak = args.peak_tflops or peak_for(summary["device"])
    rows = [
        ("device", f"{summary['device']} ({summary['backend']}, {summary['precision']})"),
        ("validation", validation_words(summary)),
        (f"time to {args.target:.0%} validation", "no validation" if summary["best_val_accuracy"] is None else
         "not reached" if to_target is None else
         f"{to_target[0]:.1f} s (epoch {to_target[1]})"),
        ("time to the final model", f"{summary['wall_seconds']:.1f} s (all epochs, compilation included)"),
        ("training images/s after warm-up", f"{rate:,.0f}"),
        ("FLOPs per image", f"{flops / 1e6:.0f} M forward, {3 * flops / 1e6:.0f} M a training step"),
        ("achieved", f"{achieved:.2f} TFLOP/s" + (f" = {100 * achieved / peak:.2f}% of {peak:.0f} TFLOP/s peak"
                                                  if peak else " (peak unknown: pass --peak-tflops)")),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(json.dumps({"bench": "speed", "device": summary["device"], "backend": summary["backend"],
                      "command": summary["command"], "parameters": summary["trainable_parameters"],
                      "precision": summary["precision"], "best_val_accuracy": summary["best_val_accuracy"],
                      "epochs": summary["epochs"], "target": args.target,
                      "seconds_to_target": None if to_target is None else round(to_target[0], 2),
                      "seconds_total": summary["wall_seconds"], "images_per_s": rate,
                      "forward_flops_per_image": flops, "achieved_tflops": round(achieved, 4),
                      "peak_tflops": peak, "fraction_of_peak": round(achieved / peak, 5) if peak else None}))


if __name__ == "__main__":
    main()
