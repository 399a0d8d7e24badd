"""Malformed and unusual input files: each refused in one line naming the file (and line), nothing cached or
written; valid but unusual input (quoted CSV, pipes) accepted."""
import io
import os
import threading
import zipfile

import numpy as np
import pytest

from conftest import QUICK, csv_text, refused, run_script, synthetic_faces, write_csv
from fer import data

X, Y = synthetic_faces(30, seed=5)


def pixels(i):
    return " ".join(map(str, X[i].ravel()))


def train_refusal(capsys, path, tmp_path):
    return refused(capsys, "train_cnn.py", "--train", path, *QUICK, "--model", tmp_path / "out" / "cnn.keras",
                   "--figures", tmp_path / "out", inputs=[path])


@pytest.mark.parametrize("name, text, words", [
    ("huge label", "label,feature\n1" + "0" * 24 + "," + pixels(0) + "\n", "label 1000000000"),
    ("pixel of 5,000 digits", "label,feature\n3," + "7" * 5000 + " " + pixels(0).split(" ", 1)[1] + "\n",
     "pixel value 777777777777... out of range 0-255"),
])
def test_numbers_too_large_for_any_integer_are_refused_with_their_line(name, text, words, tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    line = train_refusal(capsys, path, tmp_path)
    assert words in line and f"{path}:2:" in line, line


def test_a_test_id_too_large_for_any_integer_is_refused(trained, tmp_path, capsys):
    path = tmp_path / "test.csv"
    path.write_text("id,feature\n" + "9" * 30 + "," + pixels(0) + "\n")
    line = refused(capsys, "predict.py", "--model", trained / "cnn.keras", "--test", path, "--out", tmp_path / "s.csv",
                   inputs=[path])
    assert f"{path}:2: id 9999" in line and "too large" in line, line


def npz_bytes(**arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def corrupt_crc(raw):
    """The same .npz with one byte of the stored array flipped: zip's CRC check fails on reading."""
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        info = archive.infolist()[0]
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    return raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1:]


@pytest.mark.parametrize("name, make, words", [
    ("object array", lambda: npz_bytes(x=np.array([X[0], "a"], dtype=object), y=Y[:2]), "not a readable"),
    ("bad CRC", lambda: corrupt_crc(npz_bytes(x=X, y=Y)), "not a readable"),
    ("string labels", lambda: npz_bytes(x=X[:3], y=np.array(["happy", "sad", "angry"])), "must be integers"),
    ("zero rows", lambda: npz_bytes(x=X[:0], y=Y[:0]), "no faces"),
    ("not a zip", lambda: b"PK\x03\x04 and then nothing", "not a readable"),
])
def test_broken_or_odd_arrays_files_are_refused(name, make, words, tmp_path, capsys):
    path = tmp_path / "faces.npz"
    path.write_bytes(make())
    line = train_refusal(capsys, path, tmp_path)
    assert words in line and str(path) in line, line


def test_a_one_row_file_cannot_be_split(tmp_path, capsys):
    path = write_csv(tmp_path / "one.csv", X[:1], Y[:1])
    assert "--val-fraction" in train_refusal(capsys, path, tmp_path)


def test_a_refused_file_is_not_cached(tmp_path, capsys, monkeypatch):
    path = tmp_path / "bad.csv"
    path.write_text(csv_text(X[:3], [1, 9, 2]))  # a label outside 0-6 on line 3
    assert ":3: label 9 outside 0-6" in train_refusal(capsys, path, tmp_path)
    assert list(data.cache_dir().glob("*")) == []


def test_a_fully_quoted_csv_is_read_like_the_plain_one(tmp_path):
    plain = data.load_faces(write_csv(tmp_path / "plain.csv", X, Y), cache=False)
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('"label","feature"\n' + "".join(f'"{y}","{pixels(i)}"\n' for i, y in enumerate(Y)))
    faces = data.load_faces(quoted, cache=False)
    np.testing.assert_array_equal(faces.x, plain.x)
    np.testing.assert_array_equal(faces.y, plain.y)


def test_a_pipe_is_read_once_and_a_fifo_without_a_writer_does_not_hang(tmp_path, capsys):
    text = csv_text(X, Y).encode()
    fifo = tmp_path / "train.fifo"
    os.mkfifo(fifo)

    def write():
        with open(fifo, "wb") as f:
            f.write(text)

    writer = threading.Thread(target=write)
    writer.start()
    faces = data.load_faces(fifo)  # like --train <(xzcat train.csv.xz)
    writer.join()
    np.testing.assert_array_equal(faces.y, Y)
    lonely = tmp_path / "nobody.fifo"
    os.mkfifo(lonely)
    assert "file is empty" in train_refusal(capsys, lonely, tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable files")
def test_an_unreadable_file_is_refused(tmp_path, capsys):
    path = write_csv(tmp_path / "secret.csv", X, Y)
    os.chmod(path, 0)
    assert "cannot be read" in train_refusal(capsys, path, tmp_path)


def test_valid_unusual_input_trains(tmp_path):
    x, y = synthetic_faces(60, seed=6)
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('"label","feature"\n' + "".join(
        f'"{label}","{" ".join(map(str, face.ravel()))}"\n' for face, label in zip(x, y)))
    assert run_script("train_cnn.py", "--train", quoted, *QUICK, "--epochs", "1", "--model", tmp_path / "m.keras",
                      "--figures", tmp_path) == 0
