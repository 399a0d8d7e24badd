#!/usr/bin/env python3
"""LIME: which superpixels make the CNN predict what it predicts? One validation face per class.

The `lime` package perturbs SLIC superpixels (switched off = grey) and fits a
linear model to the CNN's answers; the regions that support the predicted class
most are outlined, and every region is coloured by its weight.

    python lime_explain.py --data data/train.csv
"""
import time
from pathlib import Path

import numpy as np

from fer import CLASSES, cli, inference
from fer.explain import faces_to_explain, lime_explanation, region_weights
from fer.outputs import check_folder

def parse_args():
    parser = cli.parser(__doc__)
    cli.add_explain_flags(parser)
    parser.add_argument("--index", type=cli.number(int, 0), nargs=len(CLASSES), metavar="ROW",
                        help="validation rows, one per class in class order (default: first correctly classified)")
    parser.add_argument("--samples", type=cli.POSITIVE_INT,
                        default=1000, help="perturbed copies per face (default 1000)")
    parser.add_argument("--features", type=cli.POSITIVE_INT, default=5, help="regions to outline (default 5)")
    parser.add_argument("--segments", type=cli.number(int, 2),
                        default=40, help="SLIC superpixels per face (default 40)")
    return parser.parse_args()


def draw(faces, explanations, features, path):
    from skimage.segmentation import mark_boundaries

    from fer.plots import plt, save

    fig, axes = plt.subplots(2, len(faces.x), figsize=(min(11.0, 1.45 * len(faces.x) + 0.9), 4.2), layout="constrained")
    for k, (face, truth, exp) in enumerate(zip(faces.x, faces.y, explanations)):
        label = exp.top_labels[0]
        _, mask = exp.get_image_and_mask(label, positive_only=True, num_features=features, hide_rest=False)
        axes[0, k].imshow(mark_boundaries(face / 255.0, mask, color=(0.1, 0.9, 0.2), mode="thick"))
        axes[0, k].set_title(f"{CLASSES[truth]}\npredicted {CLASSES[label]}", fontsize=10)
        weights = region_weights(exp, label)
        shown = weights / max(np.abs(weights).max(), 1e-9)
        axes[1, k].imshow(face, cmap="gray", vmin=0, vmax=255)
        # opacity follows the weight, so regions that hardly matter leave the face untinted
        colours = plt.get_cmap("RdBu_r")((shown + 1) / 2)
        colours[..., 3] = 0.85 * np.abs(shown)
        axes[1, k].imshow(colours)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    axes[0, 0].set_ylabel(f"top {features} regions\nfor the prediction")
    axes[1, 0].set_ylabel("region weight")
    fig.colorbar(plt.cm.ScalarMappable(plt.Normalize(-1, 1), "RdBu_r"), ax=axes[1, -1],
                 label="opposes (-) / supports (+)")
    fig.suptitle("LIME on SLIC superpixels: one validation face per class")
    return save(fig, path)


def main():
    args = parse_args()
    check_folder(args.out)  # before any work: a run must not fail at its end
    args.model = args.model or cli.default_model()
    model = inference.load_model(args.model)
    faces, rows, _, note = faces_to_explain(model, args.data, args.model, args.index)
    print(f"explaining validation rows {rows.tolist()} ({note}) with {args.samples} samples each")
    started = time.perf_counter()
    explanations = []
    for k, face in enumerate(faces.x):
        explanations.append(lime_explanation(model, face, args.samples, args.segments, seed=k))
        print(f"  {CLASSES[faces.y[k]]:<9} done ({time.perf_counter() - started:.1f} s)", flush=True)
    path = draw(faces, explanations, args.features, Path(args.out) / "lime.png")
    print(f"wrote {path}")


if __name__ == "__main__":
    cli.run(main)
