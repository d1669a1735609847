from medviz.bench.fullsize import UNET, scaling
from medviz.engines.counterfactual import latent_cells, pixel_settings


def test_every_pixel_setting_scales_from_128_to_512_px():
    rows = scaling(UNET["sample_size"], 512)                     # SD 1.5: 64-cell latents at 512 px
    assert {r["setting"] for r in rows} == {"mask_dilation_px", "seam_ramp_mask_px", "seam_ramp_changed_px",
                                            "change_smoothing_sigma_px", "change_dilation_px", "near_truth_px"}
    assert all(r["scales"] and r["ratio"] == 4 for r in rows)
    assert pixel_settings(128, 32)["mask_dilation_px"] == 4 and latent_cells(32) == 1 and latent_cells(64) == 2
    assert latent_cells(4) == 1                                  # tiny test models keep one cell


def test_a_route_is_compared_with_the_baseline_in_ratios_psnr_verdict_and_memory():
    import numpy as np

    from medviz.bench.fullsize import route_figures

    def record(route, pass_seconds, generate_seconds, peak):
        return {"backend": route, "backend_used": route, "unet_pass_seconds": pass_seconds,
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


def test_every_engine_runs_once_and_gives_the_outputs_a_route_is_compared_on():
    from medviz.bench.fullsize import run
    from tests.tiny import tiny_model

    rows, outputs = run(tiny_model(None), steps=2)                        # a checkpoint without oracle, as SD-1.5
    assert [r["engine"] for r in rows][-2:] == ["edit reconstruction (no edit)", "explain"]
    assert all(r["unet_passes"] > 0 and r["seconds"] > 0 for r in rows)
    assert outputs["generate"].shape == (32, 32, 3) and outputs["reconstruction"].shape == (32, 32)
    assert outputs["round_trip"].shape == (32, 32)
    assert outputs["reconstruction"].min() >= 0 and outputs["reconstruction"].max() <= 1
    assert outputs["explain_predicted"] in (0, 1) and abs(outputs["explain_votes"].sum() - 1) < 1e-6
