"""The progression bench's scoring on made-up predictions whose figures are known."""

import numpy as np

from medviz.bench import progression as B
from medviz.phantoms import trial as world


def test_a_model_that_draws_the_truth_with_a_band_scores_zero_error_full_coverage_and_finds_the_responders():
    patients = world.trial(40, B.HELD_OUT_FIRST_SEED)
    true = B.truth(patients)                                                   # (N, arms, horizons)
    spread = np.linspace(-0.01, 0.01, 21)[:, None, None, None]
    sizes = true[None] + spread                                                # 21 paths around the truth
    row = B.score(sizes, true, patients)
    assert all(abs(v) < 1e-9 for v in row["error_factual"].values())
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
    assert all(abs(v - 0.1) < 1e-9 for v in row["error_counterfactual"].values())
    assert row["coverage_factual"] == 0.0 and row["pehe"] < 1e-9                # the effect is still right
