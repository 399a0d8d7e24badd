#!/usr/bin/env python3
"""Train the facial-expression CNN on FER2013.

Writes models/cnn.keras (best validation accuracy), its history CSV and summary
JSON, figures/cnn_history.png, and with --test a Kaggle submission.

    python train_cnn.py --train data/train.csv --test data/test.csv
    python train_cnn.py --train ../fer2013.csv --arch report5 --preset cpu
    python train_cnn.py --train data/train.csv --test data/test.csv --val-fraction 0 --model models/final.keras
        (the final fit: every labeled face trains, the last epoch is the model)
    python train_cnn.py --train data/train.csv --teacher models/a.keras models/b.keras
        (distillation: targets blend each face's label with what the teachers predict for it)
"""
import argparse
import time

STARTED = time.perf_counter()  # --minutes counts the whole command, Keras's import included

import fer  # noqa: E402
from fer import cli, training  # noqa: E402
from fer.models import ARCHITECTURES  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    training.add_arguments(parser, default_model="models/cnn.keras")
    arch = parser.add_argument_group("network")
    arch.add_argument("--arch", default="vgg", choices=list(ARCHITECTURES),
                      help="; ".join(f"{k}: {v.about}" for k, v in ARCHITECTURES.items()))
    arch.add_argument("--width", type=float, help="channel multiplier (default: the preset's, "
                      + ", ".join(f"{name} {p['width']:g}" for name, p in training.PRESETS.items()) + ")")
    arch.add_argument("--dropout", type=float, default=0.4)
    arch.add_argument("--no-batchnorm", dest="batchnorm", action="store_false", default=None,
                      help="leave out every BatchNormalization layer (ablation)")
    parser.add_argument("--minutes", type=float,
                        help="time the whole command to this many minutes: the epochs are planned from the "
                             "speed measured here, the learning rate follows the clock, and training stops in "
                             f"time (the cpu preset does this for {training.CPU_MINUTES} minutes unless --epochs "
                             "is given)")
    return parser.parse_args()


def main():
    args = parse_args()
    settings = training.settings_from(args)
    paths = training.output_paths(args.model, args.figures, args.submission)
    # Read every input before training, so bad input costs nothing and overwrites nothing.
    test = cli.load_test(args.test) if args.test else None
    data = training.prepare_data(args.train, settings)
    data = training.distill(data, settings)  # with --teacher: soft targets from trained models

    run = training.train_cnn(data, settings, paths, args.arch, args.dropout, fresh=args.fresh, started=STARTED)
    training.finish(paths, run, test, figures_title=f"CNN ({args.arch})")


if __name__ == "__main__":
    fer  # the package import above registers custom layers and quiets TensorFlow
    cli.run(main)
