#!/usr/bin/env python3
"""Which pixels does the CNN look at? One validation face per class, four saliency methods.

For each method a figure with, per class: the face, its saliency heatmap, the
overlay, and the face masked to its most salient pixels (--thresholds). Then the
sanity check of Adebayo et al. (2018): the same maps from a copy of the model
with random weights must differ; their rank correlation is printed and plotted.

    python saliency.py --data data/train.csv
    python saliency.py --data data/train.csv --method gradient --index 3 10 42 7 8 99 5
"""
import time
from pathlib import Path

import numpy as np

from fer import CLASSES, cli, inference
from fer.errors import InputError
from fer.explain import (CAM_METHODS, METHODS, check_explainable, explain, faces_to_explain, randomized_copy,
                         rank_correlation, tail_model)
from fer.filters import resolve_layer
from fer.outputs import check_folder


def parse_args():
    parser = cli.parser(__doc__)
    cli.add_explain_flags(parser)
    parser.add_argument("--method", action="append", choices=list(METHODS), help="repeat; default: all")
    parser.add_argument("--index", type=cli.number(int, 0), nargs=len(CLASSES), metavar="ROW",
                        help="validation rows to explain, one per class in class order (default: the first "
                             "correctly classified face of each class)")
    parser.add_argument("--thresholds", type=cli.number(float, 0, 1, above=True, below=True),
                        nargs="+", default=[0.3, 0.7],
                        help="keep pixels whose normalized saliency is above each (default 0.3 0.7)")
    parser.add_argument("--cam-layer", metavar="NAME|INDEX",
                        help="layer that gradcam and hirescam explain: a name, or an index among the "
                             "convolutional activations (default: the last; try 3 for finer maps; for --arch "
                             "resnet a block output: 1, 3 or 5)")
    parser.add_argument("--no-sanity", action="store_true", help="skip the randomized-weights check")
    return parser.parse_args()


def normalized(maps):
    """Scale each map to [0, 1] by its 99th percentile, so one hot pixel doesn't wash out the rest."""
    top = np.percentile(maps.reshape(len(maps), -1), 99, axis=1)[:, None, None]
    return np.clip(maps / np.maximum(top, 1e-12), 0, 1)


def draw_method(name, faces, maps, probabilities, thresholds, path):
    from fer.plots import plt, save

    columns = ["face", f"{name} saliency", "overlay"] + [f"saliency > {t:g}" for t in thresholds]
    fig, axes = plt.subplots(len(faces), len(columns), figsize=(2.1 * len(columns) + 1, 2.1 * len(faces)),
                             layout="constrained")
    heat = None
    for row, (face, sal, label, prob) in enumerate(zip(faces.x, maps, faces.y, probabilities)):
        axes[row, 0].imshow(face, cmap="gray", vmin=0, vmax=255)
        heat = axes[row, 1].imshow(sal, cmap="inferno", vmin=0, vmax=1)
        axes[row, 2].imshow(face, cmap="gray", vmin=0, vmax=255)
        axes[row, 2].imshow(sal, cmap="inferno", alpha=0.5, vmin=0, vmax=1)
        for k, t in enumerate(thresholds):
            axes[row, 3 + k].imshow(np.where(sal > t, face, 0), cmap="gray", vmin=0, vmax=255)
        axes[row, 0].set_ylabel(f"{CLASSES[label]}\np={prob[label]:.2f}", fontsize=11)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    for k, title in enumerate(columns):
        axes[0, k].set_title(title, fontsize=10)
    fig.colorbar(heat, ax=axes[:, -1], fraction=0.08, pad=0.04, label="normalized saliency")
    fig.suptitle(f"{name}: one validation face per class (p = predicted probability of the true class)")
    return save(fig, path)


def draw_sanity(correlations, examples, face, path):
    from fer.plots import plt, save

    names = list(correlations)
    fig, axes = plt.subplots(2, len(names) + 1, figsize=(2.6 * (len(names) + 1), 6.6),
                             layout="constrained")
    axes[0, 0].imshow(face, cmap="gray", vmin=0, vmax=255)
    axes[0, 0].set_title("face")
    axes[1, 0].boxplot([correlations[n] for n in names], tick_labels=names)
    axes[1, 0].set_ylabel("rank correlation\ntrained vs random")
    axes[1, 0].tick_params(axis="x", rotation=45)
    for k, n in enumerate(names, start=1):
        trained, random = examples[n]
        axes[0, k].imshow(trained, cmap="inferno", vmin=0, vmax=1)
        axes[0, k].set_title(f"{n}\ntrained")
        axes[1, k].imshow(random, cmap="inferno", vmin=0, vmax=1)
        axes[1, k].set_title(f"random weights\nrho={np.mean(correlations[n]):.2f}")
    for ax in [*axes[0], *axes[1, 1:]]:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    fig.suptitle("Sanity check: maps of the trained model vs the same network with random weights")
    return save(fig, path)


def main():
    args = parse_args()
    check_folder(args.out)  # before any work: a run must not fail at its end
    args.model = args.model or cli.default_model()
    model = inference.load_model(args.model)
    names = args.method or list(METHODS)
    check_explainable(model, args.model, names)
    faces, rows, probabilities, note = faces_to_explain(model, args.data, args.model, args.index)
    print(f"explaining validation rows {rows.tolist()} ({note}) of {args.data}")

    cam_layer = None
    if args.cam_layer is not None:
        try:
            cam_layer = resolve_layer(model, args.cam_layer).name
            tail_model(model, model.get_layer(cam_layer))  # refuses a layer inside a residual block
        except ValueError as exc:
            raise InputError("--cam-layer", str(exc)) from None

    def options(name, m):
        return {"layer": m.get_layer(cam_layer)} if cam_layer and name in CAM_METHODS else {}

    random_model = None if args.no_sanity else randomized_copy(model)
    correlations, examples, written = {}, {}, []
    for name in names:
        started = time.perf_counter()
        maps = normalized(explain(name, model, faces.x, faces.y, **options(name, model)))
        seconds = time.perf_counter() - started
        label = f"{name} at {cam_layer}" if options(name, model) else name
        written.append(draw_method(label, faces, maps, probabilities, args.thresholds,
                                   Path(args.out) / f"saliency_{name}.png"))
        line = f"{name:<11} {seconds:6.2f} s for {len(rows)} faces"
        if random_model is not None:
            random_maps = normalized(explain(name, random_model, faces.x, faces.y, **options(name, random_model)))
            correlations[name] = rank_correlation(maps, random_maps)
            examples[name] = (maps[3], random_maps[3])
            line += f"   rank correlation with random weights: {np.mean(correlations[name]):+.2f}"
        print(line)
    if correlations:
        written.append(draw_sanity(correlations, examples, faces.x[3], Path(args.out) / "saliency_sanity.png"))
    print("wrote " + ", ".join(map(str, written)))


if __name__ == "__main__":
    cli.run(main)
