#!/usr/bin/env python3
"""Filter patterns by gradient ascent, and feature maps of one face.

For each chosen layer (default: the first and the last convolutional layer) the
input that most activates each of N filters, as a labelled grid; with --data,
that layer's most active feature maps for one validation face, over the face on
one colour scale, and its dead filters (never active on 512 validation faces),
marked in the grid and counted in figures/filters.json; with --compare, the same
figures for another checkpoint beside this one; with --benchmark, the batched
optimization timed against a loop over filters.

    python filter_vis.py --data data/train.csv
    python filter_vis.py --layer 0 --layer 3 --filters 32 --compare models/cnn_epoch1.keras
"""
import math
import time
from pathlib import Path

import numpy as np

import json

from fer import IMAGE_SIZE, cli, inference, records
from fer.atomic import write_text
from fer.errors import InputError
from fer.filters import ascend, ascend_one_by_one, conv_activations, dead_filters, feature_maps, resolve_layer
from fer.layers import layer_roles
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


def bare(ax, frame=None):
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    if frame:
        for spine in ax.spines.values():
            spine.set_color(frame)
            spine.set_linewidth(2.5)


def draw_patterns(panels, layer_name, path, dead=()):
    """panels: [(title, images, activations, filter ids)], drawn side by side; dead filters framed in red."""
    from fer.plots import plt, save

    rows, columns = grid_shape(len(panels[0][3]))
    fig = plt.figure(figsize=(min(11.0, 1.3 * columns * len(panels) + 0.4 * (len(panels) - 1)), 1.45 * rows + 1.1),
                     layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(1, len(panels)))
    for sub, (title, images, activation, ids) in zip(subfigs, panels):
        axes = np.atleast_2d(sub.subplots(rows, columns))
        for ax in axes.ravel():
            ax.axis("off")
        for ax, img, act, f in zip(axes.ravel(), images, activation, ids):
            lo, hi = np.percentile(img, (1, 99))
            flat = hi - lo < 1  # a filter that wants uniform brightness, or one ascent cannot move
            ax.imshow(img, cmap="gray", vmin=0 if flat else lo, vmax=255 if flat else hi)
            mark = " dead" if f in dead else " flat" if flat else ""
            ax.set_title(f"#{f}{mark}" if mark else f"#{f} {act:.1f}", fontsize=10,
                         color="tab:red" if mark else "black")
            if f in dead:
                ax.axis("on")
                bare(ax, "tab:red")
        sub.suptitle(title, fontsize=11)
    fig.suptitle(f"Inputs that maximize each filter of {layer_name}\n(title: filter, mean activation; dead: never "
                 "active on validation faces; flat: a uniform pattern)", fontsize=11)
    return save(fig, path)


def most_active(maps, count=16):
    """The channels with the highest mean activation on this face, highest first."""
    return np.argsort(-maps.mean(axis=(0, 1)))[:count]


def draw_feature_maps(panels, face, layer_name, path):
    """The most active channels of each panel over the face, all on one colour scale (the largest activation
    shown), so a weak channel looks weak."""
    from keras import ops

    from fer.plots import plt, save

    channels = panels[0][1].shape[-1]
    shown = most_active(panels[0][1])
    rows, columns = grid_shape(len(shown))
    # one scale for all, set by the 99.5th percentile so that a few edge pixels do not darken every map
    top = max(float(np.percentile(maps[..., shown], 99.5)) for _, maps in panels) or 1.0
    fig = plt.figure(figsize=(min(11.0, 1.2 * columns * len(panels) + 1.6), 1.35 * rows + 1.2), layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(1, len(panels) + 1, width_ratios=[1.2] + [columns] * len(panels)))
    ax = subfigs[0].subplots()
    ax.imshow(face, cmap="gray", vmin=0, vmax=255)
    ax.set_title("input", fontsize=10)
    ax.axis("off")
    image, last = None, None
    for sub, (title, maps) in zip(subfigs[1:], panels):
        upsampled = np.asarray(ops.image.resize(maps[..., shown], (IMAGE_SIZE, IMAGE_SIZE), interpolation="bilinear"))
        axes = np.atleast_2d(sub.subplots(rows, columns))
        for k, a in enumerate(axes.ravel()):
            a.axis("off")
            if k < len(shown):
                a.imshow(face, cmap="gray", vmin=0, vmax=255)
                image = a.imshow(upsampled[..., k], cmap="magma", vmin=0, vmax=top, alpha=0.7)
                a.set_title(f"#{shown[k]}", fontsize=10)
        sub.suptitle(title, fontsize=11)
        last = (sub, axes)
    last[0].colorbar(image, ax=last[1], shrink=0.7, label="activation")
    fig.suptitle(f"The {len(shown)} most active of {channels} feature maps of {layer_name} for this face, "
                 "one colour scale", fontsize=11)
    return save(fig, path)


def main():
    args = parse_args()
    check_folder(args.out)  # before any work: a run must not fail at its end
    args.model = args.model or cli.default_model()
    model = inference.load_model(args.model)
    other = inference.load_model(args.compare, "--compare") if args.compare else None
    for path, m in ((args.model, model), (args.compare, other)):
        if m is not None and not conv_activations(m):
            raise InputError(path, "has no convolution layers (a DNN?): there are no filters to show")
    face, validation = None, None
    if args.data:
        validation, _ = records.load_validation(args.data, args.model)
        if not 0 <= args.index < len(validation):
            raise InputError("--index", f"must be in 0..{len(validation) - 1} (the validation split)")
        face = validation.x[args.index]
    try:
        layers = [resolve_layer(model, which) for which in (args.layer or ["0", "-1"])]
    except ValueError as exc:
        raise InputError("--layer", str(exc)) from None
    roles = layer_roles(model)
    print("convolutional layers: " + "; ".join(f"{name} ({role})" for name, role in roles.items()))

    written, counted = [], {}
    for layer in layers:
        role = roles.get(layer.name, layer.name)
        dead = dead_filters(model, layer, validation.x[:512]) if validation is not None else []
        if validation is not None:
            counted[layer.name] = dict(role=role, filters=int(layer.output.shape[-1]), dead=[int(f) for f in dead],
                                       faces=int(min(len(validation), 512)))
        ids = np.arange(min(args.filters, layer.output.shape[-1]))
        started = time.perf_counter()
        images, activation = ascend(model, layer, ids, args.steps)
        seconds = time.perf_counter() - started
        print(f"{layer.name} ({role}): {len(ids)} filters, {args.steps} steps in {seconds:.1f} s (batched), "
              f"mean activation {activation.mean():.3f}" + (f"; {len(dead)} dead" if validation is not None else ""))
        panels = [(f"{Path(args.model).stem}", images, activation, ids)]
        if other is not None:
            other_images, other_activation = ascend(other, other.get_layer(layer.name), ids, args.steps)
            panels.append((f"{Path(args.compare).stem}", other_images, other_activation, ids))
        written.append(draw_patterns(panels, role, Path(args.out) / f"filters_{layer.name}.png", set(dead)))
        if args.benchmark:
            started = time.perf_counter()
            ascend_one_by_one(model, layer, ids, args.steps)
            loop = time.perf_counter() - started
            print(f"  per-filter loop: {loop:.1f} s; batched is {loop / seconds:.1f}x faster")
        if face is not None:
            maps = [(Path(args.model).stem, feature_maps(model, layer, face))]
            if other is not None:
                maps.append((Path(args.compare).stem, feature_maps(other, other.get_layer(layer.name), face)))
            written.append(draw_feature_maps(maps, face, role, Path(args.out) / f"feature_maps_{layer.name}.png"))
    if counted:
        write_text(Path(args.out) / "filters.json", json.dumps(counted, indent=1) + "\n")
        written.append(Path(args.out) / "filters.json")
    print("wrote " + ", ".join(map(str, written)))


if __name__ == "__main__":
    cli.run(main)
