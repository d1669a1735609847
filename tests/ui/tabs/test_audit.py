"""The Audit tab through gradio_client: a user's own classifier folder, bad folders, uploads with a CSV."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from medviz.train.classifier import make_classifier
from tests.ui.conftest import served_with_models_folder

REQUEST = dict(model_name="cxr-phantom", label="", spurious="support_devices", target="pleural_effusion",
               source="phantoms", n_phantoms=4, link_strength=0.0, uploads=[], compare="none")


pytestmark = pytest.mark.xdist_group("audit_tab")      # one worker builds the module fixture once


@pytest.fixture(scope="module")
def audit_app(tmp_path_factory):
    """The app with a models folder holding a tiny random classifier folder 'my-effusion' and three broken ones."""
    root = tmp_path_factory.mktemp("models")
    for name in ("my-effusion", "no-config", "no-labels"):
        make_classifier((8, 16), "pleural_effusion", 32).save_pretrained(str(root / name))
    (root / "no-config" / "config.json").unlink()
    config = json.loads((root / "no-labels" / "config.json").read_text())
    config["id2label"] = {"0": "LABEL_0", "1": "LABEL_1"}
    (root / "no-labels" / "config.json").write_text(json.dumps(config))
    with served_with_models_folder(root) as client:
        yield client, root


def test_a_users_classifier_folder_is_audited_with_figures_gallery_and_report(audit_app):
    client, _ = audit_app
    summary, reliance, groups, gallery, files = client.predict(classifier="my-effusion", **REQUEST, api_name="/audit")
    assert "Switching only **support_devices** moves P(pleural_effusion) by" in summary
    assert "Truth from the phantoms' causal model: reliance" in summary and "UNet passes" in summary
    csv_file, json_file = sorted(files, key=lambda f: f.endswith(".json"))
    rows = list(csv.DictReader(open(csv_file)))
    assert len(rows) == 8 and {r["attribute"] for r in rows} == {"support_devices", "pleural_effusion"}
    switched = [r for r in rows if r["used"] == "True"]                # the gallery shows the edits the figures use
    assert len(gallery) == len(switched) and all(Path(item["image"]).is_file() for item in gallery)
    largest = max(switched, key=lambda r: abs(float(r["change_on_minus_off"])))
    assert gallery[0]["caption"].startswith(f"{largest['image']}: {largest['action']} {largest['attribute']}: ")
    record = json.loads(Path(json_file).read_text())
    left_out = record["excluded"]["support_devices edit did not switch it"] + record["excluded"][
        "support_devices edit unfaithful on this model"]                # the card's "add support devices": 1% faithful
    assert record["classifier"] == "my-effusion" and record["reliance"]["n"] + left_out == 4
    assert len(record["subgroups"]) >= 1 and record["truth"]["reliance"]["n"] == 4
    assert "plot" in json.dumps(reliance) and "plot" in json.dumps(groups)


@pytest.mark.parametrize("name, message", [
    ("no-config", "no-config: no config.json, so this is not a transformers classifier folder"),
    ("no-labels", "no-labels/config.json names no labels \\(id2label\\)"),
    ("../my-effusion", "is not a bundled classifier .* or a folder under the models folder"),
])
def test_each_broken_classifier_folder_gets_one_clear_message(audit_app, name, message):
    client, root = audit_app
    with pytest.raises(Exception, match=message) as raised:
        client.predict(classifier=name, **REQUEST, api_name="/audit")
    assert str(root) not in str(raised.value)


def test_a_label_the_classifier_lacks_is_named_with_its_labels(audit_app):
    client, _ = audit_app
    with pytest.raises(
        Exception, match="my-effusion has no label 'ruler'; its labels: no pleural_effusion, pleural_eff"
    ):
        client.predict(classifier="my-effusion", **{**REQUEST, "label": "ruler"}, api_name="/audit")


def test_uploads_with_a_chexpert_csv_get_labels_and_unreadable_files_are_named(audit_app, tmp_path):
    from gradio_client import handle_file

    from medviz.io import write_png

    client, _ = audit_app
    for i in range(2):
        write_png(tmp_path / f"x{i}.png", np.full((48, 48), 0.3 + 0.2 * i, np.float32))
    (tmp_path / "bad.png").write_bytes(b"no image here")
    (tmp_path / "labels.csv").write_text("Path,Pleural Effusion,Support Devices\nx0.png,1,0\nx1.png,0,1\nbad.png,0,0\n")
    uploads = [handle_file(str(tmp_path / n)) for n in ("x0.png", "x1.png", "bad.png", "labels.csv")]
    summary, _, _, _, files = client.predict(classifier="my-effusion", **{**REQUEST, "source": "uploads",
                                                                         "uploads": uploads}, api_name="/audit")
    assert "Labels from labels.csv for 2 images." in summary and "Unreadable, left out: bad.png" in summary
    record = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())
    assert sum(g["n"] for g in record["subgroups"]) == 2 and record["truth"] is None
    with pytest.raises(Exception, match="upload the images to audit"):
        client.predict(classifier="my-effusion", **{**REQUEST, "source": "uploads"}, api_name="/audit")


def test_the_skin_model_audits_the_bundled_skin_classifier(client):
    """The page on both tiny models (conftest): the skin model with its bundled classifier and its pair."""
    client.predict(model_name="skin-phantom", api_name="/select_model")    # the tab's choices follow the model
    summary, reliance, *_, files = client.predict(
        model_name="skin-phantom", classifier="skin-melanoma-erm", label="", spurious="ruler", target="melanoma",
        source="phantoms", n_phantoms=4, link_strength=0.9, uploads=[], compare="skin-melanoma-groupdro",
        api_name="/audit")
    assert "Switching only **ruler** moves P(melanoma) by" in summary
    record = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())
    assert record["classifier"] == "skin-melanoma-erm" and record["truth"]["reliance"]["n"] == 4
    # the fix beside the shortcut: scored on the same counterfactuals, in the table, the chart and both reports
    compared = record["compared_with"]
    assert compared["classifier"] == "skin-melanoma-groupdro" and compared["unet_passes"] == record["unet_passes"]
    assert "Both classifiers on the same counterfactuals" in summary and "| classifier | reliance on ruler |" in summary
    assert "| skin-melanoma-groupdro" in summary
    names = {trace["name"] for trace in json.loads(reliance["plot"])["data"]}
    assert {
        "skin-melanoma-erm: estimated (our counterfactuals)",
        "skin-melanoma-groupdro: estimated (our counterfactuals)",
    } <= names
    rows = list(csv.DictReader(open(next(f for f in files if f.endswith(".csv")))))
    assert {r["classifier"] for r in rows} == {"skin-melanoma-erm", "skin-melanoma-groupdro"}
    with pytest.raises(Exception, match="the spurious and the target attribute must differ"):
        client.predict(model_name="skin-phantom", classifier="skin-melanoma-erm", label="", spurious="melanoma",
                       target="melanoma", source="phantoms", n_phantoms=4, link_strength=0.0, uploads=[],
                       compare="none", api_name="/audit")
