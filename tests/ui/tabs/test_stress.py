"""The Stress tab through gradio_client: phantoms with the oracle and a user's classifier folder, a labelled upload
set, and the sentences a bad request gets."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from medviz.train.classifier import make_classifier
from tests.ui.conftest import served_with_models_folder

REQUEST = dict(model_name="cxr-phantom", classifiers=["oracle", "my-effusion", "my-ladine"], target="pleural_effusion",
               shifts=["rotation", "jpeg"], source="phantoms", n_phantoms=10, uploads=[], domain_check=False)

pytestmark = pytest.mark.xdist_group("stress_tab")      # one worker builds the module fixture once


@pytest.fixture(scope="module")
def stress_app(tmp_path_factory):
    """The app with a models folder holding a tiny random classifier folder 'my-effusion'."""
    from medviz import ladine

    root = tmp_path_factory.mktemp("models")
    make_classifier((8, 16), "pleural_effusion", 32).save_pretrained(str(root / "my-effusion"))
    shape = ladine.LaDiNEConfig(labels=("no pleural_effusion", "pleural_effusion"), image_size=32, patch_size=8,
                                hidden=32, layers=2, heads=2, taps=(1, 2), denoiser_width=16, timesteps=100)
    ladine.save(ladine.build(shape), shape, root / "my-ladine")
    with served_with_models_folder(root) as client:
        yield client


def test_phantoms_under_two_shifts_give_curves_reliability_images_and_files(stress_app):
    summary, curves, reliability, gallery, files = stress_app.predict(**REQUEST, api_name="/stress")
    assert "### pleural_effusion: 10 images per level" in summary
    assert "| accuracy | oracle | my-effusion | my-ladine |" in summary
    assert "\n| no shift | " in summary and "\n| rotation | " in summary and "\n| jpeg | " in summary
    silent = re.search(r"\| wrong with no warning \(not unsure, not flagged\), shifted \| (\d+) of (\d+) \|", summary)
    assert silent and int(silent[1]) <= int(silent[2]) <= 80                 # oracle: 8 shifted levels x 10
    traces = json.loads(curves["plot"])["data"]
    assert {t["name"] for t in traces} == {"oracle", "my-effusion", "my-ladine"} and len(traces) == 6   # 2 x 3
    assert traces[0]["x"] == ["none", "5", "7", "9", "10"]
    assert "calibrated" in {t["name"] for t in json.loads(reliability["plot"])["data"]}
    assert [item["caption"] for item in gallery][:3] == ["no shift", "rotation 5", "rotation 7"] and len(gallery) == 9
    csv_file = next(f for f in files if f.endswith(".csv"))
    rows = list(csv.DictReader(open(csv_file)))
    assert len(rows) == 3 * 9 and {r["classifier"] for r in rows} == {"oracle", "my-effusion", "my-ladine"}
    assert all(0 <= float(r["accuracy"]) <= 1 and r["n"] == "10" for r in rows)
    record = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())
    assert record["parameters"]["target"] == "pleural_effusion" and len(record["rows"]) == 27


def _uploads(tmp_path, labels_csv: str):
    from gradio_client import handle_file

    from medviz.io import write_png

    for i in range(4):
        write_png(tmp_path / f"x{i}.png", np.full((48, 48), 0.2 + 0.15 * i, np.float32))
    (tmp_path / "labels.csv").write_text(labels_csv)
    return [handle_file(str(tmp_path / n)) for n in ("x0.png", "x1.png", "x2.png", "x3.png", "labels.csv")]


def test_a_labelled_upload_set_is_stress_tested_and_an_unlabelled_image_is_named(stress_app, tmp_path):
    uploads = _uploads(tmp_path, "Path,Pleural Effusion\nx0.png,0\nx1.png,1\nx2.png,1\nx3.png,\n")
    summary, *_, files = stress_app.predict(**{**REQUEST, "source": "uploads", "uploads": uploads, "shifts": ["noise"]},
                                            api_name="/stress")
    assert "### pleural_effusion: 3 images per level" in summary and "Labels from labels.csv for 4 images." in summary
    assert "No pleural_effusion label, left out: x3.png" in summary
    rows = list(csv.DictReader(open(next(f for f in files if f.endswith(".csv")))))
    assert [r["shift"] for r in rows if r["classifier"] == "oracle"] == ["none", "noise", "noise", "noise", "noise"]


def test_a_csv_with_a_bad_label_and_a_set_without_labels_get_one_sentence(stress_app, tmp_path):
    bad = _uploads(tmp_path, "Path,Pleural Effusion\nx0.png,0\nx1.png,yes\nx2.png,1\nx3.png,0\n")
    with pytest.raises(Exception, match=r"labels.csv, line 3: .*yes") as raised:
        stress_app.predict(**{**REQUEST, "source": "uploads", "uploads": bad}, api_name="/stress")
    assert str(tmp_path) not in str(raised.value)
    from gradio_client import handle_file

    with pytest.raises(Exception, match="a stress test needs at least 2 images labelled for pleural_effusion"):
        stress_app.predict(**{**REQUEST, "source": "uploads", "uploads": [handle_file(str(tmp_path / "x0.png"))]},
                           api_name="/stress")
    with pytest.raises(Exception, match="the diffusion classifier has no preset for female; choose another"):
        stress_app.predict(**{**REQUEST, "classifiers": ["diffusion-classifier"], "target": "female"},
                           api_name="/stress")
    with pytest.raises(Exception, match="my-ladine is a LaDiNE for pleural_effusion, not cardiomegaly"):
        stress_app.predict(**{**REQUEST, "classifiers": ["my-ladine"], "target": "cardiomegaly"}, api_name="/stress")
    with pytest.raises(Exception, match="choose at least one classifier"):
        stress_app.predict(**{**REQUEST, "classifiers": []}, api_name="/stress")
