from medviz.bench.fullsize import UNET, scaling
from medviz.engines.counterfactual import latent_cells, pixel_settings


def test_every_pixel_setting_scales_from_128_to_512_px():
    rows = scaling(UNET["sample_size"], 512)                     # SD 1.5: 64-cell latents at 512 px
    assert {r["setting"] for r in rows} == {"mask_dilation_px", "seam_ramp_mask_px", "seam_ramp_changed_px",
                                            "change_smoothing_sigma_px", "change_dilation_px", "near_truth_px"}
    assert all(r["scales"] and r["ratio"] == 4 for r in rows)
    assert pixel_settings(128, 32)["mask_dilation_px"] == 4 and latent_cells(32) == 1 and latent_cells(64) == 2
    assert latent_cells(4) == 1                                  # tiny test models keep one cell


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
