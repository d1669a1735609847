import concurrent.futures

import numpy as np
import pytest
from PIL import Image

from medviz.io import read_image, read_png_parameters
from medviz.ui import handlers


def test_phantom_preview_tints_only_the_changed_region():
    factual, counterfactual, text = handlers.phantom_preview("cxr", 3, "add pacemaker", size=128)
    assert factual.shape == (128, 128) and factual.dtype == np.uint8
    assert counterfactual.shape == (128, 128, 3)
    red = (counterfactual[..., 0].astype(int) - counterfactual[..., 1]) > 40
    assert 0 < red.mean() < 0.2
    assert "pacemaker" in text
    with pytest.raises(ValueError, match="unknown intervention"):
        handlers.phantom_preview("cxr", 0, "add tumour")


def test_compose_prompt_uses_the_training_words():
    assert handlers.compose_prompt("cxr", ["pleural effusion", "support devices"], "", "female") == \
        "Chest X-ray of a female patient showing pleural effusion, support devices"
    assert handlers.compose_prompt("cxr", [], "small left effusion", "unspecified") == "Chest X-ray, small left effusion"
    assert handlers.compose_prompt("skin", ["ruler"], "", lesion="melanoma") == "Dermoscopy image of a melanoma with ruler markings"
    assert handlers.compose_prompt(None, ["ruler"], "a CT slice") == "a CT slice"


@pytest.fixture(scope="module")
def client(cxr_model):
    gradio_client = pytest.importorskip("gradio_client")
    from medviz.ui.layout import build_demo
    from medviz.ui.session import ModelRegistry

    demo = build_demo(ModelRegistry("cxr-phantom", device="cpu", preloaded=cxr_model))
    demo.queue(default_concurrency_limit=1, max_size=32)
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                run_history=False, enable_monitoring=False, show_error=True)
    try:
        yield gradio_client.Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def test_every_endpoint_has_an_api_name(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/generate", "/traverse", "/frame_0", "/stop", "/select_model", "/phantom", "/edit", "/edit_load",
            "/edit_opacity", "/explain", "/explain_opacity"} <= names


def test_generate_endpoint_returns_pngs_with_parameters_and_readouts(client):
    gallery, files, info, history = client.predict(
        "cxr-phantom", ["pleural effusion"], "", "female", "benign nevus", "", 11, 2, "DDIM", 4, 4.0,
        api_name="/generate")
    assert len(gallery) == 2 and len(files) == 2
    assert read_image(gallery[0]["image"]).pixels.shape[:2] == (128, 128)
    assert "seed 11" in gallery[0]["caption"] and "pleural_effusion" in gallery[0]["caption"]
    parameters = read_png_parameters(files[1])
    assert parameters["seed"] == 12 and parameters["steps"] == 4 and parameters["batch_size"] == 1
    assert parameters["prompt"] == "Chest X-ray of a female patient showing pleural effusion"
    assert "research use only" in parameters["notice"] and "pleural_effusion" in parameters["oracle_readout"]
    assert Image.open(files[0]).info["Disclaimer"]
    assert "Seed 11" in info and history["data"][0][0] == 11
    # The file keeps how often the bench saw the model draw what the prompt names (its card's rows).
    record = parameters["bench_record"]
    assert [(r["attribute"], r["wanted"]) for r in record["rows"]] == [("pleural_effusion", True), ("female", True)]
    assert record["n"] == 64 and not record["same_settings"]                   # 4 steps, measured at 25


def test_generate_rejects_an_empty_prompt_with_a_clear_message(cxr_model):
    with pytest.raises(ValueError, match="prompt is empty"):
        handlers.generate_view(cxr_model, "  ", "", 1, 1, "DDIM", 2, 4.0, "test")


def test_app_binds_locally_by_default():
    import app

    args = app.parse_args([])
    assert args.host == "127.0.0.1" and args.model == "cxr-phantom" and args.auth_file is None


def test_unknown_model_gives_a_clear_message(client):
    with pytest.raises(Exception, match="not found"):
        client.predict("/no/such/model", api_name="/select_model")


def test_traverse_then_sliders_show_cached_frames(client):
    frame, chart, summary, gif, *sliders = client.predict(
        "cxr-phantom", "attribute sliders", ["pleural_effusion", "cardiomegaly"], "", 4, -1, 3, 4, 4.0, 1.5, 0,
        api_name="/traverse")
    assert sliders[0]["visible"] and sliders[0]["label"] == "pleural_effusion" and sliders[0]["maximum"] == 2
    assert sliders[1]["visible"] and not sliders[2]["visible"]
    assert "pleural_effusion" in summary and "cardiomegaly" in summary
    assert len(Image.open(gif).n_frames * [0]) >= 3
    first, _ = client.predict("cxr-phantom", 0, api_name="/frame_0")
    last, _ = client.predict("cxr-phantom", 2, api_name="/frame_0")
    a, b = (np.asarray(Image.open(p), dtype=float) for p in (first, last))
    assert a.shape == b.shape and np.abs(a - b).mean() > 1.0
    again, _ = client.predict("cxr-phantom", 0, api_name="/frame_0")
    assert np.array_equal(np.asarray(Image.open(again)), a.astype(np.uint8))


def test_a_moved_slider_makes_no_model_call(client, cxr_model, monkeypatch):
    client.predict("cxr-phantom", "attribute sliders", ["pleural_effusion"], "", 5, -1, 3, 4, 4.0, 1.5, 0,
                   api_name="/traverse")

    def forbidden(*args, **kwargs):
        raise AssertionError("a cached frame must not call the model")

    monkeypatch.setattr(cxr_model.pipe.unet, "forward", forbidden)
    monkeypatch.setattr(cxr_model.pipe.vae, "decode", forbidden)
    monkeypatch.setattr(cxr_model.oracle, "readout", forbidden)
    frames = [np.asarray(Image.open(client.predict("cxr-phantom", i, api_name="/frame_0")[0])) for i in (2, 0)]
    assert frames[0].shape == frames[1].shape and not np.array_equal(*frames)


def test_stop_endpoint_answers_at_once(client):
    assert "Stop requested" in client.predict(api_name="/stop")


def test_phantom_endpoint(client):
    factual, counterfactual, text = client.predict("skin", 4, "add ruler", api_name="/phantom")
    assert read_image(factual).pixels.shape == (256, 256, 3)
    assert "ruler" in text
    with pytest.raises(Exception, match="unknown intervention"):
        client.predict("skin", 4, "add pacemaker", api_name="/phantom")


def test_four_concurrent_clients_five_requests_each(client):
    from gradio_client import Client

    def session(worker: int):
        own = Client(client.src, verbose=False)
        seeds = []
        for request in range(5):
            gallery, *_ = own.predict("cxr-phantom", [], "", "male", "benign nevus", "", 100 * worker + request, 1,
                                      "DDIM", 2, 4.0, api_name="/generate")
            seeds.append(int(gallery[0]["caption"].split()[1]))
        return seeds

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(session, range(4)))
    assert results == [[100 * w + r for r in range(5)] for w in range(4)]


def test_explain_endpoint_on_a_bundled_example_and_on_a_dicom_upload(client, cxr_model, monkeypatch):
    from gradio_client import handle_file

    from medviz.ui.handlers import EXAMPLES_DIR

    # A card whose operating point is a vote threshold (the server shares this loaded model).
    fit = cxr_model.card["explain_calibration"]["pleural effusion"]
    for key, value in {"vote_threshold": 0.4524, "trials": 21, "trials_run": 21, "decision": "vote"}.items():
        monkeypatch.setitem(fit, key, value)

    explanation, evidence, uncertainty, chart, summary = client.predict(
        "cxr-phantom", None, "cxr_effusion.png", "pleural effusion", "", 9, True,
        "model card's operating point (default)", 0.5, api_name="/explain")
    for shown in (explanation, evidence, uncertainty):
        assert read_image(shown).pixels.shape == (384, 384, 3)             # 128 px shown 3x (nearest)
    assert "evidence map" in summary and "weighted to where the class prompts differ" in summary
    assert "effusion" in summary and "not a diagnosis" in summary and "entropy" in summary
    # The preset takes the model card's operating point (10 of 21 votes, a share of 0.4524: 5 of 9 here).
    assert "calibrated operating point (effusion needs 5 of 9 votes)" in summary
    assert "the card fitted 10 of 21 votes, applied here as the same share" in summary   # another N than the fit's
    faint, _, _ = client.predict(0.0, api_name="/explain_opacity")       # opacity 0: the plain input, no model call
    gray = read_image(faint).pixels
    assert gray.ndim == 2 or np.allclose(gray[..., 0], gray[..., 1], atol=2 / 255)
    _, _, _, _, summary = client.predict("cxr-phantom", handle_file(str(EXAMPLES_DIR / "cxr_clear.dcm")), None,
                                         "pleural effusion", "", 9, True, "uniform (Favero et al.)", 0.5,
                                         api_name="/explain")
    assert "Majority vote" in summary and "weighted uniformly" in summary   # the calibration was fitted for the default weighting


def test_explain_view_applies_the_skin_cards_window_and_weighting(skin_model):
    from medviz.ui.handlers import explain_view

    fitted = skin_model.card["explain_calibration"]["melanoma"]
    lo, hi = fitted["t_range"]
    view = explain_view(skin_model, None, "skin_melanoma.png", "melanoma", "", 3, False)
    assert f"over timesteps {lo}–{hi} (the model card's window)" in view.summary
    assert ("weighted uniformly" if fitted["weighting"] == "uniform" else "weighted to where") in view.summary
    other = explain_view(skin_model, None, "skin_melanoma.png", "melanoma", "", 3, False,
                         "where the classes differ" if fitted["weighting"] == "uniform" else "uniform (Favero et al.)")
    assert "model card's window" not in other.summary and "Majority vote" in other.summary


def test_explain_view_names_the_cards_decision_rule(cxr_model, monkeypatch):
    from medviz.ui.handlers import explain_view

    fit = cxr_model.card["explain_calibration"]["pleural effusion"]
    monkeypatch.setitem(fit, "decision", "mean_error")
    monkeypatch.setitem(fit, "vote_threshold", 0.5)
    view = explain_view(cxr_model, None, "cxr_effusion.png", "pleural effusion", "", 3, True)
    assert "Mean-error rule, the model card's decision rule" in view.summary and "effusion needs 2 of 3)" in view.summary
    assert "majority vote: **" in view.summary and "mean-error rule: **" not in view.summary
    monkeypatch.setitem(fit, "vote_threshold", 0.4524)                  # 10 of 21; 2 of 3 at N = 3
    view = explain_view(cxr_model, None, "cxr_effusion.png", "pleural effusion", "", 3, True)
    assert "the vote at that operating point: **" in view.summary and "mean-error rule: **" not in view.summary
    monkeypatch.setitem(fit, "decision", "vote")
    view = explain_view(cxr_model, None, "cxr_effusion.png", "pleural effusion", "", 3, True)
    assert "Mean-error rule" not in view.summary and "mean-error rule: **" in view.summary


def test_explain_trials_default_to_the_n_the_card_was_fitted_at(client, cxr_model, skin_model):
    from gradio_client import Client

    from medviz.engines.counterfactual import edit_defaults
    from medviz.engines.explain import votes_needed
    from medviz.ui.handlers import explain_trials, explain_view

    fitted = skin_model.card["explain_calibration"]["melanoma"]
    assert explain_trials(skin_model, "melanoma") == fitted["trials"]
    assert explain_trials(cxr_model, "pleural effusion") == cxr_model.card["explain_calibration"]["pleural effusion"]["trials"]
    assert explain_trials(cxr_model, "cardiomegaly") == 21 and explain_trials(cxr_model, "custom") == 21   # no fit
    own = Client(client.src, verbose=False)      # its own session: the model change resets that session's choices
    *_, trials, strength, guidance, keep = own.predict("skin-phantom", api_name="/select_model")  # first preset: melanoma
    assert trials["value"] == fitted["trials"]
    skin, cxr = edit_defaults("skin"), edit_defaults("cxr")                  # the Edit sliders follow the model
    assert (strength["value"], guidance["value"], keep["value"]) == (skin.strength, skin.guidance_scale, 0) == (0.9, 6, 0)
    *_, strength, guidance, keep = own.predict("cxr-phantom", api_name="/select_model")
    assert (strength["value"], guidance["value"], keep["value"]) == (cxr.strength, cxr.guidance_scale, 0.04) == (0.8, 3, 0.04)
    at_fit = explain_view(skin_model, None, "skin_melanoma.png", "melanoma", "", fitted["trials"], True)
    assert f"melanoma needs {fitted['votes_needed']} of {fitted['trials']} votes" in at_fit.summary
    # The card runs N = 101 at the share its threshold was fitted at with N = 41: the note names the fit's N.
    fit_n = fitted["trials_run"]
    assert fit_n != fitted["trials"]
    assert (f"the card fitted {votes_needed(fit_n, fitted['vote_threshold'])} of {fit_n} votes, applied here as the "
            "same share") in at_fit.summary


def test_a_bad_upload_gets_a_clear_message(client, tmp_path):
    from gradio_client import handle_file

    bad = tmp_path / "scan.png"
    bad.write_text("this is not an image")
    with pytest.raises(Exception, match="not a recognised image"):
        client.predict("cxr-phantom", handle_file(str(bad)), None, "pleural effusion", "", 9, True,
                       "model card's operating point (default)", 0.5, api_name="/explain")


def test_edit_endpoints_load_a_dicom_edit_and_export(client):
    import pydicom
    from gradio_client import Client, handle_file

    from medviz.ui.handlers import EXAMPLES_DIR

    own = Client(client.src, verbose=False)            # its own session: the loaded image is session state
    with pytest.raises(Exception, match="load an image first"):
        own.predict("cxr-phantom", None, "remove", "pleural_effusion", "", "automatic (DiffEdit)", 0.5, 4.0, 10, 0,
                    0.6, api_name="/edit")
    canvas, info, center, width = own.predict(handle_file(str(EXAMPLES_DIR / "cxr_clear.dcm")), None, None, None,
                                              api_name="/edit_load")
    assert "DICOM" in info and width > 0
    canvas, info, center2, width2 = own.predict(handle_file(str(EXAMPLES_DIR / "cxr_clear.dcm")), None, center,
                                                width / 2, api_name="/edit_load")         # narrower window
    assert width2 == pytest.approx(width / 2)
    sliders, difference, summary, readout, files = own.predict(
        "cxr-phantom", None, "add", "pleural_effusion", "", "automatic (DiffEdit)", 0.5, 4.0, 10, 0, 0.6,
        api_name="/edit")
    before, after = (read_image(p).pixels for p in sliders)
    assert before.shape[:2] == after.shape[:2] == (384, 384) and np.abs(before - after).max() > 0.02
    assert "no pleural effusion" not in summary.split("Target prompt:")[1].split("\n")[0]
    assert "Source prompt" in summary and "not a diagnosis" in summary
    assert [row[0] for row in readout["data"]][:2] == ["pleural_effusion", "cardiomegaly"]
    png, dicom = sorted(files, key=lambda p: p.endswith(".dcm"))
    parameters = read_png_parameters(png)
    # The export keeps the bundled card's bench record of this kind of edit (shown above the Edit button).
    record = parameters["bench_record"]
    assert record["edit"] == "add pleural effusion" and record["n"] == 100 and record["same_settings"] is False
    assert parameters["engine"] == "counterfactual" and parameters["add"] == ["pleural_effusion"]
    assert "research use only" in parameters["notice"]
    dataset = pydicom.dcmread(dicom)
    assert list(dataset.ImageType) == ["DERIVED", "SECONDARY"] and dataset.PatientName == ""
    assert "research use only" in dataset.ImageComments
    plain = own.predict(0.0, api_name="/edit_opacity")                # no model call: re-blend only
    assert np.allclose(read_image(plain).pixels[..., 0] if read_image(plain).pixels.ndim == 3
                       else read_image(plain).pixels, after if after.ndim == 2 else after[..., 0], atol=2 / 255)
    with pytest.raises(Exception, match="paint"):
        own.predict("cxr-phantom", None, "add", "pleural_effusion", "", "painted with the brush", 0.5, 4.0, 10, 0,
                    0.6, api_name="/edit")


def test_painted_mask_comes_from_the_editor_layers():
    layer = np.zeros((8, 8, 4), np.uint8)
    layer[2:4, 2:5, 3] = 255
    mask = handlers.painted_mask({"background": np.zeros((8, 8, 4), np.uint8), "layers": [layer], "composite": None})
    assert mask.sum() == 6 and mask[2, 2] and not mask[0, 0]
    assert handlers.painted_mask({"background": None, "layers": [], "composite": None}) is None


def test_edit_with_a_painted_mask_sent_like_the_browser_does(client, tmp_path):
    from gradio_client import Client, handle_file

    from medviz.ui.handlers import EXAMPLES_DIR

    own = Client(client.src, verbose=False)
    own.predict(None, "cxr_effusion.png", None, None, api_name="/edit_load")           # 256 x 256 example
    layer = np.zeros((256, 256, 4), np.uint8)
    layer[160:240, 20:120] = (255, 208, 0, 255)                                        # the brush stroke
    Image.fromarray(layer, "RGBA").save(tmp_path / "layer.png")
    background = str(EXAMPLES_DIR / "cxr_effusion.png")
    canvas = {"background": handle_file(background), "layers": [handle_file(str(tmp_path / "layer.png"))],
              "composite": handle_file(background)}
    sliders, difference, summary, _, _ = own.predict(
        "cxr-phantom", canvas, "remove", "pleural_effusion", "", "painted with the brush", 0.5, 4.0, 10, 0, 0.6,
        0.0, api_name="/edit")                                          # change threshold 0: the whole painted region
    assert "painted with the brush (12% of the image)." in summary                   # 80 x 100 of 256 x 256
    before, after = (read_image(p).pixels for p in sliders)
    changed = np.abs(before - after) > 1 / 255
    changed = changed if changed.ndim == 2 else changed.any(-1)
    rows, cols = np.nonzero(changed)
    assert changed.any() and rows.min() >= 160 * 384 // 256 and cols.max() < 120 * 384 // 256


def test_the_edit_summary_says_how_far_the_benched_edit_can_be_trusted():
    record = {"edit": "add support devices", "n": 100, "date": "2026-12-03", "effectiveness": 1.0,
              "preservation_all": 0.97, "faithfulness": 0.01, "same_settings": True, "differences": {},
              "meets": {"effectiveness": True, "preservation_all": True, "faithfulness": False}}
    text = handlers.measured_markdown(record, known_domain=True)
    assert text.startswith("⚠ **On this model this edit rarely looks like this image's true counterfactual.**")
    assert "*add support devices* (100 held-out phantoms" in text and "than the input in 1%" in text
    assert "settings differ" not in text
    good = {**record, "faithfulness": 0.99, "meets": dict.fromkeys(record["meets"], True), "same_settings": False,
            "differences": {"mask_mode": ("auto", "painted"), "strength": (0.8, 0.6)}}
    text = handlers.measured_markdown(good, known_domain=True)
    assert "⚠" not in text and ("settings differ and were not measured: mask mode painted (measured at auto), "
                                "strength 0.6 (measured at 0.8).") in text
    both = {**record, "effectiveness": 0.09, "meets": {**record["meets"], "effectiveness": False}}
    assert "often fails to make the change and rarely looks" in handlers.measured_markdown(both, True)
    three = {**both, "meets": dict.fromkeys(record["meets"], False)}
    assert ("this edit often fails to make the change, often changes other attributes too and rarely looks"
            in handlers.measured_markdown(three, True))
    assert "not measured on this model" in handlers.measured_markdown(None, known_domain=True)
    assert handlers.measured_markdown(None, known_domain=False) == ""      # a user's checkpoint: no phantoms


def test_model_tab_lists_the_benched_edits_and_flags_those_below_a_bar(cxr_model):
    from dataclasses import replace

    bars = {"effectiveness": 0.9, "preservation_all": 0.95, "faithfulness": 0.8}
    record = {"n": 100, "effectiveness": 1.0, "preservation_all": 0.97, "faithfulness": 0.01, "bars": bars,
              "meets": {"effectiveness": True, "preservation_all": True, "faithfulness": False}}
    text = handlers.model_about(replace(cxr_model, card={**cxr_model.card, "edit_bench": {"add support devices": record}}))
    assert "| add support devices | 100 | 100% | 97% | 1% ⚠ |" in text
    assert "| 1% ⚠ |\n\n⚠: below the bench's bar (90%, 95%, 80%)" in text       # a note under the table, not a row
    bare = replace(cxr_model, card={k: v for k, v in cxr_model.card.items() if k != "edit_bench"})
    assert "Edits as measured" not in handlers.model_about(bare)


def test_the_edit_tab_says_what_the_bench_measured_before_an_edit_runs(client, cxr_model):
    from gradio_client import Client

    # The bundled CXR card's record of adding devices, at the tab's defaults for the model: no setting differs.
    text = handlers.edit_expectation(cxr_model, "add", "support_devices", "", "automatic (DiffEdit)", 0.8, 3.0, 30, 0.04)
    assert text.startswith("⚠ **On this model this edit rarely looks like this image's true counterfactual.**")
    assert "settings differ" not in text and "*add support devices* (100 held-out phantoms" in text
    moved = handlers.edit_expectation(cxr_model, "add", "ett", "", "automatic (DiffEdit)", 0.6, 3.0, 30, 0.04)
    assert "not measured: strength 0.6 (measured at 0.8)" in moved
    assert "not measured on this model" in handlers.edit_expectation(
        cxr_model, "remove", "pacemaker", "", "automatic (DiffEdit)", 0.8, 3.0, 30, 0.04)
    assert handlers.edit_expectation(cxr_model, "add", None, "", "automatic (DiffEdit)", 0.8, 3.0, 30, 0.04) == ""
    assert handlers.edit_expectation(cxr_model, "add", "ruler", "", "automatic (DiffEdit)", 0.8, 3.0, 30, 0.04) == ""
    # The endpoint the controls' change events call: no model run, the same text.
    own = Client(client.src, verbose=False)
    answer = own.predict("cxr-phantom", "remove", "support_devices", "", "automatic (DiffEdit)", 0.8, 3.0, 30, 0.04,
                         api_name="/edit_expect")
    assert "**Measured on this model** for *remove support devices*" in answer and "⚠" not in answer


def _measured_prompt(**change):
    rows = [{"attribute": "hair", "wanted": True, "agreement": 0.031, "diversity_ratio": 0.83},
            {"attribute": "ruler", "wanted": False, "agreement": 1.0, "diversity_ratio": 0.83}]
    return {"rows": rows, "unmeasured": [], "differences": {}, "same_settings": True, "n": 64, "date": "2026-12-03",
            "bars": {"agreement": 0.9, "diversity_ratio": 0.5}, **change}


def test_the_generate_tab_says_how_often_the_model_draws_what_the_prompt_names():
    text = handlers.prompt_measured_markdown(_measured_prompt(), known_domain=True)
    assert text.startswith("⚠ **On this model, asked for hair, it drew it in only 3% of samples.**")
    assert "the oracle read *hair* in 3%, *no ruler* in 100%." in text and "settings differ" not in text
    negated = _measured_prompt(rows=[{"attribute": "pleural_effusion", "wanted": False, "agreement": 0.75,
                                      "diversity_ratio": 0.3}])
    text = handlers.prompt_measured_markdown(negated, True)
    assert ("asked for no pleural effusion, it still drew pleural effusion in 25% of samples; asked for no pleural "
            "effusion, its samples were much alike (diversity 0.30 of the phantoms')") in text
    male = _measured_prompt(rows=[{"attribute": "female", "wanted": False, "agreement": 0.5, "diversity_ratio": 1.0}])
    assert "asked for male, it drew it in only 50% of samples" in handlers.prompt_measured_markdown(male, True)
    moved = _measured_prompt(rows=[], unmeasured=["pacemaker"], same_settings=False,
                             differences={"steps": (25, 50), "negative_prompt": ("", "blurry")})
    assert handlers.prompt_measured_markdown(moved, True) == (
        "Not measured on this model: pacemaker. This run's settings differ and were not measured: steps 50 "
        "(measured at 25), negative prompt 'blurry' (measured at '').  \n")
    assert handlers.prompt_measured_markdown(_measured_prompt(rows=[]), True) == ""        # names no attribute
    assert "were not measured" in handlers.prompt_measured_markdown(None, known_domain=True)
    assert handlers.prompt_measured_markdown(None, known_domain=False) == ""       # a user's checkpoint


def test_model_tab_lists_the_benched_prompts_and_flags_those_below_a_bar(cxr_model):
    from dataclasses import replace

    record = {"n": 64, "bars": {"agreement": 0.9, "diversity_ratio": 0.5}, "fd_generated_vs_held_out": 101.8,
              "fd_blurred_held_out_vs_held_out": 286.8,
              "rows": [{"attribute": "support_devices", "wanted": True, "prompt": "Chest X-ray showing support devices",
                        "agreement": 0.5, "diversity_ratio": 0.66, "meets": {"agreement": False, "diversity_ratio": True}},
                       {"attribute": "female", "wanted": False, "prompt": "Chest X-ray of a male patient",
                        "agreement": 1.0, "diversity_ratio": 0.4, "meets": {"agreement": True, "diversity_ratio": False}}]}
    text = handlers.model_about(replace(cxr_model, card={**cxr_model.card, "models_bench": record}))
    assert "| Chest X-ray showing support devices | support devices | 50% ⚠ | 0.66 |" in text
    assert "| Chest X-ray of a male patient | male | 100% | 0.40 ⚠ |\n\n⚠: below the bench's bar (90%, 0.50)" in text
    bare = replace(cxr_model, card={k: v for k, v in cxr_model.card.items() if k != "models_bench"})
    assert "Prompts as measured" not in handlers.model_about(bare)


def test_the_generate_tab_says_what_the_bench_measured_before_it_runs(client, cxr_model, skin_model):
    from gradio_client import Client

    # The bundled cards' own rows, at the tab's defaults (25 DDIM steps, guidance 4): no setting differs.
    hair = handlers.generate_expectation(skin_model, "Dermoscopy image of a benign nevus with hair", "", "DDIM", 25, 4.0)
    hair_row = next(r for r in skin_model.card["models_bench"]["rows"] if r["attribute"] == "hair" and r["wanted"])
    assert (hair_row["agreement"] < 0.9) == hair.startswith("⚠ **On this model, asked for hair, it drew it in only")
    assert f"*hair* in {hair_row['agreement']:.0%}" in hair and "*no melanoma* in" in hair
    assert "settings differ" not in hair
    moved = handlers.generate_expectation(cxr_model, "Chest X-ray with a pacemaker", "", "Euler ancestral", 25, 4.0)
    assert "*support devices* in" in moved and "Not measured on this model: pacemaker." in moved
    assert "scheduler 'Euler ancestral' (measured at 'DDIM')" in moved
    assert handlers.generate_expectation(cxr_model, "   ", "", "DDIM", 25, 4.0) == ""
    # The endpoint the controls' change events call: no model run, the same text.
    own = Client(client.src, verbose=False)
    answer = own.predict("cxr-phantom", ["pleural effusion"], "", "female", "benign nevus", "", "DDIM", 25, 4.0,
                         api_name="/generate_expect")
    assert answer.strip() == handlers.generate_expectation(
        cxr_model, "Chest X-ray of a female patient showing pleural effusion", "", "DDIM", 25, 4.0).strip()
    assert "*pleural effusion* in" in answer and "*female* in" in answer


def test_the_explain_tab_says_what_the_classify_bench_measured_before_it_runs(client, cxr_model, skin_model):
    from gradio_client import Client

    card = "model card's operating point (default)"
    text = handlers.explain_expectation(skin_model, "melanoma", "", 101, card)
    assert text.startswith("**Measured on this model** for *melanoma* (classify bench, 400 held-out phantoms")
    assert "gave the phantoms' true label in 98.75%, with 63.5 trials on average." in text
    assert "At most 0.75 points behind N = 501." in text and "settings differ" not in text
    moved = handlers.explain_expectation(skin_model, "melanoma", "", 51, "where the classes differ")
    assert ("settings differ and were not measured: weighting disagreement (measured at uniform), t range 20–980 "
            "(measured at 500–980), vote threshold 0.5 (measured at 0.5488), trials 51 (measured at 101).") in moved
    assert handlers.explain_expectation(skin_model, "custom", "a\nb", 21, card).startswith("*Custom prompts were not")
    assert handlers.explain_expectation(skin_model, "melanoma (one prompt per class)", "", 21, card).startswith(
        "*Melanoma (one prompt per class) was not measured on held-out phantoms")
    assert "| melanoma | 400 | 98.75% | 63.5 | 762 |" in handlers.model_about(skin_model)       # the Model tab
    effusion = handlers.explain_expectation(cxr_model, "pleural effusion", "", 101, card)
    assert "true label in 97.75%, with 66.7 trials on average." in effusion and "points behind" not in effusion
    own = Client(client.src, verbose=False)
    answer = own.predict("cxr-phantom", "custom", "a\nb", 21, card, api_name="/explain_expect")
    assert answer.startswith("*Custom prompts were not measured")
