#!/usr/bin/env python3
"""Find every face in photos and read its expression.

Each face is found by OpenCV's frontal-face detector (on the photo scaled down to --search-size, 1024 pixels,
at most; enlarged up to it for a --min-face below the detector's 24), cut out of the full photo with a margin
around the detector's box, greyed and shrunk to 48x48 as FER2013's faces were made (a smaller one is enlarged
bicubically), and classified by the model. Writes, in --out:
    <photo>_faces.png   the photo with each face boxed and labelled, and the 7 probabilities of each face
    faces.csv           one row per face: file,x,y,w,h,label,p_Angry,...,p_Neutral (box in the photo's pixels)
A photo with no face is reported and skipped. Files that are not images are reported once the others are
done, in one `error:` line, and the exit status is then 2; when none could be read, faces.csv is left as it was.

    python faces.py photo.jpg --out out/
    python faces.py photos/ --out out/ --tta --saliency
"""
import csv
import io
import math
import sys
from pathlib import Path

import numpy as np

from fer import CLASSES, PROBABILITY_COLUMNS, cli, inference
from fer.atomic import write_text
from fer.errors import InputError
from fer.explain import CAM_METHODS, check_explainable, explain
from fer.layers import conv_activations
from fer.outputs import check_outputs
from fer.photos import (SEARCH_SIDE, WINDOW, crop_face, find_faces, photo_paths, read_photo, search_scale,
                        smallest_face)


def parse_args():
    parser = cli.parser(__doc__)
    parser.add_argument("photos", nargs="+", metavar="PHOTO", help="images (JPEG, PNG...) or folders of them")
    parser.add_argument("--out", required=True, metavar="DIR")
    cli.add_face_flags(parser, "photo", SEARCH_SIDE)
    parser.add_argument("--saliency", action="store_true",
                        help="draw where each face's expression was read, by the first model "
                             "(HiResCAM; the gradient for a DNN)")
    return parser.parse_args()


def saliency_maps(model, path, faces, labels):
    """Where the model read each face's predicted expression: HiResCAM, or the gradient for a model without
    convolutions."""
    method = "hirescam" if conv_activations(model) else "gradient"
    check_explainable(model, path, [method])
    return method, explain(method, model, faces.astype("float32"), labels)


def draw(rgb, boxes, faces, probabilities, maps, title, path):
    """The photo with each face boxed and labelled; beside it, per face, the crop (with its saliency map) and a
    bar chart of the 7 probabilities."""
    from fer.plots import plt, save

    rows = max(1, len(boxes))
    fig = plt.figure(figsize=(12, max(4.5, 1.9 * rows)), layout="constrained")
    grid = fig.add_gridspec(rows, 3, width_ratios=[3, 0.8, 1.6])
    photo = fig.add_subplot(grid[:, 0])
    photo.imshow(rgb)
    photo.set_axis_off()
    photo.set_title(title)
    for i, ((x, y, w, h), p) in enumerate(zip(boxes, probabilities)):
        colour = plt.cm.tab10(i % 10)
        photo.add_patch(plt.Rectangle((x, y), w, h, fill=False, lw=2, color=colour))
        photo.text(x, y - 4, f"{i + 1}: {CLASSES[p.argmax()]} {p.max():.0%}", color="white", fontsize=11,
                   va="bottom", bbox=dict(facecolor=colour, alpha=0.85, pad=2, lw=0))
        crop = fig.add_subplot(grid[i, 1])
        crop.imshow(faces[i], cmap="gray", vmin=0, vmax=255)
        if maps is not None:
            crop.imshow(maps[i], cmap="jet", alpha=0.45, vmin=0, vmax=max(float(maps[i].max()), 1e-9))
        crop.set_axis_off()
        crop.set_title(f"face {i + 1}", fontsize=10)
        bars = fig.add_subplot(grid[i, 2])
        bars.barh(range(len(CLASSES)), p, color=[colour if k == p.argmax() else "lightgray" for k in range(len(p))])
        bars.set_yticks(range(len(CLASSES)), CLASSES, fontsize=10)
        bars.invert_yaxis()
        bars.set_xlim(0, 1)
        bars.tick_params(axis="x", labelsize=10)
    return save(fig, path)


def no_face_details(shape, min_face, search_side):
    """What was searched: the photo's size, and where the search size kept faces of --min-face from being looked
    for, the smallest face that was and the remedy."""
    height, width = shape[:2]
    smallest = smallest_face(shape, min_face, search_side)
    if smallest <= min_face:
        return f"{width}x{height} pixels"
    if search_scale(shape, search_side, min_face) < 1:
        remedy = f"--search-size {max(width, height)} searches it at full size"
    else:
        remedy = f"--search-size {math.ceil(max(width, height) * WINDOW / min_face)} looks for faces of {min_face}"
    return f"{width}x{height} pixels, searched at {search_side} for faces of {smallest} pixels or more; {remedy}"


def csv_rows(photo, boxes, probabilities):
    return [[str(photo), *box, CLASSES[p.argmax()], *(f"{v:.4f}" for v in p)] for box, p in zip(boxes, probabilities)]


def main():
    args = parse_args()
    out = Path(args.out)
    paths = photo_paths(args.photos)
    figures = {photo: out / f"{photo.stem}_faces.png" for photo in paths}
    # the default models (.keras) are never among these outputs; named after the check, a refusal stays one line
    check_outputs([out / "faces.csv", *figures.values()], inputs=[*paths, *(args.model or ())])
    model_paths = args.model or cli.default_models()
    models = [inference.load_model(path) for path in model_paths]

    rows, refused = [], []
    for photo in paths:
        try:
            rgb, grey = read_photo(photo)
        except InputError as exc:  # the other photos are still read; the refusal is reported at the end
            refused.append(exc)
            continue
        boxes = find_faces(grey, args.min_face, args.search_size)
        if not boxes:
            print(f"{photo}: no face found ({no_face_details(grey.shape, args.min_face, args.search_size)})")
            continue
        faces = np.stack([crop_face(grey, box) for box in boxes])
        probabilities = inference.predict_probabilities(models, faces, args.tta, temperature=args.temperature)
        maps, method = None, ""
        if args.saliency:
            method, maps = saliency_maps(models[0], model_paths[0], faces, probabilities.argmax(1))
            method = f", {method}" + (" map" if method in CAM_METHODS else "")
        title = f"{photo.name}: {len(boxes)} face{'s' if len(boxes) > 1 else ''}{method}"
        draw(rgb, boxes, faces, probabilities, maps, title, figures[photo])
        rows += csv_rows(photo, boxes, probabilities)
        found = ", ".join(f"{CLASSES[p.argmax()]} {p.max():.0%}" for p in probabilities)
        print(f"{photo}: {len(boxes)} face{'s' if len(boxes) > 1 else ''} ({found}); wrote {figures[photo]}")

    if refused and len(refused) == len(paths):  # nothing was read: keep whatever faces.csv is there
        fail(refused)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "x", "y", "w", "h", "label", *PROBABILITY_COLUMNS])
    writer.writerows(rows)
    write_text(out / "faces.csv", buffer.getvalue())
    print(f"wrote {out / 'faces.csv'}: {len(rows)} face(s) in {len(paths) - len(refused)} photo(s)")
    if refused:
        fail(refused)


def fail(refused):
    more = f" (and {len(refused) - 1} more: {', '.join(e.path for e in refused[1:])})" if len(refused) > 1 else ""
    print(f"error: {refused[0]}{more}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    cli.run(main)
