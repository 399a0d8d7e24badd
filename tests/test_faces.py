"""faces.py on real photos that scikit-image ships: the astronaut's face found where it is and classified,
a photo without a face reported, a file that is not an image refused after the others."""
import cv2
import numpy as np
import pytest
from skimage import data as photos

from conftest import read_rows, refused, run_script
from fer import CLASSES
from fer.photos import SEARCH_SIDE, crop_face, find_faces, overlap, read_photo, resized, search_scale, smallest_face

ASTRONAUT_FACE = (177, 66, 95, 95)  # x, y, w, h: where the face of skimage's astronaut portrait is


@pytest.fixture
def astronaut(tmp_path):
    path = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(photos.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def test_the_detector_finds_the_astronaut_and_crops_her_face_as_fer2013_does(astronaut):
    grey = cv2.imread(str(astronaut), cv2.IMREAD_GRAYSCALE)
    (box,) = find_faces(grey)
    assert overlap(box, ASTRONAUT_FACE) > 0.6
    face = crop_face(grey, box)
    assert face.shape == (48, 48) and face.dtype == np.uint8
    # the crop holds the face and a margin: its centre is the middle of the box, scaled
    x, y, w, h = box
    side = w * 1.4
    middle = cv2.resize(grey[int(y + h / 2 - side / 2):int(y + h / 2 + side / 2),
                             int(x + w / 2 - side / 2):int(x + w / 2 + side / 2)], (48, 48),
                        interpolation=cv2.INTER_AREA)
    assert np.abs(middle.astype(int) - face.astype(int)).mean() < 4
    # near the border the photo's edge is repeated, not cut short
    assert crop_face(grey, (0, 0, 60, 60)).shape == (48, 48)


def test_a_face_smaller_than_the_input_is_enlarged_smoothly_and_a_larger_one_averaged():
    rows, columns = np.indices((48, 48))
    face = (40 + 180 * np.exp(-((rows - 20) ** 2 + (columns - 27) ** 2) / 98)).astype(np.uint8)  # smooth, off-centre
    for side in (40, 32, 24, 16):  # the same face seen with fewer pixels
        small = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
        blocks = cv2.resize(small, (48, 48), interpolation=cv2.INTER_AREA)  # enlarging so repeats pixels in blocks
        error = np.abs(resized(small).astype(int) - face).mean()
        assert error < np.abs(blocks.astype(int) - face).mean() / 3
    large = cv2.resize(face, (96, 96), interpolation=cv2.INTER_CUBIC)
    assert np.abs(resized(large) - large.reshape(48, 2, 48, 2).mean((1, 3))).max() <= 0.5  # each 2x2 averaged
    # one smooth scene photographed close up and from five times as far: the same face box, the same crop
    rows, columns = np.indices((400, 400))
    close = (40 + 180 * np.exp(-((rows - 150) ** 2 + (columns - 175) ** 2) / 1800) + 30 * np.sin(columns / 25))
    close = close.clip(0, 255).astype(np.uint8)
    far = cv2.resize(close, (80, 80), interpolation=cv2.INTER_AREA)
    near_crop, far_crop = crop_face(close, (100, 100, 125, 125)), crop_face(far, (20, 20, 25, 25))
    assert np.abs(near_crop.astype(int) - far_crop).mean() < 0.5  # 0.69 were it enlarged in blocks


def test_faces_smaller_than_the_detectors_window_are_found_when_asked_for(astronaut):
    grey = cv2.imread(str(astronaut), cv2.IMREAD_GRAYSCALE)
    small = cv2.resize(grey, (100, 100), interpolation=cv2.INTER_AREA)  # her face now 19 pixels across
    assert find_faces(small) == [] and find_faces(small, min_size=20) == []  # the detector's window is 24
    (box,) = find_faces(small, min_size=12)  # searched enlarged twice, the face fills the window
    assert overlap(box, tuple(v * 100 / 512 for v in ASTRONAUT_FACE)) > 0.5
    assert search_scale(small.shape, SEARCH_SIDE, 12) == 2 and search_scale(small.shape, SEARCH_SIDE, 30) == 1
    assert search_scale((480, 640), SEARCH_SIDE, 12) == 1.6 and smallest_face((480, 640), 12) == 15
    assert search_scale(grey.shape, 256, 12) == 0.5  # never beyond the search size


def test_a_phone_photo_stored_sideways_is_read_the_way_up_its_exif_tag_says(tmp_path):
    from PIL import Image

    upright = photos.astronaut()
    sideways = Image.fromarray(np.ascontiguousarray(np.rot90(upright)))  # as a phone held sideways stores it
    exif = sideways.getexif()
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise to show
    path = tmp_path / "phone.jpg"
    sideways.save(path, quality=95, exif=exif)
    rgb, grey = read_photo(path)
    assert rgb.shape == upright.shape and np.abs(rgb.astype(int) - upright.astype(int)).mean() < 6
    (box,) = find_faces(grey)
    assert overlap(box, ASTRONAUT_FACE) > 0.6


def textured_photo(side=2048):
    """A high-resolution grey photo: the astronaut at her own size among other photos that skimage ships, at
    theirs; fine texture over most of it, and one face."""
    canvas = np.full((side, side), 128, np.uint8)
    x = y = row = 0
    for image in (photos.astronaut(), photos.coffee(), photos.chelsea(), photos.rocket(), photos.camera(),
                  photos.coins(), photos.moon(), photos.page(), photos.text(), photos.immunohistochemistry(),
                  photos.hubble_deep_field()):
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        if grey.shape[0] > 600:
            grey = cv2.resize(grey, (grey.shape[1] * 600 // grey.shape[0], 600), interpolation=cv2.INTER_AREA)
        h, w = grey.shape
        if x + w > side:
            x, y, row = 0, y + row, 0
        canvas[y:y + h, x:x + w] = grey
        x, row = x + w, max(row, h)
    return canvas


def test_a_large_photo_is_searched_scaled_down_so_its_texture_is_not_taken_for_faces():
    grey = textured_photo()
    assert max(grey.shape) > SEARCH_SIDE
    (box,) = find_faces(grey)  # boxes in the photo's own pixels
    assert overlap(box, ASTRONAUT_FACE) > 0.6
    at_full_size = find_faces(grey, search_side=max(grey.shape))
    assert len(at_full_size) > 1 and any(overlap(b, ASTRONAUT_FACE) > 0.6 for b in at_full_size)


def test_faces_script_boxes_and_classifies_every_face(trained, astronaut, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_script("faces.py", astronaut, "--out", out, "--model", trained / "cnn.keras", "--saliency") == 0
    (row,) = read_rows(out / "faces.csv")
    assert row["file"] == str(astronaut)
    assert overlap(tuple(int(row[k]) for k in "xywh"), ASTRONAUT_FACE) > 0.6
    probabilities = [float(row[f"p_{name}"]) for name in CLASSES]
    assert abs(sum(probabilities) - 1) < 2e-3 and max(probabilities) == float(row[f"p_{row['label']}"])
    figure = (out / "astronaut_faces.png").read_bytes()
    assert figure.startswith(b"\x89PNG") and len(figure) > 50_000
    # --temperature 0.5: the same face and label, its probabilities squared and renormalized
    assert run_script("faces.py", astronaut, "--out", tmp_path / "sharp", "--model", trained / "cnn.keras",
                      "--temperature", "0.5") == 0
    (sharp,) = read_rows(tmp_path / "sharp" / "faces.csv")
    squared = np.square(probabilities) / np.sum(np.square(probabilities))
    assert sharp["label"] == row["label"] and [sharp[k] for k in "xywh"] == [row[k] for k in "xywh"]
    np.testing.assert_allclose([float(sharp[f"p_{name}"]) for name in CLASSES], squared, atol=2e-4)


def test_a_photo_without_a_face_is_a_line_and_a_non_image_is_refused_after_the_others(trained, astronaut, tmp_path,
                                                                                        capsys):
    sky = tmp_path / "sky.png"
    cv2.imwrite(str(sky), np.tile(np.linspace(80, 220, 300, dtype=np.uint8)[:, None], (1, 400)))
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a picture")
    out = tmp_path / "out"
    line = refused(capsys, "faces.py", broken, sky, astronaut, "--out", out, "--model", trained / "cnn.keras",
                   inputs=[broken, sky, astronaut])
    assert line.startswith(f"error: {broken}: not an image")
    assert len(read_rows(out / "faces.csv")) == 1 and (out / "astronaut_faces.png").exists()  # the others done
    # when no photo can be read there is nothing to write: the last run's faces.csv and its face stay
    refused(capsys, "faces.py", broken, "--out", out, "--model", trained / "cnn.keras", inputs=[out / "faces.csv"])
    assert len(read_rows(out / "faces.csv")) == 1
    capsys.readouterr()
    assert run_script("faces.py", sky, "--out", out, "--model", trained / "cnn.keras") == 0
    assert f"{sky}: no face found (400x300 pixels)" in capsys.readouterr().out
    assert read_rows(out / "faces.csv") == [] and not (out / "sky_faces.png").exists()
    # a large photo is searched scaled down: the line says how small a face it looked for, and how to look further
    cv2.imwrite(str(sky), cv2.resize(cv2.imread(str(sky)), (4096, 3072)))
    assert run_script("faces.py", sky, "--out", out, "--model", trained / "cnn.keras") == 0
    assert (f"{sky}: no face found (4096x3072 pixels, searched at {SEARCH_SIDE} for faces of 96 pixels or more; "
            "--search-size 4096 searches it at full size)") in capsys.readouterr().out
    # a small frame searched for faces below the detector's window is enlarged, up to the search size
    cv2.imwrite(str(sky), cv2.resize(cv2.imread(str(sky)), (640, 480)))
    assert run_script("faces.py", sky, "--out", out, "--model", trained / "cnn.keras", "--min-face", "12") == 0
    assert (f"{sky}: no face found (640x480 pixels, searched at {SEARCH_SIDE} for faces of 15 pixels or more; "
            "--search-size 1280 looks for faces of 12)") in capsys.readouterr().out
    line = refused(capsys, "faces.py", sky, "--out", out, "--model", trained / "cnn.keras", "--search-size", "10")
    assert line == "error: --search-size: must be at least 64, got 10"
