import numpy as np
import pytest

from medviz.io import read_image
from medviz.ui.tabs.phantoms import intervention_choices, intervention_names, phantom_preview


def test_phantom_preview_tints_only_the_changed_region():
    factual, counterfactual, text = phantom_preview("cxr", 3, "add_pacemaker", size=128)
    assert factual.shape == (128, 128) and factual.dtype == np.uint8
    assert counterfactual.shape == (128, 128, 3)
    red = (counterfactual[..., 0].astype(int) - counterfactual[..., 1]) > 40
    assert 0 < red.mean() < 0.2
    assert "pacemaker" in text
    with pytest.raises(ValueError, match="unknown intervention 'add_tumour' for cxr; choose one of none, add_pleural"):
        phantom_preview("cxr", 0, "add_tumour")
    # Every attribute's add and remove, from the one vocabulary.
    assert {"add pleural effusion", "remove support devices", "make male", "add ETT, CVC, NGT"} <= set(
        intervention_names("cxr"))
    assert ("add ETT, CVC, NGT", "add_ett_cvc_ngt") in intervention_choices("cxr")
    keys = [key for _, key in intervention_choices("skin")]
    assert len(set(keys)) == len(keys) and all(key.replace("_", "").isalnum() for key in keys)


def test_phantom_endpoint(client):
    factual, counterfactual, text = client.predict(domain="skin", seed=4, intervention="add_ruler", api_name="/phantom")
    assert read_image(factual).pixels.shape == (256, 256, 3)
    assert "ruler" in text
    with pytest.raises(Exception, match="unknown intervention"):
        client.predict(domain="skin", seed=4, intervention="add_pacemaker", api_name="/phantom")
