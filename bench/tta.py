#!/usr/bin/env python3
"""Which test-time views help: choose a set of zooms on one random half of the validation split, score it
on the other half.

Every model sees every validation face once at each zoom, as it is and mirrored (fer.augment.tta_views;
a zoom below 1 magnifies). The candidate sets all keep the face as it is: flips alone, one extra zoom,
one zoom-in with one zoom-out, and predict.py's current `--tta zoom` set. Each is the mean probability
over the models and views. The set best on half A is then scored on half B, where it was not chosen,
against flips alone. Ends with one JSON line.

    python bench/tta.py --model models/pretrained/cnn.keras --data ../shared/fer2013/train.npz.xz
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
    parser.add_argument("--seed", type=cli.number(int, **cli.SEED), default=0, help="which random half is half A")
    parser.add_argument("--batch-size", type=cli.POSITIVE_INT, default=256)
    return parser.parse_args()


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
    seconds = time.perf_counter() - started
    half_a = np.random.default_rng(args.seed).permutation(len(val)) < len(val) // 2

    def accuracy(zoom_set, rows):
        return float(np.mean(inference.mean_of_views(views, zoom_set)[rows].argmax(1) == val.y[rows]))

    scored = [(zoom_set, accuracy(zoom_set, half_a), accuracy(zoom_set, ~half_a), accuracy(zoom_set, slice(None)))
              for zoom_set in candidate_sets(args.zooms, TTA_ZOOMS["zoom"])]
    scored.sort(key=lambda row: -row[1])
    print(f"{len(val):,} validation faces of {args.data} ({note}), halves of {half_a.sum():,} and "
          f"{(~half_a).sum():,}; {len(models)} model(s), {2 * len(zooms)} views each in {seconds:.0f} s")
    print(f"{'zooms (each also mirrored)':28s} {'half A':>7s} {'half B':>7s} {'all':>7s}")
    for zoom_set, a, b, every in scored:
        mark = "  <- flips alone" if zoom_set == (1.0,) else "  <- --tta zoom" if zoom_set == TTA_ZOOMS["zoom"] else ""
        print(f"{' '.join(f'{z:g}' for z in zoom_set):28s} {a:7.4f} {b:7.4f} {every:7.4f}{mark}")
    best = scored[0]
    flips = next(row for row in scored if row[0] == (1.0,))
    current = next(row for row in scored if row[0] == TTA_ZOOMS["zoom"])
    print(json.dumps({"bench": "tta", "models": args.model, "val_rows": len(val), "seed": args.seed,
                      "chosen_on_half_a": list(best[0]), "chosen_half_a": round(best[1], 4),
                      "chosen_half_b": round(best[2], 4), "flips_half_b": round(flips[2], 4),
                      "flips_all": round(flips[3], 4), "tta_zoom": list(TTA_ZOOMS["zoom"]),
                      "tta_zoom_all": round(current[3], 4),
                      "plain_all": round(float(np.mean(inference.mean_of_views(views).argmax(1) == val.y)), 4)}))


if __name__ == "__main__":
    from fer import cli

    cli.run(main)
