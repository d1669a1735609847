import numpy as np
import pytest

from medviz.bench.classify import ClassifyBenchConfig, run_task
from medviz.bench.truth import toggled_region
from medviz.engines.explain import preset

PROMPTS_PER_TRIAL = sum(len(group) for group in preset("cxr", "pleural_effusion")[1])   # one UNet pass each


def test_true_changed_region_of_an_effusion_toggle_lies_in_the_lung_bases():
    mask = toggled_region("cxr", 10_200_000, "pleural_effusion", 128)
    assert mask.shape == (128, 128) and mask.dtype == bool
    assert 0.005 < mask.mean() < 0.5
    assert mask[64:].sum() > 3 * mask[:64].sum()           # fluid collects at the bases


def test_classify_bench_task_reports_every_figure(tiny_cxr):
    rows = []
    config = ClassifyBenchConfig(n=2, trials=3, n_cost=1, reference_trials=5)
    result = run_task("cxr", config, model=tiny_cxr, on_row=lambda i, row: rows.append((i, row)))
    # Image 0 is printed again once its cost runs are added, so that --resume keeps them.
    assert [i for i, _ in rows] == [0, 1, 0] and all(r["passes"] == PROMPTS_PER_TRIAL * r["trials"] for _, r in rows)
    assert "reference" not in rows[0][1] and "reference" not in rows[1][1]
    big, beside = rows[2][1]["reference"], rows[2][1]["beside_loop"]
    assert big["trials"] == big["trials_run"] == 5 and big["passes"] == 5 * PROMPTS_PER_TRIAL and not big["early_stop"]
    assert 0 <= big["votes_first_class"] <= 5
    assert beside["loop_passes"] == 3 * PROMPTS_PER_TRIAL and beside["engine"] == rows[2][1][result["decision"]]
    for key in ("accuracy_vote", "accuracy_mean_error", "accuracy_cnn", "accuracy_most_certain_half"):
        assert 0.0 <= result[key] <= 1.0
    assert 0.0 <= result["explanation_auc_mean"] <= 1.0 and 0.0 <= result["evidence_auc_mean"] <= 1.0
    cost = result["cost"]
    assert cost["n"] == 1 and cost["passes_reference_trials"] == 5 * PROMPTS_PER_TRIAL
    assert cost["passes_reference_loop"] == 3 * PROMPTS_PER_TRIAL
    assert cost["passes_saving"] == cost["passes_reference_trials"] / cost["passes_engine"] >= 5 / 3
    assert cost["n_ran"] == 1 and cost["n_all"] == 2
    assert cost["accuracy_reference_all_at_least"] <= 0.5 <= cost["accuracy_reference_all_at_most"]
    assert result["cases"] and {"image", "explanation", "evidence", "uncertainty", "caption"} <= set(result["cases"][0])


def test_wallclock_sample_is_spread_over_the_set_and_timed_side_by_side(tiny_cxr, capsys):
    from medviz.bench.classify import print_table

    result = run_task("cxr", ClassifyBenchConfig(n=5, trials=3, n_cost=0, n_wallclock=3), model=tiny_cxr)
    clock = result["wallclock"]
    assert clock["images"] == [0, 2, 4] and clock["n"] == 3                  # first, middle, last
    assert clock["decisions_agree"] == 1.0                                    # an exact stop keeps every decision
    assert clock["seconds_engine"] > 0 and clock["seconds_reference_loop"] > 0
    assert clock["speedup_vs_reference_loop"] == clock["seconds_reference_loop"] / clock["seconds_engine"]
    assert 1 <= clock["mean_trials_engine"] <= 3
    print_table([result])
    assert "wall-clock on 3 images spread over all 5" in capsys.readouterr().out
    assert run_task("cxr", ClassifyBenchConfig(n=2, trials=3, n_cost=0), model=tiny_cxr)["wallclock"] is None


def test_classify_bench_runs_at_the_n_the_model_card_was_fitted_at(tiny_cxr, monkeypatch):
    fit = tiny_cxr.card["explain_calibration"]["pleural_effusion"]
    monkeypatch.setitem(fit, "trials", 5)
    rows = []
    result = run_task("cxr", ClassifyBenchConfig(n=1, n_cost=0), model=tiny_cxr,
                      on_row=lambda i, row: rows.append(row))
    assert (
        result["trials"] == 5 and rows[0]["trials"] <= 5 and rows[0]["passes"] == PROMPTS_PER_TRIAL * rows[0]["trials"]
    )
    assert result["vote_threshold"] == fit["vote_threshold"]
    explicit = run_task("cxr", ClassifyBenchConfig(n=1, trials=3, n_cost=0), model=tiny_cxr)
    assert explicit["trials"] == 3  # --trials overrides the card's N
    assert (
        run_task("cxr", ClassifyBenchConfig(n=1, n_cost=0, calibrated=False), model=tiny_cxr, done_rows={0: rows[0]})[
            "trials"
        ]
        == 21
    )  # no card fit: the engine's default N


def test_classify_bench_scores_the_cards_decision_rule(tiny_cxr, monkeypatch, capsys):
    from medviz.bench.classify import print_table

    fit = tiny_cxr.card["explain_calibration"]["pleural_effusion"]
    truth = [True, False, True, False]
    # Rows where the vote and the mean-error rule disagree: image i's vote is right for i < 3, its mean error for i > 0.
    done = {i: {"truth": t, "vote": t if i < 3 else not t, "mean_error": t if i > 0 else not t, "z": float(i),
                "entropy": 0.5, "trials": 3, "passes": 24, "seconds": 0.1, "explanation_auc": 0.9,
                "evidence_auc": 0.6, "vote_fraction_positive": 0.5} for i, t in enumerate(truth)}
    monkeypatch.setattr("medviz.bench.classify.labelled_phantoms",
                        lambda domain, n, size, offset, attribute: (0, np.zeros((n, size, size), np.uint8),
                                                                   np.array(truth[:n])))
    monkeypatch.setattr("medviz.bench.classify.toggled_region", lambda *a: np.zeros((128, 128), bool))
    results = {}
    for decision in ("vote", "mean_error"):
        monkeypatch.setitem(fit, "decision", decision)
        results[decision] = run_task("cxr", ClassifyBenchConfig(n=4, trials=3, n_cost=0), model=tiny_cxr,
                                     done_rows=done)
    for decision, result in results.items():
        assert result["decision"] == decision and result["accuracy_vote"] == 0.75 == result["accuracy_mean_error"]
        assert result["accuracy"] == 0.75
        # The most certain half (|z| 3 and 2): image 3 is wrong by the vote, right by the mean error.
        assert result["accuracy_most_certain_half"] == (0.5 if decision == "vote" else 1.0)
        # Figure cases follow the rule: the wrong one is image 3 under the vote, image 0 under the mean error.
        wrong = [c for c in result["cases"] if not c["correct"]]
        assert len(wrong) == 1 and wrong[0]["caption"].startswith(
            "truth: no effusion\nvote" if decision == "vote" else "truth: effusion\nmean error")
    print_table(list(results.values()))
    assert "mean_error" in capsys.readouterr().out


def test_resume_keeps_printed_rows_and_recomputes_only_the_rest(tiny_cxr, tmp_path):
    import json

    import pytest

    from medviz import domains
    from medviz.bench.classify import FIRST_SEED_OFFSET, TASKS, read_rows
    from medviz.train.data import render_phantoms
    from medviz.train.oracle import HELD_OUT_FIRST_SEED

    _, factors = render_phantoms("cxr", 1, 128, HELD_OUT_FIRST_SEED + FIRST_SEED_OFFSET, workers=1)
    truth = bool(domains.get("cxr").attributes_of(factors[0])[domains.get("cxr").presets[TASKS["cxr"]].attribute])
    config = ClassifyBenchConfig(n=2, trials=3, n_cost=0)
    printed = tmp_path / "bench.log"
    first = {"truth": truth, "vote": truth, "mean_error": truth, "z": 9.0, "entropy": 0.0, "trials": 3, "passes": 24,
             "seconds": 0.1, "explanation_auc": float("nan"), "vote_fraction_positive": float(truth)}
    printed.write_text(f"noise line\ncxr 0: {json.dumps(first)}\nskin 1: {json.dumps(first)}\n")
    done = read_rows(str(printed), "cxr")
    assert list(done) == [0] and done[0]["z"] == 9.0
    fresh = []
    result = run_task("cxr", config, model=tiny_cxr, done_rows=done, on_row=lambda i, row: fresh.append(i))
    assert fresh == [1] and result["cost"] is None               # image 0 was taken from the printout
    with pytest.raises(ValueError, match="another run"):
        run_task("cxr", config, model=tiny_cxr, done_rows={0: {**first, "truth": not truth}})


def test_shards_split_the_images_and_their_logs_make_the_summary(tiny_cxr, tmp_path):
    import pytest

    from medviz.bench.__main__ import main

    shards = [run_task("cxr", ClassifyBenchConfig(n=3, trials=3, n_cost=0, shard=(k, 2)), model=tiny_cxr)
              for k in (0, 1)]
    assert [sorted(s["rows"]) for s in shards] == [[0, 2], [1]]           # i % 2 == k, rows only
    assert all(set(s) == {"shard", "rows"} for s in shards)
    fresh = []
    merged = {**shards[0]["rows"], **shards[1]["rows"]}
    summary = run_task("cxr", ClassifyBenchConfig(n=3, trials=3, n_cost=0), model=tiny_cxr, done_rows=merged,
                       on_row=lambda i, row: fresh.append(i))
    assert fresh == []                                                       # nothing classified twice
    assert summary["accuracy_vote"] == sum(r["vote"] == r["truth"] for r in merged.values()) / 3
    with pytest.raises(ValueError, match="bad shard"):
        run_task("cxr", ClassifyBenchConfig(n=3, shard=(2, 2)), model=tiny_cxr)
    with pytest.raises(SystemExit):
        main(["classify", "--shard", "2/2"])


def test_rows_keep_both_rules_apart_whichever_the_card_picks(tiny_cxr, monkeypatch):
    from types import SimpleNamespace

    import medviz.bench.classify as bench

    fit = tiny_cxr.card["explain_calibration"]["pleural_effusion"]
    monkeypatch.setitem(fit, "decision", "mean_error")
    # The vote says the first class, the mean error the second: the card's answer is the mean error's.
    fake = SimpleNamespace(predicted=1, predicted_vote=0, predicted_mean_error=1, z_score=1.0, vote_entropy=1.0,
                           trials_run=3, unet_passes=12, seconds=0.1, vote_fractions=np.array([2 / 3, 1 / 3]),
                           explanation_map=np.zeros((32, 32), np.float32), evidence_map=np.zeros((32, 32), np.float32))
    monkeypatch.setattr(bench, "classify", lambda *args, **kwargs: fake)
    rows = []
    run_task("cxr", ClassifyBenchConfig(n=1, trials=3, n_cost=0, shard=(0, 2)), model=tiny_cxr,
             on_row=lambda i, row: rows.append(row))
    assert rows[0]["vote"] is True and rows[0]["mean_error"] is False


def test_reference_on_the_engines_errors_bounds_its_accuracy_on_all_images():
    from medviz.bench.classify import _cost
    from medviz.engines.explain import ExplainConfig

    def row(truth, engine_right, reference_right=None):
        answer = truth if engine_right else not truth
        r = {"truth": truth, "mean_error": answer, "vote": answer, "trials": 5, "passes": 20}
        if reference_right is not None:
            answer = truth if reference_right else not truth
            r["reference"] = {"trials": 501, "early_stop": False, "trials_run": 501, "vote": answer,
                              "mean_error": answer, "passes": 2004, "seconds": 1.0,
                              "votes_first_class": 300 if truth else 200}       # the majority is always right
            r["beside_loop"] = {"engine": r["mean_error"], "engine_passes": 20, "engine_seconds": 1.0,
                                "loop_vote": r["mean_error"], "loop_passes": 84, "loop_seconds": 2.0}
        return r

    # 10 images: the engine is wrong on 3; N = 501 ran on the first 2 (both right) and on the 3 errors (2 right).
    rows = (
        [row(True, True, True), row(False, True, True)]
        + [row(True, True)] * 5
        + [row(True, False, True), row(True, False, True), row(False, False, False)]
    )
    reference = ExplainConfig(prompts=(("a", "b"), ("c", "d")), trials=501, early_stop=False)  # 4 prompts
    cost = _cost(rows, "mean_error", reference, ClassifyBenchConfig(n=10, n_cost=2, reference_on_errors=True))
    assert cost["ran_every_engine_error"] and cost["n_ran"] == 5 and cost["n"] == 2
    assert cost["accuracy_engine_all"] == 0.7
    assert cost["accuracy_reference_all_at_least"] == 0.4 and cost["accuracy_reference_all_at_most"] == 0.9
    assert abs(cost["points_behind_at_most"] - 20.0) < 1e-9
    assert cost["accuracy_reference_majority_all_at_most"] == 1.0
    assert cost["passes_reference_trials"] == 501 * 4 and cost["passes_engine"] == 20.0
    assert cost["speedup_vs_reference_loop"] == 2.0 and cost["accuracy_reference_trials"] == 1.0
    # Under the other rule (vote): the engine's vote is right where its mean-error rule is and also on images 7
    # and 8 (9 of 10); N = 501's vote is wrong on 7, 8 and 9, so it is right on at most 2 + 5 not run = 7 of 10.
    for i in (7, 8):
        rows[i] = {
            **rows[i],
            "vote": rows[i]["truth"],
            "reference": {**rows[i]["reference"], "vote": not rows[i]["truth"]},
        }
    other = _cost(rows, "mean_error", reference, ClassifyBenchConfig(n=10, n_cost=2))["other_rule"]
    assert other["rule"] == "vote" and other["accuracy_engine_all"] == 0.9
    assert other["accuracy_reference_all_at_most"] == 0.7 and abs(other["points_behind_at_most"] + 20.0) < 1e-9
    rows[-1] = row(False, False)                                  # an engine error N = 501 did not run on
    assert not _cost(rows, "mean_error", reference, ClassifyBenchConfig(n=10, n_cost=2))["ran_every_engine_error"]


def test_reference_runs_on_the_least_certain_images_and_on_the_errors(tiny_cxr, monkeypatch):
    from dataclasses import replace

    import medviz.bench.classify as bench

    truth = [True, False, True, False, True]
    # |z| per image; image 4 is the engine's only error.
    done = {
        i: {
            "truth": t,
            "vote": t if i < 4 else not t,
            "mean_error": t,
            "z": z,
            "entropy": 0.5,
            "trials": 3,
            "passes": 12,
            "seconds": 0.1,
            "explanation_auc": 0.9,
            "evidence_auc": 0.6,
            "vote_fraction_positive": 0.5,
        }
        for i, (t, z) in enumerate(zip(truth, (3.0, 0.5, 2.0, 0.1, 9.0)))
    }
    monkeypatch.setattr(
        bench,
        "labelled_phantoms",
        lambda domain, n, size, offset, attribute: (0, np.zeros((n, size, size), np.uint8), np.array(truth[:n])),
    )
    monkeypatch.setattr(
        bench,
        "_reference_fields",
        lambda model, pixels, engine, reference: {
            "reference": {
                "trials": reference.trials,
                "early_stop": reference.early_stop,
                "trials_run": reference.trials,
                "vote": True,
                "mean_error": True,
                "votes_first_class": 3,
                "passes": 20,
                "seconds": 1.0,
            }
        },
    )
    fit = tiny_cxr.card["explain_calibration"]["pleural_effusion"]
    monkeypatch.setitem(fit, "decision", "vote")
    ran = []
    config = ClassifyBenchConfig(n=5, trials=3, n_cost=0, reference_trials=5, reference_uncertain=2,
                                 reference_on_errors=True, shard=(0, 1))
    bench.run_task("cxr", config, model=tiny_cxr, done_rows=done, on_row=lambda i, row: ran.append(i))
    assert ran == [1, 3, 4]                               # the two smallest |z|, then the error
    ran.clear()
    shard = replace(config, shard=(1, 2))
    bench.run_task("cxr", shard, model=tiny_cxr, done_rows=done, on_row=lambda i, row: ran.append(i))
    assert ran == [1, 3]                                  # the same ranking, this shard's images only


def test_reference_runs_of_a_run_at_another_n_are_taken_without_their_loop_timing(tiny_cxr, monkeypatch):
    import pytest

    import medviz.bench.classify as bench

    def row(truth, reference_vote=None, loop=False):
        out = {"truth": truth, "vote": truth, "mean_error": truth, "z": 5.0, "entropy": 0.1, "trials": 3, "passes": 12,
               "seconds": 0.1, "explanation_auc": 0.9, "evidence_auc": 0.6, "vote_fraction_positive": float(truth)}
        if reference_vote is not None:
            out["reference"] = {"trials": 5, "early_stop": False, "trials_run": 5, "vote": reference_vote,
                                "mean_error": reference_vote, "votes_first_class": 4 if reference_vote else 1,
                                "passes": 20, "seconds": 1.0}
        if loop:
            out["beside_loop"] = {"engine": truth, "engine_passes": 12, "engine_seconds": 0.1, "loop_vote": truth,
                                  "loop_passes": 20, "loop_seconds": 0.3}
        return out

    rows = {0: row(True), 1: row(False), 2: row(True, reference_vote=True)}
    earlier = {0: row(True, reference_vote=False, loop=True), 2: row(True, reference_vote=False),
               3: row(False, reference_vote=False)}
    merged = bench.with_reference_runs(rows, earlier)
    assert merged[0]["reference"] == earlier[0]["reference"] and "beside_loop" not in merged[0]
    assert "reference" not in merged[1]                           # the earlier run had none for image 1
    assert merged[2]["reference"]["vote"] is True                 # a row's own run is kept
    assert set(merged) == {0, 1, 2} and "reference" not in rows[0]  # no rows added, input untouched
    with pytest.raises(ValueError, match="other phantoms"):
        bench.with_reference_runs(rows, {1: row(True, reference_vote=True)})

    # A taken run on one of the first n_cost images is redone, since the cost table needs the loop beside it.
    monkeypatch.setattr(bench, "labelled_phantoms",
                        lambda domain, n, size, offset, attribute: (0, np.zeros((n, size, size), np.uint8),
                                                         np.array([True, False, True][:n])))
    monkeypatch.setattr(bench, "_reference_fields", lambda model, pixels, engine, reference: {
        "reference": row(True, reference_vote=True)["reference"], "beside_loop": row(True, loop=True)["beside_loop"]})
    monkeypatch.setitem(tiny_cxr.card["explain_calibration"]["pleural_effusion"], "decision", "vote")
    ran = []
    config = ClassifyBenchConfig(n=3, trials=3, n_cost=1, reference_trials=5, reference_on_errors=True)
    result = bench.run_task("cxr", config, model=tiny_cxr, done_rows=merged, on_row=lambda i, r: ran.append(i))
    assert ran == [0]                                    # image 2 keeps its run, image 1 is right and not asked for
    assert result["cost"]["n_ran"] == 2 and result["cost"]["passes_reference_loop"] == 20.0


def test_reference_loop_agrees_with_the_batched_engine(tiny_cxr):
    from medviz.bench.classify import classify_reference
    from medviz.engines.explain import ExplainConfig, classify
    from tests.engines.test_explain import _phantom

    labels, prompts = preset("cxr", "pleural_effusion")
    image = _phantom(False, seed=10_000_500)
    config = ExplainConfig(prompts=prompts, labels=labels, trials=5, early_stop=False, trials_per_batch=4)
    batched = classify(tiny_cxr, image, config)
    winner, passes, _ = classify_reference(tiny_cxr, image, config)
    assert winner == batched.predicted and passes == 5 * PROMPTS_PER_TRIAL == batched.unet_passes


def test_classify_takes_a_candidate_pipeline_of_one_named_domain():
    from medviz.bench.__main__ import main

    with pytest.raises(SystemExit, match="--model is one domain's pipeline: name its --domain"):
        main(["classify", "--model", "cxr-phantom", "--n", "1"])
    with pytest.raises(SystemExit, match="--model cxr-phantom is a cxr pipeline, not skin"):
        main(["classify", "--domain", "skin", "--model", "cxr-phantom", "--n", "1"])
