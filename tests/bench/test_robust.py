"""The robustness bench end to end on the tiny CXR model and a tiny classifier folder."""

import json

import pytest


def test_the_bench_writes_rows_per_classifier_shift_and_level_and_a_figure(tiny_cxr, tmp_path, monkeypatch, capsys):
    from medviz.bench import robust
    from medviz.bench.__main__ import main
    from medviz.train.classifier import make_classifier

    make_classifier((8, 16), "pleural_effusion", 32).save_pretrained(str(tmp_path / "mine"))
    monkeypatch.setattr(robust, "load_model", lambda name, device: tiny_cxr)
    out = tmp_path / "robust_cxr.json"
    assert main(["robust", "--domain", "cxr", "--n", "3", "--bootstrap", "0", "--shifts", "noise", "zoom",
                 "--classifiers", str(tmp_path / "mine"), "--json", str(out), "--figure-dir", str(tmp_path)]) == 0
    result = json.loads(out.read_text())
    assert [(r["classifier"], r["shift"]) for r in result["rows"][:2]] == [("resnet-oracle", "none"),
                                                                           (str(tmp_path / "mine"), "none")]
    assert len(result["rows"]) == 2 * 9 and result["parameters"]["target"] == "pleural_effusion"
    assert result["shifts"]["noise"] == {"phrase": "quantum noise", "unit": "noise standard deviation",
                                         "levels": [0.03, 0.04, 0.05, 0.06], "factor": "noise_level"}
    assert all(r["flagged"] is None for r in result["rows"])          # the tiny card has no domain check
    assert (tmp_path / "robust_cxr.png").stat().st_size > 10_000
    assert "resnet-oracle" in capsys.readouterr().out


def test_a_ladine_folder_is_stress_tested_beside_the_oracle(tiny_cxr, tmp_path, monkeypatch):
    from medviz import ladine
    from medviz.bench import robust
    from medviz.bench.__main__ import main

    shape = ladine.LaDiNEConfig(labels=("no pleural_effusion", "pleural_effusion"), image_size=32, patch_size=8,
                                hidden=32, layers=2, heads=2, taps=(1, 2), denoiser_width=16, timesteps=100)
    ladine.save(ladine.build(shape), shape, tmp_path / "lad")
    monkeypatch.setattr(robust, "load_model", lambda name, device: tiny_cxr)
    out = tmp_path / "robust.json"
    assert main(["robust", "--domain", "cxr", "--n", "3", "--bootstrap", "0", "--shifts", "zoom", "--classifiers",
                 "cxr-effusion-erm", "--ladine", str(tmp_path / "lad"), "--json", str(out), "--write-card"]) == 0
    result = json.loads(out.read_text())
    assert {r["classifier"] for r in result["rows"]} == {"resnet-oracle", "cxr-effusion-erm", "ladine-lad"}
    assert result["parameters"]["classifiers"]["ladine-lad"]["uncertainty"] == "p-value of its paired t-test (LaDiNE)"
    verdict = result["verdicts"]["ladine-lad"]
    oracle = [r for r in result["rows"] if r["classifier"] == "resnet-oracle"]
    mine = [r for r in result["rows"] if r["classifier"] == "ladine-lad"]
    assert verdict["unshifted_gap_to_oracle"] == pytest.approx(mine[0]["accuracy"] - oracle[0]["accuracy"])
    assert verdict["shifted_accuracy_at_least_each"] == (sum(r["accuracy"] for r in mine[1:])
                                                         >= sum(r["accuracy"] for r in oracle[1:]))
    assert set(verdict["versus"]) == {"resnet-oracle"}                    # no diffusion classifier in this run
    card = json.loads((tmp_path / "lad" / "medviz_ladine.json").read_text())["bench_robust"]
    assert (card["n"], card["shifts"], card["levels"]) == (3, ["zoom"], 4)
    summary = card["classifiers"]["ladine-lad"]
    assert summary["shifted_accuracy"] == pytest.approx(sum(r["accuracy"] for r in mine[1:]) / 4)
    assert summary["errors"] == sum(r["errors"] for r in mine[1:])
    readme = (tmp_path / "lad" / "README.md").read_text()
    assert "# lad: LaDiNE (arXiv 2310.15952)" in readme and "| **ladine-lad** | " in readme
    assert "| resnet-oracle | " in readme
    with pytest.raises(SystemExit, match="name them with --ladine"):
        main(["robust", "--domain", "cxr", "--write-card"])


def test_the_diffusion_classifier_joins_on_fewer_images_and_shifts(tiny_cxr, tmp_path, monkeypatch):
    from medviz.bench import robust
    from medviz.bench.__main__ import main
    from medviz.engines import stress

    original = stress.diffusion_scorer
    monkeypatch.setattr(robust, "diffusion_scorer", lambda model: original(model, trials=3))
    monkeypatch.setattr(robust, "load_model", lambda name, device: tiny_cxr)
    out = tmp_path / "robust.json"
    assert main(["robust", "--domain", "cxr", "--n", "3", "--bootstrap", "0", "--shifts", "noise", "zoom",
                 "--classifiers", "cxr-effusion-erm", "--diffusion-n", "2", "--diffusion-shifts", "zoom",
                 "--json", str(out), "--figure-dir", str(tmp_path)]) == 0
    result = json.loads(out.read_text())
    mine = [r for r in result["rows"] if r["classifier"] == "diffusion-classifier"]
    assert [(r["shift"], r["n"]) for r in mine] == [("none", 2)] + [("zoom", 2)] * 4
    assert result["parameters"]["diffusion_classifier"]["n"] == 2
    assert result["parameters"]["diffusion_classifier"]["seconds_per_image"] > 0


def test_an_unknown_shift_is_named_before_anything_loads(monkeypatch):
    from medviz.bench import robust
    from medviz.bench.__main__ import main

    monkeypatch.setattr(robust, "load_model", lambda *a, **k: pytest.fail("loaded a model"))
    with pytest.raises(ValueError, match="skin has no shift 'rotation'"):
        main(["robust", "--domain", "skin", "--shifts", "rotation"])


def test_the_diffusion_classifier_can_run_on_single_levels_and_a_bad_one_is_named(tiny_cxr, tmp_path, monkeypatch,
                                                                                  capsys):
    from medviz.bench import robust
    from medviz.bench.__main__ import main
    from medviz.engines import stress

    original = stress.diffusion_scorer
    monkeypatch.setattr(robust, "diffusion_scorer", lambda model: original(model, trials=3))
    monkeypatch.setattr(robust, "load_model", lambda name, device: tiny_cxr)
    out = tmp_path / "robust.json"
    assert main(["robust", "--domain", "cxr", "--n", "3", "--bootstrap", "0", "--shifts", "rotation",
                 "--classifiers", "cxr-effusion-erm", "--diffusion-n", "2", "--diffusion-levels", "rotation:9",
                 "--json", str(out), "--figure-dir", str(tmp_path)]) == 0
    result = json.loads(out.read_text())
    mine = [r for r in result["rows"] if r["classifier"] == "diffusion-classifier"]
    assert [(r["shift"], r["level"], r["n"]) for r in mine] == [("rotation", 9.0, 2)]
    assert mine[0]["errors_unsure"] is not None and 0 <= mine[0]["errors_unsure"] <= mine[0]["errors"] <= 2
    assert result["parameters"]["diffusion_classifier"]["levels"] == [["rotation", 9.0]]
    assert "shifted errors" in capsys.readouterr().out
    again = tmp_path / "again.json"                  # a later run takes those rows instead of running it again
    assert main(["robust", "--domain", "cxr", "--n", "3", "--bootstrap", "0", "--shifts", "rotation", "--classifiers",
                 "cxr-effusion-erm", "--diffusion-from", str(out), "--json", str(again)]) == 0
    merged = json.loads(again.read_text())
    assert [r for r in merged["rows"] if r["classifier"] == "diffusion-classifier"] == mine
    assert merged["parameters"]["diffusion_classifier"]["from"] == str(out)
    with pytest.raises(SystemExit, match="differs in bootstrap"):
        main(["robust", "--domain", "cxr", "--n", "3", "--bootstrap", "10", "--shifts", "rotation", "--classifiers",
              "cxr-effusion-erm", "--diffusion-from", str(out)])
    with pytest.raises(SystemExit, match=r"no such level set: \[\('rotation', 8.0\)\]"):
        main(["robust", "--domain", "cxr", "--n", "3", "--bootstrap", "0", "--shifts", "rotation", "--classifiers",
              "cxr-effusion-erm", "--diffusion-n", "2", "--diffusion-levels", "rotation:8"])


def test_silent_errors_of_older_rows_are_settled_only_where_the_counts_settle_them():
    from medviz.bench.robust import _silent

    assert _silent({"errors": 5, "errors_unsure": 5, "errors_flagged": 2}) == 0
    assert _silent({"errors": 5, "errors_unsure": 3, "errors_flagged": 4}) is None
    assert _silent({"errors": 5, "errors_unsure": None, "errors_flagged": None, "silent_errors": 2}) == 2


def test_the_verdicts_compare_ladine_with_the_diffusion_classifier_on_the_levels_it_ran():
    from medviz.bench.robust import verdicts

    def row(name, shift, level, accuracy, ece, selective):
        return {"classifier": name, "shift": shift, "level": level, "accuracy": accuracy, "ece": ece,
                "selective_accuracy": selective, "errors": 0, "silent_errors": 0}

    rows = [row("resnet-oracle", "none", 0.0, 1.0, 0.01, 1.0), row("resnet-oracle", "rotation", 9.0, 0.5, 0.4, 0.5),
            row("resnet-oracle", "noise", 0.05, 0.9, 0.1, 0.9),
            row("lad", "none", 0.0, 0.985, 0.02, 1.0), row("lad", "rotation", 9.0, 0.7, 0.1, 0.8),
            row("lad", "noise", 0.05, 0.8, 0.05, 0.86),
            row("diffusion-classifier", "rotation", 9.0, 0.75, 0.2, 0.8)]
    verdict = verdicts(rows, ["lad"])["lad"]
    assert verdict["unshifted_gap_to_oracle"] == pytest.approx(-0.015) and verdict["unshifted_within_2_points"]
    assert verdict["versus"]["resnet-oracle"]["accuracy"] == pytest.approx(0.7)          # (0.5 + 0.9) / 2
    assert verdict["versus"]["resnet-oracle"]["mine"]["accuracy"] == pytest.approx(0.75)
    assert verdict["versus"]["diffusion-classifier"]["mine"] == {"accuracy": 0.7, "ece": 0.1}   # rotation 9 only
    assert not verdict["shifted_accuracy_at_least_each"] and verdict["shifted_ece_lowest"]
    assert verdict["selective_gain"] == pytest.approx(0.08) and verdict["selective_gain_at_least_5_points"]
