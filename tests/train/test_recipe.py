"""The whole training recipe at test size: tokenizer, VAE, text encoder + UNet, oracle, bundle, load."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from medviz.train.__main__ import main

    root = tmp_path_factory.mktemp("recipe")
    assert main(["recipe", "--domain", "cxr", "--out", str(root / "work"), "--model-dir", str(root / "cxr-tiny"),
                 "--oracle-dir", str(root / "cxr-tiny-oracle"), "--preset", "tiny", "--n-images", "48",
                 "--vae-steps", "4", "--unet-steps", "4", "--oracle-steps", "4", "--batch-size", "8",
                 "--workers", "1", "--n-held-out", "32"]) == 0
    return root


def test_recipe_writes_a_stock_diffusers_pipeline(tiny_models):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_models / "cxr-tiny"), local_files_only=True)
    assert pipe.unet.dtype == torch.float32
    out = pipe("Chest X-ray showing pleural effusion", num_inference_steps=2, height=32, width=32,
               generator=torch.Generator().manual_seed(0), output_type="np")
    assert out.images.shape == (1, 32, 32, 3) and np.isfinite(out.images).all()
    facts = json.loads((tiny_models / "cxr-tiny" / "medviz.json").read_text())
    assert facts["domain"] == "cxr" and "pleural_effusion" in facts["attributes"]
    assert set(facts["timings"]) >= {"vae_s", "text2image_s", "oracle_s", "total_s"}
    auc = facts["results"]["oracle"]["held_out_auc"]
    assert set(auc) == set(facts["attributes"])
    assert (tiny_models / "cxr-tiny-oracle" / "model.safetensors").is_file()


def test_training_is_resumable_and_checkpoints_carry_their_config(tiny_models):
    from medviz.train.vae import VAEConfig, train_vae

    work = tiny_models / "resume"
    config = VAEConfig(domain="cxr", out=str(work), preset="tiny", n_images=16, steps=3, batch_size=4, workers=1)
    stopped = train_vae(config, should_stop=lambda: True)
    assert stopped == {"stopped_at": 1}
    record = json.loads((work / "vae-checkpoints" / "checkpoint-0000001" / "medviz_train.json").read_text())
    assert record["step"] == 1 and record["config"]["preset"] == "tiny"
    finished = train_vae(config)
    assert finished["steps"] == 3 and (work / "vae" / "diffusion_pytorch_model.safetensors").is_file()


def test_same_seed_gives_the_same_weights(tmp_path):
    from safetensors.torch import load_file

    from medviz.train.vae import VAEConfig, train_vae

    images = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    for name in ("a", "b"):
        train_vae(VAEConfig(domain="cxr", out=str(tmp_path / name), preset="tiny", steps=2, batch_size=4), images)
    a = load_file(str(tmp_path / "a" / "vae" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(tmp_path / "b" / "vae" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_tokenizer_covers_the_prompt_vocabulary(tmp_path):
    from transformers import CLIPTokenizer

    from medviz.train.captions import prompt_corpus
    from medviz.train.tokenizer import build_clip_tokenizer

    build_clip_tokenizer(prompt_corpus("cxr", 300), tmp_path, 1024, 32)
    tokenizer = CLIPTokenizer.from_pretrained(str(tmp_path))
    tokens = tokenizer.tokenize("Chest X-ray of a female patient showing pleural effusion, no cardiomegaly")
    assert "effusion</w>" in tokens and "cardiomegaly</w>" in tokens and "female</w>" in tokens
    assert tokenizer.unk_token_id not in tokenizer("zebra quokka").input_ids[1:-1]   # spelled, not unknown
    ids = tokenizer("pleural effusion", padding="max_length", max_length=32).input_ids
    assert len(ids) == 32 and ids[0] == tokenizer.bos_token_id


def test_training_captions_name_every_present_attribute():
    from medviz.phantoms import get_domain
    from medviz.prompts import parse_prompt
    from medviz.train.captions import phantom_attributes, training_caption

    rng = np.random.default_rng(1)
    for domain in ("cxr", "skin"):
        graph = get_domain(domain).build_graph()
        for seed in range(150):
            factors = graph.sample(seed).factors
            caption = training_caption(domain, factors, rng)
            parsed = parse_prompt(caption, domain)
            truth = phantom_attributes(domain, factors)
            for key, value in parsed.items():
                assert truth[key] == value, (caption, key)
            main = ("pleural_effusion", "cardiomegaly") if domain == "cxr" else ("melanoma", "ruler", "hair")
            for key in main:
                if truth[key]:
                    assert parsed.get(key) is True, (caption, key)


def test_finetune_an_existing_pipeline_on_a_chexpert_csv(tiny_models, tmp_path):
    """PRISM's recipe path: UNet only, from a folder + CSV; VAE and text encoder unchanged."""
    from safetensors.torch import load_file

    from medviz.phantoms.export import write_dataset
    from medviz.train.text2image import Text2ImageConfig, train_text2image

    write_dataset("cxr", 6, 128, tmp_path / "data")
    config = Text2ImageConfig(domain="cxr", out=str(tmp_path / "ft"), steps=2, batch_size=2,
                              pretrained=str(tiny_models / "cxr-tiny"), data_csv=str(tmp_path / "data" / "labels.csv"))
    result = train_text2image(config)
    assert result["steps"] == 2 and result["images"] == 6
    before = load_file(str(tiny_models / "cxr-tiny" / "text_encoder" / "model.safetensors"))
    after = load_file(str(tmp_path / "ft" / "text_encoder" / "model.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before)          # frozen
    unet_before = load_file(str(tiny_models / "cxr-tiny" / "unet" / "diffusion_pytorch_model.safetensors"))
    unet_after = load_file(str(tmp_path / "ft" / "unet" / "diffusion_pytorch_model.safetensors"))
    assert any(not torch.equal(unet_before[k], unet_after[k]) for k in unet_before)   # trained
