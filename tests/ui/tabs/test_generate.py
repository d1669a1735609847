import concurrent.futures

import pytest
from PIL import Image

from medviz.io import read_image, read_png_parameters
from medviz.ui.common import Job
from medviz.ui.tabs.generate import GenerateRequest, expectation, generate_view, head_choices, measured_markdown


def test_the_prompt_is_the_training_captions_grammar():
    assert GenerateRequest(("pleural_effusion", "support_devices"), "female").prompt("cxr") == \
        "Chest X-ray of a female patient showing pleural effusion, support devices"
    assert GenerateRequest((), "unspecified", "small left effusion").prompt("cxr") == "Chest X-ray, small left effusion"
    assert (
        GenerateRequest(("ruler",), "melanoma").prompt("skin") == "Dermoscopy image of a melanoma with ruler markings"
    )
    assert GenerateRequest(("ruler",), "", "a CT slice").prompt(None) == "a CT slice"  # unknown domain: free text
    assert head_choices("cxr") == ("Sex", [("unspecified", "unspecified"), ("female", "female"), ("male", "male")],
                                   "female")
    assert head_choices("skin") == ("Lesion", [("benign nevus", "benign_nevus"), ("melanoma", "melanoma")],
                                    "benign_nevus")
    assert head_choices(None) is None


def test_generate_endpoint_returns_pngs_with_parameters_and_readouts(client):
    gallery, files, info, history = client.predict(
        model_name="cxr-phantom", attributes=["pleural_effusion"], head="female", seed=11, batch=2, steps=4,
        api_name="/generate")
    assert len(gallery) == 2 and len(files) == 2
    assert read_image(gallery[0]["image"]).pixels.shape[:2] == (32, 32)          # the tiny model's size
    assert "seed 11" in gallery[0]["caption"] and "pleural_effusion" in gallery[0]["caption"]
    parameters = read_png_parameters(files[1])
    assert parameters["seed"] == 12 and parameters["steps"] == 4 and parameters["batch_size"] == 1
    assert parameters["prompt"] == "Chest X-ray of a female patient showing pleural effusion"
    assert "research use only" in parameters["notice"] and "pleural_effusion" in parameters["oracle_readout"]
    assert Image.open(files[0]).info["Disclaimer"]
    assert "Seed 11" in info and history["data"][0][0] == 11
    # The file keeps how often the bench saw the model draw what the prompt names (the bundled card's rows).
    record = parameters["bench_record"]
    assert [(r["attribute"], r["wanted"]) for r in record["rows"]] == [("pleural_effusion", True), ("female", True)]
    assert record["n"] == 64 and not record["same_settings"]                   # 4 steps, measured at 25


def test_an_empty_prompt_is_refused_with_a_clear_message(tiny_cxr):
    from tests.tiny import tiny_model

    unknown = tiny_model(None)                     # a user's checkpoint: the free text is the whole prompt
    with pytest.raises(ValueError, match="prompt is empty"):
        generate_view(unknown, GenerateRequest(free_text="  "), Job("test"))
    assert expectation(unknown, GenerateRequest(free_text="a chest")) == ""          # no card, no domain: nothing
    assert generate_view(tiny_cxr, GenerateRequest(seed=3, batch=1, steps=2), Job("test")).seed == 3


def test_four_concurrent_clients_five_requests_each(app_url):
    from tests.ui.conftest import local_client

    def session(worker: int):
        own = local_client(app_url)
        seeds = []
        for request in range(5):
            gallery, *_ = own.predict(model_name="cxr-phantom", head="male", seed=100 * worker + request, batch=1,
                                      steps=2, api_name="/generate")
            seeds.append(int(gallery[0]["caption"].split()[1]))
        return seeds

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(session, range(4)))
    assert results == [[100 * w + r for r in range(5)] for w in range(4)]


def _measured(**change):
    rows = [{"attribute": "hair", "wanted": True, "phrase": "hair", "agreement": 0.031, "diversity_ratio": 0.83},
            {"attribute": "ruler", "wanted": False, "phrase": "no ruler markings", "agreement": 1.0,
             "diversity_ratio": 0.83}]
    return {"rows": rows, "unmeasured": [], "differences": {}, "same_settings": True, "n": 64, "date": "2026-12-03",
            "warnings": ["On this model, asked for hair, it drew it in only 3% of samples."],
            "bars": {"agreement": 0.9, "diversity_ratio": 0.5}, **change}


def test_the_line_above_the_button_says_how_often_the_model_draws_what_the_prompt_names():
    text = measured_markdown(_measured(), known_domain=True)
    assert text.startswith("⚠ **On this model, asked for hair, it drew it in only 3% of samples.**")
    assert "the oracle read *hair* in 3%, *no ruler markings* in 100%." in text and "settings differ" not in text
    moved = _measured(rows=[], unmeasured=["pacemaker"], warnings=[], same_settings=False,
                      differences={"steps": (25, 50), "negative_prompt": ("", "blurry")})
    assert measured_markdown(moved, True) == (
        "Not measured on this model: pacemaker. This run's settings differ and were not measured: steps 50 "
        "(measured at 25), negative prompt 'blurry' (measured at '').  \n")
    assert measured_markdown(_measured(rows=[], warnings=[]), True) == ""          # names no attribute
    assert "were not measured" in measured_markdown(None, known_domain=True)
    assert measured_markdown(None, known_domain=False) == ""       # a user's checkpoint


def test_the_tab_says_what_the_bench_measured_before_it_runs(client, tiny_cxr, tiny_skin):
    # The bundled cards' own rows, at the tab's defaults (25 DDIM steps, guidance 4): no setting differs.
    hair = expectation(tiny_skin, GenerateRequest(("hair",), "benign_nevus"))
    hair_row = next(r for r in tiny_skin.card["models_bench"]["rows"] if r["attribute"] == "hair" and r["wanted"])
    assert (hair_row["agreement"] < 0.9) == hair.startswith("⚠ **On this model, asked for hair, it drew it in only")
    assert f"*hair* in {hair_row['agreement']:.0%}" in hair and "*benign nevus* in" in hair
    assert "settings differ" not in hair
    moved = expectation(
        tiny_cxr, GenerateRequest(free_text="a pacemaker", head="unspecified", scheduler="Euler ancestral")
    )
    assert "*support devices* in" in moved and "Not measured on this model: pacemaker." in moved
    assert "scheduler 'Euler ancestral' (measured at 'DDIM')" in moved
    assert expectation(tiny_cxr, GenerateRequest(head="unspecified")) == ""          # "Chest X-ray" names nothing
    # The endpoint the controls' change events call: no model run, the same text.
    answer = client.predict(model_name="cxr-phantom", attributes=["pleural_effusion"], head="female",
                            api_name="/generate_expect")
    assert answer.strip() == expectation(tiny_cxr, GenerateRequest(("pleural_effusion",), "female")).strip()
    assert "*pleural effusion* in" in answer and "*female* in" in answer


def test_a_phrase_where_an_identifier_is_expected_is_refused_naming_the_choices(client):
    with pytest.raises(Exception) as refused:
        client.predict(model_name="cxr-phantom", attributes=["pleural effusion"], seed=1, batch=1, steps=4,
                       api_name="/generate")
    message = str(refused.value)                  # gradio's own check of the choices, one sentence
    assert "'pleural effusion'" in message and "is not in the list of choices" in message
    assert "'pleural_effusion'" in message and "'cardiomegaly'" in message
