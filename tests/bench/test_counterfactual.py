import pytest

from medviz.bench.__main__ import main


def test_unknown_edit_type_is_refused_with_the_known_ones():
    with pytest.raises(SystemExit, match="unknown edit type 'add cats'; known: add pleural effusion"):
        main(["counterfactual", "--domain", "cxr", "--edit", "add cats"])


def test_an_edit_of_another_domain_is_refused_instead_of_an_empty_table():
    with pytest.raises(SystemExit, match="no edit of --domain cxr among remove ruler; cxr edits: add pleural effusion"):
        main(["counterfactual", "--domain", "cxr", "--edit", "remove ruler"])


def test_a_model_folder_is_benched_on_its_own_domains_edits_only():
    with pytest.raises(ValueError, match="one domain's pipeline, but the edits span cxr and skin"):
        main(["counterfactual", "--domain", "all", "--model", "cxr-phantom"])
    # The bundled CXR pipeline given for skin edits is refused once loaded, before any edit runs.
    with pytest.raises(ValueError, match="'cxr-phantom' is a cxr pipeline; the edits are skin edits"):
        main(["counterfactual", "--domain", "skin", "--edit", "remove ruler", "--model", "cxr-phantom"])


@pytest.mark.bundled
def test_ceilings_redraw_only_unseen_noise_and_go_through_the_models_own_vae(cxr_model):
    import numpy as np

    from medviz.bench.counterfactual import decoder_ceiling, eligible_seeds, redrawn_truths, true_counterfactual
    from medviz.engines.counterfactual import EditConfig

    seed = eligible_seeds("add support devices", 1, 10_000_000)[0]                # a phantom without devices
    before, after, changed, truth = true_counterfactual("cxr", seed, "add support devices", 128)
    assert redrawn_truths("cxr", "add pleural effusion", truth, 128) == []      # nothing unseen to draw
    draws = redrawn_truths("cxr", "add support devices", truth, 128, draws=3)
    assert len(draws) == 3 and not np.array_equal(draws[0], draws[1])
    devices = np.zeros_like(changed)
    for name in truth.factors["devices"]:
        devices |= after.supports[name]
    for draw in draws:                           # the devices wander a little; the rest of the phantom is the truth
        differs = draw != after.image
        assert differs.any() and not (differs & ~_grown(devices)).any()
    engine = EditConfig(add=("support_devices",)).for_domain("cxr")
    ceiling = decoder_ceiling(cxr_model, before.image, after.image, changed, engine)
    assert ceiling.shape == (128, 128, 3) and 0 <= ceiling.min() and ceiling.max() <= 1
    # Outside the true change (grown to latent cells) the input comes back exactly; inside, the truth's decode.
    cells = _grown(changed, 4)
    assert np.array_equal(ceiling[..., 0][~cells], before.image[~cells])
    assert np.abs(ceiling.mean(-1) - after.image).mean() < np.abs(before.image - after.image).mean()


def _grown(mask, cell=None):
    import numpy as np
    from scipy.ndimage import binary_dilation

    if cell is None:                             # a few px of path jitter
        return binary_dilation(mask, iterations=4)
    cells = mask.reshape(mask.shape[0] // cell, cell, -1, cell).any(axis=(1, 3))
    return np.kron(cells, np.ones((cell, cell), bool)).astype(bool)


def test_near_truth_puts_back_only_what_lies_away_from_the_true_change():
    import numpy as np

    from medviz.bench.counterfactual import near_truth

    before = np.zeros((128, 128), np.float32)
    changed = np.zeros((128, 128), bool)
    changed[60:62, 20:100] = True                          # a true tube, 2 px wide
    truth = np.where(changed, 1.0, before)
    result = truth.copy()
    result[0:20, 0:20] = 0.7                               # an unasked change far away, larger than the tube
    result[58, 30] = 0.5                                   # a change 2 px from the tube: kept
    result[56, 30] = 0.5                                   # 4 px away: put back
    local = near_truth(before, result, changed)
    assert np.array_equal(local[60:62], truth[60:62])
    assert local[58, 30] == 0.5 and local[56, 30] == 0.0
    assert not local[0:20, 0:20].any()
    # The split it serves: unfaithful as a whole, faithful near the truth.
    l1_input = np.abs(before - truth).mean()
    assert np.abs(result - truth).mean() > l1_input > np.abs(local - truth).mean()
    # At 256 px the reach doubles (4 px).
    big = np.zeros((256, 256), bool)
    big[120:124, 40:200] = True
    grown = near_truth(np.zeros((256, 256)), np.ones((256, 256)), big)
    assert grown[116, 100] == 1.0 and grown[115, 100] == 0.0


def _summary(edit: str, **figures) -> dict:
    """A ``run_edit`` summary as the bench returns it, at the engine's resolved CXR settings."""
    base = {"edit": edit, "domain": "cxr", "n": 100, "steps": 30, "strength": 0.8, "guidance_scale": 3.0,
            "mask_mode": "auto", "mask_threshold": 0.6, "mask_draws": 10, "change_threshold": 0.04,
            "effectiveness": 1.0, "preservation_all": 0.97, "faithfulness": 0.99, "faithfulness_near_truth": 1.0,
            "mask_iou_mean": 0.3, "edited_iou_mean": 0.5, "mean_passes": 82.0}
    return {**base, **figures}


def test_every_editable_attribute_is_benched_added_and_removed_as_the_edit_tab_offers_it():
    from medviz import domains
    from medviz.bench.counterfactual import EDITS, UNSEEN_RENDER_NOISE, eligible_seeds
    from medviz.phantoms import get_domain

    for domain in ("cxr", "skin"):
        for attribute in (a for a in domains.get(domain).attributes if a.editable):
            for action, changes in (("add", attribute.add), ("remove", attribute.remove)):
                wanted = (domain, action, attribute.name)
                benched = [e for e, (d, act, name, _) in EDITS.items() if (d, act, name) == wanted]
                assert len(benched) == (changes is not None), (domain, action, attribute.name)
    # A kind is added where there is no device (its add sets the whole set), and where its path wanders is unseen.
    graph = get_domain("cxr").build_graph()
    for seed in eligible_seeds("add pacemaker", 5, 10_000_000):
        assert graph.sample(seed)["devices"] == ()
    assert UNSEEN_RENDER_NOISE["add pacemaker"] == ("device-pacemaker",) and "add vignette" not in UNSEEN_RENDER_NOISE
    # Cardiomegaly is edited alone: the effusion it causes in the SCM is held.
    assert {"effusion", "effusion_severity"} <= set(EDITS["add cardiomegaly"][3])


def test_a_card_holds_only_default_held_out_runs_of_100_or_more():
    from medviz.bench.counterfactual import CounterfactualBenchConfig, card_problem

    assert card_problem(CounterfactualBenchConfig()) is None
    assert "drop --tuning" in card_problem(CounterfactualBenchConfig(tuning=True))
    assert "runs no edit" in card_problem(CounterfactualBenchConfig(ceilings_only=True))
    assert "its own oracle reads" in card_problem(CounterfactualBenchConfig(oracle="runs/judge/cxr-decoded/oracle"))
    assert "at least 100 phantoms per edit, not 20" in card_problem(CounterfactualBenchConfig(n=20))
    assert card_problem(CounterfactualBenchConfig(strength=0.6, residual=True)).endswith("sets strength, residual")
    # The CLI refuses before any edit runs.
    with pytest.raises(SystemExit, match="--write-card: a card holds the engine's default settings, and this run sets "
                                         "guidance_scale"):
        main(["counterfactual", "--domain", "cxr", "--guidance", "5", "--write-card"])


def test_card_record_keeps_the_figures_their_settings_and_the_bars_they_meet():
    from medviz.bench.counterfactual import card_record

    record = card_record(_summary("add support devices", faithfulness=0.01, preservation_all=0.94), "2026-12-03",
                         "python -m medviz.bench counterfactual --domain cxr")
    assert record["action"] == "add" and record["attributes"] == ["support_devices", "pacemaker", "ett", "cvc", "ngt"]
    assert record["meets"] == {"effectiveness": True, "preservation_all": False, "faithfulness": False}
    assert record["bars"] == {"effectiveness": 0.9, "preservation_all": 0.95, "faithfulness": 0.8}
    assert record["settings"] == {"steps": 30, "strength": 0.8, "guidance_scale": 3.0, "mask_mode": "auto",
                                  "mask_threshold": 0.6, "mask_draws": 10, "change_threshold": 0.04}
    assert record["n"] == 100 and record["faithfulness_near_truth"] == 1.0 and record["date"] == "2026-12-03"
    assert card_record(_summary("remove support devices"), "d", "c")["attributes"] == ["support_devices"]


def test_write_card_puts_each_edit_in_its_models_card(tmp_path, monkeypatch, capsys):
    import json
    import shutil

    from medviz.bench.cards import EDIT_BENCH_HEADING
    from medviz.models import MODELS_DIR

    card = tmp_path / "cxr-phantom"
    card.mkdir()
    for name in ("medviz.json", "README.md"):
        shutil.copy2(MODELS_DIR / "cxr-phantom" / name, card / name)
    monkeypatch.setattr("medviz.models.MODELS_DIR", tmp_path)
    result = {"config": {"model": None}, "edits": [_summary("add pleural effusion"),
                                                    _summary("add support devices", faithfulness=0.02)]}
    # Through the CLI, with the bench's run (100 edits per type) stood in for by its result.
    monkeypatch.setattr("medviz.bench.counterfactual.run", lambda config, progress=None: result)
    monkeypatch.setattr("medviz.bench.counterfactual.print_table", lambda result: None)
    main(["counterfactual", "--domain", "cxr", "--write-card"])
    stored = json.loads((card / "medviz.json").read_text())["edit_bench"]
    assert {"add_pleural_effusion", "add_support_devices", "remove_support_devices"} <= set(stored)  # others stay
    devices = stored["add_support_devices"]
    assert devices["faithfulness"] == 0.02 and not devices["meets"]["faithfulness"]
    assert (
        stored["add_pleural_effusion"]["command"] == "python -m medviz.bench counterfactual --domain cxr --write-card"
    )
    text = (card / "README.md").read_text()
    section = text.split(EDIT_BENCH_HEADING)[1].split("\n## ")[0]
    assert "| add support devices | 100 | 100% | 97% | **2%** (below the bar) | 100% |" in section
    assert "| add pleural effusion | 100 | 100% | 97% | 99% |" in section
    assert "`python -m medviz.bench counterfactual --domain cxr --write-card`" in section
    assert "written to" in capsys.readouterr().out
