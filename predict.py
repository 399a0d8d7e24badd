#!/usr/bin/env python3
"""Write a Kaggle submission (id,label) from one or more trained models.

Several --model flags average the models' probabilities; --tta also averages
each image with its mirror image. With a labeled file (label,feature or
fer2013.csv, whose PrivateTest rows are predicted) it also prints accuracy.

    python predict.py --model models/cnn.keras --test data/test.csv --out submission.csv
"""
import argparse
import time

import numpy as np

import fer
from fer import cli

DEFAULT_MODEL = "models/cnn.keras, else the shipped models/pretrained/cnn.keras"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", metavar="M.keras",
                        help=f"a trained model; repeat to ensemble (default {DEFAULT_MODEL})")
    parser.add_argument("--test", required=True, metavar="CSV", help="test.csv (id,feature), or a labeled file")
    parser.add_argument("--out", default="submission.csv", metavar="CSV", help="(default submission.csv)")
    parser.add_argument("--tta", action="store_true", help="average with horizontally flipped faces")
    parser.add_argument("--batch-size", type=int, default=256)
    return parser.parse_args()


def main():
    args = parse_args()
    test = cli.load_test(args.test)
    models = [cli.load_model(path) for path in args.model or [cli.default_model()]]
    started = time.perf_counter()
    probabilities = cli.predict_probabilities(models, test.x, args.tta, args.batch_size)
    labels = probabilities.argmax(1)
    cli.write_submission(args.out, test.ids, labels)
    seconds = time.perf_counter() - started
    print(f"wrote {args.out}: {len(labels):,} rows from {len(models)} model(s){' with flip TTA' if args.tta else ''}"
          f" in {seconds:.1f} s")
    print(f"predicted classes: {cli.class_counts(labels)}")
    if test.y is not None:
        print(f"accuracy on {args.test}: {np.mean(labels == test.y):.4f} ({len(labels):,} labeled rows)")


if __name__ == "__main__":
    fer
    cli.run(main)
