"""The uncertainty bench on a tiny random LaDiNE folder: rows per level, each ranking's gain, the ceiling."""

import json

import numpy as np
import pytest


@pytest.fixture
def tiny_ladine(tmp_path):
    from medviz import ladine

    shape = ladine.LaDiNEConfig(labels=("no pleural_effusion", "pleural_effusion"), image_size=32, patch_size=8,
                                hidden=32, layers=2, heads=2, taps=(1, 2), denoiser_width=16, timesteps=100)
    ladine.save(ladine.build(shape), shape, tmp_path / "lad")
    return tmp_path / "lad"


def test_the_ceiling_sets_every_error_aside_first():
    from medviz.bench.uncertainty import ceiling

    correct = np.array([True] * 7 + [False] * 3)                      # 8 kept of 10 at 80%
    assert ceiling(correct, 0.8) == pytest.approx(7 / 8)
    assert ceiling(np.array([True] * 9 + [False]), 0.8) == 1.0


def test_rankings_read_the_guides_and_the_readout():
    from medviz.bench.uncertainty import rankings
    from medviz.ladine import LaDiNEPrediction

    predictions = [LaDiNEPrediction(np.array([0.1, 0.9]), 1, 0.9, 0.01, 0.05),
                   LaDiNEPrediction(np.array([0.45, 0.55]), 1, 0.55, 0.3, 0.4)]
    guides = np.array([[[0.2, 0.8], [0.5, 0.5]], [[0.0, 1.0], [0.7, 0.3]]])      # (members 2, N 2, C 2)
    out = rankings(predictions, guides)
    assert out["p_value"].tolist() == [0.01, 0.3]
    assert out["margin"] == pytest.approx([-0.4, -0.05])
    assert out["guide_min_margin"] == pytest.approx([-0.3, 0.0])
    assert out["guide_spread"] == pytest.approx([0.1, 0.1])
    assert out["guide_2_margin"] == pytest.approx([-0.5, -0.2])


def test_the_bench_takes_a_ladine_folder_apart_per_level(tiny_ladine, tmp_path, capsys):
    from medviz.bench.__main__ import main

    out = tmp_path / "u.json"
    assert main(["uncertainty", "--domain", "cxr", "--ladine", str(tiny_ladine), "--n", "4", "--shifts", "zoom",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [(r["shift"], r["n"]) for r in result["rows"]] == [("none", 4)] + [("zoom", 4)] * 4
    row = result["rows"][1]
    assert len(row["member_accuracy"]) == 2 and all(0 <= a <= 1 for a in row["member_accuracy"])
    assert set(row["gain"]) == {"p_value", "margin", "interval_width", "guide_min_margin", "guide_spread",
                                "guide_1_margin", "guide_2_margin"}
    assert all(g <= row["ceiling_gain"] + 1e-9 for g in row["gain"].values())
    assert result["shifted"]["levels"] == 4 and result["shifted"]["best"] in row["gain"]
    assert "| zoom | 1.1 |" in capsys.readouterr().out


def test_a_folder_for_another_target_or_no_domain_is_named(tiny_ladine):
    from medviz.bench.__main__ import main

    with pytest.raises(SystemExit, match="not skin's 'melanoma'"):
        main(["uncertainty", "--domain", "skin", "--ladine", str(tiny_ladine), "--n", "2"])
    with pytest.raises(SystemExit, match="--domain cxr or --domain skin"):
        main(["uncertainty", "--ladine", str(tiny_ladine)])
