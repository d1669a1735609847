import numpy as np
import pytest

from medviz.engines.explain import votes_needed
from medviz.io import read_image
from medviz.ui.common import EXAMPLES_DIR, Job
from medviz.ui.tabs.about import model_about
from medviz.ui.tabs.explain import ExplainRequest, default_trials, expectation, explain_view

CARD = "card"


def _view(model, preset, trials, early_stop=True, weighting=CARD, example="cxr_effusion.png"):
    pixels = read_image(EXAMPLES_DIR / example).pixels
    return explain_view(model, ExplainRequest(pixels=pixels, preset=preset, trials=trials, early_stop=early_stop,
                                              weighting=weighting), Job("test"))


def test_explain_endpoint_on_a_bundled_example_and_on_a_dicom_upload(client, tiny_cxr, monkeypatch):
    from gradio_client import handle_file

    # A card whose operating point is a vote threshold (the server shares this loaded model).
    fit = tiny_cxr.card["explain_calibration"]["pleural_effusion"]
    for key, value in {"vote_threshold": 0.4524, "trials": 21, "trials_run": 21, "decision": "vote"}.items():
        monkeypatch.setitem(fit, key, value)
    with pytest.raises(Exception, match="load an image first"):
        client.predict(model_name="cxr-phantom", preset="pleural_effusion", trials=9, api_name="/explain")
    info = client.predict(model_name="cxr-phantom", example="cxr_effusion.png", api_name="/explain_example")
    assert info == "Example *cxr_effusion.png*: PNG, 256×256 → 32×32 (the model's working size), uint8"
    explanation, evidence, uncertainty, chart, summary = client.predict(
        model_name="cxr-phantom", preset="pleural_effusion", trials=9, api_name="/explain")
    for shown in (explanation, evidence, uncertainty):
        assert read_image(shown).pixels.shape == (384, 384, 3)             # 32 px shown 12x (nearest)
    assert "evidence map" in summary and "weighted to where the class prompts differ" in summary
    assert "effusion" in summary and "not a diagnosis" in summary and "entropy" in summary
    # The preset takes the model card's operating point (10 of 21 votes, a share of 0.4524: 5 of 9 here).
    assert "calibrated operating point (effusion needs 5 of 9 votes)" in summary
    assert "the card fitted 10 of 21 votes, applied here as the same share" in summary   # another N than the fit's
    faint, _, _ = client.predict(opacity=0.0, api_name="/explain_opacity")   # opacity 0: the plain input, no model call
    gray = read_image(faint).pixels
    assert gray.ndim == 2 or np.allclose(gray[..., 0], gray[..., 1], atol=2 / 255)
    info, upload, example = client.predict(
        model_name="cxr-phantom", upload=handle_file(str(EXAMPLES_DIR / "cxr_clear.dcm")), api_name="/explain_load"
    )
    assert info.startswith("Upload: DICOM") and upload is None and example is None
    _, _, _, _, summary = client.predict(model_name="cxr-phantom", preset="pleural_effusion", trials=9,
                                         weighting="uniform", api_name="/explain")
    assert "Majority vote" in summary and "weighted uniformly" in summary   # the fit holds for its weighting only


def test_the_view_applies_the_skin_cards_window_and_weighting(tiny_skin):
    fitted = tiny_skin.card["explain_calibration"]["melanoma"]
    lo, hi = fitted["t_range"]
    view = _view(tiny_skin, "melanoma", 3, False, example="skin_melanoma.png")
    assert f"over timesteps {lo}–{hi} (the model card's window)" in view.summary
    assert ("weighted uniformly" if fitted["weighting"] == "uniform" else "weighted to where") in view.summary
    other = _view(
        tiny_skin,
        "melanoma",
        3,
        False,
        example="skin_melanoma.png",
        weighting="disagreement" if fitted["weighting"] == "uniform" else "uniform",
    )
    assert "model card's window" not in other.summary and "Majority vote" in other.summary
    assert view.explanation.shape == view.image.shape[:2] == (32, 32)


def test_the_view_names_the_cards_decision_rule(tiny_cxr, monkeypatch):
    fit = tiny_cxr.card["explain_calibration"]["pleural_effusion"]
    monkeypatch.setitem(fit, "decision", "mean_error")
    monkeypatch.setitem(fit, "vote_threshold", 0.5)
    view = _view(tiny_cxr, "pleural_effusion", 3)
    assert (
        "Mean-error rule, the model card's decision rule" in view.summary and "effusion needs 2 of 3)" in view.summary
    )
    assert "majority vote: **" in view.summary and "mean-error rule: **" not in view.summary
    monkeypatch.setitem(fit, "vote_threshold", 0.4524)                  # 10 of 21; 2 of 3 at N = 3
    view = _view(tiny_cxr, "pleural_effusion", 3)
    assert "the vote at that operating point: **" in view.summary and "mean-error rule: **" not in view.summary
    monkeypatch.setitem(fit, "decision", "vote")
    view = _view(tiny_cxr, "pleural_effusion", 3)
    assert "Mean-error rule" not in view.summary and "mean-error rule: **" in view.summary


def test_trials_default_to_the_n_the_card_was_fitted_at(client, tiny_cxr, tiny_skin):
    from medviz.engines.counterfactual import edit_defaults

    fitted = tiny_skin.card["explain_calibration"]["melanoma"]
    assert default_trials(tiny_skin, "melanoma") == fitted["trials"]
    assert (
        default_trials(tiny_cxr, "pleural_effusion")
        == tiny_cxr.card["explain_calibration"]["pleural_effusion"]["trials"]
    )
    assert default_trials(tiny_cxr, "cardiomegaly") == 21 and default_trials(tiny_cxr, "custom") == 21  # no fit
    *_, preset, example, trials, outputs = _by_tab(client.predict(model_name="skin-phantom", api_name="/select_model"))
    assert preset["value"] == "melanoma" and trials["value"] == fitted["trials"]
    skin, cxr = edit_defaults("skin"), edit_defaults("cxr")                  # the Edit sliders follow the model
    assert [o["value"] for o in outputs] == [skin.strength, skin.guidance_scale, 0] == [0.9, 6, 0]
    *_, outputs = _by_tab(client.predict(model_name="cxr-phantom", api_name="/select_model"))
    assert [o["value"] for o in outputs] == [cxr.strength, cxr.guidance_scale, 0.04] == [0.8, 3, 0.04]
    at_fit = _view(tiny_skin, "melanoma", fitted["trials"], example="skin_melanoma.png")
    assert f"melanoma needs {fitted['votes_needed']} of {fitted['trials']} votes" in at_fit.summary
    # The card runs N = 101 at the share its threshold was fitted at with N = 41: the note names the fit's N.
    fit_n = fitted["trials_run"]
    assert fit_n != fitted["trials"]
    assert (f"the card fitted {votes_needed(fit_n, fitted['vote_threshold'])} of {fit_n} votes, applied here as the "
            "same share") in at_fit.summary


def _by_tab(updates):
    """A model change's updates, in tab order (Generate 2, Traverse 1, Edit 5, Explain 3, About 1) -> (Generate's,
    Traverse's, Explain's preset, example and trials, and the Edit tab's strength, guidance and threshold sliders)."""
    edit, explain = updates[3:8], updates[8:11]
    return (*updates[:3], *explain, edit[2:])


def test_a_bad_upload_gets_a_clear_message_and_leaves_no_image(client, tmp_path):
    from gradio_client import handle_file

    client.predict(model_name="cxr-phantom", example="cxr_effusion.png", api_name="/explain_example")
    bad = tmp_path / "scan.png"
    bad.write_text("this is not an image")
    info, _, _ = client.predict(model_name="cxr-phantom", upload=handle_file(str(bad)), api_name="/explain_load")
    assert "No image loaded" in info and "not a recognised image" in info
    with pytest.raises(Exception, match="load an image first"):          # never the example loaded before
        client.predict(model_name="cxr-phantom", preset="pleural_effusion", trials=9, api_name="/explain")


def test_the_tab_says_what_the_classify_bench_measured_before_it_runs(client, tiny_cxr, tiny_skin):
    def line(model, preset, trials, weighting=CARD, prompts=""):
        return expectation(model, ExplainRequest(preset=preset, custom_prompts=prompts, trials=trials,
                                                 weighting=weighting))

    text = line(tiny_skin, "melanoma", 101)
    assert text.startswith("**Measured on this model** for *melanoma* (classify bench, 400 held-out phantoms")
    assert "gave the phantoms' true label in 98.75%, with 63.5 trials on average." in text
    assert "At most 0.75 points behind N = 501." in text and "settings differ" not in text
    moved = line(tiny_skin, "melanoma", 51, "disagreement")
    assert ("settings differ and were not measured: weighting disagreement (measured at uniform), t range 20–980 "
            "(measured at 500–980), vote threshold 0.5 (measured at 0.5488), trials 51 (measured at 101).") in moved
    assert line(tiny_skin, "custom", 21, prompts="a\nb").startswith("*Custom prompts were not")
    assert line(tiny_skin, "melanoma_one_prompt", 21).startswith(
        "*Melanoma (one prompt per class) was not measured on held-out phantoms")
    assert "gave 98.75% (63.5 trials on average)" in model_about(tiny_skin)       # the Model tab: the card's section
    effusion = line(tiny_cxr, "pleural_effusion", 101)
    assert "true label in 97.75%, with 66.7 trials on average." in effusion and "points behind" not in effusion
    answer = client.predict(model_name="cxr-phantom", preset="custom", custom_prompts="a\nb", trials=21,
                            api_name="/explain_expect")
    assert answer.startswith("*Custom prompts were not measured")


def test_ladine_answers_beside_the_diffusion_classifier(tiny_cxr):
    from medviz import ladine

    shape = ladine.LaDiNEConfig(labels=("no pleural_effusion", "pleural_effusion"), image_size=32, patch_size=8,
                                hidden=32, layers=2, heads=2, taps=(1, 2), denoiser_width=16, timesteps=100)
    beside = ladine.LaDiNE(ladine.build(shape).eval(), shape, "my-ladine", samples=4, steps=2)
    pixels = read_image(EXAMPLES_DIR / "cxr_effusion.png").pixels
    view = explain_view(tiny_cxr, ExplainRequest(pixels=pixels, preset="pleural_effusion", trials=3), Job("test"),
                        beside)
    line = view.summary.splitlines()[-1]
    assert line.startswith("**LaDiNE (my-ladine)**, beside it: **") and "paired t-test p = " in line
    assert "**pleural effusion**" in line or "**no pleural effusion**" in line                   # phrases on screen
    assert "95% interval of its probability" in line
    assert "LaDiNE" not in _view(tiny_cxr, "pleural_effusion", 3).summary


def test_ladine_says_its_verdict_in_the_domains_phrases(monkeypatch):
    from medviz import ladine
    from medviz.ui.tabs.explain import ladine_line

    shape = ladine.LaDiNEConfig(labels=("no melanoma", "melanoma"), image_size=32, patch_size=8, hidden=32, layers=2,
                                heads=2, taps=(1, 2), denoiser_width=16, timesteps=100)
    beside = ladine.LaDiNE(ladine.build(shape).eval(), shape, "lad", samples=4, steps=2)
    pixels = np.zeros((32, 32, 3), np.float32)
    for predicted, phrase in ((0, "**benign nevus**"), (1, "**melanoma**")):
        answer = ladine.LaDiNEPrediction(np.array([0.3, 0.7]), predicted, 0.7, 0.2, 0.1)
        monkeypatch.setattr(beside, "predict", lambda images, answer=answer: [answer])
        assert phrase in ladine_line(beside, pixels, "skin") and "**uncertain** (paired t-test p = 0.20)" in \
            ladine_line(beside, pixels, "skin")
    assert "**melanoma**" in ladine_line(beside, pixels, None)             # no domain: its own class name
