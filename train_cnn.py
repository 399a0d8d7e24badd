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
    python train_cnn.py --train data/train.csv --init models/pretrained/cnn.keras --width 1.5 --lr 2e-3
        (a warm restart from the shipped model's weights: a second model to ensemble with it)
"""
import time

STARTED = time.perf_counter()  # --minutes counts the whole command, Keras's import included

from fer import cli, distillation, inference, records, training  # noqa: E402
from fer.data import prepare_data  # noqa: E402
from fer.outputs import check_outputs  # noqa: E402
from fer.settings import resolve  # noqa: E402


def parse_args():
    parser = cli.parser(__doc__)
    cli.add_data_flags(parser)
    cli.add_run_flags(parser)
    cli.add_distill_flags(parser)
    cli.add_output_flags(parser, default_model=records.TRAINED_CNN)
    cli.add_network_flags(parser)
    cli.add_minutes_flag(parser)
    cli.add_init_flag(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    settings = resolve(args, network=True, timed=True)
    paths = records.output_paths(args.model, args.figures, args.submission)
    check_outputs(records.run_files(paths, submission=args.test),
                  inputs=[args.train, args.test, settings["init"], *settings["teachers"], *settings["unlabeled"]])
    # Read every input before training, so bad input costs nothing and overwrites nothing.
    test = inference.load_test(args.test) if args.test else None
    data = prepare_data(args.train, settings)
    data = distillation.distill(data, settings)  # with --teacher: soft targets from trained models
    if settings["init"]:  # before the speed measurement of a timed run: a doubtful --init costs nothing
        distillation.check_held_out(settings["init"], data["split"], "--init")

    run = training.train_cnn(data, settings, paths, fresh=args.fresh, started=STARTED)
    training.finish(paths, run, test, figures_title=f"CNN ({settings['arch']})")


if __name__ == "__main__":
    cli.run(main)
