"""The progression bench's scoring on made-up predictions whose figures are known."""

import json

import numpy as np

from medviz import progression
from medviz.bench import progression as B
from medviz.bench.__main__ import main
from medviz.phantoms import trial as world


def test_a_model_that_draws_the_truth_with_a_band_scores_zero_error_full_coverage_and_finds_the_responders():
    patients = world.trial(40, B.HELD_OUT_FIRST_SEED)
    true = B.truth(patients)                                                   # (N, arms, horizons)
    spread = np.linspace(-0.01, 0.01, 21)[:, None, None, None]
    sizes = true[None] + spread                                                # 21 paths around the truth
    row = B.score(sizes, true, patients)
    assert all(abs(v) < 1e-9 for v in row["error_factual"])
    assert row["coverage_factual"] == row["coverage_counterfactual"] == 1.0 and row["pehe"] < 1e-9
    effect = true[:, 1, 1] - true[:, 0, 1]            # diuretic - none at day 14: every path carries it exactly
    called = effect < -B.RESPONSE_MARGIN
    assert row["confident_responders"] == int(called.sum()) > 0
    assert row["confident_responders_in_subgroup"] == np.array([p.responder for p in patients])[called].mean()


def test_a_shifted_model_is_off_by_its_shift_and_its_narrow_band_misses():
    patients = world.trial(20, B.HELD_OUT_FIRST_SEED)
    true = B.truth(patients)
    sizes = np.repeat(true[None] + 0.1, 5, 0)
    row = B.score(sizes, true, patients)
    assert all(abs(v - 0.1) < 1e-9 for v in row["error_counterfactual"])
    assert row["coverage_factual"] == 0.0 and row["pehe"] < 1e-9                # the effect is still right


def test_a_deterministic_course_has_no_band_and_no_confidence():
    patients = world.trial(10, B.HELD_OUT_FIRST_SEED)
    true = B.truth(patients)
    row = B.score(true[None] + 0.05, true, patients)
    assert row["coverage_factual"] is None and row["confident_responders"] is None
    assert all(abs(v - 0.05) < 1e-9 for v in row["error_factual"])


def test_seeds_of_a_setting_are_averaged_and_each_sde_setting_is_judged_against_every_baseline():
    def row(setting, baseline, error, pehe):
        return {"setting": setting, "model_kind": "sde", "fusion": "x", "baseline": baseline, "pehe": pehe,
                "error_factual": [error, error], "error_counterfactual": [error, error + 0.01],
                "coverage_factual": 0.9, "coverage_counterfactual": 0.9, "confident_responders": 3,
                "confident_responders_in_subgroup": 1.0}

    rows = [row("hyper", False, 0.10, 0.10), row("hyper", False, 0.12, 0.14), row("mlp", True, 0.13, 0.2),
            row("film", False, 0.2, 0.05)]
    settings = B.families(rows)
    hyper = settings[0]
    assert hyper["seeds"] == 2 and np.allclose(hyper["error_factual"], [0.11, 0.11])
    assert np.allclose(hyper["pehe"], 0.12) and np.allclose(hyper["pehe_sd"], 0.02)
    decided = B.verdicts(settings)
    assert decided["hyper"] == {"beats_every_baseline_at_every_horizon": True, "lower_pehe_than_every_baseline": True,
                                "baselines": ["mlp"]}
    assert decided["film"]["beats_every_baseline_at_every_horizon"] is False
    assert decided["film"]["lower_pehe_than_every_baseline"] is True and "mlp" not in decided


def test_the_bench_scores_folders_writes_json_figure_and_the_card(tmp_path):
    import torch

    torch.manual_seed(0)
    tiny = dict(image_size=32, latent=4, width=16, embedding=4, dt_days=2.0)
    folders = []
    for name, fields in (("hyperfusion-s0", {}), ("hyperfusion-s1", {}), ("gru", {"model": "gru"}),
                         ("image_only", {"fusion": "image_only"})):
        folder = tmp_path / name
        progression.save(progression.build(progression.ProgressionConfig(**tiny, **fields)).eval(),
                         progression.ProgressionConfig(**tiny, **fields), folder, {"trained_on": "nothing"})
        folders.append(str(folder))
    out = tmp_path / "bench.json"
    assert main(["progression", "--models", *folders, "--n", "6", "--paths", "10", "--json", str(out),
                 "--figure", str(tmp_path / "p.png"), "--write-card", folders[0]]) == 0
    result = json.loads(out.read_text())
    assert [s["setting"] for s in result["settings"]] == ["hyperfusion", "gru", "image_only"]
    assert [s["baseline"] for s in result["settings"]] == [False, True, True]
    assert result["settings"][0]["seeds"] == 2 and result["settings"][1]["coverage_factual"] is None
    assert set(result["verdicts"]) == {"hyperfusion"} and result["verdicts"]["hyperfusion"]["baselines"] == [
        "gru", "image_only"]
    card = json.loads((tmp_path / "hyperfusion-s0" / "medviz_progression.json").read_text())
    assert card["bench"]["n"] == 6 and card["bench"]["setting"] == "hyperfusion" and card["trained_on"] == "nothing"
    assert 0 < card["bench"]["seconds_one_patient_alone"] < 2
    readme = (tmp_path / "hyperfusion-s0" / "README.md").read_text()
    assert "| gru (baseline) | 1 | " in readme and "| hyperfusion | 2 | " in readme and "--write-card" in readme
    assert (tmp_path / "p.png").stat().st_size > 10_000
