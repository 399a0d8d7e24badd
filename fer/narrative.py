"""The report's words: each section opens with a few sentences written from its own numbers, so that what
the text says is what the run measured. Every function takes results and returns plain sentences."""
from .corruptions import strengths
from .scores import LEARNED_MARGIN, SIGNIFICANCE, learned, within_noise


def rounded(value, digits):
    """value rounded to `digits` decimals, never -0.0 (a difference too small to show prints "+0.0", not "-0.0")."""
    return round(float(value), digits) + 0.0


def points(a, b):
    """a - b in percentage points, signed."""
    return f"{rounded(100 * (a - b), 1):+.1f} points"


def p_words(p):
    """A p-value as a reader wants it: to three decimals, and no smaller than it can be told from zero there."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def with_interval(value, interval, digits=4):
    """A score and, where known, its 95% interval to one digit less: 0.7081 (0.696–0.720)."""
    shown = digits - 1
    return f"{value:.{digits}f}" + (f" ({interval[0]:.{shown}f}–{interval[1]:.{shown}f})" if interval else "")


def accuracy_words(entry):
    """confusion.py's accuracy with its 95% interval, where the record has one."""
    return with_interval(entry["accuracy"], entry.get("accuracy_interval"))


def ordinal(k):
    return {1: "first", 2: "second", 3: "third"}.get(k, f"{k}th")


def listing(items):
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def model_text(name, summary, majority):
    """What one training run reached, against the majority class, and how far training ran ahead of it."""
    if not summary:
        return f"The {name}'s training records are missing, so its curves and recipe cannot be shown."
    best = summary.get("best_val_accuracy")
    if best is None:
        return (f"The {name} trained on every labeled face (no validation split), so it has no validation score; "
                f"it ran {summary['epochs']} epochs.")
    if not learned(best, majority):
        return (f"The {name} did not learn: its best validation accuracy {best:.4f} is within "
                f"{100 * LEARNED_MARGIN:.0f} point of always answering the most common class ({majority:.4f}).")
    gap = summary["train_accuracy_at_best"] - best
    fit = ("training accuracy ran well ahead of validation (it overfits)" if gap > 0.08 else
           "training and validation accuracy stayed close (little overfitting)" if gap > -0.02 else
           "validation accuracy is above training accuracy, as it is when training sees augmented faces")
    return (f"The {name} reached {best:.4f} validation accuracy at epoch {summary['best_epoch']} of "
            f"{summary['epochs']}, {points(best, majority)} above always answering the most common class "
            f"({majority:.4f}). At that epoch training accuracy was {summary['train_accuracy_at_best']:.4f}: {fit}.")


def comparison_text(rows, val_rows):
    """rows: [(name, confusion.py's record of it)] with the CNN first. Where the record holds McNemar's test against
    the CNN on the same faces, that decides; an older record falls back to comparing the two accuracies alone."""
    (cnn, first), others = rows[0], rows[1:]
    sentences = []
    for i, (name, c) in enumerate(others):
        # a record tests each model against the file's first one: that must be the CNN (which then has no test)
        paired = None if "against_first" in first else c.get("against_first")
        noisy = within_noise(paired, first["accuracy"], c["accuracy"], val_rows)
        verdict = ("within the noise of" if noisy else "ahead of" if first["accuracy"] > c["accuracy"] else "behind")
        sentences.append((f"With as many parameters, the {cnn} is" if i == 0 else "It is also") +
                         f" {verdict} the {name}: {points(first['accuracy'], c['accuracy'])} of accuracy and "
                         f"{points(first['macro_f1'], c['macro_f1'])} of macro-F1" +
                         (" (the mean of the seven classes' F1, which a model cannot raise by ignoring "
                          "the rare classes)." if i == 0 else "."))
        if paired and not paired["right_only_first"] + paired["right_only_here"]:
            sentences.append(f"The two are right and wrong on the same faces, all {paired['faces']:,} of them.")
        elif paired:
            sentences.append(f"Of the {paired['faces']:,} faces, the {cnn} alone gets {paired['right_only_first']:,} "
                             f"right and the {name} alone {paired['right_only_here']:,} (McNemar's test on those: "
                             f"{p_words(paired['p_value'])}).")
        if c["never_predicted"]:
            sentences.append(f"The {name} never predicts {listing(c['never_predicted'])}.")
    return " ".join(sentences)


def embedding_text(rows, record):
    """rows: [(name, embedding.py's record of that model)], the CNN first; record: the whole file. How far each
    network's features keep the classes together, by the share of each face's nearest faces of its class, and
    whether shuffled classes could do as well (the permutation test)."""
    (cnn, first) = rows[0]
    shares = listing(f"{r['agreement_features']:.1%} in the {name}'s" for name, r in rows)
    chance = [(name, r["p_shuffled"]) for name, r in rows if r.get("p_shuffled", 0) >= SIGNIFICANCE]
    by_class = {c: v["features"] for c, v in first["per_class"].items()}
    most, least = max(by_class, key=by_class.get), min(by_class, key=by_class.get)
    spread = (f"every class keeps together as much ({by_class[most]:.0%})" if by_class[most] == by_class[least] else
              f"{most} keeps together most ({by_class[most]:.0%}) and {least} least ({by_class[least]:.0%})")
    mixed = first["mixed_pairs"][0] if first["mixed_pairs"] else None
    sentences = [f"The features each network's output layer reads (its last hidden layer) were mapped by t-SNE on "
                 f"{record['faces']:,} {record['scored_on'].split(':')[0]} faces.",
                 f"Of each face's {record['neighbours']} nearest faces in those features, the share of its own class "
                 f"is {shares} features; shuffled classes would give {record['chance_agreement']:.1%}."]
    if len(chance) == 1:
        sentences.append(f"The {chance[0][0]}'s share is no more than shuffled classes reach by chance (permutation "
                         f"test: {p_words(chance[0][1])}): its map is not a result.")
    elif chance:
        sentences.append(f"The shares of {listing(f'the {name}' for name, _ in chance)} are no more than shuffled "
                         f"classes reach by chance (permutation test: {listing(p_words(p) for _, p in chance)}): "
                         "their maps are not a result.")
    if first.get("p_shuffled", 0) < SIGNIFICANCE:  # which classes keep together means something only above chance
        mixing = (f"; {mixed[0]} and {mixed[1]} mix most ({mixed[2]:.0%} of their faces' neighbours are of the other)"
                  if mixed else "")
        sentences.append(f"In the {cnn}'s, {spread}{mixing}.")
    sentences.append("A t-SNE map keeps who neighbours whom, not the sizes of its islands or the distances between "
                     "them.")
    return " ".join(sentences)


def robustness_text(rows, record):
    """rows: [(name, robustness.py's record of that model)], the CNN first; record: the whole file. What share of
    its lead over the majority class each network keeps under each corruption, and where the CNN keeps more or
    less than a DNN by more than resampling the faces explains (95% interval)."""
    names = list(record["corruptions"])
    count = strengths(len(c["levels"]) for c in record["corruptions"].values())
    sentences = [f"Each network was scored on the same {record['faces']:,} {record['scored_on'].split(':')[0]} faces "
                 f"under {listing(names)}, at {count} strengths each; a network's share kept is how much of its lead "
                 f"over the majority class ({record['majority']:.3f}) survives, on average over the {count}."]
    unlearned = [name for name, r in rows if not r["learned"]]
    if unlearned:
        sentences.append(f"{listing(f'The {name}' for name in unlearned)} did not clear the majority class, so what "
                         f"{'it keeps is' if len(unlearned) == 1 else 'they keep is'} not a result.")
    cnn, first = rows[0]
    if not first["learned"]:
        return " ".join(sentences)
    kept = {name: first["corruptions"][name]["retained"] for name in names}
    most, least = max(kept, key=kept.get), min(kept, key=kept.get)
    answers = first["corruptions"][least].get("answers_at_strongest")
    fallback = max(answers, key=answers.get) if answers else None
    sentences.append(f"The {cnn} keeps most under {most} ({kept[most]:.0%}) and least under {least} "
                     f"({kept[least]:.0%})" + (f"; at its strongest {least} it answers {fallback} for "
                                               f"{answers[fallback]:.0%} of the faces, of which "
                                               f"{record['truth'][fallback]:.0%} are" if fallback else "") + ".")
    for (name, r), stem in zip(rows[1:], list(record["models"])[1:]):
        if not r["learned"]:
            continue
        compared = record["kept_first_minus"][stem]

        def shares(which):
            return listing(f"{n} ({kept[n]:.0%} against {r['corruptions'][n]['retained']:.0%})" for n in which)

        more = [n for n in names if compared[n]["significant"] and compared[n]["difference"] > 0]
        less = [n for n in names if compared[n]["significant"] and compared[n]["difference"] < 0]
        same = [n for n in names if not compared[n]["significant"]]
        parts = ([f"more under {shares(more)}"] if more else []) + ([f"less under {shares(less)}"] if less else [])
        text = f"Against the {name}, the {cnn} keeps " + " and ".join(parts) if parts else \
            f"The {cnn} and the {name} keep shares that resampling the faces cannot tell apart"
        if same and parts:
            text += f"; under {listing(same)} resampling the faces cannot tell them apart"
        sentences.append(text + ".")
    return " ".join(sentences)


def confusion_text(result, name):
    pairs = result["most_confused"][:3]
    worst = min(result["per_class"].items(), key=lambda item: item[1]["f1"])
    best = max(result["per_class"].items(), key=lambda item: item[1]["f1"])
    confused = listing(f"{t} with {p} ({share:.0%} of {t})" for t, p, share, _ in pairs)
    text = (f"The {name} confuses most often {confused}" if pairs else f"The {name} confuses no class with another")
    text += (f". Its best class is {best[0]} (F1 {best[1]['f1']:.2f}), its worst {worst[0]} "
             f"(F1 {worst[1]['f1']:.2f}, {worst[1]['support']} faces).")
    if result.get("never_predicted"):
        text += f" It never predicts {listing(result['never_predicted'])}."
    return text


def calibration_text(rows):
    """rows: [(name, calibration.py's report of its plain probabilities)], the CNN first: how far each model's
    confidence is from its accuracy, and the temperature that would close the gap."""
    sentences = []
    for name, r in rows:
        gap = r["mean_confidence"] - r["accuracy"]
        leaning = ("overconfident" if gap > 0.01 else "underconfident" if gap < -0.01 else
                   "about as confident as it is right")
        remedy = (f"a temperature of {r['temperature']:.2f} would take its ECE to {r['ece_after']:.3f} without "
                  f"changing a label (--temperature {r['temperature']:.2f})" if r["ece_after"] < r["ece"] else
                  f"a temperature fitted on half the faces does not lower it on the other half ({r['ece_after']:.3f})")
        sentences.append(f"The {name} is {leaning}: its mean confidence is {r['mean_confidence']:.3f} where it is "
                         f"right on {r['accuracy']:.3f} of the faces (ECE {r['ece']:.3f}); {remedy}.")
    return " ".join(sentences)


def rescored_text(recorded, scored, faces, summary):
    """Why a model file scores a little differently from what its training run recorded."""
    precision = summary.get("precision")
    why = ("the file's weights being rounded to float16" if summary.get("weights") == "float16" else
           f"training having validated in {precision} (mixed precision) while the scripts compute in float32"
           if precision in ("bfloat16", "float16") else "floating-point sums taken in another order")
    return (f"Scored from the model file, accuracy is {scored:.4f}; training recorded {recorded:.4f}. The difference "
            f"({round(abs(recorded - scored) * faces)} of {faces:,} faces) comes from {why}.")


def ablation_text(record):
    runs = {r["variant"]: r for r in record["runs"]}
    majority = record.get("majority_share")
    failed = [name for name, r in runs.items() if not r.get("learned", True)]
    sentences = []
    pairs = [("batch norm", "BN + augmentation", "no BN, augmentation"),
             ("augmentation", "BN + augmentation", "BN, no augmentation")]
    for what, with_it, without in pairs:
        if with_it in runs and without in runs and with_it not in failed and without not in failed:
            gain = runs[with_it]["best_val_accuracy"] - runs[without]["best_val_accuracy"]
            paired = record.get("paired", {}).get(what)  # McNemar's test on the same faces, where recorded
            noisy = (paired or "split" in record) and within_noise(  # no split recorded: no verdict
                paired, runs[with_it]["best_val_accuracy"], runs[without]["best_val_accuracy"],
                record.get("split", {}).get("val_rows"))
            if paired:
                tested = (f"; {paired['a_only']:,} of the {paired['faces']:,} validation faces are right only with "
                          f"it and {paired['b_only']:,} only without (McNemar's test: {p_words(paired['p_value'])}"
                          + (", within the noise)" if noisy else ")"))
            else:  # an older record: the two accuracies alone
                tested = " (within the noise of one run)" if noisy else ""
            sentences.append(f"Removing {what} changes the best validation accuracy by {points(-gain, 0)}{tested}.")
    if {"BN + augmentation", "BN, no augmentation"} <= set(runs) - set(failed):
        plain, augmented = runs["BN, no augmentation"], runs["BN + augmentation"]
        gap, augmented_gap = (plain["final_train_accuracy"] - plain["best_val_accuracy"],
                              augmented["final_train_accuracy"] - augmented["best_val_accuracy"])
        memorizing = plain["best_val_accuracy"] > augmented["best_val_accuracy"] and gap > augmented_gap + 0.05
        sentences.append(f"Without augmentation training accuracy ends {points(gap, 0)} above validation, with it "
                         f"{points(augmented_gap, 0)}" + (": at this budget the un-augmented network is still ahead, "
                                                            "but it is already fitting its training faces far "
                                                            "better than new ones." if memorizing else "."))
    if failed:
        names = listing(failed)
        sentences.append(f"{names[0].upper()}{names[1:]} did not learn (at or near the majority class, "
                         f"{majority:.4f}): no conclusion is drawn from " + ("it." if len(failed) == 1 else "them."))
    return " ".join(sentences)


def semi_text(record):
    sentences = []
    val_rows = record["split"]["val_rows"]
    for t in record["results"]:
        share = f"{t['labeled_fraction']:.0%} of the labels"
        if not t.get("learned", True):
            sentences.append(f"With {share} the supervised model did not learn, so its pseudo-labels mean nothing.")
            continue
        gain = t["semi_supervised_val_accuracy"] - t["supervised_val_accuracy"]
        paired = t.get("paired")  # McNemar's test on the same faces, where recorded
        noisy = within_noise(paired, t["supervised_val_accuracy"], t["semi_supervised_val_accuracy"], val_rows)
        tested = (f" ({paired['a_only']:,} faces right only with them, {paired['b_only']:,} only without; McNemar's "
                  f"test: {p_words(paired['p_value'])})" if paired else "")
        sentences.append(f"With {share}, pseudo-labels move validation accuracy by {points(gain, 0)}{tested}"
                         + (" — within the noise of a single run, so no gain is shown" if noisy else "")
                         + (f"; {t['pseudo_label_accuracy']:.0%} of the pseudo-labels were right"
                            if t.get("pseudo_label_accuracy") is not None else "") + ".")
    return " ".join(sentences)


def title(record, name):
    """A saliency method's own name (Integrated Gradients, Grad-CAM) where saliency.json records it."""
    return record.get("titles", {}).get(name, name)


def method_scores(record):
    """The faithfulness scores of the saliency methods, without the random ranking they are measured against."""
    return {n: s for n, s in record["faithfulness"].items() if n != "random"}


def saliency_text(record):
    verdicts = record.get("sanity", {})
    passing = [n for n, v in verdicts.items() if v["verdict"].startswith("passes")]
    failing = [n for n, v in verdicts.items() if not v["verdict"].startswith("passes")]
    scores = method_scores(record)
    sentences = []
    if scores:
        by_deletion = min(scores, key=lambda n: scores[n]["deletion_auc"])
        by_insertion = max(scores, key=lambda n: scores[n]["insertion_auc"])
        random = record["faithfulness"].get("random")
        worse = [n for n, s in scores.items() if random and s["deletion_auc"] >= random["deletion_auc"]]
        best_deletion, best_insertion = title(record, by_deletion), title(record, by_insertion)
        sentences.append(f"Over {record['faces']} validation faces, {best_deletion} finds the pixels whose removal "
                         f"hurts the prediction most (deletion area {scores[by_deletion]['deletion_auc']:.3f}) and "
                         f"{best_insertion} those that restore it fastest (insertion area "
                         f"{scores[by_insertion]['insertion_auc']:.3f})"
                         + (f"; {listing(title(record, n) for n in worse)} do no better than a random ranking at "
                            "deletion" if worse else "")
                         + ".")
    if verdicts:
        failed = [f"{title(record, n)} ({verdicts[n]['verdict']})" for n in failing]
        passers = listing(title(record, n) for n in passing) or "no method"
        sentences.append(f"In the randomization check {passers} "
                         f"pass{'es' if len(passing) == 1 else ''}"
                         + (f"; {listing(failed)} do{'es' if len(failed) == 1 else ''} not" if failed else "") + ".")
    for name, classes in record.get("blank", {}).items():
        sentences.append(f"{title(record, name)} is blank for {listing(classes)}: at the last convolutional "
                         "layer the gradient-weighted maps add up to zero or less everywhere for those faces, and the "
                         "method keeps only the positive part; HiResCAM, which weights each cell by its own "
                         "gradient, does not lose them.")
    if record.get("mistakes") == []:
        sentences.append("The model gets every validation face right, so it has no mistakes to explain.")
    return " ".join(sentences)


def lime_text(record):
    """Where LIME ranks among the saliency methods on the faithfulness scores, and its randomization verdict."""
    scores = method_scores(record)
    lime, verdict = scores["lime"], record.get("sanity", {}).get("lime", {}).get("verdict")
    by_deletion = sorted(scores, key=lambda n: scores[n]["deletion_auc"]).index("lime") + 1
    by_insertion = sorted(scores, key=lambda n: -scores[n]["insertion_auc"]).index("lime") + 1
    return (f"LIME fits a linear model to the CNN's answers on faces with superpixels greyed out, so it explains "
            f"regions, not pixels. Over the {record['faces']} faces of section 5 its regions rank "
            f"{ordinal(by_deletion)} of {len(scores)} methods at deletion (area {lime['deletion_auc']:.3f}) and "
            f"{ordinal(by_insertion)} at insertion ({lime['insertion_auc']:.3f})"
            + (f"; randomization check: {verdict}." if verdict else "."))


def filters_text(record):
    """Dead filters (never active on any of the faces tried) per layer shown."""
    if not record:
        return ""
    faces = max(layer["faces"] for layer in record.values())
    parts = [f"{len(layer['dead']) or 'none'} of the {layer['filters']} of {layer['role'].split(':')[0]}"
             for layer in record.values()]
    return (f"Filters never active on any of {faces} validation faces (dead, marked in red below): "
            + "; ".join(parts) + ".")
