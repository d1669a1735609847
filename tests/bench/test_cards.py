"""The model cards' writers (``medviz.bench.cards``): each bench's record in medviz.json, keyed by identifiers,
and only its own section of the README regenerated."""

import json


def _models_record(agreement: float, date: str = "2026-12-03") -> dict:
    """A models-bench card record (``medviz.bench.models.card_record``) with one prompt row."""
    return {"rows": [{"attribute": "hair", "prompt": "Dermoscopy image of a benign nevus with hair", "wanted": True,
                      "agreement": agreement, "fits_all": 0.125, "diversity_ratio": 0.75, "n_matching": 166,
                      "diversity_ratio_named_only": 0.3,
                      "meets": {"agreement": agreement >= 0.9, "diversity_ratio": True}}],
            "n": 64, "bars": {"agreement": 0.9, "diversity_ratio": 0.5},
            "settings": {"steps": 25, "guidance_scale": 4.0, "scheduler": "DDIM", "negative_prompt": ""},
            "fd_generated_vs_held_out": 10.0, "fd_blurred_held_out_vs_held_out": 20.0, "fd_held_out_half_vs_half": 1.0,
            "n_reference": 512, "vae_round_trip": {"psnr_db": 31.25, "attributes": {
                "hair": {"n_positive": 200, "recall": 0.875, "specificity": 0.99}}},
            "seed": 0, "date": date, "command": "python -m medviz.bench models --domain skin --write-card"}


def test_model_card_reports_the_bench_and_the_vae_round_trip(tmp_path):
    from medviz.bench.cards import write_model_card

    (tmp_path / "medviz.json").write_text(
        json.dumps(
            {
                "domain": "skin",
                "image_size": 128,
                "oracle": "../skin-oracle",
                "training": {"run1": {"command": "python -m medviz.train ..."}},
                "explain_calibration": {
                    "melanoma": {
                        "votes_needed": 12,
                        "trials": 21,
                        "vote_threshold": 0.5476,
                        "t_range": [400, 980],
                        "n": 120,
                        "first_seed": 10_901_000,
                        "accuracy_calibrated": 0.95,
                        "accuracy_majority": 0.925,
                    },
                    "melanoma on the engine's draws": {
                        "votes_needed": 15,
                        "trials": 21,
                        "vote_threshold": 0.6905,
                        "t_range": [500, 980],
                        "weighting": "uniform",
                        "n": 100,
                        "seed": 0,
                        "first_seed": 10_901_000,
                        "accuracy_calibrated": 0.98,
                        "accuracy_majority": 0.91,
                        "window_searched": False,
                        "window_fit": {"trials_run": 41, "accuracy_calibrated": 1.0, "accuracy_majority": 0.92},
                    },
                    "melanoma by mean error": {
                        "votes_needed": 25,
                        "trials": 41,
                        "vote_threshold": 0.5976,
                        "t_range": [500, 980],
                        "weighting": "uniform",
                        "n": 300,
                        "seed": 0,
                        "first_seed": 10_901_000,
                        "accuracy_calibrated": 0.98,
                        "accuracy_majority": 0.967,
                        "window_searched": False,
                        "decision": "mean_error",
                        "accuracy_mean_error": 0.99,
                        "mean_trials_run": 27.25,
                    },
                },
            }
        )
    )
    facts = json.loads((tmp_path / "medviz.json").read_text())
    facts["models_bench"] = _models_record(0.25)
    (tmp_path / "medviz.json").write_text(json.dumps(facts))
    text = write_model_card(tmp_path, limits=["Hair is faint."]).read_text()
    assert "| hair | Dermoscopy image of a benign nevus with hair | **25.0%** | 12.5% | 0.75 (166) | 0.30 |" in text
    assert "PSNR 31.2 dB" in text and "| hair | 200 | 87.5% | 99.0% |" in text
    assert "Samples: 64 per prompt, 25 DDIM steps, guidance 4.0, no negative prompt, seed 0." in text
    assert "- Hair is faint." in text and "not for diagnosis" in text
    assert ("**melanoma**: the first class needs 12 of 21 votes (`vote_threshold` 0.5476), trials drawn from "
            "timesteps 400–980 only, disagreement error weighting; fitted on 120 labelled tuning phantoms "
            "(seeds 10,901,000+" in text and "95.0% against 92.5%" in text)
    # A threshold fitted with the window given: both fits are named, and the draw set the threshold belongs to.
    assert ("the window comes from a whole-schedule fit (N = 41: 100.0% against 92.0% for the majority); the "
            "threshold was then fitted on 100 labelled tuning phantoms (seeds 10,901,000+, never the benches') with "
            "exactly the engine's draws (N = 21, seed 0): accuracy there 98.0% against 91.0%") in text
    assert "with N = 21 as the default trials" in text            # "k of N" is the tab's default N
    assert ("Decision rule: the mean-error rule over the trials the engine runs (they stop once that vote is "
            "decided, 27.2 of 41 on average there), chosen there for its accuracy, 99.0% against 98.0% for the "
            "vote.") in text
    assert text.count("Decision rule") == 1                        # fits without error differences name none


def test_record_calibration_replaces_the_tasks_fit_and_only_its_card_section(tmp_path):
    from medviz.bench.calibrate import calibration_command
    from medviz.bench.cards import CALIBRATION_HEADING, record_calibration, write_model_card

    window_fit = {"trials_run": 41, "accuracy_calibrated": 1.0, "accuracy_majority": 0.92}
    old = {"votes_needed": 12, "trials": 21, "vote_threshold": 0.5476, "t_range": [500, 980], "n": 120,
           "first_seed": 10_901_000, "seed": 0, "accuracy_calibrated": 0.95, "accuracy_majority": 0.925,
           "window_searched": False, "window_fit": window_fit}
    (tmp_path / "medviz.json").write_text(json.dumps({"domain": "skin", "image_size": 128, "explain_calibration": {
        "melanoma": old, "other task": {**old, "votes_needed": 3}}}))
    write_model_card(tmp_path, limits=["Hair is faint."])
    before = (tmp_path / "README.md").read_text()
    result = {"domain": "skin", "task": "melanoma", "votes_needed": 25, "trials": 41, "vote_threshold": 0.5976,
              "t_range": [500, 980], "weighting": "uniform", "n": 300, "positives": 121, "trials_run": 41,
              "trials_t_range": [500, 980], "window_searched": False, "first_seed": 10_901_000, "seed": 0,
              "accuracy_calibrated": 0.98, "accuracy_majority": 0.967, "accuracy_by_window": {"500-980": 0.98},
              "decision": "mean_error", "accuracy_mean_error": 0.99, "accuracy_mean_error_all_trials": 0.985,
              "mean_trials_run": 27.25}
    command = calibration_command(result)
    assert command == ("python -m medviz.bench calibrate --domain skin --n 300 --trials 41 --weighting uniform "
                       "--t-range 500 980 --threads 1")
    record_calibration(tmp_path, result, command)
    stored = json.loads((tmp_path / "medviz.json").read_text())["explain_calibration"]
    assert stored["melanoma"]["votes_needed"] == 25 and stored["melanoma"]["decision"] == "mean_error"
    assert stored["melanoma"]["window_fit"] == window_fit and stored["melanoma"]["command"] == command
    assert "accuracy_by_window" not in stored["melanoma"] and stored["other_task"]["votes_needed"] == 3
    after = (tmp_path / "README.md").read_text()
    # Only the calibration section changed, and it now says what medviz.json says.
    assert after.split(CALIBRATION_HEADING)[0] == before.split(CALIBRATION_HEADING)[0]
    assert after.split("## Limits")[1] == before.split("## Limits")[1]
    assert after.count(CALIBRATION_HEADING) == 1 and "\n\n## Limits" in after
    assert "needs 25 of 41 votes" in after and "needs 12 of 21 votes" not in after
    assert "Decision rule: the mean-error rule" in after and "needs 3 of 21 votes" in after
    assert after == (write_model_card(tmp_path, limits=["Hair is faint."]).read_text())   # as a full rewrite would


def test_record_engine_trials_keeps_the_fit_and_says_which_n_the_engine_runs_and_why(tmp_path):
    import pytest

    from medviz.bench.cards import record_engine_trials, write_model_card
    from medviz.engines.explain import calibrated_settings

    fit = {"votes_needed": 23, "trials": 41, "vote_threshold": 0.5488, "t_range": [500, 980], "weighting": "uniform",
           "n": 600, "positives": 244, "trials_run": 41, "window_searched": False, "first_seed": 10_901_000, "seed": 0,
           "accuracy_calibrated": 0.978, "accuracy_majority": 0.968, "decision": "vote", "accuracy_mean_error": 0.972,
           "mean_trials_run": 26.3, "command": "python -m medviz.bench calibrate --domain skin --n 600 --trials 41"}
    (tmp_path / "medviz.json").write_text(json.dumps({"domain": "skin", "image_size": 128,
                                                      "explain_calibration": {"melanoma": fit}}))
    write_model_card(tmp_path, limits=[])
    bench = {"task": "melanoma", "n": 400, "trials": 101, "vote_threshold": 0.5488, "t_range": [500, 980],
             "weighting": "uniform", "decision": "vote", "accuracy": 0.9925, "mean_trials": 60.2, "mean_passes": 722.4,
             "cost": {"points_behind_at_most": 0.5, "reference_trials": 501, "passes_saving": 8.3}}
    record_engine_trials(tmp_path, bench, "python -m medviz.bench classify --domain skin --trials 101")
    stored = json.loads((tmp_path / "medviz.json").read_text())["explain_calibration"]["melanoma"]
    assert stored["trials"] == 101 and stored["votes_needed"] == 56 and stored["trials_run"] == 41
    assert stored["accuracy_calibrated"] == 0.978 and stored["command"] == fit["command"]      # the fit is kept
    assert stored["engine_trials_bench"]["passes_saving"] == 8.3
    card = (tmp_path / "README.md").read_text()
    assert "needs 56 of 101 votes" in card and "exactly the engine's draws (N = 41, seed 0)" in card
    assert (
        "The engine runs N = 101 at that share of the votes, not the fit's N = 41: the classify bench on 400 "
        "held-out phantoms gave 99.25% (60.2 trials on average), at most 0.50 points behind N = 501 with 8.3x "
        "fewer UNet passes"
    ) in card
    assert (
        calibrated_settings(type("M", (), {"card": {"explain_calibration": {"melanoma": stored}}})(), "melanoma")[
            "trials"
        ]
        == 101
    )
    with pytest.raises(ValueError, match="not its operating point"):
        record_engine_trials(tmp_path, {**bench, "vote_threshold": 0.5}, "x")
    with pytest.raises(ValueError, match="run calibrate first"):
        record_engine_trials(tmp_path, {**bench, "task": "other"}, "x")
    # A bench at the N the share was fitted at: the card gives its held-out figure, and no "not the fit's N".
    (tmp_path / "medviz.json").write_text(json.dumps({"domain": "skin", "image_size": 128,
                                                      "explain_calibration": {"melanoma": {**fit, "trials": 101,
                                                                                           "trials_run": 101}}}))
    record_engine_trials(tmp_path, {**bench, "cost": {}}, "python -m medviz.bench classify --domain skin")
    card = write_model_card(tmp_path, limits=[]).read_text()
    assert ("At that N the classify bench on 400 held-out phantoms gave 99.25% (60.2 trials on average) "
            "(`python -m medviz.bench classify --domain skin`).") in card and "not the fit's N" not in card
    stored = json.loads((tmp_path / "medviz.json").read_text())["explain_calibration"]["melanoma"]
    assert len(stored["engine_trials_bench"]["date"]) == 10                      # ISO date of the run


def test_record_edit_bench_replaces_its_edits_and_only_its_card_section(tmp_path):
    from medviz.bench.cards import CALIBRATION_HEADING, EDIT_BENCH_HEADING, record_edit_bench, write_model_card

    def record(faithfulness, date, attribute="ruler"):
        return {"action": "remove", "attributes": [attribute], "n": 100, "effectiveness": 0.88,
                "preservation_all": 0.94, "faithfulness": faithfulness, "faithfulness_near_truth": 0.98,
                "mask_iou_mean": 0.2, "edited_iou_mean": 0.3, "mean_passes": 89.0,
                "meets": {"effectiveness": False, "preservation_all": False, "faithfulness": faithfulness >= 0.8},
                "bars": {"effectiveness": 0.9, "preservation_all": 0.95, "faithfulness": 0.8}, "near_truth_px": 2,
                "settings": {"steps": 30, "strength": 0.9, "guidance_scale": 6.0, "mask_mode": "auto",
                             "mask_threshold": 0.4, "mask_draws": 8, "change_threshold": 0.0},
                "date": date, "command": "python -m medviz.bench counterfactual --domain skin --write-card"}

    calibration = {"votes_needed": 12, "trials": 21, "vote_threshold": 0.5476, "t_range": [500, 980], "n": 120,
                   "first_seed": 10_901_000, "seed": 0, "accuracy_calibrated": 0.95, "accuracy_majority": 0.925}
    (tmp_path / "medviz.json").write_text(json.dumps({"domain": "skin", "image_size": 128,
                                                      "explain_calibration": {"melanoma": calibration}}))
    write_model_card(tmp_path, limits=["Hair is faint."])
    before = (tmp_path / "README.md").read_text()
    record_edit_bench(tmp_path, {"remove ruler": record(0.79, "2026-12-02"),
                                 "remove hair": record(0.54, "2026-12-02", "hair")})
    assert (tmp_path / "README.md").read_text() == write_model_card(tmp_path, limits=["Hair is faint."]).read_text()
    record_edit_bench(tmp_path, {"remove ruler": record(0.85, "2026-12-03")})
    stored = json.loads((tmp_path / "medviz.json").read_text())
    assert stored["edit_bench"]["remove_ruler"]["faithfulness"] == 0.85 and "remove_hair" in stored["edit_bench"]
    assert stored["explain_calibration"]["melanoma"] == calibration
    after = (tmp_path / "README.md").read_text()
    # The new section sits before the limits; the calibration section and everything else are as they were.
    assert after.split(EDIT_BENCH_HEADING)[0] == before.split("## Limits")[0]
    assert after.split("## Limits")[1] == before.split("## Limits")[1] and CALIBRATION_HEADING in after
    section = after.split(EDIT_BENCH_HEADING)[1].split("\n## ")[0]
    assert "| remove ruler markings | 100 | **88%** (below the bar) | **94%** (below the bar) | 85% | 98% |" in section
    assert "| remove hair | 100 |" in section and "2026-12-02" in section and "| 2026-12-03 |" in section
    assert after.count(EDIT_BENCH_HEADING) == 1 and "Bars: effective >= 90%, kept >= 95%, faithful >= 80%" in after
    assert after == write_model_card(tmp_path, limits=["Hair is faint."]).read_text()     # as a full rewrite would


def test_record_models_bench_replaces_only_its_card_section(tmp_path):
    from medviz.bench.cards import EDIT_BENCH_HEADING, MODELS_BENCH_HEADING, record_models_bench, write_model_card

    (tmp_path / "medviz.json").write_text(json.dumps({"domain": "skin", "image_size": 128}))
    write_model_card(tmp_path, limits=["Hair is faint."])
    before = (tmp_path / "README.md").read_text()
    record_models_bench(tmp_path, _models_record(0.03, "2026-12-02"))
    first = (tmp_path / "README.md").read_text()
    assert first == write_model_card(tmp_path, limits=["Hair is faint."]).read_text()   # as a full rewrite would
    assert first.split(MODELS_BENCH_HEADING)[0] == before.split("## Limits")[0]
    record_models_bench(tmp_path, _models_record(0.97))
    after = (tmp_path / "README.md").read_text()
    assert after.count(MODELS_BENCH_HEADING) == 1 and "| 97.0% |" in after and "**3.0%**" not in after
    assert "(2026-12-03)" in after and EDIT_BENCH_HEADING not in after
    assert after.split("## Limits")[1] == before.split("## Limits")[1]
    assert after == write_model_card(tmp_path, limits=["Hair is faint."]).read_text()
