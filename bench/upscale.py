#!/usr/bin/env python3
"""How a face smaller than 48 pixels should be enlarged for the networks: faces.py and video.py cut each face
out of the photo and resize it to 48x48, and a distant face in a video frame is smaller than that.

Each validation face is shrunk to SIDE pixels across (an area average, as a camera's coarser pixels would
see it) and enlarged back to 48 by each of OpenCV's interpolations; the models' mean probabilities are scored
on each. What fer.photos.resized does is marked. Ends with one JSON line.

    python bench/upscale.py --data ../shared/fer2013/train.npz.xz      # the shipped models, 2,000 faces
    python bench/upscale.py --data ../shared/fer2013/train.npz.xz --model models/cnn.keras --faces 5742
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIDES = (40, 32, 24, 16, 12)
INTERPOLATIONS = ("area", "nearest", "linear", "cubic", "lanczos")


def parse_args():
    from fer import cli

    parser = cli.parser(__doc__)
    parser.add_argument("--model", action="append", metavar="M.keras",
                        help="a trained model; repeat for an ensemble (default: yours, else the shipped ones)")
    parser.add_argument("--data", required=True, help="the labeled file the models were trained on")
    parser.add_argument("--faces", type=cli.number(int, 20), default=2000,
                        help="validation faces drawn at random (default 2000)")
    parser.add_argument("--seed", type=cli.number(int, **cli.SEED), default=0, help="which faces")
    return parser.parse_args()


def cv2_flag(interpolation):
    import cv2

    return getattr(cv2, "INTER_LANCZOS4" if interpolation == "lanczos" else f"INTER_{interpolation.upper()}")


def enlarged(x, side, interpolation):
    """Each face shrunk to side x side by an area average, then enlarged back to its own size."""
    import cv2

    size = x.shape[1]
    return np.stack([cv2.resize(cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA), (size, size),
                                interpolation=cv2_flag(interpolation)) for face in x])


def product_choice(side):
    """The interpolation fer.photos.resized enlarges a face of this side with, read off its result."""
    import cv2

    from fer import IMAGE_SIZE
    from fer.photos import resized

    probe = np.random.default_rng(0).integers(0, 256, (side, side), dtype=np.uint8)
    return next((name for name in INTERPOLATIONS if np.array_equal(
        resized(probe), cv2.resize(probe, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2_flag(name)))), "other")


def shown(path):
    """A model's path as given, or relative to the project for one inside it (the default models)."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main():
    from fer import cli, inference, records
    from fer.embedding import chosen_faces
    from fer.scores import accuracy_interval

    args = parse_args()
    paths = args.model or cli.default_models()
    faces, note, _ = records.load_scored(args.data, None, paths)
    faces = faces.subset(chosen_faces(args.faces, len(faces), args.seed))
    models = [inference.load_model(path) for path in paths]
    started = time.perf_counter()

    def accuracy(x):
        return float(np.mean(inference.predict_probabilities(models, x.astype("float32")).argmax(1) == faces.y))

    clean = accuracy(faces.x)
    print(f"{len(faces):,} validation faces of {args.data} ({note}); {len(models)} model(s); clean {clean:.4f}")
    print(f"{'side':>5s} " + " ".join(f"{name:>8s}" for name in INTERPOLATIONS) + "   (* what faces.py uses)")
    rows = []
    for side in SIDES:
        scores = {name: accuracy(enlarged(faces.x, side, name)) for name in INTERPOLATIONS}
        chosen = product_choice(side)
        print(f"{side:5d} " + " ".join(f"{scores[name]:7.4f}{'*' if name == chosen else ' '}"
                                       for name in INTERPOLATIONS) + f"   ({time.perf_counter() - started:.0f} s)",
              flush=True)
        rows.append(dict(side=side, used=chosen, accuracy=scores,
                         interval={name: list(accuracy_interval(round(s * len(faces)), len(faces)))
                                   for name, s in scores.items()}))
    print(json.dumps({"bench": "upscale", "models": [shown(p) for p in paths], "faces": len(faces), "seed": args.seed,
                      "clean": round(clean, 4), "sides": rows}))


if __name__ == "__main__":
    from fer import cli

    cli.run(main)
