#!/usr/bin/env python3
"""LIME: which superpixels make the CNN predict what it predicts? One validation face per class.

The `lime` package perturbs SLIC superpixels (switched off = grey) and fits a
linear model to the CNN's answers; the regions that support the predicted class
most are outlined, and every region is coloured by its weight.

    python lime_explain.py --data data/train.csv
"""
import os
import time
from pathlib import Path

import numpy as np

from fer import CLASSES, cli, inference
from fer.explain import faces_to_explain
from fer.outputs import check_folder

os.environ.setdefault("TQDM_DISABLE", "1")  # lime prints a bar per face; one line per face is printed instead


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


def explain_face(model, face, samples, segments, seed):
    from lime import lime_image
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    def classify(rgb_batch):  # LIME works on RGB; the faces are grey, so one channel carries everything
        return inference.predict_probabilities([model], rgb_batch[..., 0])

    segmenter = SegmentationAlgorithm("slic", n_segments=segments, compactness=0.1, sigma=1, channel_axis=None,
                                      start_label=0)
    explainer = lime_image.LimeImageExplainer(random_state=seed)
    rgb = np.repeat(face[..., None].astype("float64"), 3, axis=-1)
    return explainer.explain_instance(rgb, classify, top_labels=1, hide_color=128, num_samples=samples, batch_size=250,
                                      segmentation_fn=lambda image: segmenter(image[..., 0]),
                                      random_seed=seed)


def region_weights(explanation, label):
    """Each pixel coloured by its superpixel's LIME weight for `label`."""
    weights = dict(explanation.local_exp[label])
    return np.vectorize(lambda s: weights.get(s, 0.0))(explanation.segments)


def draw(faces, explanations, features, path):
    from skimage.segmentation import mark_boundaries

    from fer.plots import plt, save

    fig, axes = plt.subplots(2, len(faces.x), figsize=(2.2 * len(faces.x) + 1, 5), layout="constrained")
    image = None
    for k, (face, truth, exp) in enumerate(zip(faces.x, faces.y, explanations)):
        label = exp.top_labels[0]
        _, mask = exp.get_image_and_mask(label, positive_only=True, num_features=features, hide_rest=False)
        axes[0, k].imshow(mark_boundaries(face / 255.0, mask, color=(0.1, 0.9, 0.2), mode="thick"))
        axes[0, k].set_title(f"{CLASSES[truth]}\npredicted {CLASSES[label]}", fontsize=10)
        weights = region_weights(exp, label)
        bound = max(np.abs(weights).max(), 1e-9)
        axes[1, k].imshow(face, cmap="gray", vmin=0, vmax=255)
        image = axes[1, k].imshow(weights / bound, cmap="RdYlGn", vmin=-1, vmax=1, alpha=0.6)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    axes[0, 0].set_ylabel(f"top {features} regions\nfor the prediction")
    axes[1, 0].set_ylabel("region weight")
    fig.colorbar(image, ax=axes[1, -1], label="supports (+) / opposes (-)")
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
        explanations.append(explain_face(model, face, args.samples, args.segments, seed=k))
        print(f"  {CLASSES[faces.y[k]]:<9} done ({time.perf_counter() - started:.1f} s)", flush=True)
    path = draw(faces, explanations, args.features, Path(args.out) / "lime.png")
    print(f"wrote {path}")


if __name__ == "__main__":
    cli.run(main)
