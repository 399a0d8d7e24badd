"""report.py: every section present with words written from its numbers, figures regenerated from the model,
runs that did not learn flagged, absent runs listed as missing; the HTML self-contained and legible."""
import base64
import json
import re
from pathlib import Path

from conftest import run_script


def test_report_from_one_trained_model(trained, synthetic_files, tmp_path, capsys):
    from fer.derivations import FORMULAS
    from fer.document import PAGE_WIDTH_PX, CSS_DPI, png_dpi, png_size

    out = tmp_path / "figs"
    (out).mkdir()
    runs = [dict(variant="BN + augmentation", batchnorm=True, augmentation=True, lr=0.002, learned=True,
                 best_val_accuracy=0.5, best_epoch=2, final_train_accuracy=0.6),
            dict(variant="no BN, augmentation", batchnorm=False, augmentation=True, lr=0.0005, learned=False,
                 best_val_accuracy=0.26, best_epoch=1, final_train_accuracy=0.25)]
    (out / "ablation.json").write_text(json.dumps({"title": "tiny ablation", "majority_share": 0.2513,
                                                   "split": {"val_rows": 140}, "runs": runs}))
    dnn = tmp_path / "dnn.keras"  # the CNN again, standing in for a DNN: the comparison needs two models
    dnn.write_bytes((trained / "cnn.keras").read_bytes())
    status = run_script("report.py", "--data", synthetic_files["train"], "--cnn", trained / "cnn.keras",
                        "--dnn", dnn, "--dnn", tmp_path / "no_dnn.keras", "--out", out, "--private", "0.61",
                        "--faces", "14")
    assert status == 0
    md = (out / "report.md").read_text()
    for section in ("1. The CNN", "2. The DNN", "2b. CNN vs DNN", "2c. Where each network puts",
                    "2d. What each network withstands", "3. Batch normalization", "4. Confusion matrix",
                    "5. Saliency", "6. Filter patterns", "7. LIME", "8. Semi-supervised", "9. The math"):
        assert f"## {section}" in md, section
    # what exists is shown, what doesn't is listed as missing with the command that makes it
    assert "| BN + augmentation | yes | yes | 0.002 | 0.5000 | 2 | 0.6000 |" in md
    assert "| no BN, augmentation | no | yes | 0.0005 | 0.2600 (did not learn) |" in md
    assert "No BN, augmentation did not learn" in md  # and the section's words say so
    assert "**Missing: the DNN model" in md and "**Missing: the semi-supervised study" in md
    assert "private 0.6100" in md
    assert "| dl/dx | vs autodiff through the Keras layer |" in md and "| NO |" not in md
    # words written from the numbers: the CNN's accuracy against the majority class, the saliency verdicts
    summary = json.loads((trained / "cnn_summary.json").read_text())
    assert f"reached {summary['best_val_accuracy']:.4f} validation accuracy" in md
    saliency = json.loads((out / "saliency.json").read_text())
    assert "In the randomization check" in md and all(saliency["titles"][n] in md for n in saliency["sanity"])
    assert "LIME fits a linear model" in md.split("## 7. LIME")[1]  # section 7 opens with its own numbers too
    calibration = json.loads((out / "calibration_cnn_vs_dnn.json").read_text())["columns"]["plain"]
    assert list(calibration) == ["cnn", "dnn"]  # each model alone: a CNN and a DNN are no ensemble
    comparison = md.split("## 2b.")[1].split("## 3.")[0]
    for name, r in zip(("CNN", "DNN"), calibration.values()):
        assert f"The {name} is " in comparison and f"a temperature of {r['temperature']:.2f}" in comparison
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    names = {name.split("/")[-1] for name in linked}
    assert {"saliency_grid.png", "saliency_faithfulness.png", "saliency_sanity.png",
            "saliency_class_means.png", "lime.png", "report_cnn_history.png", "calibration_cnn_vs_dnn.png",
            "embedding_cnn_vs_dnn.png", "robustness_cnn_vs_dnn.png"} <= names
    shift = json.loads((out / "robustness_cnn_vs_dnn.json").read_text())["models"]["cnn"]["corruptions"]["shift"]
    assert (f"| shift | {shift['accuracy'][0]:.3f} -> {shift['accuracy'][-1]:.3f}, {shift['retained']:.0%} |"
            in md.split("## 2d.")[1])
    mapped = json.loads((out / "embedding_cnn_vs_dnn.json").read_text())["models"]
    assert (f"the share of its own class is {mapped['cnn']['agreement_features']:.1%} in the CNN's and "
            f"{mapped['dnn']['agreement_features']:.1%} in the DNN's features" in md)
    if summary["best_val_accuracy"] == 1:  # the synthetic classes learned perfectly: no right face shown as wrong
        assert saliency["mistakes"] == [] and "saliency_mistakes.png" not in names
        assert "The model gets every validation face right, so it has no mistakes to explain." in md
    else:
        assert saliency["mistakes"] and all(t != p for _, t, p in saliency["mistakes"])
        assert "saliency_mistakes.png" in names
    # the DNN here is the CNN's copy: on the same faces McNemar's test finds nothing, and says why
    assert "within the noise of the DNN" in comparison and "right and wrong on the same faces" in comparison
    assert all((out / name).read_bytes().startswith(b"\x89PNG") for name in linked)

    page = (out / "report.html").read_text()
    # self-contained: every image inline, nothing fetched, no script
    sources = re.findall(r'<img src="([^"]+)" width="(\d+)"', page)
    assert len(sources) == len(linked) + len(FORMULAS)
    assert all(src.startswith("data:image/png;base64,") for src, _ in sources)
    assert not re.search(r"<script|<link|src=\"http|href=\"http|@import|url\(", page)
    # formulas are drawn, not shown as LaTeX source
    text = re.sub(r"<[^>]+>", " ", page)
    assert not re.search(r"\\(frac|partial|sum|sqrt|mathrm)|\$\$", text)
    # each figure is shown at its print size (so its 10-point text reads at 10 points), never shrunk to fit
    for src, width in sources:
        data = base64.b64decode(src.split(",", 1)[1])
        natural = png_size(data)[0] / png_dpi(data) * CSS_DPI
        assert int(width) == round(natural) <= PAGE_WIDTH_PX, (width, natural)


def test_no_figure_text_is_set_below_ten_points():
    """Figures are shown at print size (above), so a font size under 10 points in the code is text too small
    to read in the report."""
    from conftest import ROOT

    small = []
    for path in [*ROOT.glob("*.py"), *(ROOT / "fer").glob("*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for size in re.findall(r"(?:fontsize|labelsize|font\.size\"?:?)\s*[=:]?\s*(\d+(?:\.\d+)?)", line):
                if float(size) < 10:
                    small.append(f"{path.name}:{number}: {line.strip()}")
    assert not small, small


def test_figures_left_by_an_earlier_run_keep_filter_vis_order(tmp_path):
    """--no-regenerate lists section 6 as filter_vis.py wrote it: per layer, the patterns then the maps."""
    import report

    written = ["filters_conv1.png", "feature_maps_conv1.png", "filters_conv4.png", "feature_maps_conv4.png",
               "filters.json"]
    for name in written[::-1]:
        (tmp_path / name).write_bytes(b"")
    assert [path.name for path in report.found(tmp_path)["filters"][0]] == written


def test_calibration_is_read_from_the_record_of_exactly_the_compared_models(tmp_path):
    """An earlier run's --out may hold calibration.py's records of other models: the report takes the one of
    these models in this order, with its figure, or lists the calibration as missing."""
    import report

    scored = dict(accuracy=0.6, mean_confidence=0.7, ece=0.1, temperature=1.3, ece_after=0.02)
    for stem, models in (("calibration", ["other.keras"]), ("calibration_cnn_vs_dnn", ["cnn.keras", "dnn.keras"]),
                         ("calibration_dnn_vs_cnn", ["dnn.keras", "cnn.keras"])):
        columns = {"plain": {Path(m).stem: {**scored, "temperature": len(stem)} for m in models}}
        (tmp_path / f"{stem}.json").write_text(json.dumps(dict(models=models, columns=columns)))
        (tmp_path / f"{stem}.png").write_bytes(b"")
    files = report.found(tmp_path)["calibration"][0]
    present = [("CNN", None, None, "cnn.keras"), ("DNN", None, None, "dnn.keras")]
    blocks = []
    report.calibration_paragraphs(present, files, blocks)
    (kind, text), (_, figure, _) = blocks
    assert kind == "p" and f"a temperature of {len('calibration_cnn_vs_dnn'):.2f}" in text
    assert "The DNN is overconfident" in text and figure == tmp_path / "calibration_cnn_vs_dnn.png"
    blocks = []
    report.calibration_paragraphs(present[:1], files, blocks)
    assert blocks == [("missing", "the calibration",
                       "python calibration.py --data data/train.csv --each --model cnn.keras")]


def test_feature_maps_are_read_from_the_record_of_exactly_the_compared_models(tmp_path):
    """As the calibration: among embedding.py's records in --out, the one of these models in this order."""
    import report
    from fer.sections import embedding_section

    def scored(share):
        return dict(agreement_features=share, per_class={"Happy": dict(features=0.8), "Fear": dict(features=0.3)},
                    mixed_pairs=[["Fear", "Sad", 0.2]])

    for stem, shares in (("embedding", {"cnn": 0.11}), ("embedding_cnn_vs_dnn", {"cnn": 0.55, "dnn": 0.25}),
                         ("embedding_dnn_vs_cnn", {"dnn": 0.33, "cnn": 0.44})):
        record = dict(faces=300, scored_on="validation: ...", neighbours=10, chance_agreement=0.17,
                      models={name: scored(share) for name, share in shares.items()})
        (tmp_path / f"{stem}.json").write_text(json.dumps(record))
        (tmp_path / f"{stem}.png").write_bytes(b"")
    files = report.found(tmp_path)["embedding"][0]
    present = [("CNN", None, None, "models/cnn.keras"), ("DNN", None, None, "models/dnn.keras")]
    blocks = []
    embedding_section(present, files, None, blocks)
    (_, title), (kind, text), (_, figure, _) = blocks
    assert title.startswith("2c.") and kind == "p" and figure == tmp_path / "embedding_cnn_vs_dnn.png"
    assert "the share of its own class is 55.0% in the CNN's and 25.0% in the DNN's features" in text
    assert "Happy keeps together most (80%) and Fear least (30%); Fear and Sad mix most (20%" in text
    record = json.loads((tmp_path / "embedding_cnn_vs_dnn.json").read_text())
    record["models"]["dnn"]["p_shuffled"] = 0.2
    (tmp_path / "embedding_cnn_vs_dnn.json").write_text(json.dumps(record))
    blocks = []
    embedding_section(present, files, None, blocks)
    assert ("The DNN's share is no more than shuffled classes reach by chance (permutation test: p = 0.200): its map "
            "is not a result." in blocks[1][1]) and "The CNN's share is no more" not in blocks[1][1]
    record["models"]["cnn"]["p_shuffled"] = 0.4  # then what its classes do is no result either
    (tmp_path / "embedding_cnn_vs_dnn.json").write_text(json.dumps(record))
    blocks = []
    embedding_section(present, files, None, blocks)
    assert ("The shares of the CNN and the DNN are no more than shuffled classes reach by chance (permutation test: "
            "p = 0.400 and p = 0.200): their maps are not a result." in blocks[1][1])
    assert "keeps together most" not in blocks[1][1]
    blocks = []
    embedding_section(present + [("DNN (other)", None, None, "other.keras")], files, None, blocks)
    assert blocks[1] == ("missing", "the maps of the features (not made for these models)",
                         "python embedding.py --data data/train.csv --model models/cnn.keras --model models/dnn.keras "
                         "--model other.keras")


def test_corruption_scores_are_read_from_the_record_of_exactly_the_compared_models(tmp_path):
    """As the maps: among robustness.py's records in --out, the one of these models in this order; its words say
    where the CNN keeps more, where less, where resampling cannot tell, and never compare a model that did not learn."""
    import report
    from fer.sections import robustness_section

    def scored(kept, learned=True):
        return dict(learned=learned, corruptions={name: dict(accuracy=[0.68, 0.6, 0.5, 0.45, 0.4, 0.3], retained=share,
                                                             answers_at_strongest={"Sad": 0.4, "Happy": 0.6 - share})
                                                  for name, share in kept.items()})

    def verdict(difference, significant):
        return dict(difference=difference, interval=[difference - 0.05, difference + 0.05], significant=significant)

    cnn = {"shift": 0.97, "blur": 0.33, "contrast": 0.55}
    for stem, models in (("robustness", {"cnn": scored(cnn)}),
                         ("robustness_cnn_vs_dnn", {"cnn": scored(cnn),
                                                    "dnn": scored({"shift": 0.55, "blur": 0.93, "contrast": 0.6})}),
                         ("robustness_dnn_vs_cnn", {"dnn": scored(cnn), "cnn": scored(cnn)})):
        record = dict(faces=1000, scored_on="validation: ...", majority=0.251, truth={"Sad": 0.17, "Happy": 0.25},
                      corruptions={name: {"levels": list(range(6))} for name in cnn}, models=models,
                      kept_first_minus={"dnn": {"shift": verdict(0.42, True), "blur": verdict(-0.6, True),
                                                "contrast": verdict(-0.05, False)}} if "dnn" in models else {})
        (tmp_path / f"{stem}.json").write_text(json.dumps(record))
        (tmp_path / f"{stem}.png").write_bytes(b"")
    files = report.found(tmp_path)["robustness"][0]
    present = [("CNN", None, None, "models/cnn.keras"), ("DNN", None, None, "models/dnn.keras")]
    blocks = []
    robustness_section(present, files, None, blocks)
    (_, title), (kind, text), (_, header, rows), (_, figure, _) = blocks
    assert title.startswith("2d.") and kind == "p" and figure == tmp_path / "robustness_cnn_vs_dnn.png"
    assert "the same 1,000 validation faces under shift, blur and contrast, at five strengths each" in text
    assert ("The CNN keeps most under shift (97%) and least under blur (33%); at its strongest blur it answers Sad for "
            "40% of the faces, of which 17% are." in text)
    assert ("Against the DNN, the CNN keeps more under shift (97% against 55%) and less under blur (33% against 93%); "
            "under contrast resampling the faces cannot tell them apart." in text)
    assert rows[0] == ("shift", "0.680 -> 0.300, 97%", "0.680 -> 0.300, 55%") and len(header) == 3
    record = json.loads((tmp_path / "robustness_cnn_vs_dnn.json").read_text())
    record["models"]["dnn"]["learned"] = False
    (tmp_path / "robustness_cnn_vs_dnn.json").write_text(json.dumps(record))
    blocks = []
    robustness_section(present, files, None, blocks)
    assert "The DNN did not clear the majority class, so what it keeps is not a result." in blocks[1][1]
    assert "Against the DNN" not in blocks[1][1] and "The CNN keeps most under shift" in blocks[1][1]
    blocks = []
    robustness_section(present + [("DNN (other)", None, None, "other.keras")], files, None, blocks)
    assert blocks[1] == ("missing", "the corrupted faces' scores (not made for these models)",
                         "python robustness.py --data data/train.csv --model models/cnn.keras --model "
                         "models/dnn.keras --model other.keras")
