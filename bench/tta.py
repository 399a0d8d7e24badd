#!/usr/bin/env python3
"""Which test-time views help: choose a set of zooms on one random half of the validation split, score it
on the other half.

Every model sees every validation face once at each zoom, as it is and mirrored (fer.augment.tta_views;
a zoom below 1 magnifies). The candidate sets all keep the face as it is: flips alone, one extra zoom,
one zoom-in with one zoom-out, and predict.py's current `--tta zoom` set. Each is the mean probability
over the models and views. The set best on half A is then scored on half B, where it was not chosen,
against flips alone. With --extra, predict.py's `--tta zoom` set is also scored with other views added: the faces
moved --shift pixels left, right, up and down, turned --rotate degrees each way, or their mid-tones lightened
and darkened by the power --gamma (each also mirrored). Ends with one JSON line.

    python bench/tta.py --model models/pretrained/cnn.keras --data ../shared/fer2013/train.npz.xz
    python bench/tta.py --model models/pretrained/cnn.keras --data ../shared/fer2013/train.npz.xz --zooms 0.85 1.15 \
        --extra shift rotate
"""
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args():
    from fer import cli

    parser = cli.parser(__doc__)
    parser.add_argument("--model", action="append", required=True, metavar="M.keras",
                        help="a trained model; repeat to score an ensemble")
    parser.add_argument("--data", required=True, help="the labeled file the (first) model was trained on")
    parser.add_argument("--zooms", type=cli.number(float, 0.5, 2), nargs="+",
                        default=[0.85, 0.9, 0.95, 1.05, 1.1, 1.15, 1.2])
    parser.add_argument("--extra", nargs="+", choices=EXTRA_KINDS, default=[],
                        help="also score the --tta zoom set with these views added")
    parser.add_argument("--shift", type=cli.number(int, 1, 12), default=2, help="pixels a shifted view moves (2)")
    parser.add_argument("--rotate", type=cli.number(float, 0, 45, above=True), default=8.0,
                        help="degrees a turned view turns (8)")
    parser.add_argument("--gamma", type=cli.number(float, 1, 4, above=True), default=1.25,
                        help="a lighter view raises pixels (0-1) to 1/G, a darker one to G (1.25)")
    parser.add_argument("--seed", type=cli.number(int, **cli.SEED), default=0, help="which random half is half A")
    parser.add_argument("--batch-size", type=cli.POSITIVE_INT, default=256)
    return parser.parse_args()


EXTRA_KINDS = ("shift", "rotate", "gamma")


def extra_changes(kind, shift, degrees, gamma):
    """The changes of one kind of extra view: (label, function from faces (0-255) to the view)."""
    from fer.augment import fixed_warp

    def warp(**move):
        return lambda x: fixed_warp(x, **move)

    if kind == "shift":
        return [(f"{dx:+d},{dy:+d}px", warp(tx=dx, ty=dy))
                for dx, dy in ((shift, 0), (-shift, 0), (0, shift), (0, -shift))]
    if kind == "rotate":
        return [(f"{d:+g}deg", warp(angle=float(np.deg2rad(d)))) for d in (degrees, -degrees)]
    return [(f"^{g:g}", lambda x, g=g: (255 * (x / 255) ** g).astype("float32")) for g in (1 / gamma, gamma)]


def extra_views(x, kinds, shift, degrees, gamma):
    """(key, view) pairs of the extra views, key (kind, label, mirrored): each change of the faces, then its
    mirror."""
    from fer.data import as_input

    x = as_input(x)
    for kind in kinds:
        for label, change in extra_changes(kind, shift, degrees, gamma):
            view = change(x)
            yield (kind, label, False), view
            yield (kind, label, True), view[:, :, ::-1]


def extra_probabilities(models, x, kinds, shift, degrees, gamma, batch_size):
    """Each model's probabilities on the extra views: a list (one per model) of {(kind, label, mirrored): p}."""
    from fer import inference

    return inference.keyed_view_probabilities(models, extra_views(x, kinds, shift, degrees, gamma), batch_size)


def with_extra_views(views, extra, zoom_set, kinds):
    """Mean probabilities over the models and every view of zoom_set (each mirrored) and of these extra kinds."""
    stack = [member[zoom, mirrored] for member in views for zoom in zoom_set for mirrored in (False, True)]
    stack += [p for member in extra for key, p in member.items() if key[0] in kinds]
    return np.mean(stack, axis=0)


def extra_row(views, extra, kinds, args, y, half_a):
    """The --tta zoom set with these kinds of extra views added, scored on half A, half B and all faces."""
    from fer.augment import TTA_ZOOMS

    predicted = with_extra_views(views, extra, TTA_ZOOMS["zoom"], kinds).argmax(1)
    names = {"shift": f"shifts {args.shift}px", "rotate": f"turns {args.rotate:g}deg", "gamma": f"gamma {args.gamma:g}"}
    added = [names[kind] for kind in kinds]
    label = " ".join(f"{z:g}" for z in TTA_ZOOMS["zoom"]) + " + " + " + ".join(added)
    return {"set": label, **{name: round(float(np.mean(predicted[rows] == y[rows])), 4)
                             for name, rows in (("half_a", half_a), ("half_b", ~half_a), ("all", slice(None)))}}


def candidate_sets(zooms, current):
    """Zoom sets to compare, each starting with 1 (the face as it is)."""
    zoom_in, zoom_out = [z for z in zooms if z < 1], [z for z in zooms if z > 1]
    pairs = [(1.0, z) for z in zooms if z != 1]
    sets = [(1.0,)] + pairs + [(1.0, a, b) for a, b in itertools.product(zoom_in, zoom_out)]
    return list(dict.fromkeys(sets + [tuple(current)]))


def main():
    from fer import inference, records
    from fer.augment import TTA_ZOOMS

    args = parse_args()
    zooms = sorted({1.0, *TTA_ZOOMS["zoom"], *args.zooms})
    models = [inference.load_model(path) for path in args.model]
    _, val, note = records.load_split(args.data, args.model)
    started = time.perf_counter()
    views = inference.view_probabilities(models, val.x, zooms, args.batch_size)
    extra = extra_probabilities(models, val.x, args.extra, args.shift, args.rotate, args.gamma, args.batch_size)
    seconds = time.perf_counter() - started
    n_views = 2 * len(zooms) + (len(extra[0]) if extra else 0)
    half_a = np.random.default_rng(args.seed).permutation(len(val)) < len(val) // 2

    def accuracy(zoom_set, rows):
        return float(np.mean(inference.mean_of_views(views, zoom_set)[rows].argmax(1) == val.y[rows]))

    scored = [(zoom_set, accuracy(zoom_set, half_a), accuracy(zoom_set, ~half_a), accuracy(zoom_set, slice(None)))
              for zoom_set in candidate_sets(args.zooms, TTA_ZOOMS["zoom"])]
    scored.sort(key=lambda row: -row[1])
    print(f"{len(val):,} validation faces of {args.data} ({note}), halves of {half_a.sum():,} and "
          f"{(~half_a).sum():,}; {len(models)} model(s), {n_views} views each in {seconds:.0f} s")
    extra_rows = [extra_row(views, extra, kinds, args, val.y, half_a)
                  for r in range(1, len(args.extra) + 1) for kinds in itertools.combinations(args.extra, r)]
    width = max([28] + [len(row["set"]) for row in extra_rows])
    print(f"{'zooms (each also mirrored)':{width}s} {'half A':>7s} {'half B':>7s} {'all':>7s}")
    for zoom_set, a, b, every in scored:
        mark = "  <- flips alone" if zoom_set == (1.0,) else "  <- --tta zoom" if zoom_set == TTA_ZOOMS["zoom"] else ""
        print(f"{' '.join(f'{z:g}' for z in zoom_set):{width}s} {a:7.4f} {b:7.4f} {every:7.4f}{mark}")
    for row in extra_rows:
        print(f"{row['set']:{width}s} {row['half_a']:7.4f} {row['half_b']:7.4f} {row['all']:7.4f}"
              "  <- --tta zoom and more")
    best = scored[0]
    flips = next(row for row in scored if row[0] == (1.0,))
    current = next(row for row in scored if row[0] == TTA_ZOOMS["zoom"])
    print(json.dumps({"bench": "tta", "models": args.model, "val_rows": len(val), "seed": args.seed,
                      "chosen_on_half_a": list(best[0]), "chosen_half_a": round(best[1], 4),
                      "chosen_half_b": round(best[2], 4), "flips_half_b": round(flips[2], 4),
                      "flips_all": round(flips[3], 4), "tta_zoom": list(TTA_ZOOMS["zoom"]),
                      "tta_zoom_half_a": round(current[1], 4), "tta_zoom_half_b": round(current[2], 4),
                      "tta_zoom_all": round(current[3], 4), "extra": extra_rows,
                      "plain_all": round(float(np.mean(inference.mean_of_views(views).argmax(1) == val.y)), 4)}))


if __name__ == "__main__":
    from fer import cli

    cli.run(main)
