import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medviz.io import read_image, read_png_parameters
from medviz.ui.common import EXAMPLES_DIR
from medviz.ui.tabs.edit import EditRequest, expectation, measured_markdown, painted_mask

FAST = dict(
    model_name="cxr-phantom",
    canvas=None,
    mask_mode="auto",
    strength=0.5,
    guidance_scale=4.0,
    steps=10,
    seed=0,
    opacity=0.6,
)


def test_edit_endpoints_load_a_dicom_edit_and_export(client):
    import pydicom
    from gradio_client import handle_file

    with pytest.raises(Exception, match="load an image first"):
        client.predict(action="remove", attribute="pleural_effusion", **FAST, api_name="/edit")
    canvas, info, center, width, upload, example = client.predict(
        model_name="cxr-phantom", upload=handle_file(str(EXAMPLES_DIR / "cxr_clear.dcm")), center=None, width=None,
        api_name="/edit_load")
    assert info.startswith("Upload: DICOM") and "→ 32×32 (the model's working size)" in info and width > 0
    assert upload is None and example is None     # the upload box is emptied (the file has left the server), and the
                                                  # example picker too: the upload is the input
    canvas, info, center2, width2 = client.predict(model_name="cxr-phantom", center=center, width=width / 2,
                                                      api_name="/edit_window")          # a narrower window
    assert width2 == pytest.approx(width / 2)
    sliders, difference, summary, readout, files = client.predict(
        action="add", attribute="pleural_effusion", **{**FAST, "mask_mode": "none"}, api_name="/edit")
    before, after = (read_image(p).pixels for p in sliders)
    assert before.shape[:2] == after.shape[:2] == (384, 384) and np.abs(before - after).max() > 0.02
    assert "no pleural effusion" not in summary.split("Target prompt:")[1].split("\n")[0]
    assert "Source prompt" in summary and "not a diagnosis" in summary
    assert "No domain check for this model" in summary           # the tiny model carries no calibration
    assert [row[0] for row in readout["data"]][:2] == ["pleural_effusion", "cardiomegaly"]
    png, dicom = sorted(files, key=lambda p: p.endswith(".dcm"))
    assert re.fullmatch(r"counterfactual-0-[0-9a-f]{8}\.png", Path(png).name)      # seed, then the run's id
    parameters = read_png_parameters(png)
    # The export keeps the card's bench record of this kind of edit (shown above the Edit button).
    record = parameters["bench_record"]
    assert record["edit"] == "add_pleural_effusion" and record["n"] == 100 and record["same_settings"] is False
    assert parameters["engine"] == "counterfactual" and parameters["add"] == ["pleural_effusion"]
    assert parameters["image_size"] == 32 and parameters["input_size"] == [32, 32]
    assert parameters["domain_check"]["in_domain"] is None
    assert parameters["effect_check"]["attribute"] == "pleural_effusion" and "passed" in parameters["effect_check"]
    assert "research use only" in parameters["notice"]
    dataset = pydicom.dcmread(dicom)
    assert list(dataset.ImageType) == ["DERIVED", "SECONDARY"] and dataset.PatientName == ""
    assert "research use only" in dataset.ImageComments
    plain = read_image(client.predict(opacity=0.0, api_name="/edit_opacity")).pixels    # no model call: re-blend only
    assert np.allclose(plain if plain.ndim == 2 else plain[..., 0], after if after.ndim == 2 else after[..., 0],
                       atol=2 / 255)
    with pytest.raises(Exception, match="paint"):
        client.predict(action="add", attribute="pleural_effusion", **{**FAST, "mask_mode": "painted"},
                       api_name="/edit")


def test_a_failed_upload_leaves_no_image_and_the_edit_refuses(client, tmp_path):
    from gradio_client import handle_file

    client.predict(model_name="cxr-phantom", example="cxr_effusion.png", api_name="/edit_example")
    client.predict(action="remove", attribute="pleural_effusion", **FAST, api_name="/edit")      # an image is loaded
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    canvas, info, *_ = client.predict(model_name="cxr-phantom", upload=handle_file(str(broken)), center=None,
                                      width=None, api_name="/edit_load")
    assert canvas is None and "No image loaded" in info and "broken" not in info      # no file name either
    with pytest.raises(Exception, match="load an image first"):             # never the example loaded before
        client.predict(action="remove", attribute="pleural_effusion", **FAST, api_name="/edit")


def test_an_upload_leaves_the_servers_cache_at_once(client, tmp_path):
    from gradio.utils import get_upload_folder
    from gradio_client import handle_file

    named = tmp_path / "DOE_JOHN_1957.dcm"                      # a patient's name in the file name
    shutil.copy(EXAMPLES_DIR / "cxr_clear.dcm", named)
    client.predict(model_name="cxr-phantom", upload=handle_file(str(named)), center=None, width=None,
                   api_name="/edit_load")
    assert not list(Path(get_upload_folder()).rglob(named.name))


def test_every_run_has_its_own_download_and_a_closed_session_leaves_none(app_url, monkeypatch):
    import httpx

    from tests.ui.conftest import local_client

    # gradio notices a closed page when its heartbeat stream next writes: every 15 s by default, every 1 s here
    monkeypatch.setenv("GRADIO_HEARTBEAT_INTERVAL", "1")
    client = local_client(app_url, download_files=False)
    client.predict(model_name="cxr-phantom", example="cxr_effusion.png", api_name="/edit_example")
    served = []
    for _ in range(2):                                        # the same edit, the same seed
        *_, files = client.predict(action="remove", attribute="pleural_effusion", **FAST, api_name="/edit")
        served.append({Path(f["path"]).suffix: f["url"] for f in files})
    first, second = served
    assert first[".png"] != second[".png"] and first[".dcm"] != second[".dcm"]
    before = httpx.get(first[".png"]).content
    assert httpx.get(first[".png"]).content == before and httpx.get(second[".png"]).status_code == 200
    client.close()                                            # the session ends: its files go
    deadline = time.time() + 40
    while time.time() < deadline and httpx.get(first[".png"]).status_code == 200:
        time.sleep(1)
    assert all(httpx.get(url).status_code in (403, 404) for run in served for url in run.values())


def test_painted_mask_comes_from_the_editor_layers():
    layer = np.zeros((8, 8, 4), np.uint8)
    layer[2:4, 2:5, 3] = 255
    mask = painted_mask({"background": np.zeros((8, 8, 4), np.uint8), "layers": [layer], "composite": None})
    assert mask.sum() == 6 and mask[2, 2] and not mask[0, 0]
    assert painted_mask({"background": None, "layers": [], "composite": None}) is None


def test_edit_with_a_painted_mask_sent_like_the_browser_does(client, tmp_path):
    from gradio_client import handle_file

    client.predict(
        model_name="cxr-phantom", example="cxr_effusion.png", api_name="/edit_example"
    )  # 32 px, shown at 384
    layer = np.zeros((256, 256, 4), np.uint8)  # a canvas of another size: the mask is resized to the image
    layer[160:240, 32:128] = (255, 208, 0, 255)  # the brush stroke
    Image.fromarray(layer, "RGBA").save(tmp_path / "layer.png")
    background = str(EXAMPLES_DIR / "cxr_effusion.png")
    canvas = {"background": handle_file(background), "layers": [handle_file(str(tmp_path / "layer.png"))],
              "composite": handle_file(background)}
    sliders, difference, summary, _, _ = client.predict(
        action="remove",
        attribute="pleural_effusion",
        **{**FAST, "canvas": canvas, "mask_mode": "painted"},
        change_threshold=0.0,
        api_name="/edit",
    )  # change threshold 0: the whole painted region
    assert "painted with the brush (12% of the image)." in summary  # 80 x 96 of 256 x 256
    before, after = (read_image(p).pixels for p in sliders)
    changed = np.abs(before - after) > 1 / 255
    changed = changed if changed.ndim == 2 else changed.any(-1)
    rows, cols = np.nonzero(changed)
    assert changed.any() and rows.min() >= 160 * 384 // 256 and cols.max() < 128 * 384 // 256


def test_the_line_above_the_button_says_how_far_the_benched_edit_can_be_trusted():
    record = {"edit": "add_support_devices", "phrase": "add support devices", "n": 100, "date": "2026-12-03",
              "effectiveness": 1.0,
              "preservation_all": 0.97, "faithfulness": 0.01, "same_settings": True, "differences": {},
              "warnings": ["On this model this edit rarely looks like this image's true counterfactual."]}
    text = measured_markdown(record, known_domain=True)
    assert text.startswith("⚠ **On this model this edit rarely looks like this image's true counterfactual.**")
    assert "*add support devices* (100 held-out phantoms" in text and "than the input in 1%" in text
    assert "settings differ" not in text
    good = {**record, "faithfulness": 0.99, "warnings": [], "same_settings": False,
            "differences": {"mask_mode": ("auto", "painted"), "strength": (0.8, 0.6)}}
    text = measured_markdown(good, known_domain=True)
    assert (
        "⚠" not in text
        and (
            "settings differ and were not measured: mask mode painted (measured at auto), "
            "strength 0.6 (measured at 0.8)."
        )
        in text
    )
    assert "not measured on this model" in measured_markdown(None, known_domain=True)
    assert measured_markdown(None, known_domain=False) == ""      # a user's checkpoint: no phantoms


def test_the_tab_says_what_the_bench_measured_before_an_edit_runs(client, tiny_cxr):
    def line(action, attribute, strength=0.8):
        return expectation(tiny_cxr, EditRequest(action=action, attribute=attribute, strength=strength,
                                                 guidance_scale=3.0, steps=30, change_threshold=0.04))

    # The bundled CXR card's record of adding devices, at the tab's defaults for the model: no setting differs.
    text = line("add", "support_devices")
    assert text.startswith("⚠ **On this model this edit rarely looks like this image's true counterfactual.**")
    assert "settings differ" not in text and "*add support devices* (100 held-out phantoms" in text
    assert "not measured: strength 0.6 (measured at 0.8)" in line("add", "ett", strength=0.6)
    assert "not measured on this model" in line("remove", "pacemaker")
    assert line("add", None) == "" and line("add", "ruler") == ""
    # The endpoint the controls' change events call: no model run, the same text.
    answer = client.predict(model_name="cxr-phantom", action="remove", attribute="support_devices", strength=0.8,
                            guidance_scale=3.0, steps=30, change_threshold=0.04, api_name="/edit_expect")
    assert "**Measured on this model** for *remove support devices*" in answer and "⚠" not in answer
