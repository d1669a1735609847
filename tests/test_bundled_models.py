"""The bundled models load with stock diffusers / transformers, offline, and do their job minimally."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from medviz.models import MODELS_DIR, bundled_models, load_pipeline, read_model_card  # noqa: E402

pytestmark = pytest.mark.skipif(not (MODELS_DIR / "cxr-phantom").is_dir(), reason="bundled models not present")


@pytest.mark.bundled
@pytest.mark.parametrize("name,prompt", [("cxr-phantom", "Chest X-ray showing pleural effusion"),
                                         ("skin-phantom", "Dermoscopy image of a melanoma")])
def test_stock_pipeline_loads_offline_and_generates(name, prompt, monkeypatch):
    from diffusers import StableDiffusionPipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = StableDiffusionPipeline.from_pretrained(str(MODELS_DIR / name))
    pipe.set_progress_bar_config(disable=True)
    first = pipe(prompt, num_inference_steps=4, generator=torch.Generator().manual_seed(1), output_type="np").images
    again = pipe(prompt, num_inference_steps=4, generator=torch.Generator().manual_seed(1), output_type="np").images
    assert first.shape == (1, 128, 128, 3) and 0.0 <= first.min() < first.max() <= 1.0
    assert np.array_equal(first, again)                       # same seed, same image


def test_bundled_names_and_cards():
    assert {"cxr-phantom", "skin-phantom"} <= set(bundled_models())
    card = read_model_card("cxr-phantom")
    assert card["domain"] == "cxr" and "pleural_effusion" in card["attributes"]
    assert min(card["training"]["run1_recipe"]["results"]["oracle"]["held_out_auc"].values()) >= 0.98
    pipe = load_pipeline("skin-phantom", device="cpu")
    assert pipe.unet.dtype == torch.float32 and pipe.device.type == "cpu"


@pytest.mark.bundled
@pytest.mark.parametrize("domain", ["cxr", "skin"])
def test_oracle_reads_held_out_phantoms(domain):
    """Oracle AUC on fresh phantoms (seeds it never saw), measured here rather than trusted from the card."""
    from transformers import ResNetForImageClassification

    from medviz import domains
    from medviz.metrics import roc_auc
    from medviz.train.data import render_phantoms
    from medviz.train.oracle import HELD_OUT_FIRST_SEED, attribute_matrix, predict

    oracle = ResNetForImageClassification.from_pretrained(str(MODELS_DIR / f"{domain}-oracle"))
    images, factors = render_phantoms(domain, 300, 128, HELD_OUT_FIRST_SEED + 900_000, workers=1)
    probabilities = predict(oracle, images, "cpu")
    truth = attribute_matrix(domain, factors)
    for k, name in enumerate(domains.get(domain).oracle_labels):
        if 0 < truth[:, k].sum() < len(truth):
            assert roc_auc(truth[:, k], probabilities[:, k]) >= 0.98, name
