import numpy as np
import pytest

from medviz.engines import Interrupted
from medviz.engines.explain import (DEFAULT_T_RANGE, ExplainConfig, calibrated_settings, classify, decision_is_final,
                                    fitted_trials, leader_is_final, preset, stratified_timesteps,
                                    trial_class_errors, trials_run_until_decided, trials_until_decidable, votes_needed)
from medviz.metrics import roc_auc
from medviz.phantoms import get_domain

LABELS, PROMPTS = preset("cxr", "pleural_effusion")
PROMPTS_PER_TRIAL = sum(len(group) for group in PROMPTS)      # every class's prompt set, one batched UNet call


def test_a_preset_is_found_by_its_identifier_or_its_ui_words():
    assert preset("cxr", "pleural effusion") == (LABELS, PROMPTS)
    assert preset("cxr", "pleural effusion (one prompt per class)") == preset("cxr", "pleural_effusion_one_prompt")
    assert preset("cxr", "pleural_effusions") is None and preset(None, "pleural_effusion") is None


def _phantom(effusion: bool, seed: int = 10_000_321, rendering: bool = False):
    cxr = get_domain("cxr")
    graph = cxr.build_graph()
    sample = graph.intervene(graph.sample(seed), effusion="bilateral" if effusion else "none",
                             effusion_severity=0.8)
    rendered = cxr.render(sample.factors, sample.seed, 128)
    return rendered if rendering else rendered.image


def test_stratified_timesteps_cover_every_stratum_once():
    rng = np.random.default_rng(0)
    steps = stratified_timesteps(9, (0, 899), rng)
    assert sorted(steps // 100) == list(range(9))
    assert len(set(steps[:3] // 300)) >= 2           # the order is shuffled, not ascending


def test_exact_early_stop_rule():
    assert leader_is_final(np.array([6, 0]), 5)
    assert not leader_is_final(np.array([6, 1]), 5)   # 1 + 5 = 6 ties: not final
    assert not leader_is_final(np.array([3, 3, 0]), 1)


def test_vote_threshold_needs_that_share_and_its_early_stop_is_exact():
    assert votes_needed(21, 0.5) == 11 and votes_needed(21, 7.5 / 21) == 8 and votes_needed(5, 0.01) == 1
    assert votes_needed(20, 0.4) == 8                  # exactly 40%: "at least" the share
    # With the plain majority and odd N the two-class stop is the leader rule, for every reachable count.
    for trials in (5, 21):
        for done in range(trials + 1):
            for first in range(done + 1):
                votes = np.array([first, done - first])
                assert decision_is_final(votes, trials - done, trials) == leader_is_final(votes, trials - done)
    assert decision_is_final(np.array([8, 2]), 11, 21, 7.5 / 21)       # 8 votes reached: final
    assert not decision_is_final(np.array([7, 9]), 5, 21, 7.5 / 21)    # 7 + 5 could still reach 8
    assert decision_is_final(np.array([2, 14]), 5, 21, 7.5 / 21)       # 2 + 5 < 8: cannot
    with pytest.raises(ValueError, match=r"share of the votes in \(0, 1\)"):
        ExplainConfig(prompts=("a", "b"), vote_threshold=1.0).validate()
    with pytest.raises(ValueError, match="exactly two classes"):
        ExplainConfig(prompts=("a", "b", "c"), vote_threshold=0.4).validate()


def test_vote_threshold_moves_the_decision_and_stays_exact_with_early_stop(tiny_cxr):
    image = _phantom(False, seed=10_000_400)
    full = classify(tiny_cxr, image, ExplainConfig(prompts=PROMPTS, trials=15, early_stop=False, trials_per_batch=4))
    first = int(round(full.vote_fractions[0] * 15))
    # The first class wins exactly when its count reaches the threshold's votes: at `first` votes it wins, at
    # `first + 1` it does not; early stop and the reference loop agree with the full count.
    for needed in sorted({max(first, 1), min(first + 1, 15)}):
        threshold = (needed - 0.5) / 15
        early = classify(tiny_cxr, image, ExplainConfig(prompts=PROMPTS, trials=15, trials_per_batch=4,
                                                         vote_threshold=threshold))
        assert early.predicted == (0 if first >= needed else 1)
        assert early.runner_up == 1 - early.predicted
        from medviz.bench.classify import classify_reference

        winner, _, _ = classify_reference(tiny_cxr, image, ExplainConfig(prompts=PROMPTS, trials=15, early_stop=False,
                                                                         trials_per_batch=4, vote_threshold=threshold))
        assert winner == early.predicted


def test_calibrated_settings_come_from_the_model_card_only(tiny_cxr):
    from types import SimpleNamespace

    stored = tiny_cxr.card["explain_calibration"]["pleural_effusion"]
    settings = calibrated_settings(tiny_cxr, "pleural_effusion")
    assert settings["vote_threshold"] == stored["vote_threshold"] and 0 < stored["vote_threshold"] < 1
    assert settings["weighting"] == stored["weighting"]
    assert settings["t_range"] == tuple(stored.get("t_range", DEFAULT_T_RANGE))
    assert settings["trials"] == stored["trials"]                     # "k of N votes" is fitted for one N
    ExplainConfig(prompts=PROMPTS, **settings).validate()                            # ready for the engine
    assert settings["decision"] == stored.get("decision", "vote")
    plain = {"weighting": "disagreement", "t_range": DEFAULT_T_RANGE, "vote_threshold": 0.5, "decision": "vote",
             "trials": 21}
    assert calibrated_settings(tiny_cxr, "cardiomegaly") == plain                   # not calibrated
    other = "uniform" if stored["weighting"] == "disagreement" else "disagreement"
    assert calibrated_settings(tiny_cxr, "pleural_effusion", other) == {**plain, "weighting": other}   # another rule
    assert calibrated_settings(SimpleNamespace(card={}), "pleural_effusion") == plain   # a user's checkpoint
    fitted = SimpleNamespace(card={"explain_calibration": {"melanoma": {
        "weighting": "uniform", "t_range": [400, 980], "vote_threshold": 0.6, "trials": 41, "decision": "mean_error"}}})
    assert calibrated_settings(fitted, "melanoma") == {"weighting": "uniform", "t_range": (400, 980),
                                                        "vote_threshold": 0.6, "decision": "mean_error", "trials": 41}
    assert fitted_trials(fitted, "melanoma") == 41                     # fitted and run at the same N
    moved = SimpleNamespace(card={"explain_calibration": {"melanoma": {
        **fitted.card["explain_calibration"]["melanoma"], "trials": 101, "trials_run": 41}}})
    assert calibrated_settings(moved, "melanoma")["trials"] == 101 and fitted_trials(moved, "melanoma") == 41
    assert fitted_trials(tiny_cxr, "cardiomegaly") is None and fitted_trials(SimpleNamespace(card={}), "x") is None


def test_maps_votes_and_passes_have_the_promised_shapes(tiny_cxr):
    result = classify(
        tiny_cxr, _phantom(True), ExplainConfig(prompts=PROMPTS, labels=LABELS, trials=7, early_stop=False)
    )
    assert result.explanation_map.shape == result.evidence_map.shape == result.uncertainty_map.shape == (32, 32)
    assert result.errors.shape == (7, 2) and result.timesteps.shape == (7,)
    assert result.unet_passes == PROMPTS_PER_TRIAL * 7 and result.vote_fractions.sum() == pytest.approx(1.0)
    assert result.explanation_map.min() >= 0 and result.certainty in ("high", "moderate", "low")
    assert result.label == LABELS[result.predicted] and result.runner_up == 1 - result.predicted


@pytest.mark.bundled
def test_classifies_clear_effusion_and_returns_maps(cxr_model):
    result = classify(cxr_model, _phantom(True), ExplainConfig(prompts=PROMPTS, labels=LABELS, trials=15))
    assert result.label == "effusion" and result.vote_fractions[0] > 0.5
    assert result.explanation_map.shape == result.uncertainty_map.shape == (128, 128)
    prompts_per_trial = sum(len(group) for group in ExplainConfig(prompts=PROMPTS).prompt_sets)
    assert prompts_per_trial == 4                      # 2 classes x 2 contexts (none, cardiomegaly)
    assert result.errors.shape == (result.trials_run, 2) and result.unet_passes == PROMPTS_PER_TRIAL * result.trials_run
    assert result.z_score > 0 and 0 <= result.vote_entropy <= 1
    # The explanation is strongest in the lung bases, where the fluid is (rows below the middle).
    explanation = result.explanation_map
    assert explanation[64:].mean() > explanation[:64].mean()
    clear = classify(cxr_model, _phantom(False), ExplainConfig(prompts=PROMPTS, labels=LABELS, trials=15))
    assert clear.label == "no effusion"


@pytest.mark.bundled
def test_explanation_map_finds_the_fluid_and_evidence_map_is_signed(cxr_model):
    from medviz.phantoms import mask_between

    with_fluid, without = _phantom(True, rendering=True), _phantom(False, rendering=True)
    truly_changed = mask_between(with_fluid, without)                 # the SCM's effusion toggle
    result = classify(cxr_model, with_fluid.image, ExplainConfig(prompts=PROMPTS, labels=LABELS, trials=15))
    assert result.label == "effusion" and result.runner_up == 1
    assert result.explanation_map.min() >= 0                            # a squared disagreement
    assert roc_auc(truly_changed, result.explanation_map) > 0.85
    # The evidence map is signed and, in the fluid, on average favours the winner.
    assert result.evidence_map.min() < 0 < result.evidence_map.max()
    assert result.evidence_map[truly_changed].mean() > 0


def test_disagreement_weighting_counts_only_where_the_class_prompts_differ():
    import torch

    # 1 trial, 2 classes x 2 aligned contexts, 1 channel, 1 x 4 pixels; the drawn noise is 0.
    noise = torch.zeros(1, 1, 1, 4)
    predictions = torch.tensor([[0.0, 0.0, 0.0, 0.9],      # class 0, context 0: wrong on the 4th pixel
                                [0.6, 0.6, 0.6, 0.0],      # class 0, context 1
                                [0.3, 0.3, 0.3, 0.0],      # class 1, context 0: wrong on pixels 1-3
                                [0.5, 0.5, 0.5, 0.1]]).view(1, 4, 1, 1, 4)
    sets = (("a", "a, x"), ("b", "b, x"))
    uniform, chosen_u, squared = trial_class_errors(predictions, noise, sets, "uniform")
    assert squared.shape == (1, 4, 1, 4)
    assert chosen_u.tolist() == [[0, 2]]                     # each class at its own best prompt
    np.testing.assert_allclose(uniform.numpy(), [[0.81 / 4, 0.27 / 4]], rtol=1e-5)     # class 1 wins
    weighted, chosen_w, _ = trial_class_errors(predictions, noise, sets, "disagreement")
    assert chosen_w.tolist() == [[0, 2]]                     # context 0 has the lowest summed error
    # Weights ~ (0.3^2, 0.3^2, 0.3^2, 0.9^2): the 4th pixel, where the classes differ most, decides.
    w = np.array([0.09, 0.09, 0.09, 0.81]) / 1.08
    np.testing.assert_allclose(weighted.numpy(), [[w[3] * 0.81, w[:3].sum() * 0.09]], rtol=1e-5)
    assert weighted[0, 0] > weighted[0, 1]                   # still class 1, by a larger weighted margin
    uneven, chosen_x, _ = trial_class_errors(predictions[:, :3], noise, (("a", "a, x"), ("b",)), "disagreement")
    assert chosen_x.tolist() == [[0, 2]]                     # unequal sets: each class's best prompt
    with pytest.raises(ValueError, match="weighting"):
        ExplainConfig(prompts=("a", "b"), weighting="median").validate()


def test_trials_until_decidable_is_the_earliest_possible_stop():
    assert trials_until_decidable(np.array([0, 0]), 21, 21) == 11            # a unanimous image: one round of 11
    assert trials_until_decidable(np.array([8, 3]), 10, 21) == 3             # 3 more for the first class decide
    assert trials_until_decidable(np.array([3, 8]), 10, 21) == 3             # symmetric
    assert trials_until_decidable(np.array([10, 9]), 2, 21) == 1
    assert trials_until_decidable(np.array([0, 0]), 21, 21, 7.5 / 21) == 8   # 8 votes decide at this threshold
    assert trials_until_decidable(np.array([7, 9]), 5, 21, 7.5 / 21) == 1
    assert trials_until_decidable(np.array([3, 3, 0]), 1, 7) == 1            # the last trial, whatever it gives
    assert trials_until_decidable(np.array([2, 1, 1]), 3, 7) == 2            # leader 4 > 2 + 1 after two more
    # Exact: for every reachable two-class count, no vote split of fewer trials makes the decision final.
    for threshold in (0.5, 7.5 / 21, 0.62):
        for done in range(21):
            for first in range(done + 1):
                votes = np.array([first, done - first])
                if decision_is_final(votes, 21 - done, 21, threshold):
                    continue
                extra = trials_until_decidable(votes, 21 - done, 21, threshold)
                assert 1 <= extra <= 21 - done
                assert not any(decision_is_final(votes + [a, extra - 1 - a], 21 - done - extra + 1, 21, threshold)
                               for a in range(extra))
                assert any(decision_is_final(votes + [a, extra - a], 21 - done - extra, 21, threshold)
                           for a in range(extra + 1))


def test_early_stop_is_exact_and_stops_at_the_first_decidable_trial(tiny_cxr):
    image = _phantom(True, seed=10_000_400)
    full = classify(tiny_cxr, image, ExplainConfig(prompts=PROMPTS, trials=31, early_stop=False, trials_per_batch=4))
    early = classify(tiny_cxr, image, ExplainConfig(prompts=PROMPTS, trials=31, early_stop=True, trials_per_batch=16))
    assert full.trials_run == 31 and early.predicted == full.predicted
    # The trial at which the full run's votes first make the decision final is where the engine stopped,
    # although it may put up to 16 trials into one round.
    winners = full.errors.argmin(1)
    counts = [np.bincount(winners[:k], minlength=2) for k in range(32)]
    first_final = next(k for k in range(1, 32) if decision_is_final(counts[k], 31 - k, 31))
    assert early.trials_run == first_final
    assert trials_run_until_decided(winners == 0, 31) == first_final           # the replay calibrate uses
    assert early.unet_passes == first_final * PROMPTS_PER_TRIAL
    # The same trials in the same order: the early run is a prefix of the full one.
    np.testing.assert_allclose(early.errors, full.errors[:early.trials_run], rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(early.timesteps, full.timesteps[:early.trials_run])


@pytest.mark.bundled
def test_one_prompt_per_class_preset_and_class_sets_agree_on_a_clear_case(cxr_model):
    labels, single = preset("cxr", "pleural_effusion_one_prompt")
    result = classify(cxr_model, _phantom(True), ExplainConfig(prompts=single, labels=labels, trials=9))
    assert result.label == "effusion" and result.unet_passes == 2 * result.trials_run


def test_progress_interrupt_and_bad_requests(tiny_cxr):
    image = _phantom(False)
    seen = []
    with pytest.raises(Interrupted):
        classify(tiny_cxr, image, ExplainConfig(prompts=PROMPTS, trials=21, trials_per_batch=4),
                 progress=lambda d, t: seen.append(d), should_stop=lambda: len(seen) >= 2)
    assert seen == [4, 8]
    with pytest.raises(ValueError, match="odd"):
        classify(tiny_cxr, image, ExplainConfig(prompts=PROMPTS, trials=10))
    with pytest.raises(ValueError, match="2 to 8"):
        classify(tiny_cxr, image, ExplainConfig(prompts=("only one",)))


@pytest.mark.bundled
def test_skin_artifact_contexts_stop_the_melanoma_prompt_explaining_hair_and_ink(skin_model):
    # A benign nevus with hair and ink markings from the tuning phantoms (seed 10,901,027): one prompt per
    # class calls it melanoma (the melanoma prompt explains the artifacts); with every artifact named on
    # both sides it is benign.
    skin = get_domain("skin")
    graph = skin.build_graph()
    sample = graph.sample(10_901_027)
    assert not sample.factors["melanoma"] and sample.factors["hair"] and sample.factors["ink"]
    image = skin.render(sample.factors, sample.seed, 128).image
    labels, sets = preset("skin", "melanoma")
    assert len(sets[0]) == len(sets[1]) == 6 and all("nevus" in p for p in sets[1])
    assert any("gel bubbles" in p for p in sets[0]) and any("gel bubbles" in p for p in sets[1])
    # All 21 trials: the vote share is then the N-trial share, not that of an early-stopped prefix.
    with_contexts = classify(skin_model, image, ExplainConfig(prompts=sets, labels=labels, trials=21, early_stop=False))
    labels_one, single = preset("skin", "melanoma_one_prompt")
    one_prompt = classify(skin_model, image, ExplainConfig(prompts=single, labels=labels_one, trials=21))
    assert with_contexts.label == "benign" and with_contexts.vote_fractions[1] > 0.8
    assert one_prompt.label == "melanoma"


def test_mean_error_rule_runs_the_votes_trials_and_takes_their_lowest_mean_error(tiny_cxr):
    image = _phantom(False, seed=10_000_400)
    by_vote = classify(tiny_cxr, image, ExplainConfig(prompts=PROMPTS, trials=15))
    by_mean = classify(tiny_cxr, image, ExplainConfig(prompts=PROMPTS, trials=15, decision="mean_error"))
    assert by_mean.trials_run == by_vote.trials_run and by_mean.predicted_vote == by_vote.predicted_vote
    expected = int(by_vote.errors.mean(0).argmin())
    assert by_mean.predicted == by_mean.predicted_mean_error == by_vote.predicted_mean_error == expected
    assert by_mean.runner_up == 1 - by_mean.predicted


@pytest.mark.bundled
def test_mean_error_decision_rule_decides_over_the_trials_the_vote_needed(cxr_model):
    image = _phantom(False, seed=10_000_400)
    # A low threshold flips this image's vote to "effusion" (see above) while its mean error still says "none".
    full = classify(cxr_model, image, ExplainConfig(prompts=PROMPTS, trials=15, early_stop=False, trials_per_batch=4))
    first = int(round(full.vote_fractions[0] * 15))
    threshold = (first - 0.5) / 15
    by_vote = classify(cxr_model, image, ExplainConfig(prompts=PROMPTS, trials=15, vote_threshold=threshold))
    by_mean = classify(cxr_model, image, ExplainConfig(prompts=PROMPTS, trials=15, vote_threshold=threshold,
                                                       decision="mean_error"))
    assert by_vote.predicted == by_vote.predicted_vote == 0
    # Same trials (the stop is the vote's under either rule), another decision rule.
    assert by_mean.trials_run == by_vote.trials_run and by_mean.predicted_vote == 0
    expected = int(by_vote.errors.mean(0).argmin())
    assert by_mean.predicted == by_mean.predicted_mean_error == by_vote.predicted_mean_error == expected
    assert by_mean.runner_up == 1 - by_mean.predicted
    # The rules disagree on this image; z and the evidence map are stated for each rule's winner against
    # its runner-up, so they change sign.
    assert by_mean.predicted == 1 != by_vote.predicted
    assert by_mean.z_score == pytest.approx(-by_vote.z_score) and by_mean.z_score > 0
    np.testing.assert_allclose(by_mean.evidence_map, -by_vote.evidence_map, atol=1e-6)
    with pytest.raises(ValueError, match="unknown decision rule 'median'"):
        ExplainConfig(prompts=PROMPTS, decision="median").validate()


def test_trials_run_until_decided_replays_the_exact_stop():
    assert trials_run_until_decided([True] * 11 + [False] * 10, 21) == 11          # unanimous: 11 of 21
    assert trials_run_until_decided([True, False] * 10 + [True], 21) == 21          # decided by the last trial
    # At 3 of 5 needed for the first class: two losses then a win leave 1 + 2 remaining = 3 reachable.
    assert trials_run_until_decided([False, False, False], 5, 2.5 / 5) == 3
    assert trials_run_until_decided([True, True, True, False, False], 5, 2.5 / 5) == 3


def test_measured_classifier_holds_for_the_preset_at_its_cards_operating_point(tiny_skin):
    from dataclasses import replace

    from medviz.engines.explain import measured_classifier

    labels, prompts = preset("skin", "melanoma")
    at_card = ExplainConfig(prompts=prompts, labels=labels, **calibrated_settings(tiny_skin, "melanoma"))
    measured = measured_classifier(tiny_skin, "melanoma", at_card)
    entry = tiny_skin.card["explain_calibration"]["melanoma"]
    assert measured["same_settings"] and measured["task"] == "melanoma"
    assert measured["accuracy"] == entry["engine_trials_bench"]["accuracy"] and measured["n"] == 400
    fewer = measured_classifier(tiny_skin, "melanoma", replace(at_card, trials=51, weighting="disagreement"))
    assert fewer["differences"] == {"trials": (101, 51), "weighting": ("uniform", "disagreement")}
    # Other prompts, or a card that has no held-out record for the task, were not measured.
    assert measured_classifier(tiny_skin, "melanoma", replace(at_card, prompts=("a melanoma", "a nevus"))) is None
    bare = replace(tiny_skin, card={**tiny_skin.card, "explain_calibration": {"melanoma": {
        k: v for k, v in entry.items() if k != "engine_trials_bench"}}})
    assert measured_classifier(bare, "melanoma", at_card) is None
