#!/usr/bin/env python3
"""Train a fully connected network with as many parameters as a given CNN.

The hidden widths are chosen so the trainable parameter count lands within 1%
of the CNN's (--match), which makes CNN vs DNN a fair comparison.

    python train_dnn.py --train data/train.csv --match models/cnn.keras
"""

from fer import backend, cli, inference, records, training
from fer.data import prepare_data
from fer.errors import InputError
from fer.models import DROPOUT, build_dnn, dnn_parameters, match_widths, trainable_parameters
from fer.outputs import check_outputs
from fer.settings import resolve


def parse_args():
    parser = cli.parser(__doc__)
    cli.add_data_flags(parser)
    cli.add_run_flags(parser)
    cli.add_output_flags(parser, default_model=records.TRAINED_DNN)
    net = parser.add_argument_group("network")
    net.add_argument("--match", metavar="CNN.keras", default=str(records.TRAINED_CNN),
                     help=f"match this model's trainable parameter count (default {records.TRAINED_CNN})")
    net.add_argument("--params", type=cli.number(int, 100), help="match this count instead of a model's")
    net.add_argument("--depth", type=cli.POSITIVE_INT, default=3, help="hidden layers (default 3)")
    net.add_argument("--dropout", type=cli.number(float, 0, 1, below=True),
                     help=f"after each hidden layer ({DROPOUT:g})")
    return parser.parse_args()


def main():
    import keras

    args = parse_args()
    settings = resolve(args, network=False)
    paths = records.output_paths(args.model, args.figures, args.submission)
    check_outputs(records.run_files(paths, submission=args.test), inputs=[args.train, args.test, args.match])
    target = args.params or trainable_parameters(inference.load_model(args.match, "--match"))
    if args.depth < 1 or target < 100:
        raise InputError("--depth/--params", "need at least one hidden layer and a target of 100+ parameters")
    test = inference.load_test(args.test) if args.test else None
    data = prepare_data(args.train, settings)

    backend.set_precision(settings["precision"])
    keras.utils.set_random_seed(settings["seed"])
    widths = match_widths(target, args.depth)
    model = build_dnn(widths, data["mean"], data["variance"], settings["augment"], settings["dropout"],
                      settings["seed"], settings["augment_scale"], settings["erase"], settings["degrade"])
    count = trainable_parameters(model)
    assert count == dnn_parameters(widths), (count, dnn_parameters(widths))
    if abs(count - target) > 0.01 * target:
        raise InputError("--depth", f"{args.depth} hidden layer(s) can't come within 1% of {target:,} parameters "
                                    f"(closest: {count:,}); use --depth {args.depth + 1}")
    print(f"parameters: CNN {target:,}  DNN {count:,} (hidden {'-'.join(map(str, widths))}, "
          f"{100 * (count - target) / target:+.2f}%)")

    run = records.describe_run(paths["model"].stem, "dense " + "-".join(map(str, widths)), model, settings, data)
    run["matched_parameters"] = target
    run.update(training.fit(model, data, settings, paths, fresh=args.fresh))
    training.finish(paths, run, test, figures_title="DNN " + "-".join(map(str, widths)))


if __name__ == "__main__":
    cli.run(main)
