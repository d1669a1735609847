"""The model card reader: identifier keys, typed records, and cards written with the old phrase keys."""

import json
import subprocess
import sys
from pathlib import Path

from medviz import card
from medviz.engines.counterfactual import EditConfig, measured_edit
from medviz.engines.explain import calibrated_settings, fitted_trials
from medviz.models import MODELS_DIR

EDIT = {"action": "remove", "attributes": ["support_devices", "pacemaker"], "n": 100, "effectiveness": 0.95,
        "preservation_all": 0.97, "faithfulness": 0.9, "meets": {"effectiveness": True, "preservation_all": True,
                                                                 "faithfulness": True},
        "settings": {"steps": 30}, "date": "2026-12-03", "command": "bench"}
FIT = {"votes_needed": 48, "trials": 101, "trials_run": 41, "vote_threshold": 0.47, "t_range": [20, 980],
       "weighting": "disagreement", "decision": "vote"}


def old_card(folder: Path) -> Path:
    """A card as cards were written before identifier keys (edits and tasks by phrase)."""
    folder.mkdir()
    (folder / "medviz.json").write_text(json.dumps({
        "domain": "cxr", "edit_bench": {"remove support devices": EDIT},
        "explain_calibration": {"pleural effusion": FIT}}))
    return folder


def test_an_old_card_reads_with_identifier_keys_and_its_records_are_typed(tmp_path):
    read = card.read_card(old_card(tmp_path / "mine"))
    assert list(read["edit_bench"]) == ["remove_support_devices"]
    assert list(read["explain_calibration"]) == ["pleural_effusion"]
    record = card.edit_record(read, "remove", "pacemaker")         # any of the edit's attributes finds it
    assert record.edit == "remove_support_devices" and record.settings == {"steps": 30} and record.meets["faithfulness"]
    assert card.edit_record(read, "add", "support_devices") is None
    fit = card.calibration(read, "pleural effusion", 21)            # a phrase still finds its identifier
    assert fit == card.calibration(read, "pleural_effusion", 21)
    assert (fit.trials, fit.trials_run, fit.t_range, fit.vote_threshold) == (101, 41, (20, 980), 0.47)
    assert card.calibration(read, "cardiomegaly", 21) is None and card.calibration({}, "x", 21) is None
    assert card.edit_phrase("remove_support_devices", "cxr") == "remove support devices"
    assert card.read_card(tmp_path) == {}                           # a folder without a card


def test_the_engines_read_an_old_card_through_the_reader(tmp_path):
    read = card.read_card(old_card(tmp_path / "mine"))
    measured = measured_edit(read, EditConfig(remove=("support_devices",), steps=30).for_domain("cxr"))
    assert measured["edit"] == "remove_support_devices" and measured["phrase"] == "remove support devices"
    model = type("Model", (), {"card": read, "domain": "cxr"})()
    assert calibrated_settings(model, "pleural effusion")["trials"] == 101
    assert fitted_trials(model, "pleural_effusion") == 41


def test_the_bundled_cards_use_identifier_keys_and_render_phrases():
    for name in ("cxr-phantom", "skin-phantom"):
        raw = json.loads((MODELS_DIR / name / "medviz.json").read_text())
        assert card.normalise(raw) == raw                            # migrated: nothing left to rename
        assert all(" " not in key for key in [*raw["edit_bench"], *raw["explain_calibration"]])
    text = card.measured_sections(card.read_card(MODELS_DIR / "cxr-phantom"))
    assert "| remove support devices |" in text and "- **pleural effusion**:" in text


def test_the_migration_script_rewrites_an_old_card_once(tmp_path):
    folder = old_card(tmp_path / "mine")
    script = Path(__file__).parents[1] / "scripts" / "migrate_cards.py"
    run = [sys.executable, str(script), str(folder)]
    first = subprocess.run(run, capture_output=True, text=True, cwd=Path(__file__).parents[1], check=True)
    assert first.stdout.strip() == f"{folder}: migrated"
    assert set(json.loads((folder / "medviz.json").read_text())["edit_bench"]) == {"remove_support_devices"}
    again = subprocess.run(run, capture_output=True, text=True, cwd=Path(__file__).parents[1], check=True)
    assert again.stdout.strip() == f"{folder}: already current"


def test_a_malformed_edit_record_does_not_stop_a_card_loading(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "medviz.json").write_text(json.dumps({"domain": "cxr", "edit_bench": {
        "remove support devices": EDIT, "my notes": {"n": 3}}}))
    read = card.read_card(folder)
    assert set(read["edit_bench"]) == {"remove_support_devices", "my notes"}
    assert list(card.edit_records(read)) == ["remove_support_devices"]
