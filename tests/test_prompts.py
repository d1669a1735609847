import math

import numpy as np
import pytest

from medviz import prompts


def test_label_values_follow_chexpert_convention():
    assert prompts.label_value("1.0") == 1.0 and prompts.label_value(0) == 0.0
    assert math.isnan(prompts.label_value("-1.0")) and math.isnan(prompts.label_value(""))
    with pytest.raises(ValueError, match="1, 0, -1 or blank"):
        prompts.label_value("2")


def test_prism_and_skin_captions():
    labels = {"Pleural Effusion": "1.0", "Support Devices": "1", "Cardiomegaly": "-1.0", "Edema": ""}
    assert prompts.prism_caption(labels) == "Chest X-ray showing pleural effusion, support devices"
    assert prompts.prism_caption({"Cardiomegaly": "-1"}) == prompts.PRISM_NORMAL
    assert prompts.skin_caption({"diagnosis": "melanoma", "ruler": 1, "hair": "0"}) == \
        "Dermoscopy image of a melanoma with ruler markings"


@pytest.mark.parametrize("text,expected", [
    ("chest X-ray showing pleural effusion, support devices",
     {"pleural_effusion": True, "support_devices": True}),
    ("chest X-ray with pacemaker but no pleural effusion or cardiomegaly",
     {"pacemaker": True, "support_devices": True, "pleural_effusion": False, "cardiomegaly": False}),
    ("Normal chest X-ray with no significant findings", {"pleural_effusion": False, "cardiomegaly": False}),
    ("enlarged heart, without support devices; left effusion",
     {"cardiomegaly": True, "support_devices": False, "pleural_effusion": True}),
    ("Chest X-ray of a 70-year-old male patient with cardiomegaly and an NG tube",
     {"cardiomegaly": True, "ngt": True, "support_devices": True}),
    ("negative for effusion", {"pleural_effusion": False}),
])
def test_parse_cxr_prompts(text, expected):
    assert prompts.parse_prompt(text, "cxr") == expected


def test_parse_skin_prompts():
    assert prompts.parse_prompt("dermoscopy of a melanoma with hair, no ruler", "skin") == \
        {"melanoma": True, "hair": True, "ruler": False}
    assert prompts.parse_prompt("benign nevus without ink markings", "skin") == {"ink": False, "melanoma": False}
    with pytest.raises(ValueError, match="unknown domain"):
        prompts.parse_prompt("x", "mri")


def test_augmented_captions_parse_back_to_their_labels():
    rng = np.random.default_rng(0)
    for _ in range(200):
        present = {k: bool(rng.random() < 0.5) for k in ("pleural_effusion", "cardiomegaly", "support_devices")}
        caption = prompts.augmented_caption("cxr", present, rng, negatives=0.5)
        parsed = prompts.parse_prompt(caption, "cxr")
        for key, value in present.items():
            if key in parsed:
                assert parsed[key] == value, (caption, parsed)
            else:
                assert not value, (caption, parsed)   # positives are always mentioned
