"""The UNet-cost bench: both models timed on their own guided batch, side by side, with the ratios."""

import pytest

from tests.tiny import tiny_model


def test_each_model_is_timed_on_a_guided_batch_of_its_own_latent_shape(tiny_cxr):
    from medviz.bench.unet import UNetBenchConfig, run

    config = UNetBenchConfig(domain="cxr", model="tiny-a", baseline="tiny-b", batch_size=2, repeats=3)
    result = run(config, candidate=tiny_cxr, baseline=tiny_model("cxr", seed=1))
    rows = result["rows"]
    assert [rows[name]["model"] for name in ("candidate", "bundled")] == ["tiny-a", "tiny-b"]
    unet = tiny_cxr.pipe.unet.config
    for row in rows.values():
        assert row["latent"] == [unet.in_channels, unet.sample_size, unet.sample_size]
        assert 0 < row["best_s"] <= row["median_s"] < 5
        assert row["parameters"] == sum(p.numel() for p in tiny_cxr.pipe.unet.parameters())
    assert result["ratio_best"] == pytest.approx(rows["candidate"]["best_s"] / rows["bundled"]["best_s"])
    assert result["ratio_median"] == pytest.approx(rows["candidate"]["median_s"] / rows["bundled"]["median_s"])


def test_a_model_of_another_domain_is_refused(tiny_cxr, tiny_skin):
    from medviz.bench.unet import UNetBenchConfig, run

    with pytest.raises(ValueError, match="is a skin model, not cxr"):
        run(UNetBenchConfig(domain="cxr", model="skin-tiny", repeats=1), candidate=tiny_skin, baseline=tiny_cxr)
