"""The stress-test engine on tiny phantoms and stand-in classifiers whose answers are known."""

import numpy as np
import pytest

from medviz.engines import Interrupted
from medviz.engines.stress import (NONE, Answer, Scorer, StressConfig, classifier_scorer, image_sets, level_count,
                                   oracle_scorer, phantom_sets, probability_scorer, stress_test)

CONFIG = StressConfig(target="pleural_effusion", shifts=("rotation", "jpeg"), n=3, bootstrap=20)


def test_phantoms_are_shifted_through_their_factors_or_the_transform_and_keep_their_labels():
    sets = list(phantom_sets("cxr", CONFIG))
    assert [(s.shift, s.level) for s in sets] == [(NONE, 0.0), *[("rotation", v) for v in (5.0, 7.0, 9.0, 10.0)],
                                                   *[("jpeg", v) for v in (50.0, 30.0, 20.0, 10.0)]]
    assert len(sets) == level_count("cxr", CONFIG) and all(len(s.images) == 3 for s in sets)
    unshifted, rotated = sets[0], sets[3]
    assert all(np.array_equal(s.labels, unshifted.labels) for s in sets)       # do(rotation) moves no finding
    assert all(np.abs(a - b).mean() > 0.01 for a, b in zip(unshifted.images, rotated.images))
    again = list(phantom_sets("cxr", CONFIG))
    assert all(np.array_equal(a, b) for s, t in zip(sets, again) for a, b in zip(s.images, t.images))
    only = list(phantom_sets("cxr", CONFIG, only={("rotation", 9.0), ("jpeg", 10.0)}))
    assert [(s.shift, s.level) for s in only] == [("rotation", 9.0), ("jpeg", 10.0)]
    assert all(np.array_equal(a, b) for a, b in zip(only[0].images, sets[3].images))


def _bright_is_positive(images):
    """A stand-in classifier: P(positive) rises with the mean intensity."""
    return np.array([float(np.clip((np.mean(im) - 0.3) * 3, 0, 1)) for im in images])


def test_figures_of_a_classifier_whose_answers_are_known():
    images = [np.full((16, 16), v, np.float32) for v in (0.1, 0.15, 0.48, 0.52)]
    labels = np.array([False, False, True, True])
    config = StressConfig(target="pleural_effusion", shifts=("exposure",), n=4, bootstrap=50)
    sure = Scorer("sure", lambda ims: (_bright_is_positive(ims), np.zeros(len(ims))))
    scorers = [sure, probability_scorer("cnn", _bright_is_positive)]
    result = stress_test(image_sets(images, labels, "cxr", config), scorers, config,
                         flags=lambda ims: np.array([np.mean(im) > 0.5 for im in ims]))
    row = result.row("sure", NONE, 0.0)
    assert (row.n, row.positives, row.accuracy, row.auroc) == (4, 2, 1.0, 1.0) and row.flagged == 0.25
    assert row.accuracy_interval[0] <= 1.0 <= row.accuracy_interval[1]
    assert row.nll == pytest.approx(np.mean([0, 0, -np.log(0.54), -np.log(0.66)]), abs=1e-4)
    over = result.row("sure", "exposure", 1.3)          # over-exposed is darker (phantoms.cxr): positives read negative
    assert (over.accuracy, over.positives, over.flagged) == (0.5, 2, 0.0)
    assert len(result.rows) == 2 * level_count("cxr", config) and set(result.reliability) == {"sure", "cnn"}
    assert result.row("cnn", NONE, 0.0).accuracy == 1.0
    assert result.parameters["classifiers"]["cnn"]["uncertainty"] == "entropy of its probability"


def test_the_errors_a_method_calls_unsure_and_those_the_domain_check_flags_are_counted():
    images = [np.full((16, 16), v, np.float32) for v in (0.1, 0.15, 0.48, 0.52)]
    config = StressConfig(target="pleural_effusion", shifts=("exposure",), n=4, bootstrap=0)
    unsure = np.array([True, False, True, False])
    humble = Scorer("humble", lambda ims: Answer(_bright_is_positive(ims), np.zeros(len(ims)), None, unsure))
    result = stress_test(image_sets(images, np.array([0, 0, 1, 1]), "cxr", config),
                         [humble, probability_scorer("cnn", _bright_is_positive)], config,
                         flags=lambda ims: np.array([True, True, False, True]))
    clear = result.row("humble", NONE, 0.0)
    assert (clear.errors, clear.errors_unsure, clear.errors_flagged) == (0, 0, 0)
    assert (clear.unsure, clear.flagged) == (0.5, 0.75)
    over = result.row("humble", "exposure", 1.3)          # the two positives read negative: wrong
    assert (over.errors, over.errors_unsure, over.errors_flagged, over.silent_errors) == (2, 1, 1, 0)
    cnn = result.row("cnn", "exposure", 1.3)              # a CNN has no verdict of its own on its doubt
    assert (cnn.errors, cnn.errors_unsure, cnn.unsure, cnn.errors_flagged, cnn.silent_errors) == (2, None, None, 1, 1)


def test_a_classifier_at_chance_under_a_shift_is_named_and_the_run_stops_when_asked():
    images = [np.full((16, 16), v, np.float32) for v in (0.1, 0.2, 0.6, 0.7)]
    config = StressConfig(target="pleural_effusion", shifts=("exposure",), n=4, bootstrap=0)
    always = probability_scorer("always-positive", lambda ims: np.ones(len(ims)))
    result = stress_test(image_sets(images, np.array([0, 0, 1, 1]), "cxr", config), [always], config)
    assert result.warnings == ["always-positive: accuracy 50% at exposure 1.21, no better than answering the "
                               "majority class (50%)."]
    assert np.isnan(result.rows[0].accuracy_interval[0])                      # bootstrap 0: no intervals
    calls = []
    with pytest.raises(Interrupted, match="stopped by the user after 2 level sets"):
        stress_test(image_sets(images, np.array([0, 0, 1, 1]), "cxr", config), [always], config,
                    progress=lambda done, total: calls.append((done, total)), should_stop=lambda: len(calls) >= 2,
                    total=level_count("cxr", config))
    assert calls == [(1, 5), (2, 5)]


def test_the_oracle_and_a_classifier_folder_answer_on_tiny_phantoms(tiny_cxr):
    from medviz.classifiers import AuditedClassifier
    from medviz.train.classifier import make_classifier

    classifier = make_classifier((8, 16), "pleural_effusion", 32)
    folder = AuditedClassifier(classifier, "pleural_effusion", 1, 32, "tiny-effusion", {})
    config = StressConfig(target="pleural_effusion", shifts=("noise",), n=2, bootstrap=0)
    scorers = [oracle_scorer(tiny_cxr.oracle, "pleural_effusion"), classifier_scorer(folder)]
    result = stress_test(phantom_sets("cxr", config), scorers, config)
    assert {r.classifier for r in result.rows} == {"oracle", "tiny-effusion"} and len(result.rows) == 10
    assert all(0 <= r.accuracy <= 1 and 0 <= r.ece <= 1 and r.nll > 0 for r in result.rows)
    with pytest.raises(ValueError, match="the oracle does not read 'ruler'"):
        oracle_scorer(tiny_cxr.oracle, "ruler")


def test_the_diffusion_classifier_answers_at_its_cards_operating_point(tiny_cxr):
    from medviz.engines.stress import diffusion_scorer

    scorer = diffusion_scorer(tiny_cxr, trials=3)
    assert scorer.name == "diffusion-classifier" and scorer.uncertainty == "entropy of its votes"
    assert scorer.threshold == tiny_cxr.card["explain_calibration"]["pleural_effusion"]["vote_threshold"]
    p, uncertainty, decided, unsure = scorer.predict([np.full((32, 32), 0.4, np.float32),
                                                      np.full((32, 32), 0.6, np.float32)])
    assert p.shape == uncertainty.shape == unsure.shape == (2,) and decided is None
    assert set(np.round(p * 3, 6)) <= {0, 1, 2, 3}                                  # votes of 3 trials
    assert ((0 <= uncertainty) & (uncertainty <= 1)).all() and unsure.dtype == bool
    with pytest.raises(ValueError, match="no diffusion-classifier preset 'ruler'"):
        diffusion_scorer(tiny_cxr, "ruler")


@pytest.mark.parametrize("change, message", [
    ({"target": "ruler"}, "target 'ruler' is not an attribute of cxr; choose one of"),
    ({"shifts": ("blur",)}, "cxr has no shift 'blur'; choose one of exposure"),
    ({"n": 1}, "n must be at least 2"),
    ({"coverage": 0.0}, "coverage must be in"),
])
def test_a_bad_request_gets_one_sentence(change, message):
    from dataclasses import replace

    with pytest.raises(ValueError, match=message):
        replace(CONFIG, **change).validate("cxr")
    with pytest.raises(ValueError, match="a stress test needs a domain"):
        CONFIG.validate(None)
