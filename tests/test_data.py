"""Parsing: valid files in every accepted shape, the cache, splits."""
import gzip
import lzma

import numpy as np
import pytest

from conftest import csv_text, synthetic_faces, write_csv
from fer import data, reading
from fer.data import load_faces, split_train_val


def test_parses_pixels_and_labels_exactly(faces_csv):
    path, x, y = faces_csv
    faces = load_faces(path)
    assert faces.x.dtype == np.uint8 and faces.x.shape == (12, 48, 48)
    np.testing.assert_array_equal(faces.x, x)
    np.testing.assert_array_equal(faces.y, y)
    assert faces.ids is None and faces.usage is None


@pytest.mark.parametrize("variant", ["crlf", "bom", "trailing_blank_lines", "extra_spaces", "gz", "xz",
                                     "no_final_newline", "leading_zeros"])
def test_accepts_unusual_but_valid(tmp_path, variant):
    x, y = synthetic_faces(5, seed=2)
    text = csv_text(x, y)
    if variant == "crlf":
        text = text.replace("\n", "\r\n")
    elif variant == "bom":
        text = "\ufeff" + text
    elif variant == "trailing_blank_lines":
        text += "\n\n  \n\n"
    elif variant == "extra_spaces":
        text = "\n".join(line.replace(",", " ,  ", 1).replace(" ", "  ") + "  " for line in text.splitlines())
        text = "label,feature\n" + text.split("\n", 1)[1]
    elif variant == "no_final_newline":
        text = text.rstrip("\n")
    elif variant == "leading_zeros":
        text = text.replace(" 1", " 001")
    raw = text.encode("utf-8")
    path = tmp_path / "train.csv"
    if variant == "gz":
        path, raw = tmp_path / "train.csv.gz", gzip.compress(raw)
    elif variant == "xz":
        path, raw = tmp_path / "train.csv.xz", lzma.compress(raw)
    path.write_bytes(raw)
    faces = load_faces(path)
    np.testing.assert_array_equal(faces.x, x)
    np.testing.assert_array_equal(faces.y, y)


def test_test_file_has_ids(tmp_path):
    x, _ = synthetic_faces(4)
    faces = load_faces(write_csv(tmp_path / "test.csv", x, [10, 3, 7, 0], header="id,feature"))
    assert faces.y is None
    assert faces.ids.tolist() == [10, 3, 7, 0]


def test_fer2013_usage_column_drives_the_split(tmp_path):
    x, y = synthetic_faces(9)
    usage = ["Training"] * 5 + ["PublicTest"] * 2 + ["PrivateTest"] * 2
    lines = ["emotion,pixels,Usage"] + [f"{c}," + " ".join(map(str, img.ravel())) + f",{u}"
                                        for c, img, u in zip(y, x, usage)]
    path = tmp_path / "fer2013.csv"
    path.write_text("\n".join(lines) + "\n")
    faces = load_faces(path)
    np.testing.assert_array_equal(faces.x, x)
    train, val = split_train_val(faces)
    assert train.tolist() == [0, 1, 2, 3, 4] and val.tolist() == [5, 6]
    assert data.test_rows(faces).tolist() == [7, 8]
    train, val = split_train_val(faces, 0)  # --val-fraction 0: the final fit takes PublicTest too
    assert train.tolist() == [0, 1, 2, 3, 4, 5, 6] and val.tolist() == []


def test_val_fraction_zero_holds_out_nothing(tmp_path):
    x, y = synthetic_faces(30, seed=2)
    train, val = split_train_val(load_faces(write_csv(tmp_path / "train.csv", x, y)), 0)
    assert train.tolist() == list(range(30)) and len(val) == 0


def test_many_chunks_keep_line_numbers(tmp_path, monkeypatch):
    """Small chunks force the streaming path; an error deep in the file still names its line."""
    monkeypatch.setattr(reading, "CHUNK_BYTES", 5000)
    x, y = synthetic_faces(40, seed=3)
    text = csv_text(x, y)
    good = load_faces(write_csv(tmp_path / "good.csv", x, y))
    np.testing.assert_array_equal(good.x, x)
    lines = text.splitlines()
    lines[33] = lines[33].replace(" ", " 300 ", 1)  # data row 33 is file line 34
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(data.InputError) as err:
        load_faces(tmp_path / "bad.csv", cache=False)
    assert err.value.line == 34


def test_cache_serves_the_same_arrays_and_never_stale(tmp_path, monkeypatch):
    x, y = synthetic_faces(6, seed=4)
    path = write_csv(tmp_path / "train.csv", x, y)
    first = load_faces(path)
    calls = []
    real = data.read_faces
    monkeypatch.setattr(data, "read_faces", lambda p: calls.append(p) or real(p))
    again = load_faces(path)
    assert calls == []  # served from the cache
    np.testing.assert_array_equal(again.x, first.x)
    np.testing.assert_array_equal(again.y, first.y)
    y2 = (y + 1) % 7  # same size, new content
    write_csv(path, x, y2)
    changed = load_faces(path)
    assert len(calls) == 1
    np.testing.assert_array_equal(changed.y, y2)


def test_arrays_file(tmp_path):
    x, y = synthetic_faces(5)
    buffer = tmp_path / "train.npz"
    np.savez(buffer, x=x, y=y.astype(np.uint8))
    raw = buffer.read_bytes()
    (tmp_path / "train.npz.xz").write_bytes(lzma.compress(raw))
    for name in ("train.npz", "train.npz.xz"):
        faces = load_faces(tmp_path / name)
        np.testing.assert_array_equal(faces.x, x)
        np.testing.assert_array_equal(faces.y, y)


def test_split_is_stratified_and_seeded(tmp_path):
    x, y = synthetic_faces(700, seed=5)
    faces = data.Faces(x, y)
    train, val = split_train_val(faces, 0.2, seed=0)
    assert len(val) == 140 and len(set(train) & set(val)) == 0 and len(train) + len(val) == 700
    share = np.bincount(y[val], minlength=7) / np.bincount(y, minlength=7)
    assert np.all(np.abs(share - 0.2) < 0.03)
    assert split_train_val(faces, 0.2, seed=0)[1].tolist() == val.tolist()
    assert split_train_val(faces, 0.2, seed=1)[1].tolist() != val.tolist()


def test_a_cache_folder_that_cannot_be_written_only_goes_without_the_cache(tmp_path, monkeypatch):
    x, y = synthetic_faces(6, seed=5)
    path = write_csv(tmp_path / "train.csv", x, y)
    (tmp_path / "a file").write_text("")
    monkeypatch.setenv("FER_CACHE", str(tmp_path / "a file" / "cache"))  # no folder can be made under a file
    faces = load_faces(path)
    np.testing.assert_array_equal(faces.x, x)
    np.testing.assert_array_equal(faces.y, y)
