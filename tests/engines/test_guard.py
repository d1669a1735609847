import numpy as np
import pytest

from medviz.bench.guard import auroc, edge_phantoms, far_set, fit, phantoms
from medviz.engines import guard
from medviz.engines.counterfactual import EditConfig, counterfactual, effect_check
from medviz.engines.explain import ExplainConfig, classify
from medviz.ui.common import Job
from medviz.ui.tabs.edit import EditRequest, edit_view
from medviz.ui.tabs.explain import ExplainRequest, explain_view
from tests.tiny import tiny_model


pytestmark = pytest.mark.xdist_group("guard")      # one worker builds the module fixture once


@pytest.fixture(scope="module")
def calibrated():
    """A tiny model calibrated on its own phantoms (centres and spreads on 24, threshold on 24 more)."""
    model = tiny_model("cxr")
    model.card["domain_check"] = fit(model, phantoms("cxr", 24, 32, 0), phantoms("cxr", 24, 32, 100), 1.25)
    return model


def test_features_scores_and_a_calibration(calibrated):
    images = phantoms("cxr", 6, 32, 200)
    features = guard.raw_features(calibrated, images)
    assert set(features) == {"vae", *(f"denoise@{t}" for t in guard.TIMESTEPS)}
    assert all(v.shape == (6,) and np.isfinite(v).all() and (v >= 0).all() for v in features.values())
    again = guard.raw_features(calibrated, images[:2])                    # fixed noise: the same image, the same value
    assert all(np.allclose(again[k], features[k][:2], rtol=1e-4) for k in features)
    calibration = calibrated.card["domain_check"]
    assert calibration["threshold"] > 0 and calibration["n_scale"] == calibration["n_threshold"] == 24
    z = guard.standardise(features, calibration)
    assert np.allclose(guard.scores(features, calibration), np.sqrt(sum(v ** 2 for v in z.values())))


def test_check_domain_says_why_and_costs_three_unet_passes(calibrated):
    inside = guard.check_domain(calibrated, phantoms("cxr", 1, 32, 0)[0])       # a calibration image
    assert inside.in_domain is True and inside.warning == "" and "within the threshold" in inside.reason
    assert inside.unet_passes == len(guard.TIMESTEPS) == 3
    # Pretend the spreads are tiny: every image but the centre is then far, and the reason names a feature.
    strict = {**calibrated.card["domain_check"], "threshold": 1e-9}
    model = tiny_model("cxr", card={"domain_check": strict})
    outside = guard.check_domain(model, np.full((32, 32), 0.5, np.float32))
    assert outside.in_domain is False and "above the threshold" in outside.reason and "spreads" in outside.reason
    assert outside.warning.startswith("This image is outside the model's training domain")
    assert outside.record()["in_domain"] is False


def test_the_batched_flags_agree_with_one_check_per_image(calibrated, tiny_cxr):
    images = [*phantoms("cxr", 3, 32, 300), np.full((32, 32), 0.5, np.float32)]
    flags = guard.flagger(calibrated)(images)
    assert flags.dtype == bool and flags.tolist() == [not guard.check_domain(calibrated, im).in_domain for im in images]
    assert guard.flagger(tiny_cxr) is None                                       # no calibration, no flags


def test_a_model_without_a_calibration_says_it_has_no_check(tiny_cxr):
    check = guard.check_domain(tiny_cxr, np.zeros((32, 32), np.float32))
    assert check.in_domain is None and np.isnan(check.score) and check.record()["score"] is None
    assert check.warning.startswith("No domain check for this model") and "--write-card" in check.warning


def test_the_engines_record_the_check_and_warn_first(calibrated):
    strict = tiny_model("cxr", card={**calibrated.card, "domain_check": {**calibrated.card["domain_check"],
                                                                         "threshold": 1e-9}})
    image = np.full((32, 32), 0.5, np.float32)
    edit = counterfactual(strict, image, EditConfig(remove=("pleural_effusion",), steps=4, seed=0))
    assert edit.domain_check.in_domain is False and edit.warnings[0] == edit.domain_check.warning
    assert edit.parameters["domain_check"]["in_domain"] is False and edit.parameters["input_size"] == [32, 32]
    unchecked = counterfactual(strict, image, EditConfig(remove=("pleural_effusion",), steps=4, seed=0,
                                                         domain_check=False))
    assert unchecked.domain_check is None and unchecked.parameters["domain_check"] is None
    assert unchecked.unet_passes == edit.unet_passes                     # the check's passes are counted apart
    result = classify(strict, image, ExplainConfig(prompts=("a", "b"), trials=3))
    assert not result.meaningful and result.warnings == (result.domain_check.warning,)
    assert result.parameters["domain_check"]["in_domain"] is False


def test_the_tabs_show_a_warning_and_label_readouts_and_verdicts_not_meaningful(calibrated):
    strict = tiny_model("cxr", card={**calibrated.card, "domain_check": {**calibrated.card["domain_check"],
                                                                         "threshold": 1e-9}})
    image = np.full((32, 32), 0.5, np.float32)
    view = edit_view(strict, EditRequest(pixels=image, attribute="pleural_effusion", steps=10, strength=0.5, seed=0),
                     Job("test"))
    assert view.summary.startswith("### ⚠️ Outside this model's domain")
    assert all(row[1].endswith("(not meaningful)") and row[2].endswith("(not meaningful)") for row in view.readout)
    explained = explain_view(strict, ExplainRequest(pixels=image, preset="pleural_effusion", trials=3), Job("test"))
    assert explained.summary.startswith("### ⚠️ Outside this model's domain")
    assert "(not meaningful: the image is outside the model's domain)" in explained.summary


@pytest.mark.parametrize("action, before, after, passed, words", [
    ("remove", 0.9, 0.1, True, "did what was asked"),
    ("remove", 0.83, 0.999, False, "moved the other way"),
    ("remove", 0.9, 0.85, False, "did not remove"),
    ("remove", 0.9, 0.6, False, "only partly"),
    ("add", 0.8, 0.9, True, "Nothing to add"),
    ("add", 0.1, 0.7, True, "did what was asked"),
])
def test_the_effect_check_says_plainly_what_the_readout_did(action, before, after, passed, words):
    config = EditConfig(**{action: ("pleural_effusion",)})
    check = effect_check(config, {"pleural_effusion": before}, {"pleural_effusion": after})
    assert check.passed is passed and words in check.verdict and f"{before:.2f} to {after:.2f}" in check.verdict
    assert check.record()["passed"] is passed
    assert effect_check(EditConfig(target_prompt="x"), {"pleural_effusion": 0.9}, {"pleural_effusion": 0.1}) is None
    assert effect_check(config, None, None) is None                        # no oracle: nothing to check


def test_the_bench_sets(tiny_cxr):
    corners = edge_phantoms("cxr", 3, 32)
    assert len(corners) == 3 and corners[0].shape == (128, 128) and corners[0].dtype == np.float32
    rows = far_set("cxr", 32, n_phantoms=2)
    groups = {group for group, _, _ in rows}
    assert groups == {"natural", "CT/MR", "skin phantom", "constant", "noise", "rotated 90°"}
    assert all(image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1 for _, _, image in rows)
    assert len([r for r in rows if r[0] == "natural"]) >= 20
    assert auroc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 1.0 and auroc(np.array([1.0]), np.array([1.0])) == 0.5


@pytest.mark.bundled
@pytest.mark.parametrize("domain", ["cxr", "skin"])
def test_the_bundled_models_flag_an_astronaut_and_pass_their_phantoms(domain, cxr_model, skin_model):
    import skimage.data

    model = cxr_model if domain == "cxr" else skin_model
    assert guard.check_domain(model, skimage.data.astronaut().astype(np.float32) / 255).in_domain is False
    assert all(guard.check_domain(model, image).in_domain for image in phantoms(domain, 5, model.image_size, 820_000))
