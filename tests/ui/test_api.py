"""Every named API endpoint answers through gradio_client with identifiers only (the page's defaults, which are
identifiers, plus a few cheap settings), in the order a script would call them."""

from gradio_client import handle_file

from medviz.ui.common import EXAMPLES_DIR

#: Cheap settings per endpoint (on the tiny random models); every other parameter keeps the page's default.
CALLS = {
    "/select_model": {},
    "/phantom": {"domain": "skin", "intervention": "add_ruler"},
    "/generate_expect": {"attributes": ["pleural_effusion"]},
    "/generate": {"attributes": ["pleural_effusion", "pacemaker"], "head": "male", "seed": 1, "batch": 1,
                  "steps": 2},
    "/traverse": {"kind": "slider", "targets": ["pleural_effusion"], "frames": 3, "steps": 4},
    **{f"/frame_{i}": {"index": 1} for i in range(6)},         # the middle frame (3 frames: 0..2)
    "/edit_load": {"upload": handle_file(str(EXAMPLES_DIR / "cxr_pacemaker.png")), "center": None, "width": None},
    "/edit_example": {"example": "cxr_effusion.png"},
    "/edit_window": {"center": 0.5, "width": 1.0},
    "/edit_expect": {"action": "add", "attribute": "ett", "mask_mode": "none"},
    "/edit": {"canvas": None, "action": "remove", "attribute": "pleural_effusion", "mask_mode": "auto", "steps": 10},
    "/edit_opacity": {"opacity": 0.3},
    "/explain_load": {"upload": handle_file(str(EXAMPLES_DIR / "cxr_clear.png"))},
    "/explain_example": {"example": "cxr_effusion.png"},
    "/explain_expect": {"preset": "pleural_effusion_one_prompt", "weighting": "uniform"},
    "/explain": {"preset": "pleural_effusion", "trials": 3, "weighting": "disagreement"},
    "/explain_opacity": {"opacity": 0.2},
    "/audit": {"classifier": "cxr-effusion-erm", "compare": "none", "n_phantoms": 4, "uploads": None},
    "/stress": {"classifiers": ["oracle"], "target": "pleural_effusion", "shifts": ["rotation"], "n_phantoms": 10,
                "uploads": None, "domain_check": False},
    "/progression_patient": {"patient": 3},
    "/progression": {"patient": 3, "upload": None, "age": "72", "bnp": "640", "n_paths": 10},
    "/stop": {},
}
#: Endpoints that take no model box.
NO_MODEL = ("/phantom", "/stop", "/edit_opacity", "/explain_opacity", "/edit_window", "/progression_patient",
            "/progression")


def test_every_endpoint_answers_identifiers(client):
    import pytest

    named = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert sorted(named) == sorted(CALLS)                 # a new endpoint gets a line here
    for name, settings in CALLS.items():
        model = {} if name in NO_MODEL or name.startswith("/frame") else {"model_name": "cxr-phantom"}
        if name in ("/frame_1", "/frame_2", "/frame_3", "/frame_4", "/frame_5"):   # one trajectory: the rest say so
            with pytest.raises(Exception, match="no trajectory for this slider"):
                client.predict(**settings, api_name=name)
            continue
        client.predict(**model, **settings, api_name=name)   # raises on any refusal
