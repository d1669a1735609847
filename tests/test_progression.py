"""The causal neural SDE at test size: shapes, ranges, counterfactual paths on shared noise, fusions, a folder."""

import numpy as np
import pytest
import torch

from medviz import progression as P

TINY = dict(image_size=32, latent=4, width=16, embedding=4, dt_days=1.0, horizon_days=8.0)
RECORDS = [{"age": 70.0, "female": 1.0, "heart_failure": 1.0, "log10_bnp": 2.9},
           {"age": 55.0, "female": 0.0, "heart_failure": 0.0, "log10_bnp": 1.8}]


def _z0(network, config):
    torch.manual_seed(0)
    images = torch.rand(2, 1, config.image_size, config.image_size) * 2 - 1
    return P.encode(network, config, images, P.tabular_tensor(config, RECORDS))


@pytest.mark.parametrize("fusion", P.FUSIONS)
def test_every_fusion_gives_sizes_in_range_and_bands_around_the_mean(fusion):
    config = P.ProgressionConfig(fusion=fusion, **TINY)
    network = P.build(config).eval()
    with torch.no_grad():
        sizes = P.paths(network, config, _z0(network, config), torch.tensor([0, 1]), [0.0, 2.0, 8.0], n_paths=20)
    assert sizes.shape == (20, 2, 3) and 0 <= sizes.min() and sizes.max() <= 1
    band = P.summary(sizes.numpy())
    assert np.all(band["low"] <= band["mean"] + 1e-6) and np.all(band["mean"] <= band["high"] + 1e-6)  # fp32 mean
    assert np.all(band["high"][:, 1:] - band["low"][:, 1:] > 0)                  # the paths spread after day 0


def test_the_same_seed_is_the_same_noise_so_switching_the_treatment_is_a_counterfactual():
    config = P.ProgressionConfig(**TINY)
    network = P.build(config).eval()
    with torch.no_grad():
        z0 = _z0(network, config)
        again = [P.paths(network, config, z0, torch.tensor([1, 1]), [0.0, 4.0, 8.0], 5, seed=3) for _ in range(2)]
        other_seed = P.paths(network, config, z0, torch.tensor([1, 1]), [0.0, 4.0, 8.0], 5, seed=4)
        switched = P.paths(network, config, z0, torch.tensor([2, 2]), [0.0, 4.0, 8.0], 5, seed=3)
    assert torch.equal(again[0], again[1]) and not torch.equal(again[0], other_seed)
    assert not torch.equal(again[0], switched)                                  # the treatment reaches the course


def test_a_bad_record_is_named_in_one_sentence_and_an_unknown_fusion_too():
    config = P.ProgressionConfig(**TINY)
    for record, message in (({**RECORDS[0], "age": "old"}, "age must be a number, got 'old'"),
                            ({k: v for k, v in RECORDS[0].items() if k != "log10_bnp"},
                             "log10_bnp must be a number, got None"),
                            ({**RECORDS[0], "heart_failure": float("nan")}, "heart_failure must be a number, got nan")):
        with pytest.raises(ValueError, match=message):
            P.tabular_tensor(config, [record])
    with pytest.raises(ValueError, match="unknown fusion 'sum'; choose one of hyperfusion, film, concat, image_only"):
        P.build(P.ProgressionConfig(fusion="sum"))


def test_a_saved_folder_loads_to_the_same_courses(tmp_path):
    config = P.ProgressionConfig(tabular_centre=(60.0, 0.5, 0.3, 2.0), tabular_scale=(15.0, 0.5, 0.45, 0.5), **TINY)
    network = P.build(config).eval()
    P.save(network, config, tmp_path / "progression", {"trained_on": "test"})
    loaded, loaded_config, record = P.load(tmp_path / "progression")
    assert loaded_config == config and record == {"trained_on": "test"}
    with torch.no_grad():
        courses = [P.paths(n, config, _z0(n, config), torch.tensor([0, 2]), [0.0, 8.0], 3) for n in (network, loaded)]
    assert torch.equal(*courses)


@pytest.mark.parametrize("model", ["mlp", "gru"])
def test_a_deterministic_baseline_gives_one_course_per_arm_read_between_its_knots(model):
    config = P.ProgressionConfig(model=model, fusion="concat", **{**TINY, "horizon_days": 28.0})
    network = P.build(config).eval()
    with torch.no_grad():
        z0 = _z0(network, config)
        days = [0.0, 3.5, 7.0, 10.0, 28.0]
        sizes = P.paths(network, config, z0, torch.tensor([0, 1]), days, n_paths=50, seed=1)
        switched = P.paths(network, config, z0, torch.tensor([2, 2]), days, n_paths=50, seed=1)
        around = [0.0, 7.0] if model == "mlp" else [3.0, 4.0]                  # the knots on either side of day 3.5
        knots = P.paths(network, config, z0, torch.tensor([0, 1]), around, n_paths=1)
    assert sizes.shape == (1, 2, 5) and 0 <= sizes.min() and sizes.max() <= 1
    assert not torch.equal(sizes, switched)                                     # the treatment reaches the course
    if model == "mlp":
        assert torch.allclose(sizes[..., [0, 2]], knots)                        # knots read as they are
    assert torch.allclose(sizes[..., 1], (knots[..., 0] + knots[..., 1]) / 2)  # halfway: the mean of the two
    if model == "gru":                                                          # day 0: the decoded Z(0)
        assert torch.allclose(sizes[0, :, 0], torch.sigmoid(network.decoder(z0)).squeeze(-1))
    with pytest.raises(ValueError, match="unknown model 'lstm'; choose one of sde, mlp, gru"):
        P.build(P.ProgressionConfig(model="lstm"))
