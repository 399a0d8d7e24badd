"""The report's sentences follow its numbers: a run at the majority class is said not to have learned, a gain
within the noise is not called a gain, the verdicts and the pairs named are the measured ones."""
from fer import CLASSES, narrative

SUMMARY = dict(best_val_accuracy=0.65, best_epoch=30, epochs=36, train_accuracy_at_best=0.78)


def test_a_model_at_the_majority_class_did_not_learn():
    assert "did not learn" in narrative.model_text("CNN", {**SUMMARY, "best_val_accuracy": 0.2560}, 0.2513)
    text = narrative.model_text("CNN", SUMMARY, 0.2513)
    assert "reached 0.6500 validation accuracy at epoch 30 of 36" in text and "+39.9 points" in text
    assert "overfits" in text
    assert "little overfitting" in narrative.model_text("CNN", {**SUMMARY, "train_accuracy_at_best": 0.66}, 0.25)


def test_the_comparison_names_what_the_dnn_never_predicts():
    def entry(accuracy, f1, never=(), **paired):
        return dict(accuracy=accuracy, macro_f1=f1, never_predicted=list(never),
                    **(dict(against_first=dict(faces=5742, **paired)) if paired else {}))

    text = narrative.comparison_text([("CNN", entry(0.65, 0.62)), ("DNN", entry(0.45, 0.29, ["Disgust"]))], 5742)
    assert "ahead of the DNN: +20.0 points of accuracy and +33.0 points of macro-F1" in text
    assert "The DNN never predicts Disgust." in text
    two = narrative.comparison_text([("CNN", entry(0.65, 0.62)), ("DNN", entry(0.45, 0.29)),
                                     ("DNN 2", entry(0.50, 0.40))], 5742)
    assert "It is also ahead of the DNN 2: +15.0 points of accuracy and +22.0 points of macro-F1." in two
    assert two.count("the mean of the seven classes' F1") == 1  # explained once, not per DNN
    assert "within the noise of" in narrative.comparison_text([("CNN", entry(0.650, 0.6)), ("DNN", entry(0.648, 0.6))],
                                                               5742)
    assert "within the noise of" in narrative.comparison_text([("CNN", entry(1.0, 1.0)), ("DNN", entry(1.0, 1.0))], 140)
    # on the same faces McNemar's test decides: a point is real when every face it takes goes one way
    paired = narrative.comparison_text([("CNN", entry(0.660, 0.6)), ("DNN", entry(0.650, 0.6, right_only_first=60,
                                        right_only_here=3, p_value=2e-14, significant=True))], 5742)
    assert "the CNN is ahead of the DNN: +1.0 points" in paired
    assert "the CNN alone gets 60 right and the DNN alone 3 (McNemar's test on those: p < 0.001)." in paired
    balanced = narrative.comparison_text([("CNN", entry(0.660, 0.6)), ("DNN", entry(0.650, 0.6, right_only_first=230,
                                          right_only_here=170, p_value=0.0031, significant=True))], 5742)
    assert "ahead of the DNN" in balanced and "p = 0.003)" in balanced
    noise = narrative.comparison_text([("CNN", entry(0.700, 0.6)), ("DNN", entry(0.650, 0.6, right_only_first=9,
                                       right_only_here=5, p_value=0.42, significant=False))], 20)
    assert "within the noise of the DNN" in noise and "p = 0.420" in noise
    # a record whose first model was not the CNN tested the others against that one: not used
    swapped = narrative.comparison_text([("CNN", entry(0.660, 0.6, right_only_first=3, right_only_here=60,
                                          p_value=2e-14, significant=True)),
                                         ("DNN", entry(0.650, 0.6, right_only_first=5, right_only_here=5,
                                          p_value=1.0, significant=False))], 5742)
    assert "McNemar" not in swapped and "within the noise of the DNN" in swapped
    same = narrative.comparison_text([("CNN", entry(0.7, 0.6)), ("DNN", entry(0.7, 0.6, right_only_first=0,
                                      right_only_here=0, p_value=1.0, significant=False))], 5742)
    assert "within the noise of the DNN" in same and "right and wrong on the same faces, all 5,742 of them." in same
    words = narrative.accuracy_words(dict(accuracy=0.70812, accuracy_interval=[0.6963, 0.7197]))
    assert words == "0.7081 (0.696–0.720)"
    assert narrative.with_interval(0.5632, [0.4582, 0.6622], 3) == "0.563 (0.46–0.66)"
    assert narrative.accuracy_words(dict(accuracy=0.7)) == "0.7000"  # an older record: no interval to show


def test_calibration_words_follow_the_gap_between_confidence_and_accuracy():
    report = dict(accuracy=0.70, mean_confidence=0.75, ece=0.052, temperature=1.18, ece_after=0.021)
    text = narrative.calibration_text([("CNN", report), ("DNN", {**report, "mean_confidence": 0.62}),
                                       ("DNN 2", {**report, "mean_confidence": 0.705})])
    assert ("The CNN is overconfident: its mean confidence is 0.750 where it is right on 0.700 of the faces "
            "(ECE 0.052); a temperature of 1.18 would take its ECE to 0.021 without changing a label "
            "(--temperature 1.18).") in text
    assert "The DNN is underconfident" in text and "The DNN 2 is about as confident as it is right" in text
    noise = narrative.calibration_text([("DNN", {**report, "ece_after": 0.06})])
    assert noise.endswith("; a temperature fitted on half the faces does not lower it on the other half (0.060).")


def test_a_rescored_model_file_says_why_it_differs_from_its_training_record():
    exported = narrative.rescored_text(0.6588, 0.6587, 5742, dict(precision="bfloat16", weights="float16"))
    assert "(1 of 5,742 faces) comes from the file's weights being rounded to float16." in exported
    trained = narrative.rescored_text(0.6480, 0.6487, 5742, dict(precision="bfloat16"))
    assert "(4 of 5,742 faces) comes from training having validated in bfloat16 (mixed precision)" in trained


def test_the_ablation_draws_no_conclusion_from_runs_that_did_not_learn():
    runs = [dict(variant="BN + augmentation", best_val_accuracy=0.55, final_train_accuracy=0.5, learned=True),
            dict(variant="BN, no augmentation", best_val_accuracy=0.50, final_train_accuracy=0.8, learned=True),
            dict(variant="no BN, augmentation", best_val_accuracy=0.2513, final_train_accuracy=0.25, learned=False)]
    text = narrative.ablation_text(dict(runs=runs, majority_share=0.2513, split=dict(val_rows=5742)))
    assert "Removing augmentation changes the best validation accuracy by -5.0 points." in text
    assert "batch norm changes" not in text  # its comparison involves a run that did not learn
    assert "No BN, augmentation did not learn" in text  # a sentence of its own
    # where the record holds McNemar's test on the same faces, it decides and its counts are named
    runs[2] = dict(runs[2], best_val_accuracy=0.54, learned=True)
    paired = {"augmentation": dict(faces=5742, a_only=400, b_only=113, p_value=1e-30, significant=True),
              "batch norm": dict(faces=5742, a_only=300, b_only=243, p_value=0.016, significant=True)}
    text = narrative.ablation_text(dict(runs=runs, majority_share=0.2513, split=dict(val_rows=5742), paired=paired))
    assert ("Removing batch norm changes the best validation accuracy by -1.0 points; 300 of the 5,742 validation "
            "faces are right only with it and 243 only without (McNemar's test: p = 0.016).") in text
    assert "400 of the 5,742 validation faces are right only with it and 113 only without (McNemar's test: p < 0.001)" \
        in text
    paired["batch norm"] = dict(paired["batch norm"], a_only=280, b_only=263, p_value=0.49, significant=False)
    text = narrative.ablation_text(dict(runs=runs, majority_share=0.2513, split=dict(val_rows=5742), paired=paired))
    assert "(McNemar's test: p = 0.490, within the noise)." in text


def test_a_semi_supervised_gain_within_the_noise_is_not_called_a_gain():
    record = dict(split=dict(val_rows=5742), results=[
        dict(labeled_fraction=0.25, supervised_val_accuracy=0.5008, semi_supervised_val_accuracy=0.5013,
             pseudo_label_accuracy=0.7, learned=True),
        dict(labeled_fraction=0.5, supervised_val_accuracy=0.52, semi_supervised_val_accuracy=0.56,
             pseudo_label_accuracy=0.8, learned=True)])
    first, second = narrative.semi_text(record).split(". ", 1)
    assert "within the noise" in first and "within the noise" not in second and "+4.0 points" in second
    # on the same faces McNemar's test decides: the first gain, half a point, is real when it all goes one way
    record["results"][0].update(semi_supervised_val_accuracy=0.5062,  # as two accuracies alone, still noise
                                paired=dict(faces=5742, a_only=31, b_only=0, p_value=9e-10, significant=True))
    record["results"][1]["paired"] = dict(faces=5742, a_only=700, b_only=470, p_value=0.07, significant=False)
    first, second = narrative.semi_text(record).split(". ", 1)
    assert "+0.5 points (31 faces right only with them, 0 only without; McNemar's test: p < 0.001)" in first
    assert "within the noise" not in first and "within the noise" in second


def test_the_saliency_words_carry_the_measured_verdicts():
    record = dict(faces=70, blank={"gradcam": ["Happy", "Sad"]},
                  faithfulness={"gradient": dict(deletion_auc=0.28, insertion_auc=0.37),
                                "lime": dict(deletion_auc=0.16, insertion_auc=0.64),
                                "random": dict(deletion_auc=0.27, insertion_auc=0.35)},
                  sanity={"gradient": dict(verdict="passes (median rho 0.11)"),
                          "smoothgrad": dict(verdict="fails: the maps barely change with random weights")})
    text = narrative.saliency_text(record)
    assert "lime finds the pixels whose removal hurts the prediction most (deletion area 0.160)" in text
    assert "gradient do no better than a random ranking" in text
    assert "In the randomization check gradient passes; smoothgrad (fails" in text
    assert "gradcam is blank for Happy and Sad" in text
    named = narrative.saliency_text({**record, "titles": {"lime": "LIME", "gradcam": "Grad-CAM"}})
    assert "LIME finds the pixels" in named and "Grad-CAM is blank for Happy and Sad" in named


def test_lime_is_placed_among_the_methods_by_its_own_scores():
    record = dict(faces=70, faithfulness={"gradient": dict(deletion_auc=0.24, insertion_auc=0.37),
                                          "lime": dict(deletion_auc=0.15, insertion_auc=0.69),
                                          "integrated": dict(deletion_auc=0.14, insertion_auc=0.46),
                                          "random": dict(deletion_auc=0.28, insertion_auc=0.28)},
                  sanity={"lime": dict(verdict="passes (median ρ 0.09)")})
    text = narrative.lime_text(record)
    assert "rank second of 3 methods at deletion (area 0.150) and first at insertion (0.690)" in text
    assert text.endswith("randomization check: passes (median ρ 0.09).")


def test_dead_filters_are_counted_per_layer():
    record = {"a": dict(role="block 1, conv 1: 48 filters, 48x48", filters=48, dead=[], faces=512),
              "b": dict(role="block 4, conv 2: 384 filters, 6x6", filters=384, dead=[3, 9, 70], faces=512)}
    assert narrative.filters_text(record) == ("Filters never active on any of 512 validation faces (dead, marked in "
                                              "red below): none of the 48 of block 1, conv 1; 3 of the 384 of "
                                              "block 4, conv 2.")


def test_a_recipe_says_when_it_trained_without_augmentation():
    from fer.records import augmentation_words

    assert augmentation_words(dict(augment="none", augment_scale=0.5)) == "no augmentation"
    assert augmentation_words(dict(augment="affine", augment_scale=0.5, ema=0.998)) == "affine x0.5, EMA 0.998"


def test_a_difference_too_small_to_show_has_no_minus_sign():
    assert narrative.points(0.5, 0.5004) == "+0.0 points"
    assert narrative.points(0.5, 0.5006) == "-0.1 points"
    assert str(narrative.rounded(-0.004, 2)) == "0.0" and narrative.rounded(-0.006, 2) == -0.01


def test_a_model_that_confuses_nothing_is_not_said_to_confuse_a_class_with_itself():
    per_class = {c: dict(f1=1.0 if c != "Fear" else 0.9, support=10) for c in CLASSES}
    text = narrative.confusion_text(dict(most_confused=[], per_class=per_class), "CNN")
    assert text.startswith("The CNN confuses no class with another. Its best class is Angry (F1 1.00), its worst Fear")
    some = narrative.confusion_text(dict(most_confused=[("Fear", "Sad", 0.2, 4)], per_class=per_class), "CNN")
    assert some.startswith("The CNN confuses most often Fear with Sad (20% of Fear). Its best class")
