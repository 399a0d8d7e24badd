"""Every bad input: one `error:` line naming file and line, exit status 2, nothing written."""
import lzma
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, csv_text, run_script, subprocess_env, synthetic_faces

X, Y = synthetic_faces(3, seed=7)
GOOD = csv_text(X, Y)
ROWS = GOOD.splitlines()


def row(i, label=None, pixels=None, sep=","):
    label = Y[i] if label is None else label
    pixels = " ".join(map(str, X[i].ravel())) if pixels is None else pixels
    return f"{label}{sep}{pixels}"


def replace_pixel(i, value, k=5):
    pixels = list(map(str, X[i].ravel()))
    pixels[k] = value
    return row(i, pixels=" ".join(pixels))


def lines(*rows):
    return ("\n".join(rows) + "\n").encode()


CASES = {  # name: (file bytes, expected words in the message, expected line or None)
    "empty file": (b"", "file is empty", None),
    "header only": (b"label,feature\n", "no data rows", None),
    "unknown header": (lines("emotion,image", *ROWS[1:]), "unknown header 'emotion,image'", 1),
    "missing header": (lines(*ROWS[1:]), "missing header line", 1),
    "too few pixels": (lines(ROWS[0], ROWS[1], row(1, pixels=" ".join(["7"] * 2303))),
                       "expected 2304 pixels, found 2303", 3),
    "too many pixels": (lines(ROWS[0], row(0, pixels=" ".join(["7"] * 2305))), "found 2305", 2),
    "non-numeric pixel": (lines(ROWS[0], ROWS[1], ROWS[2], replace_pixel(2, "abc")),
                          "non-numeric pixel value 'abc'", 4),
    "decimal pixel": (lines(ROWS[0], replace_pixel(0, "12.5")), "non-numeric pixel value '12.5'", 2),
    "pixel over 255": (lines(ROWS[0], ROWS[1], replace_pixel(1, "256")), "pixel value 256 out of range", 3),
    "negative pixel": (lines(ROWS[0], replace_pixel(0, "-3")), "negative pixel value '-3'", 2),
    "label outside 0-6": (lines(ROWS[0], ROWS[1], row(1, label=7)), "label 7 outside 0-6", 3),
    "missing label": (lines(ROWS[0], row(0, label=" ")), "missing label", 2),
    "label not an integer": (lines(ROWS[0], row(0, label="happy")), "label 'happy' is not an integer", 2),
    "missing feature": (lines(ROWS[0], ROWS[1], "3"), "missing column", 3),
    "extra column": (lines(ROWS[0], ROWS[1] + ",Training"), "too many columns", 2),
    "semicolon delimiter": (lines("label;feature", *(r.replace(",", ";") for r in ROWS[1:])),
                            "separated by ';'", 1),
    "tab in rows": (lines(ROWS[0], row(0, sep="\t")), "wrong delimiter", 2),
    "blank line inside": (lines(ROWS[0], ROWS[1], "", ROWS[2]), "empty line", 3),
    "binary garbage": (bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)), "binary data", 1),
    "truncated archive": (lzma.compress(GOOD.encode())[:3000], "truncated or corrupt xz archive", None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_training_refuses(name, in_tmp, capsys):
    content, words, line = CASES[name]
    path = in_tmp / ("train.csv.xz" if name == "truncated archive" else "train.csv")
    path.write_bytes(content)
    (in_tmp / "models").mkdir()
    (in_tmp / "models" / "cnn.keras").write_text("previous model")
    before = sorted(p.relative_to(in_tmp) for p in in_tmp.rglob("*"))

    status = run_script("train_cnn.py", "--train", path, "--preset", "smoke")

    out, err = capsys.readouterr()
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("error: "), err
    where = f"{path}:{line}:" if line else f"{path}:"
    assert where in err and words in err, err
    assert "Traceback" not in out + err
    assert sorted(p.relative_to(in_tmp) for p in in_tmp.rglob("*")) == before
    assert (in_tmp / "models" / "cnn.keras").read_text() == "previous model"


def test_duplicate_test_ids_refused_and_submission_kept(in_tmp, capsys):
    x, _ = synthetic_faces(3)
    (in_tmp / "test.csv").write_text(csv_text(x, [4, 9, 4], header="id,feature"))
    (in_tmp / "submission.csv").write_text("old")
    status = run_script("predict.py", "--model", "missing.keras", "--test", "test.csv")
    err = capsys.readouterr().err
    assert status == 2 and err == "error: test.csv:4: duplicate id 4 (first on line 2)\n"
    assert (in_tmp / "submission.csv").read_text() == "old"


def test_missing_and_broken_models_refused(in_tmp, capsys):
    x, _ = synthetic_faces(2)
    (in_tmp / "test.csv").write_text(csv_text(x, [0, 1], header="id,feature"))
    (in_tmp / "broken.keras").write_bytes(b"PK\x03\x04 not really a zip")
    for model, words in (("absent.keras", "no such model file"), ("broken.keras", "not a loadable Keras model")):
        assert run_script("predict.py", "--model", model, "--test", "test.csv") == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {model}: {words}") and err.count("\n") == 1
    assert not (in_tmp / "submission.csv").exists()
    # a model named by another flag: the hint names that flag, not --model
    (in_tmp / "train.csv").write_text(csv_text(x, [0, 1]))
    for script, flags, flag in (("train_dnn.py", ["--train", "train.csv", "--model", "dnn.keras"], "--match"),
                                ("filter_vis.py", ["--out", "filters"], "--compare")):
        assert run_script(script, *flags, flag, "absent.keras") == 2
        assert capsys.readouterr().err.endswith(f"error: absent.keras: no such model file "
                                                f"(train one with train_cnn.py, or pass {flag})\n")
    assert not (in_tmp / "dnn.keras").exists() and not (in_tmp / "filters").exists()


def test_training_on_a_test_file_is_refused(in_tmp, capsys):
    x, _ = synthetic_faces(3)
    (in_tmp / "test.csv").write_text(csv_text(x, [0, 1, 2], header="id,feature"))
    assert run_script("train_cnn.py", "--train", "test.csv") == 2
    assert "has no labels" in capsys.readouterr().err


def test_real_process_prints_one_line_and_exits_2(tmp_path):
    """Outside pytest too: no traceback, no library chatter on stderr."""
    bad = tmp_path / "train.csv"
    bad.write_bytes(CASES["pixel over 255"][0])
    done = subprocess.run([sys.executable, str(ROOT / "train_cnn.py"), "--train", str(bad)], cwd=tmp_path,
                          capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert done.returncode == 2
    assert done.stderr == f"error: {bad}:3: pixel value 256 out of range 0-255 (pixel 6)\n"
    assert not os.path.exists(tmp_path / "models")
