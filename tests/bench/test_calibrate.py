import numpy as np
import pytest

from medviz.bench.calibrate import calibrate
from medviz.bench.classify import ClassifyBenchConfig


def test_calibrate_runs_every_trial_and_fits_an_operating_point_on_tuning_phantoms(tiny_cxr):
    rows = []
    result = calibrate("cxr", ClassifyBenchConfig(n=4, trials=3), model=tiny_cxr, on_row=lambda i, r: rows.append(r))
    assert result["first_seed"] == 10_901_000 and result["n"] == 4 and len(rows) == 4 and result["trials_run"] == 3
    assert all(len(r["timesteps"]) == len(r["first_class_won"]) == 3 for r in rows)   # no early stop
    assert all(r["votes_first_class"] == sum(r["first_class_won"]) for r in rows)
    lo, hi = result["t_range"]
    assert 20 <= lo < hi <= 980 and result["trials"] == 21
    assert result["accuracy_calibrated"] == max(result["accuracy_by_window"].values()) >= result["accuracy_majority"]
    # The uncalibrated engine, recomputed from the printed rows: majority of all 3 trials.
    assert result["accuracy_majority"] == np.mean([(sum(r["first_class_won"]) >= 2) == r["truth"] for r in rows])


def test_fit_operating_point_finds_the_informative_timesteps():
    from medviz.bench.calibrate import fit_operating_point

    rng = np.random.default_rng(0)
    n, trials = 200, 41
    truth = rng.random(n) < 0.4
    timesteps = np.tile(np.linspace(20, 980, trials).round(), (n, 1))
    # Trials at t >= 500 vote for the truth 90% of the time; the rest vote "first class" 5% of the time (as
    # the skin model's low-t trials call melanomas benign).
    informative = timesteps >= 500
    first_won = np.where(informative, (rng.random((n, trials)) < 0.9) == truth[:, None], rng.random((n, trials)) < 0.05)
    fit = fit_operating_point(truth, timesteps, first_won, 21, (20, 980))
    lo, hi = fit["t_range"]
    assert 300 <= lo <= 600 and hi >= 900          # most misleading trials left out (ties go to wider windows)
    assert fit["accuracy_calibrated"] >= 0.98 > fit["accuracy_majority"] + 0.05
    from medviz.engines.explain import votes_needed

    assert votes_needed(21, fit["vote_threshold"]) == fit["votes_needed"]     # the stored share gives k back
    # All trials informative: the whole schedule and the plain majority are kept (ties prefer them).
    everywhere = (rng.random((n, trials)) < 0.9) == truth[:, None]
    fit = fit_operating_point(truth, timesteps, everywhere, 21, (20, 980))
    assert fit["t_range"] == [20, 980] and fit["votes_needed"] == 11


def test_calibrate_with_a_given_window_uses_the_engines_own_draws_and_fits_only_the_threshold(tiny_cxr):
    from medviz.bench.calibrate import TUNING_SEED_OFFSET
    from medviz.bench.truth import labelled_phantoms
    from medviz.engines.explain import ExplainConfig, classify, preset, votes_needed

    rows = []
    result = calibrate("cxr", ClassifyBenchConfig(n=3, trials=5), model=tiny_cxr, weighting="uniform",
                       t_range=(500, 980), on_row=lambda i, r: rows.append(r))
    assert result["t_range"] == result["trials_t_range"] == [500, 980] and not result["window_searched"]
    assert list(result["accuracy_by_window"]) == ["500-980"] and result["trials"] == 5   # N is the engine's
    assert votes_needed(5, result["vote_threshold"]) == result["votes_needed"]
    assert result["accuracy_calibrated"] >= result["accuracy_majority"]
    # Row 0 holds exactly what the engine does with that operating point: same timesteps, same winners.
    labels, prompts = preset("cxr", "pleural_effusion")
    _, images, _ = labelled_phantoms("cxr", 1, tiny_cxr.image_size, TUNING_SEED_OFFSET, "pleural_effusion")
    engine = classify(tiny_cxr, images[0].astype(np.float32) / 255.0,
                      ExplainConfig(prompts=prompts, labels=labels, trials=5, early_stop=False, t_range=(500, 980),
                                    weighting="uniform"))
    assert engine.timesteps.tolist() == rows[0]["timesteps"] and all(500 <= t <= 980 for t in rows[0]["timesteps"])
    assert (engine.errors.argmin(1) == 0).astype(int).tolist() == rows[0]["first_class_won"]
    np.testing.assert_allclose(rows[0]["error_difference"], engine.errors[:, 0] - engine.errors[:, 1], rtol=1e-5)
    # The mean-error rule is scored over the trials the engine runs before its early stop at that threshold.
    assert result["decision"] in ("vote", "mean_error") and 0 <= result["accuracy_mean_error"] <= 1
    assert 1 <= result["mean_trials_run"] <= 5


def test_fit_chooses_the_mean_error_rule_only_when_it_beats_the_vote_on_the_engines_trials():
    from medviz.bench.calibrate import fit_operating_point

    rng = np.random.default_rng(1)
    n, trials = 300, 21
    truth = rng.random(n) < 0.5
    timesteps = np.tile(np.arange(trials) * 40 + 500, (n, 1))
    # Every trial votes for the truth 60% of the time (a thin vote), while the error difference carries a
    # clear signal in its size: the mean error sees through the vote noise.
    first_won = (rng.random((n, trials)) < 0.6) == truth[:, None]
    size = np.where(first_won == truth[:, None], 1.0, 0.2)          # right votes by wide margins, wrong by thin
    difference = np.where(first_won, -size, size)                     # < 0: the first class denoised better
    fit = fit_operating_point(truth, timesteps, first_won, trials, (500, 1300), windows=[(500, 1300)],
                              error_difference=difference)
    assert fit["decision"] == "mean_error" and fit["accuracy_mean_error"] > fit["accuracy_calibrated"]
    # Replayed by hand: the engine stops where the vote at k is decided, the mean error over those trials.
    from medviz.engines.explain import trials_run_until_decided

    stops = [trials_run_until_decided(w, trials, fit["vote_threshold"]) for w in first_won]
    by_hand = np.mean([(d[:s].mean() < 0) == t for d, s, t in zip(difference, stops, truth)])
    assert fit["accuracy_mean_error"] == by_hand and fit["mean_trials_run"] == np.mean(stops) < trials
    # Errors unrelated to the image: the vote wins and is kept.
    fit = fit_operating_point(truth, timesteps, first_won, trials, (500, 1300), windows=[(500, 1300)],
                              error_difference=rng.normal(size=(n, trials)))
    assert fit["decision"] == "vote" and fit["accuracy_mean_error"] <= fit["accuracy_calibrated"]
    # A searched window: the trials are not the engine's, so nothing is replayed.
    fit = fit_operating_point(truth, timesteps, first_won, trials, (500, 1300), error_difference=difference)
    assert fit["decision"] == "vote" and "accuracy_mean_error" not in fit


def _bundled_copy(folder, name: str):
    """``folder/name``: the bundled CXR model with its own copy of the card (the weights linked, not copied), its
    oracle linked beside it as the card names it."""
    import shutil

    from medviz.models import MODELS_DIR

    copy = folder / name
    copy.mkdir()
    for entry in (MODELS_DIR / "cxr-phantom").iterdir():
        if entry.name in ("medviz.json", "README.md"):
            shutil.copy2(entry, copy / entry.name)
        else:
            (copy / entry.name).symlink_to(entry)
    (folder / "cxr-oracle").symlink_to(MODELS_DIR / "cxr-oracle")
    return copy


def test_calibrate_cli_writes_the_fit_to_the_model_card_when_asked(tmp_path, monkeypatch, capsys):
    import json

    from medviz.bench.__main__ import main
    from medviz.models import MODELS_DIR

    card = _bundled_copy(tmp_path, "cxr-phantom")
    monkeypatch.setattr("medviz.models.MODELS_DIR", tmp_path)
    main(["calibrate", "--domain", "cxr", "--n", "2", "--trials", "3", "--t-range", "500", "980"])
    assert json.loads((card / "medviz.json").read_text()) == json.loads(
        (MODELS_DIR / "cxr-phantom" / "medviz.json").read_text()
    )
    main(["calibrate", "--domain", "cxr", "--n", "2", "--trials", "3", "--t-range", "500", "980", "--write-card"])
    fit = json.loads((card / "medviz.json").read_text())["explain_calibration"]["pleural_effusion"]
    assert fit["trials"] == 3 and fit["n"] == 2 and fit["t_range"] == [500, 980] and "decision" in fit
    assert fit["command"].startswith("python -m medviz.bench calibrate --domain cxr --n 2 --trials 3")
    assert "needs {} of 3 votes".format(fit["votes_needed"]) in (card / "README.md").read_text()
    assert "written to the cxr-phantom model card" in capsys.readouterr().out


def test_calibrate_measures_and_cards_a_candidate_pipeline_given_by_model(tmp_path, capsys):
    import json

    from medviz.bench.__main__ import main
    from medviz.models import MODELS_DIR

    candidate = _bundled_copy(tmp_path, "cxr-candidate")   # a pipeline folder outside the bundled models
    bundled = (MODELS_DIR / "cxr-phantom" / "medviz.json").read_text()
    main(["calibrate", "--domain", "cxr", "--model", str(candidate), "--n", "2", "--trials", "3", "--t-range", "500",
          "980", "--write-card"])
    fit = json.loads((candidate / "medviz.json").read_text())["explain_calibration"]["pleural_effusion"]
    assert fit["command"].endswith(f"--model {candidate} --t-range 500 980 --threads 1")
    assert (MODELS_DIR / "cxr-phantom" / "medviz.json").read_text() == bundled
    assert "written to the cxr-candidate model card" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--model is one domain's pipeline: name its --domain"):
        main(["calibrate", "--model", str(candidate), "--n", "2"])
    with pytest.raises(SystemExit, match="is a cxr pipeline, not skin"):
        main(["calibrate", "--domain", "skin", "--model", str(candidate), "--n", "2"])
