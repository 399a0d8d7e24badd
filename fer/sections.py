"""The report's sections that are written from the scripts' records and figures alone, no model loaded: each
appends its heading, text, tables and figures to the report's blocks, or says what is missing and the command
that makes it."""
import json
from pathlib import Path

from . import narrative
from .derivations import FORMULAS, checks
from .document import heading, image, math, missing, note, para, shown_path, table


def json_file(files, name=None):
    """The JSON record named `name` among a script's files (without a name: its only one), or None."""
    path = next((f for f in files if f.suffix == ".json" and (name is None or f.name == name)), None)
    return json.loads(path.read_text()) if path else None


def figure_record(files, wanted):
    """(figure, record) of the first of a script's JSON records that has its PNG beside it and for which
    wanted(record) holds, e.g. the record of exactly the compared models; (None, None) when there is none."""
    for path in files:
        if path.suffix == ".json" and path.with_suffix(".png").exists():
            record = json.loads(path.read_text())
            if wanted(record):
                return path.with_suffix(".png"), record
    return None, None


def ablation_section(record, figure_path, blocks):
    blocks.append(heading("3. Batch normalization and augmentation (ablation)"))
    if record is None:
        blocks.append(missing("the ablation", "python ablation.py --data data/train.csv"))
        return
    blocks.append(para(narrative.ablation_text(record)))
    majority = record.get("majority_share")
    blocks.append(table(["variant", "batch norm", "augmentation", "peak lr", "best validation accuracy",
                         "best epoch", "final training accuracy"],
                        [(r["variant"], "yes" if r["batchnorm"] else "no", "yes" if r["augmentation"] else "no",
                          r.get("lr", "?"), f"{r['best_val_accuracy']:.4f}" if r.get("learned", True) else
                          f"{r['best_val_accuracy']:.4f} (did not learn)", r["best_epoch"],
                          f"{r['final_train_accuracy']:.4f}") for r in record["runs"]]))
    if majority is not None:
        blocks.append(para(f"Majority class on this validation split: {majority:.4f}. {record.get('title', '')}."))
    if Path(figure_path).exists():
        blocks.append(image(figure_path, record.get("title", "ablation")))


def confusion_section(files, error, summary, blocks):
    blocks.append(heading("4. Confusion matrix"))
    result = json_file(files)
    pngs = [f for f in files if f.suffix == ".png" and not f.name.endswith("_difference.png")]
    if not pngs or not result:
        blocks.append(missing(f"the confusion matrix ({error})", "python confusion.py --data data/train.csv"))
        return
    cnn_name, cnn = next(iter(result.items()))
    blocks.append(para(narrative.confusion_text(cnn, "CNN")))
    recorded = (summary or {}).get("best_val_accuracy")
    if recorded is not None and abs(recorded - cnn["accuracy"]) > 1e-9:
        blocks.append(para(narrative.rescored_text(recorded, cnn["accuracy"], cnn["faces"], summary)))
    blocks.append(image(pngs[0], "Confusion matrices on the validation split: counts and rates per true class"))
    blocks.append(table(["class", "precision", "recall (95%)", "F1", "faces"],
                        [(c, f"{m['precision']:.3f}", narrative.with_interval(m["recall"], m.get("recall_interval"), 3),
                          f"{m['f1']:.3f}", m["support"]) for c, m in cnn["per_class"].items()]))


def saliency_section(record, files, error, blocks):
    """record: saliency.json as read from `files`, or None."""
    blocks.append(heading("5. Saliency maps"))
    if record is None:
        blocks.append(missing(f"the saliency maps ({error})", "python saliency.py --data data/train.csv"))
        return
    blocks.append(para(narrative.saliency_text(record)))
    drawn = {f.name: f for f in files}

    def figure(name, caption):
        if name in drawn:
            blocks.append(image(drawn[name], caption))

    figure("saliency_grid.png", "Every method on one correctly classified validation face per class. Maps are drawn "
                                "over the face, their opacity following their strength")
    figure("saliency_mistakes.png", "The most confidently wrong face of each of the most confused pairs, explained "
                                    "for its true class and for the class the model chose")
    blocks.append(table(["method", "deletion area (lower is better)", "insertion area (higher is better)",
                         "randomization check"],
                        [(narrative.title(record, n), f"{s['deletion_auc']:.3f}", f"{s['insertion_auc']:.3f}",
                          record["sanity"].get(n, {}).get("verdict", "reference" if n == "random" else "not run"))
                         for n, s in record["faithfulness"].items()]))
    figure("saliency_faithfulness.png", f"Deletion and insertion over {record['faces']} validation faces: the "
                                        "explained class's probability as the top-ranked pixels are blurred away or "
                                        "put back")
    figure("saliency_sanity.png", f"Randomization check over {record['sanity_faces']} faces: maps of the trained "
                                  "model and of the same network with random weights; an empty map counts as "
                                  "undefined, not as uncorrelated")
    figure("saliency_class_means.png", "Mean gradient map per class over up to 100 validation faces each")


def filters_section(files, error, blocks):
    blocks.append(heading("6. Filter patterns and feature maps"))
    pngs = [f for f in files if f.suffix == ".png"]
    if not pngs:
        blocks.append(missing(f"the filter patterns ({error})", "python filter_vis.py --data data/train.csv"))
        return
    counted = json_file(files, "filters.json")
    if counted:
        blocks.append(para(narrative.filters_text(counted)))
    for path in pngs:
        layer = path.stem.split("_", 2)[-1] if path.stem.startswith("feature_maps_") else path.stem.split("_", 1)[-1]
        role = (counted or {}).get(layer, {}).get("role", layer)
        caption = ("Inputs that maximize each filter (gradient ascent), " if path.stem.startswith("filters_") else
                   "The most active feature maps for one validation face, one colour scale, ")
        blocks.append(image(path, caption + role))


def semi_section(record, figure_path, blocks):
    blocks.append(heading("8. Semi-supervised learning (pseudo-labels)"))
    if record is None:
        blocks.append(missing("the semi-supervised study", "python semi_supervised.py --data data/train.csv"))
        return
    blocks.append(para(narrative.semi_text(record)))
    if not record.get("full_labels_learned", True):
        blocks.append(note("the model trained with all labels did not learn either: this study's budget is too small "
                           "for its data, and none of its numbers is a result."))
    flag = lambda t, v: f"{v:.4f}" + ("" if t.get("learned", True) else " (did not learn)")  # noqa: E731
    blocks.append(table(["labeled", "supervised only", "with pseudo-labels (best round)", "pseudo-labels added",
                         "pseudo-labels right", "all labels"],
                        [(f"{t['labeled_fraction']:.0%} ({t['labeled_rows']:,})", flag(t, t["supervised_val_accuracy"]),
                          f"{t['semi_supervised_val_accuracy']:.4f} ({t['best_round']})"
                          + (" within noise" if t.get("gain_within_noise") else ""), f"{t['pseudo_rows']:,}",
                          "n/a" if t["pseudo_label_accuracy"] is None else f"{t['pseudo_label_accuracy']:.1%}",
                          f"{t['full_labels_val_accuracy']:.4f}") for t in record["results"]]))
    if Path(figure_path).exists():
        blocks.append(image(figure_path, record.get("title", "pseudo-labels")))


def math_section(blocks):
    blocks.append(heading("9. The math, checked"))
    results = checks()
    bad = [name for name, _, error in results if error >= 1e-5]
    blocks.append(para(f"Each formula below is implemented in NumPy (fer/derivations.py) and compared with Keras's own "
                       f"layers and with automatic differentiation on random inputs: {len(results) - len(bad)} of "
                       f"{len(results)} agree to 1e-5" + (f"; {', '.join(bad)} do not" if bad else "") + "."))
    for name, formula in FORMULAS.items():
        blocks.append(math(name, formula))
    blocks.append(table(["quantity", "compared with", "largest error", "agrees"],
                        [(name, against, f"{error:.1e}", "yes" if error < 1e-5 else "NO")
                         for name, against, error in results]))


def record_of_these(present, files, error, script, what, blocks):
    """(figure, record, names) of the record among `script`'s files of exactly the models in `present` (the CNN
    first), in their order, with names mapping each file's stem to its name in the report; else None, after listing
    `what` as missing with the command that makes it."""
    names = {Path(path).stem: name for name, *_, path in present}
    figure, record = figure_record(files, lambda record: list(record.get("models", {})) == list(names))
    if record and present and present[0][0] == "CNN":
        return figure, record, names
    models = " ".join(f"--model {shown_path(path)}" for *_, path in present)
    blocks.append(missing(f"{what} ({error or 'not made for these models'})",
                          f"python {script} --data data/train.csv {models}"))
    return None


def embedding_section(present, files, error, blocks):
    """present: [(name, model, summary, path)], the CNN first; files: embedding.py's outputs, among which the map
    of exactly these models, in this order, is shown."""
    blocks.append(heading("2c. Where each network puts the faces"))
    found = record_of_these(present, files, error, "embedding.py", "the maps of the features", blocks)
    if found:
        figure, record, names = found
        blocks.append(para(narrative.embedding_text([(names[stem], r) for stem, r in record["models"].items()],
                                                    record)))
        blocks.append(image(figure, "t-SNE maps of the features each network's output layer reads, coloured by true "
                                    "class; beside each, the faces at each place"))


def robustness_section(present, files, error, blocks):
    """present: [(name, model, summary, path)], the CNN first; files: robustness.py's outputs, among which the
    record of exactly these models, in this order, is shown."""
    blocks.append(heading("2d. What each network withstands"))
    found = record_of_these(present, files, error, "robustness.py", "the corrupted faces' scores", blocks)
    if not found:
        return
    figure, record, names = found
    rows = [(names[stem], r) for stem, r in record["models"].items()]
    blocks.append(para(narrative.robustness_text(rows, record)))
    blocks.append(table(["corruption"] + [f"{name}: accuracy clean -> strongest, share kept" for name, _ in rows],
                        [(corruption, *(f"{r['corruptions'][corruption]['accuracy'][0]:.3f} -> "
                                        f"{r['corruptions'][corruption]['accuracy'][-1]:.3f}, "
                                        f"{r['corruptions'][corruption]['retained']:.0%}" for _, r in rows))
                         for corruption in record["corruptions"]]))
    blocks.append(image(figure, "One face at each strength of each corruption; each network's accuracy against "
                                "the strength, with its 95% interval and the majority-class line"))
