"""A user's own checkpoint (no medviz card, no oracle, unknown domain) gets every tab, through gradio_client."""

import pytest

from medviz.ui.common import EXAMPLES_DIR
from tests.tiny import tiny_model
from tests.ui.conftest import served_with_models_folder

FAST = dict(frames=3, steps=4, guidance_scale=3.0, seed=0, seed_b=-1, alpha_max=1.0, start_step=0)


pytestmark = pytest.mark.xdist_group("own_model")      # one worker builds the module fixture once


@pytest.fixture(scope="module")
def own_app(tmp_path_factory):
    """The app with a models folder holding one tiny random SD-architecture folder saved to disk, 'mine'."""
    root = tmp_path_factory.mktemp("models")
    tiny_model(None).pipe.save_pretrained(str(root / "mine"))
    with served_with_models_folder(root) as client:
        yield client, root


def test_the_model_box_offers_the_models_folder_and_names_nothing_outside_it(own_app):
    client, root = own_app
    client.predict(model_name="mine", api_name="/select_model")                # loads from <models>/mine
    for name in ("../mine", str(root.parent), "nothing-here"):
        with pytest.raises(Exception, match="is not a bundled model .* or a folder under the models folder") as raised:
            client.predict(model_name=name, api_name="/select_model")
        assert str(root) not in str(raised.value).replace(name, "")


def test_sliders_and_prompt_switch_take_the_attribute_in_words(own_app):
    client, _ = own_app
    _, _, summary, gif, *_ = client.predict(model_name="mine", kind="slider", targets=[], prompt="a photo",
                                            phrase="with glasses", negation="without glasses", **FAST,
                                            api_name="/traverse")
    assert "**with glasses**: no trajectory metrics" in summary and "has no oracle" in summary
    assert gif.endswith(".gif") and "with_glasses" in gif
    _, _, summary, *_ = client.predict(model_name="mine", kind="prompt_switch", targets=[], prompt="",
                                       phrase="a red square", negation="", **FAST, api_name="/traverse")
    assert "**a red square**" in summary
    with pytest.raises(Exception, match="absence too"):
        client.predict(model_name="mine", kind="slider", targets=[], prompt="", phrase="with glasses",
                       negation="", **FAST, api_name="/traverse")


def test_edit_takes_source_and_target_prompts_and_says_there_is_no_domain_check(own_app):
    client, _ = own_app
    client.predict(model_name="mine", example="cxr_effusion.png", api_name="/edit_example")
    request = dict(model_name="mine", canvas=None, action="remove", attribute=None, mask_mode="none",
                   strength=0.5, guidance_scale=3.0, steps=10, seed=0, change_threshold=0.0, opacity=0.5,
                   target_prompt="a chest X-ray without fluid")
    with pytest.raises(Exception, match="type the source prompt"):
        client.predict(**request, source_prompt="", api_name="/edit")
    _, _, summary, readout, files = client.predict(
        **request, source_prompt="a chest X-ray with fluid", api_name="/edit"
    )
    assert "No domain check for this model" in summary and "**Target prompt:** a chest X-ray without fluid" in summary
    assert readout["data"] == [] and len(files) == 2                      # no oracle: no readout rows


def test_explain_and_generate_run_on_the_users_model(own_app):
    from gradio_client import handle_file

    client, _ = own_app
    client.predict(model_name="mine", upload=handle_file(str(EXAMPLES_DIR / "cxr_clear.dcm")), api_name="/explain_load")
    *_, summary = client.predict(model_name="mine", preset="custom", custom_prompts="a cat\na dog", trials=3,
                                 api_name="/explain")
    assert "No domain check for this model" in summary and "not a diagnosis" in summary
    gallery, files, info, _ = client.predict(
        model_name="mine",
        attributes=[],
        head=None,
        free_text="a chest X-ray",
        seed=3,
        batch=1,
        steps=2,
        api_name="/generate",
    )
    assert len(gallery) == 1 and "Seed 3" in info and files[0].endswith(".png")
