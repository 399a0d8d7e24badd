"""Faces in videos: reading a video's frames at a chosen rate, following each face from frame to frame, averaging
its expression over the last moments, and writing the frames back with each face boxed and labelled."""
import collections
import contextlib
import math
from pathlib import Path

import cv2
import numpy as np
from matplotlib.colors import TABLEAU_COLORS, to_rgb

from . import CLASSES, quiet_native_stderr
from .atomic import atomic_path
from .errors import InputError
from .photos import IMAGE_SUFFIXES, overlap

# A box continues a face when it overlaps that face's last box by this share at least (intersection over union):
# between frames a tenth of a second apart a face moves a little, and a stranger's box rarely lands on it.
FOLLOW_OVERLAP = 0.3
# matplotlib's tab10, as faces.py colours its faces, in OpenCV's blue-green-red order
COLOURS = [tuple(round(255 * c) for c in to_rgb(colour)[::-1]) for colour in TABLEAU_COLORS.values()]


def video_paths(paths):
    """The videos named, each checked: a missing file, a folder or a photo is refused."""
    found = []
    for path in map(Path, paths):
        if not path.exists():
            raise InputError(path, "no such file")
        if not path.is_file():
            raise InputError(path, "is not a file: name each video")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise InputError(path, "is a photo: faces.py reads photos")
        found.append(path)
    return found


def video_facts(path):
    """(frames per second, frame count as the file states it, (width, height)) of a video OpenCV can decode;
    InputError for any other file. The first frame is decoded to be sure."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        ok, first = capture.read() if capture.isOpened() else (False, None)
        if not ok:
            raise InputError(path, "not a video OpenCV can read (MP4, MOV, AVI, MKV, WebM...)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        size = first.shape[1::-1]  # as decoded: a phone's video is turned upright as its rotation tag says
    finally:
        capture.release()
    if not (math.isfinite(fps) and 0 < fps <= 1000):
        raise InputError(path, f"states no usable frame rate ({fps:g} a second)")
    return fps, max(count, 0), size


def sampled_frames(path, fps, rate):
    """(index, seconds, BGR frame) of the frames `rate` times a second of video (every frame for 0, or when the
    video has fewer); the same frames every time it is read."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    step = 1 / rate if output_rate(fps, rate) < fps else 0  # 0: every frame
    due, index = 0.0, 0
    try:
        while capture.grab():  # grab() only decodes; retrieve() converts the frames kept
            seconds = index / fps
            if seconds >= due - 1e-6:
                ok, frame = capture.retrieve()
                if ok:
                    yield index, seconds, frame
                due = (math.floor(seconds / step + 1e-6) + 1) * step if step else 0
            index += 1
    finally:
        capture.release()


def output_rate(fps, rate):
    """Frames a second of the written video, so that it plays at the speed it was filmed."""
    return rate if rate and rate < fps else fps


def follow(frames, gap):
    """A face number for each box of each frame (a list of box lists): a box continues the face whose last box it
    overlaps most, if that face was seen at most `gap` frames before; any other box is a new face. Numbers count
    from 1 in the order faces first appear (left to right within a frame)."""
    last, numbers = {}, []
    for position, boxes in enumerate(frames):
        live = {n: box for n, (seen, box) in last.items() if position - seen <= gap}
        pairs = sorted(((overlap(box, old), i, n) for i, box in enumerate(boxes) for n, old in live.items()),
                       reverse=True)
        chosen = {}
        for score, i, n in pairs:  # best overlaps first, each box and each face used once
            if score >= FOLLOW_OVERLAP and i not in chosen and n not in chosen.values():
                chosen[i] = n
        row = []
        for i, box in enumerate(boxes):
            number = chosen.get(i) or len(last) + 1
            last[number] = (position, box)
            row.append(number)
        numbers.append(row)
    return numbers


def drop_brief(frames, numbers, crops, least):
    """Frames (index, seconds, boxes), face numbers and crops without the faces seen in fewer than `least` frames
    (mostly the detector's mistakes, which rarely last), the others renumbered 1, 2... in order of appearance;
    and how many faces were dropped."""
    counts = collections.Counter(n for row in numbers for n in row)
    renumber = {n: i + 1 for i, n in enumerate(sorted(n for n, c in counts.items() if c >= least))}
    keep = np.array([n in renumber for row in numbers for n in row], bool)
    frames = [(index, seconds, [box for box, n in zip(boxes, row) if n in renumber])
              for (index, seconds, boxes), row in zip(frames, numbers)]
    numbers = [[renumber[n] for n in row if n in renumber] for row in numbers]
    return frames, numbers, crops[keep], len(counts) - len(renumber)


def smoothed(seconds, numbers, probabilities, window):
    """Each row's probabilities averaged with those of the same face over the `window` seconds before it (itself
    included): the label a viewer can read, where one frame's flickers."""
    seconds, numbers = np.asarray(seconds, float), np.asarray(numbers)
    out = np.empty_like(probabilities)
    for n in np.unique(numbers):
        rows = np.flatnonzero(numbers == n)
        rows = rows[np.argsort(seconds[rows], kind="stable")]
        t = seconds[rows]
        totals = np.concatenate([np.zeros((1, probabilities.shape[1])), np.cumsum(probabilities[rows], axis=0)])
        first = np.searchsorted(t, t - window - 1e-9, side="right")  # the first row inside each row's window
        last = np.searchsorted(t, t + 1e-9, side="right")  # rows of the same moment count too
        out[rows] = (totals[last] - totals[first]) / (last - first)[:, None]
    return out


def draw_faces(frame, boxes, numbers, probabilities):
    """The BGR frame, in place, with each face boxed in its colour and labelled with its number and its most
    probable expression."""
    line = max(2, round(max(frame.shape[:2]) / 360))
    for (x, y, w, h), number, p in zip(boxes, numbers, probabilities):
        colour = COLOURS[(number - 1) % len(COLOURS)]
        cv2.rectangle(frame, (x, y), (x + w, y + h), colour, line)
        text = f"{number}: {CLASSES[int(p.argmax())]} {p.max():.0%}"
        scale = max(0.45, min(1.5, w / 220))
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, line // 2))
        top = y - th - base - 2 * line if y - th - base - 2 * line >= 0 else y + h  # above the box, or below it
        cv2.rectangle(frame, (x, top), (x + tw + 2 * line, top + th + base + 2 * line), colour, cv2.FILLED)
        cv2.putText(frame, text, (x + line, top + th + line), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                    max(1, line // 2), cv2.LINE_AA)
    return frame


# OpenCV's wheels hold no H.264 encoder: an .mp4 is MPEG-4 Part 2, which video players play and browsers do not;
# a .webm is VP8, which browsers play
CODECS = {".mp4": "mp4v", ".webm": "VP80"}


@contextlib.contextmanager
def video_writer(path, fps, size):
    """A cv2.VideoWriter of (width, height) frames at `path`, in the codec its suffix names (CODECS): the file
    appears whole when the block ends, or not at all."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with quiet_native_stderr():  # FFmpeg's note that WebM files carry no such tag (it writes VP8 anyway)
            writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*CODECS[path.suffix]), fps, size)
        if not writer.isOpened():
            raise InputError(path, f"cannot be written as {CODECS[path.suffix]} video")
        try:
            yield writer
        finally:
            writer.release()
