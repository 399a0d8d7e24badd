#!/usr/bin/env python3
"""Which members an ensemble should have: choose a subset of the candidate models on one random half of the
validation split, score it on the other half, and the other way round.

Every candidate sees every validation face once in each test-time view (as it is, mirrored, and zoomed as
predict.py's --tta kinds do); an ensemble's probabilities are the mean over its members, so every subset of the
candidates is scored from those alone. Choosing among many subsets on the faces that score them would flatter the
winner: the subset chosen on half A is scored on half B, the one chosen on half B on half A, each against the
reference ensemble (the first --reference candidates, by default all of them) on the same half. Their mean gain
says whether choosing members beats keeping the reference, and McNemar's test on the faces of the scoring half
that only one of the two gets right says whether each gain could be luck. The same two-half test then asks
whether the reference gains from weighting its members (the best of random weightings) or from shifting its
classes' scores (a per-class offset to the log-probabilities, as a prior correction would add). With --max-mb,
only subsets whose files fit in that many megabytes are chosen or listed (the shipped default's limit: 40). Ends
with one JSON line.

    python bench/ensemble.py --data ../shared/fer2013/train.npz.xz --reference 5 \\
        --model models/pretrained/cnn.keras --model models/pretrained/cnn_2.keras ... --model models/new.keras
    python bench/ensemble.py ... --cache /tmp/views   (each model's views kept on disk: a rerun with one more
        candidate computes only that one)
"""
import hashlib
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MAX_CANDIDATES = 12  # 4,095 subsets
WEIGHTINGS = 2000  # random member weightings tried on a half, besides equal weights
SHIFTS = np.round(np.linspace(-1, 1, 41), 2)  # the offsets tried for each class's log-probability


def parse_args():
    from fer import cli
    from fer.augment import TTA_DEFAULT, TTA_ZOOMS

    parser = cli.parser(__doc__)
    parser.add_argument("--model", action="append", required=True, metavar="M.keras",
                        help=f"a candidate member; repeat, 2 to {MAX_CANDIDATES}")
    parser.add_argument("--data", required=True, help="the labeled file the models were trained on")
    parser.add_argument("--reference", type=cli.POSITIVE_INT, metavar="N",
                        help="the first N candidates are the ensemble to beat (all of them)")
    parser.add_argument("--by", choices=["plain", *TTA_ZOOMS], default=TTA_DEFAULT,
                        help=f"the column that chooses: plain, or a --tta kind ({TTA_DEFAULT})")
    parser.add_argument("--show", type=cli.POSITIVE_INT, default=10, help="subsets to list, best on half A (10)")
    parser.add_argument("--cache", metavar="DIR", help="keep each model's probabilities here, keyed by the "
                                                       "model file's and the validation faces' contents")
    parser.add_argument("--max-mb", type=cli.number(float, 0, above=True), metavar="MB",
                        help="choose only among subsets whose model files total at most MB megabytes (10^6 bytes)")
    parser.add_argument("--seed", type=cli.number(int, **cli.SEED), default=0, help="which random half is half A")
    parser.add_argument("--batch-size", type=cli.POSITIVE_INT, default=256)
    args = parser.parse_args()
    if not 2 <= len(args.model) <= MAX_CANDIDATES:
        parser.error(f"--model: give 2 to {MAX_CANDIDATES} candidates (got {len(args.model)})")
    if len(set(map(str, args.model))) < len(args.model):
        parser.error("--model: a candidate is given twice")
    if args.reference and args.reference > len(args.model):
        parser.error(f"--reference: {args.reference} is more than the {len(args.model)} candidates")
    return args


def digest(data):
    return hashlib.sha256(data).hexdigest()[:16]


def member_views(path, x, cache, batch_size):
    """One model's probabilities on every test-time view of x: {(zoom, mirrored): p}, from the cache if there."""
    from fer import inference
    from fer.atomic import atomic_path

    path = inference.model_file(path)  # hashed before it is loaded: the same checks first
    cached = Path(cache) / f"{digest(path.read_bytes())}_{digest(x.tobytes())}.npz" if cache else None
    if cached is not None and cached.is_file():
        with np.load(cached) as stored:
            return {(float(zoom), mirrored == "1"): stored[f"{zoom}_{mirrored}"]
                    for zoom, mirrored in (key.split("_") for key in stored.files)}
    views = inference.view_probabilities([inference.load_model(path)], x, batch_size=batch_size)[0]
    if cached is not None:
        with atomic_path(cached) as tmp:
            np.savez(tmp, **{f"{zoom:g}_{int(mirrored)}": p for (zoom, mirrored), p in views.items()})
    return views


def column_means(views):
    """Per column (plain and each --tta kind), the model's mean probabilities over that column's views."""
    from fer.augment import TTA_ZOOMS
    from fer.inference import mean_of_views

    return {"plain": mean_of_views([views]),
            **{kind: mean_of_views([views], zooms) for kind, zooms in TTA_ZOOMS.items()}}


def score_subsets(means, y, half_a):
    """For every non-empty subset of the candidates (a tuple of indices): {column: (half A, half B, all)}."""
    halves = (half_a, ~half_a, np.ones(len(y), bool))
    scores = {}
    for size in range(1, len(means) + 1):
        for subset in itertools.combinations(range(len(means)), size):
            scores[subset] = {}
            for column in means[0]:
                right = np.mean([means[i][column] for i in subset], axis=0).argmax(1) == y
                scores[subset][column] = tuple(float(np.mean(right[rows])) for rows in halves)
    return scores


def megabytes(sizes, subset):
    """The subset's files together, in megabytes (10^6 bytes); sizes in bytes, one per candidate."""
    return sum(sizes[i] for i in subset) / 1e6


def within(sizes, max_mb):
    """Whether a subset's files total at most max_mb megabytes; any subset without a cap."""
    return lambda subset: max_mb is None or megabytes(sizes, subset) <= max_mb


def chosen(scores, by, half, fits=within([], None)):
    """The subset best on one half (0: A, 1: B) in column `by` among those that fit; ties go to fewer members,
    then earlier ones."""
    return max(filter(fits, scores), key=lambda subset: (scores[subset][by][half], -len(subset), [-i for i in subset]))


def held_out_test(means, subset, reference, by, y, rows):
    """McNemar's test of a chosen subset against the reference on the half it was not chosen on (p-value)."""
    from fer.scores import paired_comparison

    right = [np.mean([means[i][by] for i in s], axis=0).argmax(1)[rows] == y[rows] for s in (subset, reference)]
    return paired_comparison(*right)["p_value"]


def accuracy(p, y, rows):
    return float(np.mean(p[rows].argmax(1) == y[rows]))


def fitted_weights(probabilities, y, rows, seed):
    """Member weights best on `rows`, among equal weights and WEIGHTINGS random ones; ties go to equal weights."""
    n = len(probabilities)
    tried = np.vstack([np.full(n, 1 / n), np.random.default_rng(seed).dirichlet(np.full(n, 4.0), WEIGHTINGS)])
    scores = [accuracy(np.tensordot(w, probabilities, 1), y, rows) for w in tried]
    return tried[int(np.argmax(scores))]


def fitted_shifts(log_p, y, rows, rounds=3):
    """Per-class offsets to these log-probabilities best on `rows`, one class at a time; ties go to the smaller."""
    shift = np.zeros(log_p.shape[1])
    for _ in range(rounds):
        for c in range(log_p.shape[1]):
            def score(offset):
                tried = shift.copy()
                tried[c] = offset
                return accuracy(log_p + tried, y, rows)
            shift[c] = max(SHIFTS, key=lambda offset: (score(offset), -abs(offset)))
    return shift


def held_out(fit, apply, plain, y, half_a):
    """A remedy fitted on each half and scored on the other, against the plain ensemble on that half."""
    on_a, on_b = fit(half_a), fit(~half_a)
    scores = {"on_half_b": accuracy(apply(on_a), y, ~half_a), "on_half_a": accuracy(apply(on_b), y, half_a)}
    gain = (scores["on_half_b"] - accuracy(plain, y, ~half_a) + scores["on_half_a"] - accuracy(plain, y, half_a)) / 2
    return {**{k: round(v, 4) for k, v in scores.items()}, "mean_gain": round(gain, 4),
            "fitted": [np.round(on_a, 3).tolist(), np.round(on_b, 3).tolist()]}


def adjustments(means, reference, by, y, half_a, seed):
    """The reference's member weights (2+ members) and class shifts, each held out: {kind: held_out's dict}."""
    probabilities = np.stack([means[i][by] for i in reference])
    plain = probabilities.mean(0)
    log_plain = np.log(np.clip(plain, 1e-7, None))
    out = {}
    if len(reference) > 1:
        out["weights"] = held_out(lambda rows: fitted_weights(probabilities, y, rows, seed),
                                  lambda weights: np.tensordot(weights, probabilities, 1), plain, y, half_a)
    out["shifts"] = held_out(lambda rows: fitted_shifts(log_plain, y, rows), lambda shifts: log_plain + shifts,
                             plain, y, half_a)
    return out


def names(paths, subset):
    return " + ".join(Path(paths[i]).stem for i in subset)


def main():
    from fer import inference, records
    from fer.errors import InputError

    args = parse_args()
    _, val, note = records.load_split(args.data, args.model)
    sizes = [inference.model_file(path).stat().st_size for path in args.model]
    fits = within(sizes, args.max_mb)
    if not any(fits((i,)) for i in range(len(sizes))):
        raise InputError("--max-mb", f"no candidate fits in {args.max_mb:g} MB: the smallest file is "
                                     f"{min(megabytes(sizes, (i,)) for i in range(len(sizes))):.1f} MB")
    started = time.perf_counter()
    means = []
    for i, path in enumerate(args.model, 1):
        t0 = time.perf_counter()
        means.append(column_means(member_views(path, val.x, args.cache, args.batch_size)))
        print(f"candidate {i}/{len(args.model)} {path}: {np.mean(means[-1][args.by].argmax(1) == val.y):.4f} "
              f"({args.by}, {time.perf_counter() - t0:.0f} s)", flush=True)
    half_a = np.random.default_rng(args.seed).permutation(len(val)) < len(val) // 2
    scores = score_subsets(means, val.y, half_a)
    reference = tuple(range(args.reference or len(args.model)))
    on_a, on_b = chosen(scores, args.by, 0, fits), chosen(scores, args.by, 1, fits)
    print(f"{len(val):,} validation faces of {args.data} ({note}), halves of {half_a.sum():,} and "
          f"{(~half_a).sum():,}; {len(args.model)} candidates, {len(scores):,} subsets in "
          f"{time.perf_counter() - started:.0f} s; chosen by {args.by}"
          + (f" among those within {args.max_mb:g} MB" if args.max_mb else ""))
    ranked = sorted(filter(fits, scores), key=lambda subset: (-scores[subset][args.by][0], len(subset)))[:args.show]
    width = max(len(names(args.model, subset)) for subset in [*ranked, reference, on_b])
    print(f"{'members':{width}s} {'MB':>5s} {'half A':>7s} {'half B':>7s} {'all':>7s} {'plain':>7s}")
    for subset, mark in [*((s, "") for s in ranked), (reference, "  <- reference"), (on_b, "  <- chosen on half B")]:
        a, b, every = scores[subset][args.by]
        print(f"{names(args.model, subset):{width}s} {megabytes(sizes, subset):5.1f} {a:7.4f} {b:7.4f} "
              f"{every:7.4f} {scores[subset]['plain'][2]:7.4f}{mark}")
    gain_b = scores[on_a][args.by][1] - scores[reference][args.by][1]
    gain_a = scores[on_b][args.by][0] - scores[reference][args.by][0]
    p_b, p_a = (held_out_test(means, subset, reference, args.by, val.y, rows) for subset, rows in
                ((on_a, ~half_a), (on_b, half_a)))
    print(f"chosen on half A, scored on half B: {gain_b:+.4f} against the reference (McNemar p = {p_b:.3g}); "
          f"chosen on half B, scored on half A: {gain_a:+.4f} (p = {p_a:.3g})")

    adjusted = adjustments(means, reference, args.by, val.y, half_a, args.seed)
    for kind, result in adjusted.items():
        print(f"the reference with {kind} fitted on half A, scored on half B: {result['on_half_b']:.4f}; fitted on "
              f"half B, scored on half A: {result['on_half_a']:.4f}; mean gain {result['mean_gain']:+.4f}")

    def row(subset):
        return {"members": [args.model[i] for i in subset],
                **{column: dict(zip(("half_a", "half_b", "all"), (round(v, 4) for v in values)))
                   for column, values in scores[subset].items()}}

    print(json.dumps({"bench": "ensemble", "models": args.model, "val_rows": len(val), "seed": args.seed,
                      "by": args.by, "max_mb": args.max_mb, "reference": row(reference), "chosen_on_half_a": row(on_a),
                      "chosen_on_half_b": row(on_b), "gain_half_b": round(gain_b, 4), "gain_half_a": round(gain_a, 4),
                      "p_half_b": p_b, "p_half_a": p_a,
                      "mean_gain": round((gain_a + gain_b) / 2, 4), **adjusted}))


if __name__ == "__main__":
    from fer import cli

    cli.run(main)
