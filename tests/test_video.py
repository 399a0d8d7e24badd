"""video.py on clips made from the astronaut portrait that scikit-image ships: frames read at the rate asked,
each face followed by its own number while it moves, its expression averaged over its own past only, and files
that are not videos refused before anything is written."""
import struct

import cv2
import numpy as np
import pytest
from skimage import data as photos

from conftest import read_rows, refused, run_script
from fer import CLASSES
from fer.photos import find_faces
from fer.video import COLOURS, follow, output_rate, sampled_frames, smoothed, video_facts, video_writer

FPS = 10
STEP = 8  # pixels the moving face travels a frame


def write_clip(path, frames, fps=FPS):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, frames[0].shape[1::-1])
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def two_people(count=30, stays=20):
    """Frames 720x400: the astronaut's head and shoulders moving right STEP pixels a frame, and her mirror image
    standing still at the right for the first `stays` frames."""
    person = cv2.cvtColor(photos.astronaut(), cv2.COLOR_RGB2BGR)[:300, 100:380]
    frames = []
    for i in range(count):
        frame = np.full((400, 720, 3), 90, np.uint8)
        frame[50:350, 10 + STEP * i:290 + STEP * i] = person
        if i < stays:
            frame[50:350, 440:720] = person[:, ::-1]
        frames.append(frame)
    return frames


def test_frames_are_read_at_the_rate_asked_and_are_the_frames_of_those_times(tmp_path):
    frames = [np.zeros((64, 96, 3), np.uint8) for _ in range(30)]
    for i, frame in enumerate(frames):
        frame[:, 3 * i:3 * i + 3] = 255  # a white stripe where the frame's number says
    clip = write_clip(tmp_path / "stripe.mp4", frames)
    fps, count, size = video_facts(clip)
    assert (fps, count, size) == (FPS, 30, (96, 64))
    taken = list(sampled_frames(clip, fps, rate=5))
    assert [index for index, _, _ in taken] == list(range(0, 30, 2))
    assert [seconds for _, seconds, _ in taken] == pytest.approx([i / FPS for i in range(0, 30, 2)])
    assert [frame.mean(axis=(0, 2)).argmax() // 3 for _, _, frame in taken] == list(range(0, 30, 2))  # those frames
    assert [index for index, _, _ in sampled_frames(clip, fps, rate=0)] == list(range(30))
    assert [index for index, _, _ in sampled_frames(clip, fps, rate=25)] == list(range(30))  # no more than filmed
    assert (output_rate(fps, 5), output_rate(fps, 0), output_rate(fps, 25)) == (5, FPS, FPS)


def tag_rotation(path):
    """Give an MP4 the rotation tag a phone writes for a shot held sideways: its track header's display matrix
    turned a quarter, as `ffmpeg -metadata:s:v rotate=270` writes it."""
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    assert data[at + 4] == 0  # a version 0 header: the matrix starts 40 bytes after its name
    data[at + 44:at + 80] = struct.pack(">9i", 0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))


def test_a_phone_video_stored_sideways_is_read_the_way_up_its_rotation_tag_says(tmp_path):
    upright = cv2.cvtColor(photos.astronaut(), cv2.COLOR_RGB2BGR)[:, 60:460]  # 400 wide, 512 high
    sideways = np.ascontiguousarray(np.rot90(upright))  # as the phone stores it
    clip = write_clip(tmp_path / "phone.mp4", [sideways] * 3)
    fps, _, size = video_facts(clip)
    assert size == (512, 400) and not find_faces(cv2.cvtColor(next(sampled_frames(clip, fps, 0))[2],
                                                                cv2.COLOR_BGR2GRAY))
    tag_rotation(clip)
    fps, _, size = video_facts(clip)
    _, _, frame = next(sampled_frames(clip, fps, 0))
    assert size == (400, 512) and frame.shape == (512, 400, 3)
    assert np.abs(frame.astype(int) - upright.astype(int)).mean() < 8
    ((x, y, w, h),) = find_faces(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    assert abs(x + w / 2 - (177 + 47 - 60)) < 12 and abs(y + h / 2 - (66 + 47)) < 12  # where her face is


def test_a_face_keeps_its_number_by_where_its_box_is_not_by_the_order_boxes_come_in():
    left, right = (10, 10, 50, 50), (200, 10, 50, 50)
    moved = lambda box, dx: (box[0] + dx, *box[1:])  # noqa: E731
    frames = [[left, right], [moved(right, -4), moved(left, 4)], [moved(left, 8)], [], [moved(left, 8), right]]
    assert follow(frames, gap=2) == [[1, 2], [2, 1], [1], [], [1, 3]]
    # the right face was last seen 3 frames before its return: beyond a gap of 2 it is a new face, within 5 not
    assert follow(frames, gap=5)[-1] == [1, 2]
    assert follow([[left], [right]], gap=2) == [[1], [2]]  # one face gone and another come is not one face moved


def test_each_face_is_averaged_over_its_own_past_only():
    seconds = [0.0, 0.0, 0.1, 0.1, 0.2]
    faces = [1, 2, 1, 2, 1]
    p = np.eye(7)[[0, 5, 3, 5, 3]]
    shown = smoothed(seconds, faces, p, window=0.15)
    np.testing.assert_allclose(shown[0], p[0])  # nothing before it
    np.testing.assert_allclose(shown[2], (p[0] + p[2]) / 2)  # its own first frame, not face 2's
    np.testing.assert_allclose(shown[4], (p[2] + p[4]) / 2)  # 0.2 s back is beyond the window
    np.testing.assert_allclose(smoothed(seconds, faces, p, window=0), p)


def test_video_script_follows_each_face_and_writes_the_video_the_table_and_the_timeline(trained, tmp_path, capsys):
    clip = write_clip(tmp_path / "two.mp4", two_people())
    out = tmp_path / "out"
    assert run_script("video.py", clip, "--out", out, "--model", trained / "cnn.keras") == 0
    rows = read_rows(out / "two_faces.csv")
    mover = [r for r in rows if r["face"] == "1"]
    still = [r for r in rows if r["face"] == "2"]
    assert {r["face"] for r in rows} == {"1", "2"}
    assert len(mover) >= 27 and len(still) >= 18 and all(int(r["frame"]) < 20 for r in still)
    # the moving face's box moves with it, the still one's stays; each row's time is its frame's
    centre = lambda r: int(r["x"]) + int(r["w"]) / 2  # noqa: E731  (the detector's box size steps by a tenth)
    starts = [centre(r) - STEP * int(r["frame"]) for r in mover]
    assert max(starts) - min(starts) <= 8 and max(int(r["x"]) for r in mover) > 250
    assert max(map(centre, still)) - min(map(centre, still)) <= 8 and int(still[0]["x"]) > 440
    assert all(float(r["seconds"]) == pytest.approx(int(r["frame"]) / FPS) for r in rows)
    for r in rows:
        p = [float(r[f"p_{name}"]) for name in CLASSES]
        assert abs(sum(p) - 1) < 2e-3 and max(p) == float(r[f"p_{r['label']}"])
    # the video: every frame read, at the speed filmed, each face boxed in its colour where the table says
    capture = cv2.VideoCapture(str(out / "two_faces.mp4"))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 30 and capture.get(cv2.CAP_PROP_FPS) == FPS
    ok, first = capture.read()
    capture.release()
    for r in (mover[0], still[0]):
        x, y, h = int(r["x"]), int(r["y"]), int(r["h"])
        edge = first[y + h // 2 - 3:y + h // 2 + 3, x - 1:x + 2].reshape(-1, 3).mean(0)
        assert np.abs(edge - COLOURS[int(r["face"]) - 1]).max() < 45, (r["face"], edge)
    assert (out / "two_timeline.png").read_bytes().startswith(b"\x89PNG")
    assert "face 1: " in capsys.readouterr().out
    # --temperature 0.5: the same rows and labels, each frame's probabilities squared and renormalized
    assert run_script("video.py", clip, "--out", tmp_path / "sharp", "--model", trained / "cnn.keras",
                      "--temperature", "0.5") == 0
    sharp = read_rows(tmp_path / "sharp" / "two_faces.csv")
    assert [(r["frame"], r["face"], r["label"]) for r in sharp] == [(r["frame"], r["face"], r["label"]) for r in rows]
    p = np.array([[float(r[f"p_{name}"]) for name in CLASSES] for r in rows])
    q = np.array([[float(r[f"p_{name}"]) for name in CLASSES] for r in sharp])
    np.testing.assert_allclose(q, p ** 2 / np.sum(p ** 2, axis=1, keepdims=True), atol=2e-4)


def test_a_video_without_a_face_writes_nothing_and_files_that_are_not_videos_are_refused(trained, tmp_path, capsys):
    out = tmp_path / "out"
    model = trained / "cnn.keras"
    empty = write_clip(tmp_path / "empty.mp4", [np.full((120, 160, 3), 100 + i, np.uint8) for i in range(12)])
    assert run_script("video.py", empty, "--out", out, "--model", model) == 0
    assert "empty.mp4: no face found in 12 frames (160x120 pixels at 10 a second)" in capsys.readouterr().out
    assert not out.exists() or list(out.iterdir()) == []
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    line = refused(capsys, "video.py", empty, broken, "--out", out, "--model", model, inputs=[broken])
    assert line == f"error: {broken}: not a video OpenCV can read (MP4, MOV, AVI, MKV, WebM...)"
    photo = tmp_path / "face.jpg"
    cv2.imwrite(str(photo), np.zeros((48, 48), np.uint8))
    assert refused(capsys, "video.py", photo, "--out", out, "--model", model) == (
        f"error: {photo}: is a photo: faces.py reads photos")
    assert refused(capsys, "faces.py", empty, "--out", out, "--model", model) == (
        f"error: {empty}: is a video: video.py reads videos")
    assert refused(capsys, "video.py", tmp_path / "gone.mp4", "--out", out, "--model", model) == (
        f"error: {tmp_path / 'gone.mp4'}: no such file")
    assert refused(capsys, "video.py", empty, "--out", out, "--rate", "-1").startswith("error: --rate: ")
    assert not out.exists() or list(out.iterdir()) == []


def test_the_summary_lists_the_faces_seen_longest_and_counts_the_others():
    import video

    faces = np.array([n for n in range(1, 15) for _ in range(n % 5 + 1)])  # face n seen n % 5 + 1 times
    probabilities = np.eye(7)[faces % 7]
    lines = video.summary_lines("crowd.mp4", faces, probabilities, step=0.1)
    listed = [int(line.split("face ")[1].split(":")[0]) for line in lines[:-1]]
    assert listed == sorted(listed) and len(listed) == video.LISTED_FACES
    assert {5, 10} - set(listed) == {5, 10}  # seen once each: the least
    assert lines[-1] == "crowd.mp4: and 2 more faces, seen no longer (each in the table)"
    assert lines[listed.index(4)] == f"crowd.mp4: face 4: 5 frames (0.5 s), {video.CLASSES[4]} 100%"


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_the_labelled_video_is_written_whole_in_the_codec_its_name_asks_for(tmp_path, suffix):
    frames = [np.zeros((64, 96, 3), np.uint8) for _ in range(6)]
    for i, frame in enumerate(frames):
        frame[:, 12 * i:12 * i + 12] = 255
    path = tmp_path / f"out{suffix}"
    with video_writer(path, 5, (96, 64)) as writer:
        for frame in frames:
            writer.write(frame)
        assert not path.exists()  # not until it is complete
    capture = cv2.VideoCapture(str(path))
    codec = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
    read = [capture.read()[1] for _ in range(6)]
    assert codec.lower() in {".mp4": ("mp4v", "fmp4"), ".webm": ("vp80",)}[suffix], codec  # FMP4: MPEG-4 Part 2
    assert [frame.mean(axis=(0, 2)).argmax() // 12 for frame in read] == list(range(6))
    with pytest.raises(RuntimeError), video_writer(path, 5, (96, 64)) as writer:  # a failure keeps the old file
        writer.write(frames[0])
        raise RuntimeError
    assert cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT) == 6
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
