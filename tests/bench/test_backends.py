"""The routes' comparison: figures against the baseline, and the classifier checks on a tiny model."""

import numpy as np


def test_a_route_is_compared_with_the_baseline_in_ratios_psnr_verdict_and_memory():
    from medviz.bench.backends import route_figures

    def record(route, pass_seconds, generate_seconds, peak):
        return {"backend": route, "unet_pass_seconds": pass_seconds,
                "engines": [{"engine": "generate", "seconds": generate_seconds, "peak_rss_mb": peak},
                            {"engine": "explain", "seconds": 2 * generate_seconds, "peak_rss_mb": peak - 10}]}

    image = np.linspace(0, 1, 48, dtype=np.float32).reshape(4, 4, 3)
    base_out = {"generate": image, "reconstruction": image, "round_trip": image,
                "explain_predicted": np.float32(1), "explain_votes": np.array([0.25, 0.75])}
    out = {**base_out, "generate": image + 0.01, "reconstruction": image + 0.001, "explain_predicted": np.float32(0)}
    row = route_figures(record("bf16", 2.0, 10.0, 1200), out, record("eager", 6.0, 40.0, 1000), base_out)
    assert row["unet_pass_ratio"] == 3.0 and row["engine_ratios"] == {"generate": 4.0, "explain": 4.0}
    assert abs(row["generate_psnr_db"] - 40.0) < 1e-3 and abs(row["reconstruction_psnr_db"] - 60.0) < 1e-3
    assert row["explain_same"] is False and row["peak_rss_mb"] == 1200 and row["peak_ratio"] == 1.2


def test_the_classifier_checks_give_a_verdict_and_a_domain_check_score_per_phantom(tiny_cxr):
    from medviz.bench.backends import classifier_checks

    out = classifier_checks(tiny_cxr, 2, trials=3)
    assert out["verdicts"].dtype == bool and out["verdicts"].shape == (2,)
    assert out["domain_check"].shape == (2,) and np.isnan(out["domain_check"]).all()   # no calibration: NaN
