"""Outputs are replaced whole or not at all."""
import pytest

from fer.atomic import atomic_path, write_text
from fer.inference import write_submission


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.endswith(".keras") and tmp != str(target)  # Keras picks the format by suffix
            with open(tmp, "w") as f:
                f.write("half of the new")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_successful_write_replaces_and_creates_folders(tmp_path):
    target = tmp_path / "deep" / "er" / "summary.json"
    write_text(target, "one")
    write_text(target, "two")
    assert target.read_text() == "two" and len(list(target.parent.iterdir())) == 1


def test_submission_format(tmp_path):
    out = tmp_path / "submission.csv"
    write_submission(out, [5, 1, 9], [3, 0, 6])
    assert out.read_text() == "id,label\n5,3\n1,0\n9,6\n"


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    write_text(tmp_path / "a.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~mask
