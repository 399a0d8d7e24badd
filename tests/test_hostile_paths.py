"""Outputs never touch inputs: an output that names an input (through a link too), a special file, a folder, a
place under a file or in /proc is refused in one line before any work, and every input stays as it was."""
import os
import shutil

import pytest

from conftest import QUICK, ROOT, refused, run_script


@pytest.fixture
def model_copy(trained, tmp_path):
    """A copy of the trained CNN with its records, that a test may try to overwrite."""
    for name in ("cnn.keras", "cnn_summary.json", "cnn_history.csv"):
        shutil.copy(trained / name, tmp_path / name)
    return tmp_path / "cnn.keras"


def test_predict_refuses_to_write_over_its_test_file_or_model(model_copy, synthetic_files, tmp_path, capsys):
    test = tmp_path / "test.csv"
    shutil.copy(synthetic_files["test"], test)
    line = refused(capsys, "predict.py", "--model", model_copy, "--test", test, "--out", test,
                   inputs=[test, model_copy])
    assert "is also an input" in line and str(test) in line
    line = refused(capsys, "predict.py", "--model", model_copy, "--test", test, "--out", model_copy,
                   inputs=[test, model_copy])
    assert "is also an input" in line
    os.symlink(test, tmp_path / "link.csv")  # the same file under another name
    assert "is also an input" in refused(capsys, "predict.py", "--model", model_copy, "--test", test,
                                         "--out", tmp_path / "link.csv", inputs=[test])


def test_training_refuses_outputs_that_are_its_inputs(model_copy, synthetic_files, tmp_path, capsys):
    train = tmp_path / "train.csv"
    shutil.copy(synthetic_files["train"], train)
    for extra in (["--submission", train], ["--submission", tmp_path / "out.keras"]):
        line = refused(capsys, "train_cnn.py", "--train", train, "--test", synthetic_files["test"], *QUICK,
                       "--model", tmp_path / "out.keras", "--figures", tmp_path / "figs", *extra, inputs=[train])
        assert "is also an input" in line or "is named twice" in line
    assert not (tmp_path / "out.keras").exists() and not (tmp_path / "figs").exists()
    line = refused(capsys, "train_dnn.py", "--train", train, "--match", model_copy, "--preset", "smoke",
                   "--model", model_copy, inputs=[train, model_copy])
    assert "is also an input" in line


def test_export_refuses_to_rewrite_its_model_in_place_or_another_models_card(model_copy, tmp_path, capsys):
    line = refused(capsys, "export_model.py", model_copy, "--out", model_copy, inputs=[model_copy])
    assert "is also an input" in line
    shipped = tmp_path / "shipped"
    assert run_script("export_model.py", model_copy, "--out", shipped / "a.keras") == 0
    card = shipped / "MODEL_CARD.md"
    line = refused(capsys, "export_model.py", model_copy, "--out", shipped / "b.keras", inputs=[card])
    assert "describes another model" in line and not (shipped / "b.keras").exists()
    assert run_script("export_model.py", model_copy, "--out", shipped / "a.keras", "--half") == 0  # its own card


def test_special_files_folders_and_impossible_places_are_refused(model_copy, synthetic_files, tmp_path, capsys):
    args = ["--model", model_copy, "--test", synthetic_files["test"]]
    assert "not a regular file" in refused(capsys, "predict.py", *args, "--out", "/dev/null")
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")  # still the device
    (tmp_path / "folder.csv").mkdir()
    assert "not a regular file" in refused(capsys, "predict.py", *args, "--out", tmp_path / "folder.csv")
    (tmp_path / "plain").write_text("a file")
    assert refused(capsys, "predict.py", *args, "--out", tmp_path / "plain" / "sub" / "x.csv") == \
        f"error: {tmp_path / 'plain'}: is a file, not a folder, so {tmp_path / 'plain' / 'sub'} cannot be made"
    assert "kernel file system" in refused(capsys, "predict.py", *args, "--out", "/proc/fer/sub.csv")
    assert (tmp_path / "plain").read_text() == "a file"


def test_a_figures_folder_that_is_a_file_is_refused_before_training(synthetic_files, tmp_path, capsys):
    (tmp_path / "figures").write_text("not a folder")
    line = refused(capsys, "train_cnn.py", "--train", synthetic_files["train"], *QUICK, "--model",
                   tmp_path / "cnn.keras", "--figures", tmp_path / "figures")
    assert "is a file" in line and not (tmp_path / "cnn.keras").exists()
    line = refused(capsys, "confusion.py", "--data", synthetic_files["train"], "--out", tmp_path / "figures")
    assert line == f"error: {tmp_path / 'figures'}: is a file, not a folder"
    line = refused(capsys, "confusion.py", "--data", synthetic_files["train"], "--out", "/dev/null")
    assert line == "error: /dev/null: exists and is not a folder"
    line = refused(capsys, "calibration.py", "--data", synthetic_files["train"], "--out", tmp_path / "figures")
    assert line == f"error: {tmp_path / 'figures'}: is a file, not a folder"
    for script in ("embedding.py", "robustness.py"):
        line = refused(capsys, script, "--data", synthetic_files["train"], "--out", tmp_path / "figures")
        assert line == f"error: {tmp_path / 'figures'}: is a file, not a folder", script
    # with the default models too, whose note would be a second line on stderr before the refusal
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not decoded before the outputs are checked")
    for script, source in (("faces.py", ROOT / "docs" / "faces_example.jpg"), ("video.py", clip)):
        line = refused(capsys, script, source, "--out", tmp_path / "figures")
        assert line == f"error: {tmp_path / 'figures'}: is a file, not a folder", script


def test_a_model_path_that_is_a_folder_is_refused(synthetic_files, tmp_path, capsys):
    (tmp_path / "cnn.keras").mkdir()
    line = refused(capsys, "train_cnn.py", "--train", synthetic_files["train"], *QUICK, "--model",
                   tmp_path / "cnn.keras", "--figures", tmp_path)
    assert "not a regular file" in line
    line = refused(capsys, "predict.py", "--model", tmp_path / "cnn.keras", "--test", synthetic_files["test"],
                   "--out", tmp_path / "sub.csv")
    assert "is not a file" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(synthetic_files, model_copy, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert "not writable" in refused(capsys, "predict.py", "--model", model_copy, "--test", synthetic_files["test"],
                                     "--out", locked / "sub.csv")


def test_valid_outputs_beside_the_inputs_still_work(model_copy, synthetic_files, tmp_path):
    assert run_script("predict.py", "--model", model_copy, "--test", synthetic_files["test"],
                      "--out", tmp_path / "new" / "sub.csv") == 0
    assert (tmp_path / "new" / "sub.csv").read_text().startswith("id,label\n")
