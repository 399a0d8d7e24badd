#!/usr/bin/env python3
"""Train a fully connected network with as many parameters as a given CNN.

The hidden widths are chosen so the trainable parameter count lands within 1%
of the CNN's (--match), which makes CNN vs DNN a fair comparison.

    python train_dnn.py --train data/train.csv --match models/cnn.keras
"""
import argparse

import fer
from fer import backend, cli, training
from fer.errors import InputError
from fer.models import build_dnn, dnn_parameters, match_widths, trainable_parameters


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    training.add_arguments(parser, default_model="models/dnn.keras")
    net = parser.add_argument_group("network")
    net.add_argument("--match", metavar="CNN.keras", default="models/cnn.keras",
                     help="match this model's trainable parameter count (default models/cnn.keras)")
    net.add_argument("--params", type=int, help="match this count instead of a model's")
    net.add_argument("--depth", type=int, default=3, help="hidden layers (default 3)")
    net.add_argument("--dropout", type=float, default=0.4)
    return parser.parse_args()


def main():
    import keras

    args = parse_args()
    settings = training.settings_from(args)
    paths = training.output_paths(args.model, args.figures, args.submission)
    target = args.params or trainable_parameters(cli.load_model(args.match))
    if args.depth < 1 or target < 100:
        raise InputError("--depth/--params", "need at least one hidden layer and a target of 100+ parameters")
    test = cli.load_test(args.test) if args.test else None
    data = training.prepare_data(args.train, settings)

    backend.set_precision(settings["precision"])
    keras.utils.set_random_seed(settings["seed"])
    widths = match_widths(target, args.depth)
    model = build_dnn(widths, data["mean"], data["variance"], settings["augment"], args.dropout, settings["seed"],
                      settings["augment_scale"], settings["erase"])
    count = trainable_parameters(model)
    assert count == dnn_parameters(widths), (count, dnn_parameters(widths))
    if abs(count - target) > 0.01 * target:
        raise InputError("--depth", f"{args.depth} hidden layer(s) can't come within 1% of {target:,} parameters "
                                    f"(closest: {count:,}); use --depth {args.depth + 1}")
    print(f"parameters: CNN {target:,}  DNN {count:,} (hidden {'-'.join(map(str, widths))}, "
          f"{100 * (count - target) / target:+.2f}%)")

    run = training.describe_run(paths["model"].stem, "dense " + "-".join(map(str, widths)), model, settings, data)
    run["matched_parameters"] = target
    run.update(training.fit(model, data, settings, paths, fresh=args.fresh))
    training.finish(paths, run, test, figures_title="DNN " + "-".join(map(str, widths)))


if __name__ == "__main__":
    fer
    cli.run(main)
