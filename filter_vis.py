#!/usr/bin/env python3
"""Filter patterns by gradient ascent, and feature maps of one face.

For each chosen layer (default: the first and the last convolutional layer) the
input that most activates each of N filters, as a labelled grid; with --data,
that layer's feature maps for one validation face; with --compare, the same
figures for another checkpoint beside this one; with --benchmark, the batched
optimization timed against a loop over filters.

    python filter_vis.py --data data/train.csv
    python filter_vis.py --layer 0 --layer 3 --filters 32 --compare models/cnn_epoch1.keras
"""
import math
import time
from pathlib import Path

import numpy as np

from fer import cli, inference, records
from fer.errors import InputError
from fer.filters import ascend, ascend_one_by_one, conv_activations, feature_maps, resolve_layer
from fer.outputs import check_folder


def parse_args():
    parser = cli.parser(__doc__)
    parser.add_argument("--model", metavar="M.keras", help=f"(default {cli.DEFAULT_MODEL_WORDS})")
    parser.add_argument("--layer", action="append", metavar="NAME|INDEX",
                        help="layer name, or index among the convolutional layers (repeat; default 0 and -1)")
    parser.add_argument("--filters", type=cli.POSITIVE_INT, default=32, help="how many filters per layer (default 32)")
    parser.add_argument("--steps", type=cli.POSITIVE_INT, default=80, help="gradient-ascent steps (default 80)")
    parser.add_argument("--data", metavar="CSV", help="labeled file: draw feature maps of one validation face")
    parser.add_argument("--index", type=cli.number(int, 0), default=0, help="which validation face (default 0)")
    parser.add_argument("--compare", metavar="OTHER.keras", help="the same figures for another checkpoint")
    parser.add_argument("--benchmark", action="store_true", help="time batched ascent against a per-filter loop")
    parser.add_argument("--out", default="figures", metavar="DIR")
    return parser.parse_args()


def grid_shape(n):
    columns = min(8, n)
    return math.ceil(n / columns), columns


def draw_patterns(panels, layer_name, path):
    """panels: [(title, images, activations, filter ids)], drawn side by side."""
    from fer.plots import plt, save

    rows, columns = grid_shape(len(panels[0][3]))
    fig = plt.figure(figsize=(1.5 * columns * len(panels) + 0.5 * (len(panels) - 1), 1.7 * rows + 0.8),
                     layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(1, len(panels)))
    for sub, (title, images, activation, ids) in zip(subfigs, panels):
        axes = np.atleast_2d(sub.subplots(rows, columns))
        for ax in axes.ravel():
            ax.axis("off")
        for ax, img, act, f in zip(axes.ravel(), images, activation, ids):
            lo, hi = np.percentile(img, (1, 99))
            if hi - lo < 1:  # a flat pattern (a filter that wants uniform brightness): show its grey level
                lo, hi = 0, 255
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)
            ax.set_title(f"#{f}  {act:.2f}", fontsize=8)
        sub.suptitle(title, fontsize=11)
    fig.suptitle(f"Inputs that maximize each filter of {layer_name} (title: filter id, mean activation)")
    return save(fig, path)


def draw_feature_maps(panels, face, layer_name, path):
    from fer.plots import plt, save

    channels = panels[0][1].shape[-1]
    shown = min(channels, 32)
    rows, columns = grid_shape(shown)
    fig = plt.figure(figsize=(1.4 * columns * len(panels) + 1.6, 1.5 * rows + 0.8), layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(1, len(panels) + 1, width_ratios=[1.2] + [columns] * len(panels)))
    ax = subfigs[0].subplots()
    ax.imshow(face, cmap="gray", vmin=0, vmax=255)
    ax.set_title("input")
    ax.axis("off")
    for sub, (title, maps) in zip(subfigs[1:], panels):
        axes = np.atleast_2d(sub.subplots(rows, columns))
        for k, a in enumerate(axes.ravel()):
            a.axis("off")
            if k < shown:
                a.imshow(maps[..., k], cmap="viridis")
                a.set_title(f"#{k}", fontsize=8)
        sub.suptitle(title, fontsize=11)
    fig.suptitle(f"Feature maps of {layer_name} ({shown} of {channels} channels, each on its own scale)")
    return save(fig, path)


def main():
    args = parse_args()
    check_folder(args.out)  # before any work: a run must not fail at its end
    args.model = args.model or cli.default_model()
    model = inference.load_model(args.model)
    other = inference.load_model(args.compare) if args.compare else None
    for path, m in ((args.model, model), (args.compare, other)):
        if m is not None and not conv_activations(m):
            raise InputError(path, "has no convolution layers (a DNN?): there are no filters to show")
    face = None
    if args.data:
        validation, _ = records.load_validation(args.data, args.model)
        if not 0 <= args.index < len(validation):
            raise InputError("--index", f"must be in 0..{len(validation) - 1} (the validation split)")
        face = validation.x[args.index]
    try:
        layers = [resolve_layer(model, which) for which in (args.layer or ["0", "-1"])]
    except ValueError as exc:
        raise InputError("--layer", str(exc)) from None
    print(f"convolutional layers: {', '.join(conv_activations(model))}")

    written = []
    for layer in layers:
        ids = np.arange(min(args.filters, layer.output.shape[-1]))
        started = time.perf_counter()
        images, activation = ascend(model, layer, ids, args.steps)
        seconds = time.perf_counter() - started
        print(f"{layer.name}: {len(ids)} filters, {args.steps} steps in {seconds:.1f} s (batched), "
              f"mean activation {activation.mean():.3f}")
        panels = [(f"{Path(args.model).stem}", images, activation, ids)]
        if other is not None:
            other_images, other_activation = ascend(other, other.get_layer(layer.name), ids, args.steps)
            panels.append((f"{Path(args.compare).stem}", other_images, other_activation, ids))
        written.append(draw_patterns(panels, layer.name, Path(args.out) / f"filters_{layer.name}.png"))
        if args.benchmark:
            started = time.perf_counter()
            ascend_one_by_one(model, layer, ids, args.steps)
            loop = time.perf_counter() - started
            print(f"  per-filter loop: {loop:.1f} s; batched is {loop / seconds:.1f}x faster")
        if face is not None:
            maps = [(Path(args.model).stem, feature_maps(model, layer, face))]
            if other is not None:
                maps.append((Path(args.compare).stem, feature_maps(other, other.get_layer(layer.name), face)))
            written.append(draw_feature_maps(maps, face, layer.name, Path(args.out) / f"feature_maps_{layer.name}.png"))
    print("wrote " + ", ".join(map(str, written)))


if __name__ == "__main__":
    cli.run(main)
