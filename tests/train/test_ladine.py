"""LaDiNE's trainer at test size: both stages, resumable, a folder the stress test reads."""

import json

import numpy as np
import pytest


def test_both_stages_write_a_folder_the_stress_test_scores(tmp_path):
    from medviz import ladine
    from medviz.engines.stress import ladine_scorer
    from medviz.train.__main__ import main

    args = ["ladine", "--domain", "cxr", "--out", str(tmp_path / "lad"), "--target", "pleural_effusion",
            "--preset", "tiny", "--n-images", "32", "--steps", "6", "--denoiser-steps", "8",
            "--checkpoint-every", "4", "--workers", "1"]
    assert main(args) == 0
    record = json.loads((tmp_path / "lad" / "medviz_ladine.json").read_text())
    assert record["target"] == "pleural_effusion" and len(record["train_guide_accuracy"]) == 2
    assert json.loads((tmp_path / "lad" / "checkpoints" / "checkpoint.json").read_text()) == {"stage": 2, "step": 8}
    classifier = ladine.load(tmp_path / "lad")
    classifier.samples, classifier.steps = 3, 2
    p, uncertainty, decided, unsure = ladine_scorer(classifier).predict([np.zeros((32, 32), np.float32)] * 2)
    assert p.shape == uncertainty.shape == decided.shape == unsure.shape == (2,) and decided.dtype == bool
    assert np.array_equal(unsure, uncertainty >= 0.05)                      # LaDiNE: unsure at p >= 0.05


def test_a_run_resumes_where_its_checkpoint_stopped(tmp_path, capsys):
    from medviz.train.ladine import LaDiNETrainConfig, _checkpoint, train_ladine
    from medviz import ladine
    from medviz.train.ladine import SHAPES

    shape = ladine.LaDiNEConfig(labels=("no pleural_effusion", "pleural_effusion"), **SHAPES["tiny"])
    _checkpoint(ladine.build(shape), tmp_path / "lad" / "checkpoints", 2, 6)       # as if stopped in stage 2
    config = LaDiNETrainConfig(domain="cxr", out=str(tmp_path / "lad"), target="pleural_effusion", preset="tiny",
                               n_images=16, steps=6, denoiser_steps=8, checkpoint_every=100, workers=1)
    train_ladine(config)
    assert "resuming at stage 2 step 6" in capsys.readouterr().out
    with pytest.raises(ValueError, match="target 'ruler' is not an attribute of cxr"):
        train_ladine(LaDiNETrainConfig(domain="cxr", out=str(tmp_path / "x"), target="ruler"))


def test_the_encoder_schedule_warms_up_then_decays_to_zero():
    from medviz.train.ladine import encoder_learning_rate

    rates = [encoder_learning_rate(1e-3, step, 1000) for step in range(1000)]
    assert rates[0] == pytest.approx(1e-3 / 50) and rates[49] == pytest.approx(1e-3)      # 5% warm-up: 50 steps
    assert max(rates) == pytest.approx(1e-3) and rates[-1] < 1e-6
    assert all(a >= b for a, b in zip(rates[49:], rates[50:]))                            # then only down
