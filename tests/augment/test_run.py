import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medviz.augment import run as augment_run
from medviz.augment.run import AugmentConfig, augment, label_columns
from medviz.bench.scale import launch
from medviz.data import load_chexpert
from medviz.engines.counterfactual import EditConfig
from medviz.engines.guard import DomainCheck
from medviz.models import load_model
from medviz.phantoms.effects import link_parameters
from medviz.phantoms.export import write_dataset

FAST = EditConfig(steps=6, strength=0.5, mask_draws=1, domain_check=False)
RULES = ("remove support_devices where support_devices", "add pleural_effusion where no pleural_effusion")


def phantoms(folder: Path, n: int = 8) -> Path:
    write_dataset("cxr", n, 128, folder, seed=30_000_000, **link_parameters("cxr", 0.9))
    return folder / "labels.csv"


def read(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


class Stop(Exception):
    pass


def test_an_interrupted_run_resumes_without_redoing_a_job(tmp_path, tiny_cxr, monkeypatch):
    config = AugmentConfig(csv=str(phantoms(tmp_path / "src")), out=str(tmp_path / "out"), model="tiny-cxr",
                           rules=RULES, domain_check=False, edit=FAST)

    def interrupt(done, total):
        if done == 2:
            raise Stop
    with pytest.raises(Stop):
        augment(config, tiny_cxr, progress=interrupt)
    parts = sorted((tmp_path / "out" / "parts").glob("*.json"))
    assert [p.name for p in parts] == ["0000000.json", "0000001.json"]
    written = {p.name: p.stat().st_mtime_ns for p in parts}

    edited = []
    real = augment_run.counterfactual
    monkeypatch.setattr(augment_run, "counterfactual", lambda model, pixels, edit: edited.append(edit.seed) or
                        real(model, pixels, edit))
    result = augment(config, tiny_cxr)
    assert result.done_before == 2 and edited == list(range(2, result.jobs))          # the rest, each once
    assert {p.name: p.stat().st_mtime_ns for p in parts} == written                    # finished jobs untouched
    kept, skipped = read(tmp_path / "out" / "labels.csv"), read(tmp_path / "out" / "skipped.csv")
    assert len(kept) == result.kept and len(kept) + len(skipped) == result.jobs >= 4
    assert sorted([int(r["cf_seed"]) for r in kept] + [int(r["seed"]) for r in skipped]) == list(range(result.jobs))

    records = load_chexpert(tmp_path / "out" / "labels.csv")      # the same layout, readable by the loaders
    for row, record in zip(kept, records):
        source = read(tmp_path / "src" / "labels.csv")[int(row["cf_source_row"])]
        assert row["cf_source_image"] == source["Path"] and row["cf_model"] == "tiny-cxr"
        assert json.loads(row["cf_readout_before"]).keys() == json.loads(row["cf_readout_after"]).keys()
        if row["cf_edit"] == "remove support_devices":
            assert source["Support Devices"] == "1.0" and record.labels["Support Devices"] == 0.0
        else:
            assert source["Pleural Effusion"] == "0.0" and record.labels["Pleural Effusion"] == 1.0
        assert np.asarray(Image.open(record.path)).shape[:2] == (32, 32)


def test_unreadable_out_of_domain_and_failed_edits_land_in_skipped_csv(tmp_path, tiny_cxr, monkeypatch):
    source = phantoms(tmp_path / "src")
    rows = read(source)
    (tmp_path / "src" / rows[0]["Path"]).write_bytes(b"not a png")
    outside = tmp_path / "src" / rows[1]["Path"]
    monkeypatch.setattr(augment_run, "check_domain", lambda model, pixels: DomainCheck(
        False, 30.0, 13.9, "score 30.0 above the threshold 13.9") if pixels is flagged.get("pixels") else
        DomainCheck(True, 1.0, 13.9, "score 1.0 within the threshold 13.9"))
    flagged = {}
    real_read = augment_run.read_image

    def reading(path, **kwargs):
        image = real_read(path, **kwargs)
        if Path(path) == outside:
            flagged["pixels"] = image.pixels
        return image
    monkeypatch.setattr(augment_run, "read_image", reading)
    real = augment_run.counterfactual

    def failing_third(model, pixels, edit):
        result = real(model, pixels, edit)
        if edit.seed == 2 and result.effect is not None:
            return replace(result, effect=replace(result.effect, passed=False, verdict="The edit did not add it."))
        return result
    monkeypatch.setattr(augment_run, "counterfactual", failing_third)
    config = AugmentConfig(csv=str(source), out=str(tmp_path / "out"), model="tiny-cxr",
                           rules=("add cardiomegaly where no cardiomegaly max 4",), edit=FAST)
    result = augment(config, tiny_cxr)
    skipped = {int(r["job"]): r for r in read(tmp_path / "out" / "skipped.csv")}
    assert skipped[0]["reason"].startswith("unreadable: ") and skipped[0]["source_image"] == rows[0]["Path"]
    assert skipped[1]["reason"] == "outside the model's domain (score 30.0 above the threshold 13.9)"
    assert skipped[2]["reason"] == "effect check failed: The edit did not add it."
    assert result.skipped["unreadable"] == 1 and result.skipped["outside the domain"] == 1
    assert not list((tmp_path / "out" / "images").glob("*_000000.png"))                 # no image for skipped jobs
    kept = read(tmp_path / "out" / "labels.csv")
    assert all(json.loads(r["cf_domain_check"])["in_domain"] for r in kept)


def test_a_folder_keeps_one_plan(tmp_path, tiny_cxr):
    config = AugmentConfig(csv=str(phantoms(tmp_path / "src", 4)), out=str(tmp_path / "out"), model="tiny-cxr",
                           rules=("add cardiomegaly where no cardiomegaly max 1",), domain_check=False, edit=FAST)
    augment(config, tiny_cxr)
    with pytest.raises(ValueError, match="holds the results of another plan or dataset"):
        augment(replace(config, rules=("add cardiomegaly where no cardiomegaly max 2",)), tiny_cxr)


def test_isic_labels_switch_every_column_that_names_the_diagnosis():
    columns = ["image_name", "target", "benign_malignant", "diagnosis", "ruler"]
    assert label_columns("isic", "melanoma", True, columns) == {
        "target": "1", "benign_malignant": "malignant", "diagnosis": "melanoma"}
    assert label_columns("isic", "ruler", False, columns) == {"ruler": "0"}
    assert label_columns("chexpert", "support_devices", False, []) == {"Support Devices": "0.0"}


def save_tiny(model, folder: Path) -> Path:
    """A tiny model as a pipeline folder with its oracle, loadable by name of path (``load_model``)."""
    model.pipe.save_pretrained(str(folder / "pipe"))
    model.oracle.model.save_pretrained(str(folder / "oracle"))
    card = {**model.card, "oracle": "../oracle", "image_size": 32}
    (folder / "pipe" / "medviz.json").write_text(json.dumps(card))
    return folder / "pipe"


@pytest.mark.multiprocess
def test_two_processes_write_exactly_the_rows_of_one(tmp_path, tiny_cxr):
    source, folder = phantoms(tmp_path / "src", 6), save_tiny(tiny_cxr, tmp_path / "model")
    one, threads = tmp_path / "one", torch.get_num_threads()
    torch.set_num_threads(1)                   # as each launched process: the same arithmetic, bit for bit
    try:
        augment(AugmentConfig(csv=str(source), out=str(one), model=str(folder), rules=RULES, domain_check=False,
                              edit=replace(EditConfig(domain_check=False), steps=6)), load_model(str(folder)))
    finally:
        torch.set_num_threads(threads)
    two = tmp_path / "two"
    run = launch(["-m", "medviz.augment", "--csv", str(source), "--model", str(folder), "--out", str(two),
                  "--plan", RULES[0], "--plan", RULES[1], "--steps", "6", "--no-domain-check"], 2)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((two / "summary.json").read_text())
    rows = read(one / "labels.csv")
    assert summary["processes"] == 2 and len(rows) + len(read(one / "skipped.csv")) == summary["jobs"] > 0
    assert rows == read(two / "labels.csv")
    assert read(one / "skipped.csv") == read(two / "skipped.csv")
    for row in rows:
        assert np.array_equal(np.asarray(Image.open(one / row["Path"])), np.asarray(Image.open(two / row["Path"])))
