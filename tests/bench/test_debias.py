import csv
import json

import numpy as np
import pytest
from PIL import Image

from medviz.bench.debias import group_prompt, summarise, text_to_image_samples, true_counterfactuals
from medviz.data import load_chexpert, load_isic
from medviz.phantoms.effects import link_parameters
from medviz.phantoms.export import write_dataset


def counterfactual_csv(folder, domain: str, edits: dict) -> tuple:
    """A stand-in for ``medviz.augment``'s output: source rows with an edit each (``edits``: row -> edit) and the
    label it switched, in the source layout."""
    write_dataset(domain, 6, 128, folder, seed=30_000_000, **link_parameters(domain, 0.9))
    with (folder / "labels.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns, rows = list(reader.fieldnames) + ["cf_edit"], list(reader)
    out = []
    for index, edit in edits.items():
        row = {**rows[index], "cf_edit": edit}
        action, attribute = edit.split(" ", 1)
        column = {"support_devices": "Support Devices", "pleural_effusion": "Pleural Effusion", "melanoma": "target",
                  "ruler": "ruler"}[attribute]
        row[column] = ("1.0" if action == "add" else "0.0") if domain == "cxr" else str(int(action == "add"))
        out.append(row)
    path = folder / "cf.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(out)
    return path, rows


def test_group_prompts_name_each_group_in_the_training_captions_words():
    assert group_prompt("cxr", "pleural_effusion", "support_devices", True, False) == \
        "Chest X-ray showing pleural effusion, no support devices"
    assert (
        group_prompt("skin", "melanoma", "ruler", False, True)
        == "Dermoscopy image of a benign nevus with ruler markings"
    )


def test_true_counterfactuals_intervene_on_the_same_rows_and_attributes(tmp_path):
    path, source = counterfactual_csv(tmp_path / "src", "cxr", {0: "remove support_devices", 2: "add pleural_effusion"})
    result = true_counterfactuals("cxr", path, tmp_path, 128)
    records = load_chexpert(result)
    assert [r.meta["seed"] for r in records] == [source[0]["seed"], source[2]["seed"]]
    assert records[0].labels["Support Devices"] == 0.0 and records[1].labels["Pleural Effusion"] == 1.0
    for record, index in zip(records, (0, 2)):
        true, original = (
            np.asarray(Image.open(p), np.float32) for p in (record.path, tmp_path / "src" / source[index]["Path"])
        )
        assert true.shape == original.shape and np.abs(true - original).max() > 50  # the intervention shows


def test_text_to_image_samples_match_the_counterfactual_groups_and_report_prompt_agreement(tmp_path, tiny_skin):
    path, _ = counterfactual_csv(tmp_path / "src", "skin", {0: "add melanoma", 1: "add melanoma", 2: "remove ruler"})
    result = text_to_image_samples("skin", path, tmp_path, tiny_skin)
    records = load_isic(result)
    rows = list(csv.DictReader(result.open()))
    assert len(records) == 3 and all(np.asarray(Image.open(r.path)).shape[0] == 32 for r in records)
    assert [r["cf_edit"].split(": ")[1] for r in rows].count(
        "Dermoscopy image of a melanoma with no ruler markings"
    ) >= 2
    agreement = json.loads((tmp_path / "t2i-skin" / "prompt_agreement.json").read_text())
    assert all(0 <= value <= 1 for value in agreement.values()) and len(agreement) >= 1


def test_the_summary_gives_the_acceptance_figures(tmp_path):
    (tmp_path / "cf").mkdir()
    (tmp_path / "t2i").mkdir()
    (tmp_path / "cf" / "labels.csv").write_text("Path,cf_edit\na.png,remove x\nb.png,remove x\n")
    (tmp_path / "cf" / "skipped.csv").write_text("job,reason\n2,effect check failed\n")
    (tmp_path / "cf" / "plan.json").write_text(json.dumps({"rules": ["remove x"]}))
    (tmp_path / "t2i" / "prompt_agreement.json").write_text(json.dumps({"a prompt": 0.5}))

    def arm(worst, reliance):
        return {"worst": {"mean": worst}, "reliance": {"mean": reliance}, "true_reliance": {"mean": reliance}}
    arms = {"erm": arm(0.5, 0.4), "groupdro": arm(0.7, 0.2), "erm+cf": arm(0.8, 0.1), "erm+true_cf": arm(0.84, 0.05),
            "erm+t2i": arm(0.6, 0.3), "groupdro+cf": arm(0.85, 0.05)}
    sets = {"cf": tmp_path / "cf" / "labels.csv", "t2i": tmp_path / "t2i" / "labels.csv"}
    made = type("Made", (), {"images": [0] * 9, "excluded": [0]})()
    summary = summarise("cxr", arms, sets, made)
    assert (summary["erm_worst"], summary["cf_worst"], summary["true_cf_worst"]) == (0.5, 0.8, 0.84)
    assert summary["cf_gain_points"] == 30.0 and summary["cf_below_bound_points"] == 4.0
    assert summary["reliance_drop"] == pytest.approx(0.75) and summary["audit_images"] == 10
    arms["erm+cf"]["reliance"]["mean"] = -0.1                 # overshoot: reliance falls by 125%, its size by 75%
    overshot = summarise("cxr", arms, sets, made)
    assert overshot["reliance_drop"] == pytest.approx(1.25) and overshot["abs_reliance_drop"] == pytest.approx(0.75)
    assert summary["counterfactuals"] == {"kept": 2, "skipped": 1, "plan": ["remove x"]}


def test_the_markdown_table_of_a_written_result_gives_each_arm_its_row(tmp_path, capsys):
    from medviz.bench.__main__ import main

    arm = {"augment_rows": 120, "worst": {"mean": 0.9104, "sd": 0.012}, "mean": {"mean": 0.95, "sd": 0.01},
           "reliance": {"mean": -0.06, "sd": 0.02}, "true_reliance": {"mean": 0.001}, "scls": {"mean": 0.12}}
    path = tmp_path / "debias_cxr.json"
    path.write_text(json.dumps({"arms": {"erm": {**arm, "augment_rows": 0}, "ours": arm}}))
    assert main(["debias", "--markdown", str(path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| arm | rows added |") and len(lines) == 4
    assert lines[3] == "| ours | 120 | 0.910 ± 0.012 | 0.950 ± 0.010 | -0.060 ± 0.020 | +0.001 | 0.120 |"


def test_a_candidate_pipeline_is_measured_apart_and_never_bundled(monkeypatch):
    from medviz.bench import debias
    from medviz.bench.__main__ import main

    with pytest.raises(SystemExit, match="drop --model"):
        main(["debias", "--domain", "cxr", "--model", "cxr-phantom", "--write-card"])
    with pytest.raises(SystemExit, match="name its --domain"):
        main(["debias", "--model", "cxr-phantom"])
    seen = {}
    monkeypatch.setattr(debias, "run_per_domain", lambda args, *rest: seen.setdefault("work", args.work) and 0)
    main(["debias", "--domain", "cxr", "--model", "cxr-phantom", "--work", "runs/debias"])
    assert seen["work"] == f"runs/debias/candidate-{debias.weights_digest('cxr-phantom')}"
