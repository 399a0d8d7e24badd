#!/usr/bin/env python3
"""Read the expressions of the faces in a video, frame by frame.

Frames are taken --rate times a second of video. In each, faces are found and cut out as faces.py does in a photo,
and every face of the video is then classified at once. A face keeps its number from frame to frame while its box
overlaps its last one. Writes, in --out, for each video:
    <video>_faces.mp4    the frames read, each face boxed with its number and its expression, averaged over the
                         last --smooth seconds so that the label does not flicker (--webm: <video>_faces.webm)
    <video>_faces.csv    one row per face and frame: frame,seconds,face,x,y,w,h,label,p_Angry,...,p_Neutral
                         (each frame's own probabilities; box in the video's pixels)
    <video>_timeline.png each face's 7 probabilities over time, averaged as in the video, beside its face
A video in which no face is found is reported, and nothing is written for it.

    python video.py clip.mp4 --out out/
    python video.py clip.mp4 --out out/ --rate 0 --tta     # every frame, mirror and zoom views
"""
import csv
import io
import math
from pathlib import Path

import cv2
import numpy as np

from fer import CLASSES, IMAGE_SIZE, PROBABILITY_COLUMNS, cli, inference
from fer.atomic import write_text
from fer.outputs import check_outputs
from fer.photos import SEARCH_SIDE, crop_face, find_faces
from fer.video import (draw_faces, drop_brief, follow, output_rate, sampled_frames, smoothed, video_facts,
                       video_paths, video_writer)

TIMELINE_FACES = 6  # the faces seen longest get a row of the timeline each
LISTED_FACES = 12  # and a line of the summary


def parse_args():
    parser = cli.parser(__doc__)
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files (MP4, MOV, AVI, MKV, WebM...)")
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--rate", type=cli.number(float, 0, 1000), default=10, metavar="PER_SECOND",
                        help="frames read a second of video (default 10; 0: every frame)")
    parser.add_argument("--smooth", type=cli.number(float, 0), default=1.0, metavar="SECONDS",
                        help="the video's labels average each face over this much time before the frame "
                             "(default 1; 0: each frame's own)")
    parser.add_argument("--min-seconds", type=cli.number(float, 0), default=0.3, metavar="SECONDS",
                        help="a face seen for less time is left out: most such are the detector's mistakes "
                             "(default 0.3)")
    parser.add_argument("--webm", action="store_true",
                        help="write the labelled video as WebM (VP8), which web browsers play, rather than MP4 "
                             "(MPEG-4 Part 2), which video players play")
    cli.add_face_flags(parser, "frame", SEARCH_SIDE)
    return parser.parse_args()


def outputs_of(video, out, webm=False):
    """The files written for a video: {"video": ..., "csv": ..., "png": ...}."""
    return {"video": out / f"{video.stem}_faces.{'webm' if webm else 'mp4'}", "csv": out / f"{video.stem}_faces.csv",
            "png": out / f"{video.stem}_timeline.png"}


def faces_in(video, facts, args):
    """Every sampled frame's (index, seconds, boxes), and the 48x48 crop of each face found, in order."""
    fps, count, _ = facts
    frames, crops, reported = [], [], 0
    expected = math.ceil(count * output_rate(fps, args.rate) / fps) if count else 0
    for index, seconds, frame in sampled_frames(video, fps, args.rate):
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        boxes = find_faces(grey, args.min_face, args.search_size)
        frames.append((index, seconds, boxes))
        crops += [crop_face(grey, box) for box in boxes]
        if expected >= 50 and len(frames) * 10 // expected > reported:  # a line every tenth of a long video
            reported = len(frames) * 10 // expected
            print(f"{video}: {seconds:.1f} s read, {len(frames)} of about {expected} frames, {len(crops)} faces",
                  flush=True)
    return frames, np.array(crops, np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)


def csv_text(frames, numbers, probabilities):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["frame", "seconds", "face", "x", "y", "w", "h", "label", *PROBABILITY_COLUMNS])
    rows = [(index, seconds, n, box) for (index, seconds, boxes), row in zip(frames, numbers)
            for box, n in zip(boxes, row)]
    for (index, seconds, n, box), p in zip(rows, probabilities):
        writer.writerow([index, f"{seconds:.3f}", n, *box, CLASSES[p.argmax()], *(f"{v:.4f}" for v in p)])
    return buffer.getvalue()


def timeline(seconds, faces, crops, shown, step, title, path):
    """For each of the faces seen longest, its most confident crop and its 7 probabilities over time (frames
    `step` seconds apart); a line breaks where the face was not seen."""
    from fer.plots import plt, save

    numbers = longest(faces, TIMELINE_FACES)
    fig = plt.figure(figsize=(12, 1.1 + 2.2 * len(numbers)), layout="constrained")
    grid = fig.add_gridspec(len(numbers), 2, width_ratios=[1, 7])
    for row, n in enumerate(numbers):
        mine = np.flatnonzero(faces == n)
        face = fig.add_subplot(grid[row, 0])
        face.imshow(crops[mine[shown[mine].max(1).argmax()]], cmap="gray", vmin=0, vmax=255)
        face.set_axis_off()
        face.set_title(f"face {n}", fontsize=10)
        ax = fig.add_subplot(grid[row, 1])
        t, p = seconds[mine], shown[mine]
        breaks = np.flatnonzero(np.diff(t) > 2.5 * step) + 1  # not seen in between: no line across the gap
        t = np.insert(t, breaks, np.nan)
        p = np.insert(p, breaks, np.nan, axis=0)
        for k, name in enumerate(CLASSES):
            ax.plot(t, p[:, k], color=plt.cm.tab10(k), lw=1.8, label=name)
        ax.set_ylim(0, 1)
        ax.set_xlim(seconds.min(), max(seconds.max(), seconds.min() + step))
        ax.set_ylabel("probability")
        if row == len(numbers) - 1:
            ax.set_xlabel("seconds into the video")
        if row == 0:
            ax.legend(ncol=7, loc="lower center", bbox_to_anchor=(0.5, 1.02), fontsize=10, frameon=False)
    fig.suptitle(title)
    return save(fig, path)


def longest(faces, count):
    """The numbers of the `count` faces seen in the most frames, in order."""
    numbers, frames = np.unique(faces, return_counts=True)
    return sorted(numbers[np.argsort(-frames, kind="stable")[:count]].tolist())


def summary_lines(video, faces, probabilities, step):
    """One line per face seen longest: how long it was seen, and the expressions of its frames."""
    lines = []
    for n in longest(faces, LISTED_FACES):
        labels = probabilities[faces == n].argmax(1)
        shares = np.bincount(labels, minlength=len(CLASSES)) / len(labels)
        top = ", ".join(f"{CLASSES[k]} {shares[k]:.0%}" for k in np.argsort(-shares)[:3] if shares[k] > 0)
        lines.append(f"{video}: face {n}: {len(labels)} frames ({len(labels) * step:.1f} s), {top}")
    if faces.max() > LISTED_FACES:
        lines.append(f"{video}: and {faces.max() - LISTED_FACES} more faces, seen no longer (each in the table)")
    return lines


def write_video(video, facts, args, frames, numbers, shown, path):
    """The sampled frames again, each face drawn with its averaged label, at the speed filmed."""
    fps, _, size = facts
    position, row = 0, 0
    with video_writer(path, output_rate(fps, args.rate), size) as writer:
        for (_, _, frame), (_, _, boxes) in zip(sampled_frames(video, fps, args.rate), frames):
            count = len(boxes)
            if frame.shape[1::-1] != size:  # a frame that changed size mid-video is fitted to the first one's
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            writer.write(draw_faces(frame, boxes, numbers[position], shown[row:row + count]))
            position, row = position + 1, row + count


def read_video(video, facts, models, args, paths):
    """Find, follow and classify every face of one video, then write its table, timeline and labelled copy."""
    fps, _, (width, height) = facts
    frames, crops = faces_in(video, facts, args)
    if not len(crops):
        print(f"{video}: no face found in {len(frames)} frames ({width}x{height} pixels at {fps:g} a second)")
        return
    rate = output_rate(fps, args.rate)
    numbers = follow([boxes for _, _, boxes in frames], gap=max(1, round(rate)))  # a second unseen, at most
    frames, numbers, crops, dropped = drop_brief(frames, numbers, crops, math.ceil(args.min_seconds * rate - 1e-6))
    if dropped:
        print(f"{video}: {dropped} face(s) seen under {args.min_seconds:g} s left out (--min-seconds 0 keeps them)")
    if not len(crops):
        print(f"{video}: no face lasted {args.min_seconds:g} s; nothing written")
        return
    print(f"{video}: reading the expressions of {len(crops)} faces", flush=True)
    probabilities = inference.predict_probabilities(models, crops, args.tta, temperature=args.temperature)
    seconds = np.array([s for (_, s, boxes) in frames for _ in boxes])
    faces = np.array([n for row in numbers for n in row])
    shown = smoothed(seconds, faces, probabilities, args.smooth)

    write_text(paths["csv"], csv_text(frames, numbers, probabilities))
    count = faces.max()
    which = f"the {TIMELINE_FACES} seen longest of {count} faces" if count > TIMELINE_FACES else \
        f"{count} face{'s' if count > 1 else ''}"
    averaged = f", averaged over {args.smooth:g} s" if args.smooth else ""
    timeline(seconds, faces, crops, shown, 1 / rate, f"{video.name}: {which}{averaged}", paths["png"])
    write_video(video, facts, args, frames, numbers, shown, paths["video"])
    print("\n".join(summary_lines(video, faces, probabilities, 1 / rate)))
    print(f"{video}: {len(frames)} frames read, {len(crops)} faces; wrote {', '.join(map(str, paths.values()))}")


def main():
    args = parse_args()
    out = Path(args.out)
    videos = video_paths(args.videos)
    # the default models (.keras) are never among these outputs; named after the check, a refusal stays one line
    check_outputs([path for video in videos for path in outputs_of(video, out, args.webm).values()],
                  inputs=[*videos, *(args.model or ())])
    model_paths = args.model or cli.default_models()
    facts = {video: video_facts(video) for video in videos}  # every file is checked before any work
    models = [inference.load_model(path) for path in model_paths]
    for video in videos:
        read_video(video, facts[video], models, args, outputs_of(video, out, args.webm))


if __name__ == "__main__":
    cli.run(main)
