"""Faces in ordinary photos: reading images, finding faces with OpenCV's Haar cascade (its weights ship inside
the opencv-python-headless wheel: nothing is downloaded), and cutting each out as FER2013's faces were made."""
import functools
from pathlib import Path

import cv2
import numpy as np

from . import IMAGE_SIZE
from .errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")
# FER2013's faces were cut around the detector's box with some room to spare: the whole head, a little hair
# and chin. A margin of a fifth of the box on each side gives crops that look like the data set's.
MARGIN = 0.2
# The detector tries every window at every scale, so a high-resolution photo's fine texture gives it many more
# chances to see a face where there is none; a photo is searched at this size at most, its boxes scaled back.
SEARCH_SIDE = 1024
WINDOW = 24  # the cascade's own window: the smallest face it finds at the size it searches


def photo_paths(paths):
    """Each path, with a folder replaced by the images in it (sorted); a missing path or a video is refused."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif not path.exists():
            raise InputError(path, "no such file or folder")
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            raise InputError(path, "is a video: video.py reads videos")
        else:
            found.append(path)
    if not found:
        raise InputError(paths[0], "no images here (JPEG, PNG, BMP, WebP or TIFF)")
    return found


def read_photo(path):
    """(colour RGB uint8, grey uint8) of an image file, or InputError for a file that is not one."""
    try:
        raw = np.fromfile(path, np.uint8)
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None
    # OpenCV turns the image as its EXIF orientation tag says: a phone stores a sideways shot unturned
    image = cv2.imdecode(raw, cv2.IMREAD_COLOR) if raw.size else None
    if image is None:
        raise InputError(path, "not an image OpenCV can read (JPEG, PNG, BMP, WebP or TIFF)")
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return rgb, cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


@functools.cache
def detector():
    """OpenCV's frontal-face Haar cascade, read once a process."""
    return cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))


def find_faces(grey, min_size=30, search_side=SEARCH_SIDE):
    """Boxes (x, y, w, h) of the frontal faces in a grey image, in its pixels, left to right. A photo whose longer
    side exceeds `search_side` is searched scaled down to it; one where `min_size` is below the detector's window
    is searched enlarged, up to that side; `min_size` is in the photo's pixels."""
    scale = search_scale(grey.shape, search_side, min_size)
    search = grey if scale == 1 else cv2.resize(grey, None, fx=scale, fy=scale,
                                                 interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    smallest = max(1, round(min_size * scale))
    boxes = detector().detectMultiScale(cv2.equalizeHist(search), scaleFactor=1.1, minNeighbors=5,
                                      minSize=(smallest, smallest))
    return sorted((tuple(int(round(v / scale)) for v in box) for box in boxes), key=lambda box: box[0])


def search_scale(shape, search_side=SEARCH_SIDE, min_size=WINDOW):
    """The factor a photo of this (height, width) is searched at: below 1 for one larger than search_side; above
    1 where faces smaller than the detector's window are looked for (so that they fill it), up to search_side."""
    return min(search_side / max(shape[:2]), max(1.0, WINDOW / min_size))


def smallest_face(shape, min_size=30, search_side=SEARCH_SIDE):
    """The smallest face, in the photo's pixels, that find_faces looks for in a photo of this shape."""
    return max(min_size, round(WINDOW / search_scale(shape, search_side, min_size)))


def overlap(a, b):
    """Intersection over union of two boxes (x, y, w, h)."""
    w = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return w * h / (a[2] * a[3] + b[2] * b[3] - w * h)


def crop_face(grey, box, margin=MARGIN):
    """The face in `box`, widened by `margin` on each side (edges repeated past the border), as a 48x48 uint8
    grey image: what a FER2013 model takes."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    x1, y1 = x0 + int(round(side)), y0 + int(round(side))
    pad = max(0, -x0, -y0, x1 - grey.shape[1], y1 - grey.shape[0])
    padded = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else grey
    return resized(padded[y0 + pad:y1 + pad, x0 + pad:x1 + pad])


def resized(square, side=IMAGE_SIZE):
    """A square image at side x side pixels. Shrinking averages each new pixel's area, as FER2013's faces were
    made; enlarging a face smaller than that is bicubic, where an area average repeats pixels into blocks that
    the networks read far worse (bench/upscale.py)."""
    interpolation = cv2.INTER_AREA if square.shape[0] >= side else cv2.INTER_CUBIC
    return cv2.resize(square, (side, side), interpolation=interpolation)
