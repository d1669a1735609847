"""The Progression tab through gradio_client: a phantom patient's courses with its truth, an upload with a typed
record, a deterministic baseline, and the one sentence each bad record gets."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medviz import progression
from tests.ui.conftest import served_with_models_folder

TINY = dict(image_size=32, latent=4, width=16, embedding=4, dt_days=2.0)
REQUEST = dict(progression_model="my-progression", source="phantom", patient=5, upload=None, age="70", sex="female",
               heart_failure=True, bnp="900", n_paths=20)

pytestmark = pytest.mark.xdist_group("progression_tab")      # one worker builds the module fixture once


@pytest.fixture(scope="module")
def progression_app(tmp_path_factory):
    """The app with a models folder holding a tiny random SDE 'my-progression' and a GRU baseline 'my-gru'."""
    import torch

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    for name, fields in (("my-progression", {}), ("my-gru", {"model": "gru", "fusion": "concat"})):
        shape = progression.ProgressionConfig(**TINY, **fields)
        progression.save(progression.build(shape).eval(), shape, root / name, {"trained_on": "nothing"})
    with served_with_models_folder(root) as client:
        yield client


def test_a_phantom_patient_gets_its_record_then_courses_beside_its_truth(progression_app):
    age, sex, heart_failure, bnp, baseline = progression_app.predict(patient=5, api_name="/progression_patient")
    assert float(age) >= 18 and sex in ("female", "male") and float(bnp) > 0 and Path(baseline).is_file()
    request = {**REQUEST, "age": age, "sex": sex, "heart_failure": heart_failure, "bnp": bnp}
    summary, figure, gallery, files = progression_app.predict(**request, api_name="/progression")
    assert "### Day 14: predicted size and effect against no treatment" in summary
    assert "| chest drain | " in summary and "true effect |" in summary and "over 20 paths" in summary
    assert "differs from this phantom's own" not in summary
    names = [t["name"] for t in json.loads(figure["plot"])["data"]]
    assert len(names) == 9 and "diuretic: true (phantom)" in names and "chest drain: 90% band" in names
    assert len(gallery) == 15 and gallery[0]["caption"] == "no treatment, day 0" and "Paths 0." in summary
    record = json.loads(Path(files[0]).read_text())
    assert len(record["rows"]) == 3 * 29 and record["parameters"]["patient"] is not None
    assert set(record["effects"]) == {"diuretic", "drain"} and 0 <= record["p_response"] <= 1


def test_an_upload_with_its_record_has_no_truth_and_a_baseline_says_it_has_no_band(progression_app, tmp_path):
    from gradio_client import handle_file

    path = tmp_path / "cxr.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(path)
    summary, figure, gallery, _ = progression_app.predict(
        **{**REQUEST, "source": "upload", "upload": handle_file(str(path)), "progression_model": "my-gru"},
        api_name="/progression")
    assert "true effect" not in summary and gallery == []
    assert "deterministic baseline: one course per treatment, no band" in summary
    assert len(json.loads(figure["plot"])["data"]) == 6


@pytest.mark.parametrize("fields, message", [
    ({"age": "-4"}, "age must be between 18 and 110 years, got -4"),
    ({"age": ""}, "age is missing: enter it in years"),
    ({"bnp": "high"}, "BNP must be a number in pg/mL, got 'high'"),
    ({"source": "upload"}, "upload the patient's baseline chest X-ray"),
    ({"progression_model": "../elsewhere"}, "'../elsewhere' is not a progression model folder"),
])
def test_a_bad_request_gets_one_sentence_and_no_result(progression_app, fields, message):
    with pytest.raises(Exception, match=message) as raised:
        progression_app.predict(**{**REQUEST, **fields}, api_name="/progression")
    assert "Traceback" not in str(raised.value) and "/tmp" not in str(raised.value)


def test_the_line_above_the_button_gives_the_cards_figures_or_says_why(tmp_path):
    from types import SimpleNamespace

    from medviz.ui.session import ModelRegistry
    from medviz.ui.tabs.progression import measured_line

    page = SimpleNamespace(registry=ModelRegistry(models_dir=tmp_path))
    shape = progression.ProgressionConfig(**TINY)
    bench = {"n": 300, "error_factual": [0.08, 0.09, 0.1, 0.1], "error_counterfactual": [0.08, 0.095, 0.1, 0.1],
             "coverage_factual": 0.912, "coverage_counterfactual": 0.897, "pehe": 0.131}
    progression.save(progression.build(shape), shape, tmp_path / "benched", {"bench": bench})
    progression.save(progression.build(shape), shape, tmp_path / "fresh", {})
    assert measured_line(page, "benched") == (
        "Measured on 300 held-out trial patients: day-14 error 0.090 (factual), 0.095 (counterfactual); 90% bands "
        "cover 91% of true courses (factual), 90% (counterfactual); PEHE 0.131.")
    assert "not benched yet" in measured_line(page, "fresh")
    assert "No progression model" in measured_line(page, None)
