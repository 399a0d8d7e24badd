#!/usr/bin/env python3
"""Which pixels does the CNN look at, and which saliency method can be trusted to say?

- saliency_grid.png: one correctly classified validation face per class, every method side by side;
- saliency_mistakes.png: for the pairs of classes the model confuses most, the face it gets wrong most
  confidently, explained for the true class and for the predicted one;
- saliency_faithfulness.png and the table in saliency.json: deletion and insertion curves over many
  validation faces (--faces), a random ranking for reference;
- saliency_sanity.png: the randomization check (Adebayo et al., 2018), with a verdict per method;
- saliency_class_means.png: the mean gradient map of each class over many faces;
- saliency_<method>.png: each method alone, with the face masked to its most salient pixels (--thresholds).

    python saliency.py --data data/train.csv
    python saliency.py --data data/train.csv --method gradient --method hirescam --faces 140
"""
import json
import time
from pathlib import Path

import numpy as np

from fer import CLASSES, cli, inference
from fer.atomic import write_text
from fer.errors import InputError
from fer.explain import (CAM_METHODS, METHODS, SIGNED, check_explainable, confused_faces, explain, one_face_per_class,
                         tail_model)
from fer.faithfulness import deletion_insertion, empty, randomized_copy, rank_correlation, sanity_verdict
from fer.filters import resolve_layer
from fer.outputs import check_folder
from fer.records import load_validation
from fer.scores import confusion_counts, most_confused

CAPTIONS = {"gradient": "gradient", "smoothgrad": "SmoothGrad", "integrated": "Integrated\nGradients",
            "occlusion": "occlusion", "lime": "LIME", "gradcam": "Grad-CAM", "hirescam": "HiResCAM"}
BLANK_CAM = "blank:\nall <= 0"


def one_line(name):
    return CAPTIONS.get(name, name).replace("\n", " ")


def parse_args():
    parser = cli.parser(__doc__)
    cli.add_explain_flags(parser)
    parser.add_argument("--method", action="append", choices=list(METHODS), help="repeat; default: all")
    parser.add_argument("--index", type=cli.number(int, 0), nargs=len(CLASSES), metavar="ROW",
                        help="validation rows to explain, one per class in class order (default: the first "
                             "correctly classified face of each class)")
    parser.add_argument("--faces", type=cli.number(int, 7), default=70,
                        help="validation faces (the same number of each class) for the faithfulness curves "
                             "(default 70); the sanity check uses the first third of them")
    parser.add_argument("--pairs", type=cli.number(int, 0), default=3,
                        help="most confused class pairs whose mistakes are explained (default 3)")
    parser.add_argument("--thresholds", type=cli.number(float, 0, 1, above=True, below=True),
                        nargs="+", default=[0.3, 0.7],
                        help="keep pixels whose normalized saliency is above each (default 0.3 0.7)")
    parser.add_argument("--cam-layer", metavar="NAME|INDEX",
                        help="layer that gradcam and hirescam explain: a name, or an index among the "
                             "convolutional activations (default: the last; try 3 for finer maps; for --arch "
                             "resnet a block output: 1, 3 or 5)")
    parser.add_argument("--lime-samples", type=cli.POSITIVE_INT, default=500,
                        help="LIME's perturbed copies per face (default 500)")
    parser.add_argument("--no-sanity", action="store_true", help="skip the randomized-weights check")
    return parser.parse_args()


def display(maps, signed):
    """Maps scaled for display by their 99th percentile (of |map| if signed): [0, 1] or [-1, 1]."""
    flat = np.abs(maps).reshape(len(maps), -1)
    top = np.percentile(flat, 99, axis=1)[:, None, None]
    return np.clip(maps / np.maximum(top, 1e-12), -1 if signed else 0, 1)


def overlay(ax, face, shown, signed):
    """The face in grey, the map over it with opacity following its strength, so weak values leave the face
    as it is: red supports the class, blue (signed methods) speaks against it."""
    from fer.plots import plt

    ax.imshow(face, cmap="gray", vmin=0, vmax=255)
    colours = plt.get_cmap("RdBu_r" if signed else "inferno")((shown + 1) / 2 if signed else shown)
    colours[..., 3] = 0.85 * np.abs(shown)
    ax.imshow(colours)


def bare(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def draw_grid(rows, names, title, path):
    """rows: [(label, face, {method: map})], faces x methods, one shared scale per kind of map."""
    from fer.plots import plt, save

    width = min(11.0, 1.25 * (len(names) + 1) + 0.4)
    fig, axes = plt.subplots(len(rows), len(names) + 1, figsize=(width, 1.38 * len(rows) + 1.2), squeeze=False,
                             layout="constrained")
    for r, (label, face, maps) in enumerate(rows):
        axes[r, 0].imshow(face, cmap="gray", vmin=0, vmax=255)
        axes[r, 0].set_ylabel(label, fontsize=10)
        for k, name in enumerate(names, start=1):
            m = maps[name][None]
            if empty(m)[0]:
                axes[r, k].imshow(face, cmap="gray", vmin=0, vmax=255, alpha=0.35)
                axes[r, k].text(24, 24, BLANK_CAM if name in CAM_METHODS else "empty map", ha="center",
                                va="center", fontsize=10, clip_on=True)
            else:
                overlay(axes[r, k], face, display(m, name in SIGNED)[0], name in SIGNED)
    for ax in axes.ravel():
        bare(ax)
    axes[0, 0].set_title("face", fontsize=10)
    for k, name in enumerate(names, start=1):
        axes[0, k].set_title(CAPTIONS[name] + (" (±)" if name in SIGNED else ""), fontsize=10)
    fig.suptitle(title + "\n(±): signed maps, red for the class, blue against it", fontsize=11)
    return save(fig, path)


def draw_method(name, faces, maps, probabilities, thresholds, path):
    from fer.plots import plt, save

    columns = ["face", "map over the face"] + [f"strongest pixels (> {t:g})" for t in thresholds]
    fig, axes = plt.subplots(len(faces), len(columns), figsize=(1.9 * len(columns) + 0.6, 1.75 * len(faces)),
                             layout="constrained")
    signed = name in SIGNED
    shown = display(maps, signed)
    for row, (face, sal, label, prob) in enumerate(zip(faces.x, shown, faces.y, probabilities)):
        axes[row, 0].imshow(face, cmap="gray", vmin=0, vmax=255)
        overlay(axes[row, 1], face, sal, signed)
        for k, t in enumerate(thresholds):
            axes[row, 2 + k].imshow(np.where(sal > t, face, 0), cmap="gray", vmin=0, vmax=255)
        axes[row, 0].set_ylabel(f"{CLASSES[label]}\np={prob[label]:.2f}", fontsize=10)
    for ax in axes.ravel():
        bare(ax)
    for k, title in enumerate(columns):
        axes[0, k].set_title(title, fontsize=10)
    fig.suptitle(f"{one_line(name)}: one validation face per class (p: probability of the true class)",
                 fontsize=11)
    return save(fig, path)


def draw_faithfulness(curves, path):
    from fer.plots import plt, save

    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2), layout="constrained")
    for (name, result), colour in zip(curves.items(), plt.cm.tab10.colors):
        fraction = np.linspace(0, 1, result["deletion"].shape[1])
        style = dict(color="grey", ls="--") if name == "random" else dict(color=colour)
        for ax, key in zip(axes, ("deletion", "insertion")):
            ax.plot(fraction, result[key].mean(0), label=f"{one_line(name)} "
                                                         f"({result[key + '_auc'].mean():.3f})", **style)
    for ax, key, better in zip(axes, ("deletion", "insertion"), ("lower", "higher")):
        ax.set_xlabel(f"share of pixels {'blurred away' if key == 'deletion' else 'put back'}, top-ranked first")
        ax.set_ylabel("probability of the explained class")
        ax.set_title(f"{key} (area in brackets: {better} is better)", fontsize=11)
        ax.legend(fontsize=10)
    return save(fig, path)


def draw_sanity(correlations, verdicts, examples, face, path):
    from fer.plots import plt, save

    names = list(correlations)
    fig = plt.figure(figsize=(min(11.0, 1.35 * (len(names) + 1) + 0.4), 6.2), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.15, 1])
    axes = top.subplots(2, len(names) + 1)
    axes[0, 0].imshow(face, cmap="gray", vmin=0, vmax=255)
    axes[0, 0].set_title("face", fontsize=10)
    axes[0, 0].set_ylabel("trained", fontsize=10)
    axes[1, 0].set_ylabel("random weights", fontsize=10)
    axes[1, 0].set_frame_on(False)
    for k, n in enumerate(names, start=1):
        for row, m in enumerate(examples[n]):
            if empty(m[None])[0]:
                axes[row, k].text(24, 24, "empty", ha="center", va="center", fontsize=10)
                axes[row, k].set_xlim(0, 48)
                axes[row, k].set_ylim(48, 0)
            else:
                overlay(axes[row, k], face, display(m[None], n in SIGNED)[0], n in SIGNED)
        axes[0, k].set_title(CAPTIONS[n], fontsize=10)
    for ax in axes.ravel():
        bare(ax)
    ax = bottom.subplots()
    values = [correlations[n][~np.isnan(correlations[n])] for n in names]
    ax.boxplot([v if len(v) else [np.nan] for v in values], tick_labels=[CAPTIONS[n] for n in names])
    ax.tick_params(axis="x", labelsize=10)
    for k, n in enumerate(names, start=1):
        verdict = verdicts[n].split(":")[0].split(" (")[0]
        ax.text(k, 1.05, verdict, ha="center", fontsize=10,
                color="tab:green" if verdict.startswith("passes") else "tab:red")
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set_ylim(-1, 1.2)
    ax.set_ylabel("rank correlation,\ntrained vs random")
    fig.suptitle("Randomization check: a trustworthy map changes when the weights are randomized", fontsize=12)
    return save(fig, path)


def draw_class_means(faces, maps, path):
    from fer.plots import plt, save

    fig, axes = plt.subplots(1, len(CLASSES), figsize=(10.8, 2.3), layout="constrained")
    for c, ax in enumerate(axes):
        members = faces.y == c
        ax.imshow(faces.x[members].mean(0), cmap="gray", vmin=0, vmax=255)
        if members.any():
            mean = display(maps[members], False).mean(0)
            overlay(ax, faces.x[members].mean(0), mean / max(mean.max(), 1e-12), False)
        ax.set_title(f"{CLASSES[c]} ({members.sum()})", fontsize=10)
        bare(ax)
    fig.suptitle("Mean gradient map of each class over its validation faces, on the class's mean face", fontsize=11)
    return save(fig, path)


def stratified(faces, count):
    """The first count // 7 validation rows of each class, class by class."""
    per_class = count // len(CLASSES)
    return np.concatenate([np.flatnonzero(faces.y == c)[:per_class] for c in range(len(CLASSES))])


def cam_layer_of(model, which):
    """The layer --cam-layer names, checked (a layer inside a residual block is refused); None for the default."""
    if which is None:
        return None
    try:
        name = resolve_layer(model, which).name
        tail_model(model, model.get_layer(name))
    except ValueError as exc:
        raise InputError("--cam-layer", str(exc)) from None
    return name


def study(name, explainer, model, random_model, chosen, mistakes, sample, sanity_count):
    """One method: its maps of the chosen faces and of the mistakes (for the true and the predicted class), its
    deletion and insertion curves over the sample, and its randomization check on the sample's first faces."""
    x, classes = sample
    result = dict(grid=explainer(name, model, chosen.x, chosen.y))
    result["blank"] = [CLASSES[c] for c, m in zip(chosen.y, result["grid"]) if empty(m[None])[0]]
    if mistakes:
        faces = np.stack([face for face, _, _ in mistakes])
        result["wrong"] = [explainer(name, model, faces, [m[k] for m in mistakes]) for k in (1, 2)]
    maps = explainer(name, model, x, classes)
    result["curves"] = deletion_insertion(model, x, classes, maps)
    if random_model is not None:
        random_maps = explainer(name, random_model, x[:sanity_count], classes[:sanity_count])
        result["rho"] = rank_correlation(maps[:sanity_count], random_maps)
        result["verdict"] = sanity_verdict(result["rho"])
        result["example"] = (maps[0], random_maps[0])
    return result


def summary_record(results, curves, pairs, mistakes, sample_size, sanity_count):
    """saliency.json: what the report quotes."""
    checked = {n: r for n, r in results.items() if "rho" in r}
    return dict(
        faces=sample_size, sanity_faces=sanity_count if checked else 0,
        titles={**{n: one_line(n) for n in curves}, "random": "random ranking"},
        pairs=[[CLASSES[t], CLASSES[p]] for t, p in pairs], mistakes=mistakes,
        blank={n: r["blank"] for n, r in results.items() if r["blank"]},
        faithfulness={n: dict(deletion_auc=float(c["deletion_auc"].mean()),
                              insertion_auc=float(c["insertion_auc"].mean())) for n, c in curves.items()},
        sanity={n: dict(median_rho=None if np.isnan(r["rho"]).all() else float(np.nanmedian(r["rho"])),
                        empty=int(np.isnan(r["rho"]).sum()), verdict=r["verdict"]) for n, r in checked.items()})


def main():
    args = parse_args()
    check_folder(args.out)  # before any work: a run must not fail at its end
    args.model = args.model or cli.default_model()
    model = inference.load_model(args.model)
    names = args.method or list(METHODS)
    check_explainable(model, args.model, names)
    cam_layer = cam_layer_of(model, args.cam_layer)
    validation, note = load_validation(args.data, args.model)
    probabilities = inference.predict_probabilities([model], validation.x)
    predicted = probabilities.argmax(1)
    rows = one_face_per_class(validation, predicted, args.index)
    chosen = validation.subset(rows)
    pairs = [(CLASSES.index(t), CLASSES.index(p)) for t, p, _, _ in
             most_confused(confusion_counts(validation.y, predicted), args.pairs)]
    mistakes = confused_faces(validation, predicted, probabilities, pairs)
    sample = stratified(validation, args.faces)
    sanity_count = max(len(CLASSES), len(sample) // 3)
    print(f"explaining validation rows {rows.tolist()} ({note}) of {args.data}, {len(mistakes)} mistakes; "
          f"faithfulness over {len(sample)} faces, sanity check over {sanity_count}")

    def explainer(name, m, x, classes):
        options = {"layer": m.get_layer(cam_layer)} if cam_layer and name in CAM_METHODS else {}
        options.update({"samples": args.lime_samples} if name == "lime" else {})
        return explain(name, m, x, classes, **options)

    random_model = None if args.no_sanity else randomized_copy(model)
    wrong = [(validation.x[r], t, p) for r, t, p in mistakes]
    results = {}
    for name in names:
        started = time.perf_counter()
        results[name] = study(name, explainer, model, random_model, chosen, wrong,
                              (validation.x[sample], predicted[sample]), sanity_count)
        curves = results[name]["curves"]
        print(f"{name:<11} deletion {curves['deletion_auc'].mean():.3f}  insertion {curves['insertion_auc'].mean():.3f}"
              f"   sanity: {results[name].get('verdict', 'skipped')}   ({time.perf_counter() - started:.0f} s)",
              flush=True)
    curves = {n: r["curves"] for n, r in results.items()}
    curves["random"] = deletion_insertion(model, validation.x[sample], predicted[sample],
                                          np.random.default_rng(0).random((len(sample), 48, 48)))

    out = Path(args.out)
    written = [draw_method(n, chosen, r["grid"], probabilities[rows], args.thresholds, out / f"saliency_{n}.png")
               for n, r in results.items()]
    correct = [(f"{CLASSES[c]}\np={probabilities[r, c]:.2f}", validation.x[r],
                {n: results[n]["grid"][k] for n in names})
               for k, (r, c) in enumerate(zip(rows, chosen.y))]
    written.append(draw_grid(correct, names, "Every method on one correctly classified validation face per class",
                             out / "saliency_grid.png"))
    if mistakes:
        written.append(draw_grid([(f"{CLASSES[t]}->{CLASSES[p]}\nfor {CLASSES[c]}", validation.x[r],
                                   {n: results[n]["wrong"][which][k] for n in names})
                                  for k, (r, t, p) in enumerate(mistakes) for which, c in ((0, t), (1, p))],
                                 names, "Mistakes of the most confused pairs (true->predicted), explained for the "
                                 "true class, then the predicted one", out / "saliency_mistakes.png"))
    written.append(draw_faithfulness(curves, out / "saliency_faithfulness.png"))
    checked = {n: r for n, r in results.items() if "rho" in r}
    if checked:
        written.append(draw_sanity({n: r["rho"] for n, r in checked.items()},
                                   {n: r["verdict"] for n, r in checked.items()},
                                   {n: r["example"] for n, r in checked.items()}, validation.x[sample[0]],
                                   out / "saliency_sanity.png"))
    by_class = validation.subset(np.concatenate([np.flatnonzero(validation.y == c)[:100] for c in range(len(CLASSES))]))
    written.append(draw_class_means(by_class, explain("gradient", model, by_class.x, by_class.y),
                                    out / "saliency_class_means.png"))
    mistake_rows = [dict(row=int(r), true=CLASSES[t], predicted=CLASSES[p], probability=float(probabilities[r, p]))
                    for r, t, p in mistakes]
    record = {"model": str(args.model), "data": str(args.data), "split": note,
              **summary_record(results, curves, pairs, mistake_rows, len(sample), sanity_count)}
    write_text(out / "saliency.json", json.dumps(record, indent=1) + "\n")
    print("wrote " + ", ".join(map(str, [*written, out / "saliency.json"])))


if __name__ == "__main__":
    cli.run(main)
