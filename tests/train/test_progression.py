"""The progression trainer at test size: it trains on the trial's factual records, writes a folder, resumes."""

import json

import numpy as np
import pytest

from medviz import progression
from medviz.train.progression import ProgressionTrainConfig, train_progression, trial_tensors, visit_sizes


def test_each_visit_is_read_between_its_two_grid_points():
    import torch

    from medviz.phantoms import trial

    patients = trial.trial(3)
    data = trial_tensors(patients, progression.ProgressionConfig())
    assert data.images.shape == (3, 1, 64, 64) and -1 <= data.images.min() and data.images.max() <= 1
    visits = int(data.mask[0].sum())
    assert visits == len(patients[0].visits) and data.mask[0, visits:].sum() == 0
    grid = torch.linspace(0, 56, 57)[None, None].expand(2, 3, -1)          # a "size" equal to the grid index
    read = visit_sizes(grid, data.below, data.weight)
    days = np.array(patients[0].visits)
    assert np.allclose(read[0, 0, :visits].numpy(), days / 0.5, atol=1e-4)  # index = day / 0.5


def test_a_tiny_run_writes_a_folder_that_loads_and_a_stopped_run_resumes(tmp_path, capsys):
    out = tmp_path / "progression"
    config = ProgressionTrainConfig(domain="cxr", out=str(out), n_images=12, steps=4, batch_size=4, n_paths=2,
                                    checkpoint_every=2, fusion="film", preset="tiny", n_validation=8)
    record = train_progression(config)
    assert record["patients"] == 12 and record["measurement_noise"] > 0
    network, shape, card = progression.load(out)
    assert shape.fusion == "film" and shape.image_size == 32 and len(shape.tabular_centre) == 4
    assert card["config"]["steps"] == 4
    assert json.loads((out / "checkpoints" / "checkpoint.json").read_text()) == {"step": 4}
    train_progression(ProgressionTrainConfig(**{**config.__dict__, "steps": 6}))
    assert "[progression] resuming at step 4" in capsys.readouterr().out
    fixed = train_progression(ProgressionTrainConfig(**{**config.__dict__, "out": str(tmp_path / "fixed"),
                                                        "steps": 2, "measurement_noise": 0.02}))
    assert fixed["measurement_noise"] == 0.02
    with pytest.raises(ValueError, match="the phantom trial exists for the CXR domain only"):
        train_progression(ProgressionTrainConfig(domain="skin", out=str(out)))


def test_a_baseline_trains_on_the_same_loss_with_one_path(tmp_path):
    out = tmp_path / "gru"
    train_progression(ProgressionTrainConfig(domain="cxr", out=str(out), n_images=8, steps=3, batch_size=4,
                                             n_paths=4, model="gru", fusion="concat", preset="tiny",
                                             measurement_noise=0.02, n_validation=8))
    network, shape, _ = progression.load(out)
    assert shape.model == "gru" and hasattr(network, "gru") and not hasattr(network, "sde")
    with pytest.raises(ValueError, match="unknown model 'lstm'"):
        train_progression(ProgressionTrainConfig(domain="cxr", out=str(out), model="lstm"))


def test_the_band_is_calibrated_on_validation_visits_and_the_level_reaches_the_card(tmp_path):
    import torch

    from medviz.train.progression import calibrate_band, calibrate_folder

    torch.manual_seed(0)
    shape = progression.ProgressionConfig(image_size=32, latent=4, width=16, embedding=4, dt_days=2.0)
    network = progression.build(shape).eval()
    level, coverage = calibrate_band(network, shape, noise=0.02, n=20, n_paths=30)
    assert 0.5 <= level <= 0.99 and (coverage >= 0.9 or level == 0.99)
    wider, _ = calibrate_band(network, shape, noise=0.02, n=20, n_paths=30, target=0.95)
    assert wider >= level                                                    # a higher target never narrows it
    progression.save(network, shape, tmp_path / "sde", {"measurement_noise": 0.02})
    assert progression.band_level(calibrate_folder(tmp_path / "sde", n=8)) == progression.load(tmp_path / "sde")[2][
        "band_level"] > 0
    gru = progression.ProgressionConfig(model="gru", fusion="concat", image_size=32, latent=4, width=16, embedding=4)
    assert np.isnan(calibrate_band(progression.build(gru), gru, noise=0.02, n=4)[0])
    assert progression.band_level({"band_level": float("nan")}) == progression.band_level({}) == 0.9
