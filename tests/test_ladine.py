"""LaDiNE's network, readout and folder (tiny shapes; the trained figures are the robust bench's)."""

import numpy as np
import pytest

from medviz import ladine

TINY = ladine.LaDiNEConfig(labels=("no pleural_effusion", "pleural_effusion"), image_size=32, patch_size=8, hidden=32,
                           layers=2, heads=2, taps=(1, 2), denoiser_width=16, timesteps=100)


def test_every_member_has_a_guide_from_its_block_and_the_card_loss_is_finite():
    import torch

    network = ladine.build(TINY)
    features, guides = ladine.tapped_features(network, TINY, torch.randn(5, 3, 32, 32))
    assert features.shape == (2, 5, 32) and guides.shape == (2, 5, 2)
    assert torch.allclose(guides.sum(-1), torch.ones(2, 5))
    assert not torch.allclose(features[0], features[1])                    # two blocks, two members
    labels = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 0, 1]), 2).float()
    loss = ladine.card_loss(network.denoisers[0], ladine.make_scheduler(TINY), features[0], guides[0], labels,
                            torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and loss.item() > 0


def test_the_readout_votes_and_says_when_the_two_classes_cannot_be_told_apart():
    rng = np.random.default_rng(0)
    sure = np.stack([np.full(40, 0.1), np.full(40, 0.9)], axis=1) + rng.normal(0, 0.02, (40, 2))
    read = ladine._aggregate(sure)
    assert read.predicted == 1 and read.confidence == pytest.approx(0.9, abs=0.01) and read.p_value < 1e-6
    assert not read.uncertain and read.interval_width < 0.1
    split = rng.uniform(0, 1, (40, 1))
    torn = ladine._aggregate(np.concatenate([split, 1 - split], axis=1))
    assert torn.uncertain and torn.interval_width > 0.8


def test_a_saved_folder_loads_and_answers_the_same(tmp_path):
    network = ladine.build(TINY)
    ladine.save(network, TINY, tmp_path / "lad", {"target": "pleural_effusion"})
    images = [np.random.default_rng(i).random((40, 40)).astype(np.float32) for i in range(3)]
    first = ladine.LaDiNE(network.eval(), TINY, samples=4, steps=3).predict(images)
    loaded = ladine.load(tmp_path / "lad")
    loaded.samples, loaded.steps = 4, 3
    again = loaded.predict(images)
    assert loaded.config == TINY and loaded.name == "lad"
    assert all(np.allclose(a.probabilities, b.probabilities) and a.predicted == b.predicted
               for a, b in zip(first, again))
    assert all(p.probabilities.shape == (2,) and 0 <= p.p_value <= 1 for p in again)
    with pytest.raises(ValueError, match="nothing: no medviz_ladine.json, so this is not a LaDiNE folder"):
        ladine.load(tmp_path / "nothing")
