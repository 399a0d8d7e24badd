"""report.py: every section present, figures regenerated from the model, absent runs listed as missing."""
import json
import re

from conftest import run_script


def test_report_from_one_trained_model(trained, synthetic_files, tmp_path, capsys):
    out = tmp_path / "figs"
    (out).mkdir()
    (out / "ablation.json").write_text(json.dumps({"title": "tiny ablation", "runs": [
        {"variant": "BN + augmentation", "batchnorm": True, "augmentation": True, "best_val_accuracy": 0.5,
         "best_epoch": 2, "final_train_accuracy": 0.6}]}))
    status = run_script("report.py", "--data", synthetic_files["train"], "--cnn", trained / "cnn.keras",
                        "--dnn", tmp_path / "no_dnn.keras", "--out", out, "--private", "0.61")
    assert status == 0
    md = (out / "report.md").read_text()
    for section in ("1. The CNN", "2. The DNN", "3. Batch normalization", "4. Confusion matrix", "5. Saliency",
                    "6. Filter patterns", "7. LIME", "8. Semi-supervised", "9. The math"):
        assert f"## {section}" in md, section
    # what exists is shown, what doesn't is listed as missing with the command that makes it
    assert "tiny ablation" in md and "| BN + augmentation | yes | yes | 0.5000 | 2 | 0.6000 |" in md
    assert "**Missing: the DNN model" in md and "**Missing: Semi-supervised learning" in md
    assert "private 0.6100" in md
    assert "| dl/dx | vs autodiff through the Keras layer |" in md and "| NO |" not in md
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(linked) >= 10  # curves, confusion, 5 saliency + sanity, filters, feature maps, LIME
    assert all((out / name).read_bytes().startswith(b"\x89PNG") for name in linked)
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(linked) and 'src="' + linked[0] not in page
