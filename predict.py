#!/usr/bin/env python3
r"""Write a Kaggle submission (id,label) from one or more trained models.

Several --model flags average the models' probabilities; --tta also averages
over views of each face: --tta (= --tta zoom) the face and its mirror image,
each as it is, magnified and shrunk by 15% (6 views); --tta flip only the face
and its mirror image. With a labeled file (label,feature or fer2013.csv, whose
PrivateTest rows are predicted) it also prints accuracy. --validate scores the
same ensemble, plain and with each --tta, on the validation split the models
were trained without (models that held out different faces are refused: train
an ensemble's members with one --split-seed, whatever their --seed), and with
three or more models the ensemble without each one, and McNemar's test of each
such ensemble against all the models on the same faces (a p above 0.05: the
faces that member changes could be chance): choose models and --tta by it, not
by the test file. FER2013 holds some faces twice, so it scores them
again without the validation faces that repeat a training face, and counts the
test faces that do.
--fit adds each model's accuracy on its own training faces (no augmentation),
to tell underfitting from overfitting.

    python predict.py --model models/cnn.keras --test data/test.csv --out submission.csv
    python predict.py --model models/cnn.keras --model models/cnn2.keras --tta --test data/test.csv \
        --validate data/train.csv
    python predict.py --validate data/train.csv          # the shipped ensemble's scores, no submission
"""
import time

import numpy as np

from fer import cli, inference, records
from fer.augment import TTA_DEFAULT, TTA_ZOOMS
from fer.data import repeats
from fer.errors import InputError
from fer.outputs import check_outputs
from fer.scores import accuracy_interval, paired_comparison


def parse_args():
    parser = cli.parser(__doc__)
    parser.add_argument("--model", action="append", metavar="M.keras",
                        help=f"a trained model; repeat to ensemble (default {cli.ENSEMBLE_WORDS})")
    parser.add_argument("--test", metavar="CSV", help="test.csv (id,feature), or a labeled file (required unless "
                        "--validate: then the submission is left out)")
    parser.add_argument("--out", metavar="CSV", help="with --test (default submission.csv)")
    parser.add_argument("--probabilities", metavar="CSV", help="with --test: also each face's 7 probabilities, "
                        "id,p_Angry..p_Neutral, averaged as the labels are (for stacking with other models)")
    parser.add_argument("--tta", nargs="?", const=TTA_DEFAULT, choices=list(TTA_ZOOMS),
                        help="test-time augmentation: zoom (the default of --tta: 6 views, zoomed 0.85/1/1.15, "
                             "each mirrored) or flip (2 views)")
    cli.add_temperature_flag(parser)
    parser.add_argument("--batch-size", type=cli.POSITIVE_INT, default=256)
    parser.add_argument("--validate", metavar="CSV", help="the labeled training file: also print validation "
                        "accuracy of each model and of the ensemble, plain and with each --tta")
    parser.add_argument("--fit", action="store_true", help="with --validate: also each model's accuracy on its "
                        "training split, without augmentation (the history's is on augmented faces)")
    return parser.parse_args()


def validation_table(paths, models, val, note, data_path, batch_size, repeated):
    """Accuracy on the held-out split of each model and of all of them averaged, plain and with each
    --tta; again without the faces that repeat a training face, if any. Returns each model's plain accuracy."""
    progress = inference.view_progress(f"{len(val):,} validation faces", len(models))
    # each view once, for every column
    views = inference.view_probabilities(models, val.x, batch_size=batch_size, progress=progress)
    rows = [(str(path), [model_views]) for path, model_views in zip(paths, views)]
    if len(models) > 1:
        rows.append((f"ensemble of {len(models)}", views))
    if len(models) > 2:  # does each member pull its weight? the ensemble without it, from the same views
        rows += [(f"  without {path}", views[:i] + views[i + 1:]) for i, path in enumerate(paths)]

    width = max(44, *(len(name) for name, _ in rows))  # long paths keep the columns aligned

    def table(kept):
        print(f"{'model':{width}s}" + "".join(f" {column:>9s}" for column in inference.tta_columns()))
        accuracies = []
        for name, members in rows:
            scores = list(inference.column_accuracies(members, val.y, kept).values())
            accuracies.append(scores[0])
            print(f"{name:{width}s}" + "".join(f" {score:9.4f}" for score in scores))
        return accuracies

    print(f"\nvalidation accuracy on {len(val):,} faces of {data_path} ({note})")
    accuracies = table(np.ones(len(val), bool))
    headline = len(models) if len(models) > 1 else 0  # the ensemble's row, or the one model's
    low, high = accuracy_interval(round(accuracies[headline] * len(val)), len(val))
    print(f"(95% interval of {rows[headline][0]}, plain: {low:.4f} to {high:.4f}; confusion.py tests two models on "
          "the same faces)")
    if len(models) > 2:
        member_tests(paths, views, val.y, width)
    if repeated.any():
        # A repeated face is one the models learned: those raise validation accuracy above what new faces get.
        print(f"\nthe same on the {np.sum(~repeated):,} faces that are not also training faces ({np.sum(repeated):,} "
              "repeat one pixel for pixel)")
        table(~repeated)
    return accuracies[:len(models)]


def member_tests(paths, views, y, width):
    """Does each member count? The ensemble without it against all of them on the same faces, by McNemar's test:
    a p above 0.05 says the faces it changes could be chance."""
    everyone = inference.column_right(views, y)
    print(f"\n{'McNemar p, without it against all':{width}s}" + "".join(f" {column:>9s}" for column in everyone))
    for i, path in enumerate(paths):
        without = inference.column_right(views[:i] + views[i + 1:], y)
        print(f"{'  without ' + str(path):{width}s}"
              + "".join(f" {paired_comparison(without[c], everyone[c])['p_value']:9.3f}" for c in everyone))


def fit_table(paths, models, train, validation_accuracies, batch_size):
    """Accuracy on the faces each model learned from (no augmentation, no dropout) next to validation:
    a small gap with low training accuracy means the network underfits."""
    print(f"\naccuracy on the {len(train):,} training faces, without augmentation, against validation")
    width = max(44, *(len(str(path)) for path in paths))
    print(f"{'model':{width}s} {'training':>9s} {'validation':>11s} {'gap':>6s}")
    for path, model, held_out in zip(paths, models, validation_accuracies):
        fit = np.mean(inference.predict_probabilities([model], train.x, batch_size=batch_size).argmax(1) == train.y)
        print(f"{str(path):{width}s} {fit:9.4f} {held_out:11.4f} {fit - held_out:6.3f}")


def main():
    args = parse_args()
    if args.fit and not args.validate:
        raise InputError("--fit", "needs --validate: the labeled file the models were trained on")
    if not args.test and not args.validate:
        raise InputError("--test", "required: the faces to predict (or --validate alone, to score the models)")
    for flag, given in (("--out", args.out), ("--probabilities", args.probabilities), ("--tta", args.tta)):
        if given and not args.test:  # --validate scores every --tta kind; only a submission needs one
            raise InputError(flag, "needs --test: it applies to the submission, and --validate alone writes none")
    if args.temperature != 1 and not args.probabilities:
        raise InputError("--temperature", "changes the probabilities only, not a label: give --probabilities")
    paths = args.model or cli.default_models(announce=False)
    out = args.out or "submission.csv"
    if args.test:  # the default models are inputs too: --out may name one
        check_outputs([out, args.probabilities], inputs=[args.test, args.validate, *paths])
    if not args.model:  # after the check, so that a refusal stays one line
        cli.announce_models(paths)
    test = inference.load_test(args.test) if args.test else None
    models = [inference.load_model(path) for path in paths]
    # read before anything is written: a bad --validate file leaves no half-finished outputs
    train, val, note = records.load_split(args.validate, paths) if args.validate else (None, None, None)
    if test is not None:
        write_predictions(args, out, models, test)
    if args.validate:
        faces = val.x if test is None else np.concatenate([val.x, test.x])
        repeated = repeats(faces, train.x)  # one pass over the training faces
        repeated, repeated_test = repeated[:len(val)], repeated[len(val):]
        validation_accuracies = validation_table(paths, models, val, note, args.validate, args.batch_size, repeated)
        if test is not None:
            print(f"\n{np.sum(repeated_test):,} of the {len(test):,} faces of {args.test} repeat a training "
                  f"face pixel for pixel, against {np.sum(repeated):,} of the {len(val):,} validation faces")
        if args.fit:
            fit_table(paths, models, train, validation_accuracies, args.batch_size)


def write_predictions(args, out, models, test):
    """The submission, and the accuracy when the test file has labels."""
    started = time.perf_counter()
    progress = inference.view_progress(f"{len(test):,} faces of {args.test}", len(models)) if args.tta else None
    probabilities = inference.predict_probabilities(models, test.x, args.tta, args.batch_size, progress,
                                                   args.temperature)
    labels = probabilities.argmax(1)
    inference.write_submission(out, test.ids, labels)
    seconds = time.perf_counter() - started
    views = f" with {args.tta} TTA" if args.tta else ""
    print(f"wrote {out}: {len(labels):,} rows from {len(models)} model(s){views}"
          f" in {seconds:.1f} s")
    print(f"predicted classes: {inference.class_counts(labels)}")
    if args.probabilities:
        inference.write_probabilities(args.probabilities, test.ids, probabilities)
        print(f"wrote {args.probabilities}: each face's 7 probabilities")
    if test.y is not None:
        print(f"accuracy on {args.test}: {np.mean(labels == test.y):.4f} ({len(labels):,} labeled rows)")


if __name__ == "__main__":
    cli.run(main)
