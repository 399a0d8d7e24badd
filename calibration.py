#!/usr/bin/env python3
"""How far to trust the probabilities: the calibration of trained models on their validation split
(or labeled test faces, --test).

A model is calibrated when it is right on 70% of the faces it gives a confidence (its highest probability) of
0.7. For each --model, and for their average when there are several (the ensemble predict.py and faces.py use;
--each leaves it out): accuracy, mean confidence, the expected calibration error (ECE: the gap between
confidence and accuracy in --bins equal bins of confidence, weighted by their faces), negative log-likelihood
(NLL) and Brier score. Then the temperature T that calibrates it: the probabilities raised to 1/T and
renormalized (T > 1 softens an overconfident model, T < 1 sharpens an underconfident one; no label changes).
The ECE and NLL after T are scored on each half of the faces with the T fitted on the other half, so fitting
does not flatter them.
--tta scores each model plain and averaged over those test-time views, which soften the probabilities.

    python calibration.py --data data/train.csv                  # yours, else the shipped ensemble
    python calibration.py --data data/train.csv --model models/cnn.keras --model models/dnn.keras
    python calibration.py --data data/train.csv --tta            # plain and with --tta's six views
    python calibration.py --test data/fer2013.csv                # on its PrivateTest rows
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

from fer import backend, cli, inference, narrative, records
from fer.atomic import write_text
from fer.augment import TTA_DEFAULT, TTA_ZOOMS
from fer.calibration import BINS, calibration_report
from fer.outputs import check_outputs

ENSEMBLE = "ensemble"
FEWEST_DRAWN = 10  # a bin's accuracy over fewer faces is mostly chance: left out of the figure, not the ECE
NAMED = 4  # models named in the output files' name; past that, a count


def parse_args():
    parser = cli.parser(__doc__)
    parser.add_argument("--model", action="append", metavar="M.keras",
                        help=f"a trained model; repeat to compare, and to score their average too "
                             f"(default {cli.ENSEMBLE_WORDS})")
    cli.add_scored_flags(parser)
    parser.add_argument("--out", default="figures", metavar="DIR")
    parser.add_argument("--tta", nargs="?", const=TTA_DEFAULT, choices=list(TTA_ZOOMS),
                        help="also score each model averaged over test-time views, as predict.py --tta does "
                             "(zoom: 6 views; flip: 2)")
    parser.add_argument("--each", action="store_true",
                        help="score each model alone, not also their average (models that are no ensemble, "
                             "such as a CNN and a DNN)")
    parser.add_argument("--bins", type=cli.number(int, 2, 100), default=BINS,
                        help=f"equal-width bins of confidence for the ECE and the figure ({BINS})")
    return parser.parse_args()


def model_names(paths):
    """Each model's file name without .keras, numbered in order where two files share a name."""
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) == len(stems) and ENSEMBLE not in stems:
        return stems
    return [f"{i}:{stem}" for i, stem in enumerate(stems, 1)]


def output_stem(chosen):
    """calibration for the default models or one, else the models' names joined (a count past NAMED)."""
    stems = [Path(p).stem for p in chosen or ()]
    if len(stems) < 2:
        return "calibration"
    return "calibration_" + ("_vs_".join(stems) if len(stems) <= NAMED else f"{stems[0]}_and_{len(stems) - 1}_more")


def scored_probabilities(models, names, x, what, tta, average):
    """{view column: {name: probabilities}}: each model plain (and with tta over its views), then, with average,
    the models' average when there are several."""
    columns = {"plain": None, **({f"{tta} TTA": tta} if tta else {})}
    progress = inference.view_progress(f"{len(x):,} {what} faces", len(models))
    if tta:  # every view once, for both columns
        views = inference.view_probabilities(models, x, TTA_ZOOMS[tta], progress=progress)
        scored = {column: {name: inference.mean_of_views([member], TTA_ZOOMS.get(kind))
                           for name, member in zip(names, views)} for column, kind in columns.items()}
    else:
        scored = {"plain": {}}
        for i, (name, model) in enumerate(zip(names, models), 1):
            scored["plain"][name] = inference.predict_probabilities([model], x)
            print(f"  {len(x):,} {what} faces: model {i} of {len(models)} ({name})", flush=True)
    if average and len(models) > 1:
        for probabilities in scored.values():
            probabilities[ENSEMBLE] = np.mean(list(probabilities.values()), axis=0)
    return scored


def print_table(reports, faces, what, note, bins):
    print(f"\ncalibration on {faces:,} {what} faces ({note}); ECE over {bins} bins of confidence; "
          "after T: T fitted on each half of the faces, scored on the other")
    print(f"{'model':<16} {'views':<9} {'accuracy':>8} {'confidence':>10} {'ECE':>6} {'NLL':>6} {'Brier':>6} "
          f"{'T':>5} {'ECE after T':>11} {'NLL after T':>11}")
    for column, by_model in reports.items():
        for name, r in by_model.items():
            print(f"{name[:16]:<16} {column:<9} {r['accuracy']:>8.4f} {r['mean_confidence']:>10.4f} {r['ece']:>6.3f} "
                  f"{r['nll']:>6.3f} {r['brier']:>6.3f} {r['temperature']:>5.2f} {r['ece_after']:>11.3f} "
                  f"{r['nll_after']:>11.3f}")
    for column, by_model in reports.items():
        name = ENSEMBLE if ENSEMBLE in by_model else next(iter(by_model))
        print(narrative.calibration_text([(f"{name} ({column})", by_model[name])]))


def draw(reports, bins, path):
    """Per view column: accuracy against confidence bin by bin (on the diagonal when calibrated), and below it
    the share of faces in each bin. The ensemble, where there is one, in black."""
    from fer.plots import plt, save

    fig, axes = plt.subplots(2, len(reports), figsize=(6.2 * len(reports), 7.6), squeeze=False, sharex=True,
                             gridspec_kw=dict(height_ratios=(3, 1.2)), layout="constrained")
    edges = np.linspace(0, 1, bins + 1)
    for (column, by_model), (top, bottom) in zip(reports.items(), axes.T):
        top.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="calibrated")
        for i, (name, r) in enumerate(by_model.items()):
            colour, width = ("black", 2.4) if name == ENSEMBLE else (plt.cm.tab10.colors[i % 10], 1.4)
            b = {key: np.array(values, float) for key, values in r["bins"].items()}
            filled = b["faces"] >= FEWEST_DRAWN
            top.plot(b["confidence"][filled], b["accuracy"][filled], "o-", ms=4, lw=width, color=colour,
                     label=f"{name}: ECE {r['ece']:.3f}, T {r['temperature']:.2f}")
            bottom.stairs(b["faces"] / b["faces"].sum(), edges, color=colour, lw=width)
        top.set_title(f"{column}: accuracy at each confidence (bins of {FEWEST_DRAWN}+ faces)")
        top.set_ylabel("accuracy of the faces in the bin")
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        top.legend(loc="upper left", fontsize=10)
        bottom.set_xlabel("confidence (the highest probability)")
        bottom.set_ylabel("share of faces")
    return save(fig, path)


def main():
    args = parse_args()
    # on test faces, files of their own: the report reads the validation split's
    out = Path(args.out) / (output_stem(args.model) + ("_test" if args.test else ""))
    figure_path, record_path = Path(f"{out}.png"), Path(f"{out}.json")
    # the default models (.keras) are never among these outputs; named after the check, a refusal stays one line
    check_outputs([figure_path, record_path], inputs=[args.data, args.test, *(args.model or ())])
    paths = args.model or cli.default_models()
    names = model_names(paths)
    models = [inference.load_model(p) for p in paths]
    faces, note, what = records.load_scored(args.data, args.test, paths)
    scored = scored_probabilities(models, names, faces.x, what, args.tta, average=not args.each)
    reports = {column: {name: calibration_report(p, faces.y, args.bins) for name, p in by_model.items()}
               for column, by_model in scored.items()}
    print_table(reports, len(faces), what, note, args.bins)
    figure = draw(reports, args.bins, figure_path)
    record = dict(faces=len(faces), scored=what, split=note, data=args.test or args.data, bins=args.bins,
                  models=[str(p) for p in paths],
                  command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), device=backend.accelerator(),
                  backend=backend.name(), date=time.strftime("%Y-%m-%d"), columns=reports)
    write_text(record_path, json.dumps(record, indent=1) + "\n")
    print(f"\nwrote {figure}, {record_path}")


if __name__ == "__main__":
    cli.run(main)
