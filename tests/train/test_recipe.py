"""The whole training recipe at test size: tokenizer, VAE, text encoder + UNet, oracle, bundle, load."""

import dataclasses
import json
import os
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")


pytestmark = pytest.mark.xdist_group("recipe")      # one worker builds the module fixture once


def test_the_module_runs_in_one_xdist_group(request):
    """Under xdist the group shows in the test's id; a pytest that drops it (xdist #1386) builds the fixture twice."""
    if "PYTEST_XDIST_WORKER" in os.environ and request.config.getoption("loadgroup", False):  # set on each worker
        assert request.node.nodeid.endswith("@recipe")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from medviz.train.__main__ import main

    root = tmp_path_factory.mktemp("recipe")
    assert main(["recipe", "--domain", "cxr", "--out", str(root / "work"), "--model-dir", str(root / "cxr-tiny"),
                 "--oracle-dir", str(root / "cxr-tiny-oracle"), "--preset", "tiny", "--n-images", "48",
                 "--vae-steps", "4", "--unet-steps", "4", "--oracle-steps", "4", "--batch-size", "8",
                 "--workers", "1", "--n-held-out", "32", "--vae-structure-weight", "4", "--vae-crop-latents", "8",
                 "--vae-structure-windows", "0.5", "--vae-balance-structures",
                 "--unet-structure-weight", "8"]) == 0
    return root


def test_recipe_passes_the_structure_options_to_the_vae_and_unet(tiny_models):
    record = json.loads((tiny_models / "work" / "vae" / "medviz_train.json").read_text())
    assert record["config"]["structure_weight"] == 4.0
    assert record["config"]["crop_latents"] == 8 and record["config"]["structure_windows"] == 0.5
    assert record["config"]["balance_structures"] is True
    unet_record = json.loads((tiny_models / "work" / "unet" / "medviz_train.json").read_text())
    assert unet_record["config"]["structure_weight"] == 8.0
    for job in (record, unet_record):             # one process: every row is its own, the batch as configured
        scale = job["scale"]
        assert scale["processes"] == 1 and scale["effective_batch"] == job["config"]["batch_size"]
        assert (
            scale["shards"][0]["rows"] == [0, job["config"]["n_images"] - 1] and scale["shards"][0]["distinct_seen"] > 0
        )


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
    assert facts["oracle"] == "../cxr-tiny-oracle"          # relative, so the pair can move together


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

    from medviz.train.tokenizer import build_clip_tokenizer, prompt_corpus

    build_clip_tokenizer(prompt_corpus("cxr", 300), tmp_path, 1024, 32)
    tokenizer = CLIPTokenizer.from_pretrained(str(tmp_path))
    tokens = tokenizer.tokenize("Chest X-ray of a female patient showing pleural effusion, no cardiomegaly")
    assert "effusion</w>" in tokens and "cardiomegaly</w>" in tokens and "female</w>" in tokens
    assert tokenizer.unk_token_id not in tokenizer("zebra quokka").input_ids[1:-1]   # spelled, not unknown
    ids = tokenizer("pleural effusion", padding="max_length", max_length=32).input_ids
    assert len(ids) == 32 and ids[0] == tokenizer.bos_token_id


def test_training_captions_name_every_present_attribute():
    from medviz import domains
    from medviz.phantoms import get_domain
    from medviz.prompts import parse_prompt, training_caption

    rng = np.random.default_rng(1)
    for domain in ("cxr", "skin"):
        graph = get_domain(domain).build_graph()
        for seed in range(150):
            factors = graph.sample(seed).factors
            caption = training_caption(domain, factors, rng)
            parsed = parse_prompt(caption, domain)
            truth = domains.get(domain).attributes_of(factors)
            for key, value in parsed.items():
                assert truth[key] == value, (caption, key)
            main = ("pleural_effusion", "cardiomegaly") if domain == "cxr" else ("melanoma", "ruler", "hair")
            for key in main:
                if truth[key]:
                    assert parsed.get(key) is True, (caption, key)


def test_device_captions_also_use_the_generic_phrase_alone():
    """The generic phrase must stand alone in training, or "showing support devices" learns nothing."""
    from medviz import domains
    from medviz.phantoms import get_domain
    from medviz.prompts import parse_prompt, training_caption

    synonyms = sorted(domains.get("cxr").attribute("support_devices").synonyms, key=len, reverse=True)
    generic_phrase = re.compile(r"(?<!cardiac )\b(" + "|".join(map(re.escape, synonyms)) + r")\b")  # not a pacemaker's
    graph = get_domain("cxr").build_graph()
    rng = np.random.default_rng(0)
    wordings = {"generic": 0, "names": 0, "both": 0}
    for seed in range(400):
        factors = graph.sample(seed).factors
        if not factors["devices"]:
            continue
        caption = training_caption("cxr", factors, rng)
        parsed = parse_prompt(caption, "cxr")           # a named device implies support devices here
        named = any(parsed.get(d) for d in domains.get("cxr").kinds("support_devices"))
        generic = generic_phrase.search(caption.split(", no ")[0]) is not None
        assert generic or named
        assert not any(parsed.get(d) is False for d in factors["devices"])    # present ones never negated
        wordings["both" if generic and named else "generic" if generic else "names"] += 1
    total = sum(wordings.values())
    assert total > 60
    assert all(0.2 < count / total < 0.47 for count in wordings.values()), wordings


def test_text_encoder_only_fine_tune_keeps_the_unet(tiny_models, tmp_path):
    from safetensors.torch import load_file

    from medviz.train.text2image import Text2ImageConfig, train_text2image

    source = tiny_models / "cxr-tiny"
    config = Text2ImageConfig(domain="cxr", out=str(tmp_path / "te"), steps=2, batch_size=2, n_images=4,
                              init_from=str(source), train_unet=False, workers=1)
    assert train_text2image(config)["steps"] == 2
    unet_before = load_file(str(source / "unet" / "diffusion_pytorch_model.safetensors"))
    unet_after = load_file(str(tmp_path / "te" / "unet" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.equal(unet_before[k], unet_after[k]) for k in unet_before)        # frozen
    before = load_file(str(source / "text_encoder" / "model.safetensors"))
    after = load_file(str(tmp_path / "te" / "text_encoder" / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)                   # trained
    with pytest.raises(ValueError, match="needs init_from"):
        train_text2image(Text2ImageConfig(domain="cxr", out=str(tmp_path / "bad"), train_unet=False))
    # The fine-tune's output bundles into a loadable pipeline, judged by the domain's bundled oracle.
    from medviz.models import MODELS_DIR, load_model
    from medviz.train.__main__ import main

    assert (
        main(["bundle", "--domain", "cxr", "--out", str(tmp_path / "te"), "--model-dir", str(tmp_path / "te-pipe")])
        == 0
    )
    facts = json.loads((tmp_path / "te-pipe" / "medviz.json").read_text())
    assert (tmp_path / "te-pipe" / facts["oracle"]).resolve() == (MODELS_DIR / "cxr-oracle").resolve()
    model = load_model(tmp_path / "te-pipe", device="cpu")
    assert model.oracle is not None and model.domain == "cxr"
    tuned = load_file(str(tmp_path / "te-pipe" / "text_encoder" / "model.safetensors"))
    assert all(torch.equal(after[k], tuned[k]) for k in after)
    assert facts["text2image"]["config"]["train_unet"] is False and facts["text2image"]["steps"] == 2
    # A candidate kept in git: float16 on disk, float32 once loaded, its weights those of the run to fp16 rounding.
    assert main(["bundle", "--domain", "cxr", "--out", str(tmp_path / "te"), "--model-dir", str(tmp_path / "half"),
                 "--dtype", "float16"]) == 0
    halved = load_file(str(tmp_path / "half" / "text_encoder" / "model.safetensors"))
    assert {t.dtype for t in halved.values()} == {torch.float16}
    upcast = load_model(tmp_path / "half", device="cpu").pipe.text_encoder.state_dict()
    assert all(upcast[k].dtype == torch.float32 and torch.equal(upcast[k], after[k].half().float()) for k in after)


def test_fine_tune_can_grow_the_unet_at_full_resolution(tiny_models, tmp_path):
    from diffusers import UNet2DConditionModel

    from medviz.train.text2image import Text2ImageConfig, train_text2image

    config = Text2ImageConfig(domain="cxr", out=str(tmp_path / "grown"), steps=2, batch_size=2, n_images=4,
                              init_from=str(tiny_models / "cxr-tiny"), grow_attention=True, grow_layer=True, workers=1)
    assert train_text2image(config)["steps"] == 2
    unet = UNet2DConditionModel.from_pretrained(tmp_path / "grown" / "unet", local_files_only=True)
    assert unet.config.down_block_types[0] == "CrossAttnDownBlock2D" and len(unet.down_blocks[0].resnets) == 2
    record = json.loads((tmp_path / "grown" / "unet" / "medviz_train.json").read_text())
    assert record["config"]["grow_attention"] and record["config"]["grow_layer"]
    with pytest.raises(ValueError, match="need init_from"):
        train_text2image(Text2ImageConfig(domain="cxr", out=str(tmp_path / "bad"), grow_layer=True))


def test_single_device_share_reaches_the_rendered_training_phantoms(tiny_models, tmp_path, monkeypatch):
    from medviz.train import text2image
    from medviz.train.text2image import Text2ImageConfig, train_text2image

    asked = {}

    def render(*args, graph_parameters=None, **kwargs):
        asked.update(graph_parameters)
        raise RuntimeError("rendered")

    monkeypatch.setattr(text2image, "render_training_set", render)
    config = Text2ImageConfig(domain="cxr", out=str(tmp_path / "one"), steps=2, batch_size=2, n_images=4,
                              init_from=str(tiny_models / "cxr-tiny"), single_device_share=0.5, workers=1)
    with pytest.raises(RuntimeError, match="rendered"):
        train_text2image(config)
    assert asked == {"single_device_share": 0.5}
    with pytest.raises(ValueError, match="needs domain cxr"):
        train_text2image(Text2ImageConfig(domain="skin", out=str(tmp_path / "bad"), single_device_share=0.5))
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        train_text2image(Text2ImageConfig(domain="cxr", out=str(tmp_path / "bad"), single_device_share=1.5))
    assert not (tmp_path / "bad").exists()


def test_a_runs_checkpoint_snapshot_is_the_model_the_run_writes_at_that_step(tiny_models, tmp_path):
    """bundle --checkpoint while a run goes on: the EMA weights of its latest checkpoint, rebuilt as the run built its
    model (a grown UNet here), are exactly what the run itself writes when it ends at that step."""
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    from medviz.train.__main__ import main
    from medviz.train.text2image import Text2ImageConfig, train_text2image

    run = tmp_path / "run"
    config = Text2ImageConfig(domain="cxr", out=str(run), steps=2, batch_size=2, n_images=4, checkpoint_every=2,
                              init_from=str(tiny_models / "cxr-tiny"), grow_layer=True, workers=1)
    train_text2image(config)
    assert main(["bundle", "--domain", "cxr", "--out", str(run), "--model-dir", str(tmp_path / "snap"),
                 "--checkpoint"]) == 0
    for part in ("unet", "text_encoder"):
        name = "diffusion_pytorch_model.safetensors" if part == "unet" else "model.safetensors"
        ended, snap = load_file(str(run / part / name)), load_file(str(tmp_path / "snap" / part / name))
        assert ended.keys() == snap.keys() and all(torch.equal(ended[k], snap[k]) for k in ended)
    start = load_file(str(tiny_models / "cxr-tiny" / "text_encoder" / "model.safetensors"))
    assert any(not torch.equal(start[k], snap[k]) for k in start)        # the EMA moved: not the starting weights
    assert json.loads((tmp_path / "snap" / "medviz.json").read_text())["checkpoint_step"] == 2
    StableDiffusionPipeline.from_pretrained(str(tmp_path / "snap"), local_files_only=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        main(["bundle", "--domain", "cxr", "--out", str(tiny_models / "work"), "--model-dir", str(tmp_path / "x"),
              "--checkpoint"])


def test_token_only_fine_tune_changes_only_prompts_with_those_words(tiny_models, tmp_path):
    from transformers import CLIPTextModel, CLIPTokenizer

    from medviz.train.text2image import Text2ImageConfig, train_text2image

    source = tiny_models / "cxr-tiny"
    config = Text2ImageConfig(domain="cxr", out=str(tmp_path / "tok"), steps=3, batch_size=4, n_images=24,
                              init_from=str(source), train_unet=False, train_tokens="support devices",
                              learning_rate=1e-2, workers=1)
    result = train_text2image(config)
    assert sorted(result["trained_tokens"]) == ["devices</w>", "support</w>"]
    tokenizer = CLIPTokenizer.from_pretrained(str(source / "tokenizer"))
    encoders = [CLIPTextModel.from_pretrained(str(root / "text_encoder")).eval() for root in (source, tmp_path / "tok")]

    def encode(encoder, prompt):
        ids = tokenizer([prompt], padding="max_length", max_length=tokenizer.model_max_length,
                        return_tensors="pt").input_ids
        with torch.no_grad():
            return encoder(ids)[0]

    for prompt in ("Chest X-ray showing pleural effusion", "Chest X-ray with no cardiomegaly", ""):
        assert torch.equal(encode(encoders[0], prompt), encode(encoders[1], prompt)), prompt
    assert not torch.equal(encode(encoders[0], "Chest X-ray showing support devices"),
                           encode(encoders[1], "Chest X-ray showing support devices"))
    before, after = (e.get_input_embeddings().weight for e in encoders)
    changed = (before != after).any(-1).nonzero().flatten().tolist()
    assert sorted(tokenizer.convert_ids_to_tokens(changed)) == ["devices</w>", "support</w>"]
    with pytest.raises(ValueError, match="needs init_from"):
        train_text2image(Text2ImageConfig(domain="cxr", out=str(tmp_path / "bad"), train_tokens="devices"))
    with pytest.raises(ValueError, match="--no-train-unet"):
        train_text2image(Text2ImageConfig(domain="cxr", out=str(tmp_path / "bad"), init_from=str(source),
                                          train_tokens="devices"))
    with pytest.raises(ValueError, match="not one token"):
        train_text2image(Text2ImageConfig(domain="cxr", out=str(tmp_path / "bad"), init_from=str(source),
                                          train_unet=False, train_tokens="zebra"))
    assert not (tmp_path / "bad").exists()                                           # nothing written


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
    # A checkpoint stored in fp16 (as SD's often are) is trained in fp32: transformers would keep the file's dtype.
    from diffusers import StableDiffusionPipeline

    StableDiffusionPipeline.from_pretrained(str(tiny_models / "cxr-tiny"), local_files_only=True).to(
        torch.float16).save_pretrained(str(tmp_path / "half"))
    train_text2image(dataclasses.replace(config, out=str(tmp_path / "ft-half"), pretrained=str(tmp_path / "half")))
    for part, name in (("text_encoder", "model.safetensors"), ("unet", "diffusion_pytorch_model.safetensors")):
        assert {t.dtype for t in load_file(str(tmp_path / "ft-half" / part / name)).values()} == {torch.float32}


def test_decoder_only_fine_tuning_keeps_the_latent_space(tmp_path, monkeypatch):
    """Encoder, quant_conv and scaling factor stay bit-identical (the UNet's latent space); the decoder learns."""
    from safetensors.torch import load_file

    from medviz.train import vae as vae_module
    from medviz.train.vae import VAEConfig, train_vae

    seen = []
    make_objective = vae_module._objective
    monkeypatch.setattr(vae_module, "_objective", lambda vae: seen.append(vae) or make_objective(vae))

    images = np.random.default_rng(1).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    base = VAEConfig(domain="cxr", out=str(tmp_path / "base"), preset="tiny", steps=2, batch_size=4)
    train_vae(base, images)
    tuned = train_vae(VAEConfig(domain="cxr", out=str(tmp_path / "tuned"), preset="tiny", steps=3, batch_size=4,
                                init_from=str(tmp_path / "base"), train_encoder=False, crop_latents=4,
                                detail_weight=4.0), images)
    a = load_file(str(tmp_path / "base" / "vae" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(tmp_path / "tuned" / "vae" / "diffusion_pytorch_model.safetensors"))
    frozen = [k for k in a if k.startswith(("encoder.", "quant_conv."))]
    learned = [k for k in a if k.startswith(("decoder.", "post_quant_conv."))]
    assert frozen and learned
    assert all(torch.equal(a[k], b[k]) for k in frozen)
    assert sum(not torch.equal(a[k], b[k]) for k in learned) > len(learned) // 2
    # The optimizer only ever held the decoder: the encoder's parameters were frozen, not merely unused.
    assert not any(p.requires_grad for p in seen[-1].encoder.parameters())
    assert not any(p.requires_grad for p in seen[-1].quant_conv.parameters())
    assert all(p.requires_grad for p in seen[-1].decoder.parameters())
    config_a = json.loads((tmp_path / "base" / "vae" / "config.json").read_text())
    config_b = json.loads((tmp_path / "tuned" / "vae" / "config.json").read_text())
    assert tuned["scaling_factor"] == config_a["scaling_factor"] == config_b["scaling_factor"]
    with pytest.raises(ValueError, match="needs init_from"):
        train_vae(VAEConfig(domain="cxr", out=str(tmp_path / "bad"), preset="tiny", steps=1, train_encoder=False),
                  images)
    with pytest.raises(ValueError, match="needs init_from and the encoder trained"):
        train_vae(VAEConfig(domain="cxr", out=str(tmp_path / "bad"), preset="tiny", steps=1, anchor_weight=1.0), images)
    with pytest.raises(ValueError, match="fine-structure masks"):
        train_vae(VAEConfig(domain="cxr", out=str(tmp_path / "bad"), preset="tiny", steps=1, structure_weight=6.0),
                  images)
    with pytest.raises(ValueError, match="contrast_balance .* needs structure_weight > 0"):
        train_vae(VAEConfig(domain="cxr", out=str(tmp_path / "bad"), preset="tiny", steps=1, contrast_balance=True),
                  images)
    masks = np.zeros(images.shape[:3], np.uint8)
    masks[:, 10:12] = 1
    with pytest.raises(ValueError, match="needs crop_latents"):
        train_vae(VAEConfig(domain="cxr", out=str(tmp_path / "bad"), preset="tiny", steps=1, structure_windows=0.5),
                  images, masks=masks)
    with pytest.raises(ValueError, match="needs structure_windows"):
        train_vae(VAEConfig(domain="cxr", out=str(tmp_path / "bad"), preset="tiny", steps=1, crop_latents=4,
                            balance_structures=True), images, masks=masks)
    for train_encoder in (False, True):
        out = tmp_path / f"weighted-{train_encoder}"
        train_vae(VAEConfig(domain="cxr", out=str(out), preset="tiny", steps=2, batch_size=4,
                            init_from=str(tmp_path / "base"), train_encoder=train_encoder, crop_latents=4,
                            structure_weight=6.0, structure_windows=1.0, balance_structures=train_encoder),
                  images, masks=masks)
        assert (out / "vae" / "diffusion_pytorch_model.safetensors").exists()


def test_anchor_keeps_a_retrained_encoder_near_where_it_started(tmp_path):
    """Encoder + decoder fine-tuned on latent-aligned crops: with the anchor the posterior means move less."""
    from medviz.train.data import to_model_batch
    from medviz.train.vae import VAEConfig, load_vae, train_vae

    images = np.random.default_rng(2).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    train_vae(VAEConfig(domain="cxr", out=str(tmp_path / "base"), preset="tiny", steps=2, batch_size=4), images)
    drift = {}
    for weight in (0.0, 1000.0):
        out = tmp_path / f"anchor{weight:g}"
        train_vae(VAEConfig(domain="cxr", out=str(out), preset="tiny", steps=6, batch_size=4, learning_rate=1e-2,
                            init_from=str(tmp_path / "base"), crop_latents=4, anchor_weight=weight), images)
        before, after = load_vae(str(tmp_path / "base")), load_vae(str(out))
        with torch.no_grad():
            x = to_model_batch(images, "cpu")
            drift[weight] = float((after.encode(x).latent_dist.mean - before.encode(x).latent_dist.mean).abs().mean())
    assert drift[1000.0] < 0.5 * drift[0.0]


def test_a_vae_with_fewer_levels_than_the_preset_is_grown_into_it(tmp_path, monkeypatch):
    """init_from a tiny (f = 2) VAE with a deeper preset trains an f = 4 VAE from it; anchoring the new latent
    space to the old one is refused by name."""
    from dataclasses import replace

    from medviz.train import architectures
    from medviz.train.vae import VAEConfig, load_vae, train_vae

    monkeypatch.setitem(architectures.PRESETS, "tiny-f4", replace(architectures.PRESETS["tiny"],
                                                                   vae_channels=(8, 16, 16)))
    images = np.random.default_rng(3).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    train_vae(VAEConfig(domain="cxr", out=str(tmp_path / "base"), preset="tiny", steps=2, batch_size=4), images)
    grown = train_vae(VAEConfig(domain="cxr", out=str(tmp_path / "grown"), preset="tiny-f4", steps=2, batch_size=4,
                                init_from=str(tmp_path / "base"), crop_latents=4), images)
    vae = load_vae(str(tmp_path / "grown"))
    assert tuple(vae.config.block_out_channels) == (8, 16, 16) and grown["steps"] == 2
    with torch.no_grad():
        assert vae.encode(torch.zeros(1, 3, 32, 32)).latent_dist.mean.shape[-1] == 8
    with pytest.raises(ValueError, match="give the preset it was trained at"):
        train_vae(VAEConfig(domain="cxr", out=str(tmp_path / "bad"), preset="tiny", steps=1,
                            init_from=str(tmp_path / "grown")), images)
    with pytest.raises(ValueError, match="anchor_weight must be 0"):
        train_vae(VAEConfig(domain="cxr", out=str(tmp_path / "bad"), preset="tiny-f4", steps=1,
                            init_from=str(tmp_path / "base"), anchor_weight=1.0), images)


def test_latent_crops_cut_latents_and_pixels_at_the_same_window():
    from medviz.train.data import to_model_batch
    from medviz.train.vae import _latent_crops, _pixel_window, _windows

    images = np.zeros((3, 32, 32, 3), np.uint8)
    images[:, 12:16, 20:24] = 255                 # pixel block under latent cell (3, 5) at factor 4
    means = torch.zeros(3, 4, 8, 8)
    means[:, :, 3, 5] = 1.0
    stds = torch.zeros(3, 4, 8, 8)
    rng = np.random.default_rng(0)
    for _ in range(20):
        window = _pixel_window(32, 8, 4, rng)
        latents, target = _latent_crops(means, stds, images, np.array([0, 2]), [window] * 2, "cpu")
        assert latents.shape == (2, 4, 4, 4) and target.shape == (2, 3, 16, 16)
        # The marked latent cell and the bright pixel block fall in the window together, or neither does.
        assert bool((latents == 1).any()) == bool((target > 0).any())
        if (latents == 1).any():
            cell = (latents[0, 0] == 1).nonzero()[0].tolist()
            assert target[0, 0, cell[0] * 4:(cell[0] + 1) * 4, cell[1] * 4:(cell[1] + 1) * 4].min() == 1.0
        # The pixels are cut at the given window (the structure weights are cut with it).
        assert torch.equal(to_model_batch(images[[0, 2]], "cpu")[..., window[0], window[1]], target)
    everything = _windows(1, 32, 8, 0, rng)
    assert everything == [(slice(None), slice(None))]
    whole, pixels = _latent_crops(means, stds, images, np.array([1]), everything, "cpu")
    assert whole.shape == (1, 4, 8, 8) and pixels.shape == (1, 3, 32, 32)
    # Windows of their own per image: each image's latents and pixels are cut at its window.
    own = [(slice(12, 28), slice(8, 24)), (slice(0, 16), slice(16, 32))]
    latents, target = _latent_crops(means, stds, images, np.array([0, 2]), own, "cpu")
    assert latents.shape == (2, 4, 4, 4) and target.shape == (2, 3, 16, 16)
    assert latents[0, 0, 0, 3] == 1 and target[0, 0, :4, 12:16].min() == 1.0      # cell (3, 5) at (0, 3)
    assert latents[1, 0, 3, 1] == 1 and target[1, 0, 12:16, 4:8].min() == 1.0      # the same cell at (3, 1)


def test_structure_windows_hold_each_images_structure_and_draw_rare_ones_as_often_as_common_ones():
    from medviz.train.vae import _structure_pixel, _windows

    masks = np.zeros((3, 32, 32), np.uint8)
    masks[0, 2:30, 3] = 1                          # bit 0: a long line (many pixels)
    masks[0, 29, 25] = 2                           # bit 1: one pixel (a rare structure), in the same image
    masks[2, 5, 30] = 1                            # image 2: one pixel of bit 0; image 1: no structure
    rng = np.random.default_rng(0)
    hits = {1: 0, 2: 0}
    for _ in range(400):
        row, col = _structure_pixel(masks[0], rng)
        hits[int(masks[0, row, col])] += 1
        windows = _windows(3, 32, 8, 4, rng, masks)
        for rows, cols in windows:
            assert (
                rows.start % 4 == 0 and cols.start % 4 == 0 and rows.stop - rows.start == cols.stop - cols.start == 16
            )
            assert 0 <= rows.start and rows.stop <= 32 and 0 <= cols.start and cols.stop <= 32
        assert masks[0][windows[0]].any() and masks[2][windows[2]].any()    # each on its own image's structure
    # Drawn per structure, not per pixel: the 1-px structure gets about half the windows (28 px vs 1 px).
    assert 150 < hits[2] < 250
    assert _structure_pixel(masks[1], rng) is None
    shared = _windows(3, 32, 8, 4, rng)            # no masks: one random window for the whole batch
    assert shared[0] == shared[1] == shared[2]


def test_balanced_structure_windows_give_a_rare_structure_as_many_windows_as_a_common_one():
    from medviz.train.vae import _balanced_windows, _images_by_structure, _structure_pixel

    masks = np.zeros((10, 32, 32), np.uint8)
    masks[:9, 4:28, 6] = 1                         # bit 0 (hair, say) in 9 images of 10
    masks[9, 20, 20:23] = 4                        # bit 2 (ink, say) in 1 image only
    by_structure = _images_by_structure(masks)
    assert sorted(by_structure) == [0, 2] and by_structure[2].tolist() == [9] and len(by_structure[0]) == 9
    rng = np.random.default_rng(0)
    picked, windows = _balanced_windows(by_structure, masks, 400, 32, 8, 4, rng)
    assert picked.shape == (400,) and len(windows) == 400
    # Drawn per structure type, not per image: the one ink image gets about half the windows, not a tenth.
    assert 160 < int((picked == 9).sum()) < 240
    for image, (rows, cols) in zip(picked, windows):
        assert masks[image][rows, cols].any()      # each window holds the structure it was drawn for
        assert rows.stop - rows.start == cols.stop - cols.start == 16
    # A named structure the image lacks has no pixel to sit on.
    assert _structure_pixel(masks[0], rng, bit=2) is None
    assert masks[9][_structure_pixel(masks[9], rng, bit=2)] == 4


def test_structure_weights_cover_the_rendered_structure_and_its_neighbours():
    from medviz.train.vae import structure_weights

    masks = np.zeros((2, 8, 8), bool)
    masks[0, :, 4] = True                          # a 1-px vertical line in the first image only
    weights = structure_weights(masks, 6.0, "cpu")
    assert weights.shape == (2, 1, 8, 8)
    assert torch.all(weights[0, 0, :, 3:6] == 7.0)   # the line and one pixel either side
    assert torch.all(weights[0, 0, :, :3] == 1.0) and torch.all(weights[0, 0, :, 6:] == 1.0)
    assert torch.all(weights[1] == 1.0)


def test_contrast_balance_weights_a_faint_line_more_than_a_plain_one():
    """Two 1-px lines of the same width: one faint on dark skin, one plain on light skin. The balanced weight pays
    for each pixel in inverse proportion to its local contrast; the batch's structure pixels keep mean factor 1."""
    from medviz.train.vae import structure_weights

    images = np.full((2, 16, 16, 3), 40, np.uint8)
    images[1] = 200
    images[0, :, 8] = 62                           # faint: 22 of 255 above the dark background
    images[1, :, 8] = 110                          # plain: 90 of 255 below the light background
    masks = np.zeros((2, 16, 16), bool)
    masks[:, :, 8] = True
    plain = structure_weights(masks, 6.0, "cpu")
    balanced = structure_weights(masks, 6.0, "cpu", images)
    assert balanced.shape == plain.shape == (2, 1, 16, 16)
    assert torch.all(balanced[:, :, :, :7] == 1.0) and torch.all(balanced[:, :, :, 10:] == 1.0)   # off the lines
    line = (balanced[:, 0, :, 8] - 1.0) / 6.0                       # each line pixel's factor
    contrast = np.array([22, 90]) * 6 / 7 / 127.5                  # the line against its 7 x 7 mean, in [-1, 1]
    assert np.allclose(line[0] / line[1], contrast[1] / contrast[0], rtol=1e-4)
    grown = plain > 1.0
    assert torch.isclose(((balanced - 1.0) / 6.0)[grown].mean(), torch.tensor(1.0), atol=1e-5)


def test_fine_structure_masks_are_where_the_renderer_drew_them():
    from medviz.io import as_rgb, to_uint8
    from medviz.phantoms import get_domain
    from medviz.train.data import render_phantoms

    images, factors, masks = render_phantoms("skin", 12, 128, 0, workers=1, fine_structure_masks=True)
    assert masks.shape == images.shape[:3] and masks.dtype == np.uint8
    module = get_domain("skin")
    assert module.FINE_STRUCTURES == ("hair", "ruler", "ink", "bubbles")       # bits 0, 1, 2, 3
    for i, f in enumerate(factors):
        for bit, factor in enumerate(("hair", "ruler", "ink", "gel_bubbles")):
            assert (masks[i] >> bit & 1).any() == bool(f[factor])
        if f["hair"] or f["ink"] or f["gel_bubbles"]:
            # Without them the phantom differs only inside the mask. (The ruler's translucent band is broad,
            # so it is not a fine structure: only its ticks are, and they stay here.)
            graph = module.build_graph()
            sample = graph.sample(i)
            clean = graph.intervene(sample, hair=False, ink=False, gel_bubbles=False)
            plain = to_uint8(as_rgb(module.render(clean.factors, clean.seed, 128).image))
            changed = np.abs(plain.astype(int) - images[i].astype(int)).max(-1) > 2
            assert changed.any() and not (changed & (masks[i] & 0b1101 == 0)).any()
    # Test-sized renders keep every structure's bit where any pixel it covers held it.
    small, _, small_masks = render_phantoms("skin", 12, 32, 0, workers=1, fine_structure_masks=True)
    assert small_masks.shape == (12, 32, 32)
    for bit in range(4):
        assert np.array_equal((small_masks >> bit & 1).any(axis=(1, 2)), (masks >> bit & 1).any(axis=(1, 2)))



def test_other_render_supports_can_be_masked_instead_the_bubbles_rims_without_their_fill():
    from medviz.train.data import render_phantoms
    from medviz.train.vae import VAEConfig, train_vae

    _, factors, bubbles = render_phantoms("skin", 12, 128, 0, workers=1, fine_structure_masks=True)
    _, _, rims = render_phantoms("skin", 12, 128, 0, workers=1, fine_structure_masks=("bubble_rims",))
    with_bubbles = [i for i, f in enumerate(factors) if f["gel_bubbles"]]
    assert with_bubbles and set(np.unique(rims)) <= {0, 1}
    for i in range(12):
        whole, rim = (bubbles[i] >> 3 & 1).astype(bool), rims[i].astype(bool)
        assert rim.any() == (i in with_bubbles) and not (rim & ~whole).any()
        if i in with_bubbles:
            assert rim.sum() < 0.6 * whole.sum()                            # the fill is left out
    with pytest.raises(ValueError, match="skin renders no structure 'rims'; its supports are skin, lesion"):
        train_vae(VAEConfig(domain="skin", out="unused", structure_weight=4, structures="hair,rims"))


def test_detail_weights_single_out_thin_lines():
    from medviz.train.vae import DETAIL_SCALE, detail_weights

    flat = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(detail_weights(flat, 4.0), torch.ones(1, 1, 16, 16))
    line = flat.clone()
    line[:, :, :, 8] += 0.1                       # a 1-px vertical line of contrast 0.1
    weights = detail_weights(line, 4.0)
    assert weights.shape == (1, 1, 16, 16)
    # On the line: |0.1 - 0.1/5| / DETAIL_SCALE * 4 + 1; three columns away: back to 1.
    assert torch.allclose(weights[0, 0, 5, 8], torch.tensor(1 + 4 * 0.08 / DETAIL_SCALE))
    assert torch.allclose(weights[0, 0, 5, 5], torch.tensor(1.0))


def test_latent_structure_weights_weight_the_cells_a_structure_touches():
    from medviz.train.text2image import latent_structure_weights

    masks = np.zeros((2, 16, 16), np.uint8)
    masks[0, 5, 5] = 1            # inside cell (1, 1) of a 4 x 4 grid, dilated 4..6: still that cell only
    masks[1, 4, 4] = 4            # on a cell corner: dilated 3..5 touches the four cells around it
    weights = latent_structure_weights(masks, 4, 3.0, "cpu")
    assert weights.shape == (2, 1, 4, 4)
    first, second = weights[0, 0].numpy(), weights[1, 0].numpy()
    assert first[1, 1] == 4.0 and (first == 4.0).sum() == 1 and (first == 1.0).sum() == 15
    assert (second[:2, :2] == 4.0).all() and (second == 1.0).sum() == 12
    with pytest.raises(ValueError, match="do not tile"):
        latent_structure_weights(np.zeros((1, 10, 10)), 4, 3.0, "cpu")


def test_structure_weight_reaches_the_unet_loss_only_where_a_structure_was_drawn(tiny_models, tmp_path):
    from safetensors.torch import load_file

    from medviz.train.data import render_phantoms
    from medviz.train.text2image import Text2ImageConfig, train_text2image

    source = tiny_models / "cxr-tiny"
    size = json.loads((source / "vae" / "config.json").read_text())["sample_size"]
    images, factors, masks = render_phantoms("cxr", 8, size, 0, 1, fine_structure_masks=True)
    assert masks.any()                                       # some of these phantoms hold a device

    def unet_after(name, weight, structure_masks):
        config = Text2ImageConfig(domain="cxr", out=str(tmp_path / name), steps=3, batch_size=4, n_images=8,
                                  init_from=str(source), workers=1, structure_weight=weight)
        train_text2image(config, images, factors, masks=structure_masks)
        return load_file(tmp_path / name / "unet" / "diffusion_pytorch_model.safetensors")

    plain = unet_after("plain", 0.0, None)
    # No structure drawn: every weight is 1, the same steps as the unweighted loss, bit for bit.
    empty = unet_after("empty", 16.0, np.zeros_like(masks))
    weighted = unet_after("weighted", 16.0, masks)
    assert all(torch.equal(plain[k], empty[k]) for k in plain)
    assert not all(torch.equal(plain[k], weighted[k]) for k in plain)
    record = json.loads((tmp_path / "weighted" / "unet" / "medviz_train.json").read_text())
    assert record["config"]["structure_weight"] == 16.0
    with pytest.raises(ValueError, match="fine-structure masks"):
        train_text2image(Text2ImageConfig(domain="cxr", out=str(tmp_path / "bad"), init_from=str(source),
                                          structure_weight=4.0, workers=1), images, factors)
    assert not (tmp_path / "bad").exists()                   # refused before anything was written
    with pytest.raises(ValueError, match="a CSV dataset has none"):
        train_text2image(Text2ImageConfig(domain="cxr", out=str(tmp_path / "bad"), pretrained=str(source),
                                          structure_weight=4.0))


def test_offset_noise_moves_each_image_and_channel_as_a_whole(tmp_path):
    import torch

    from medviz.train.text2image import Text2ImageConfig, train_text2image, training_noise

    torch.manual_seed(0)
    latents = torch.zeros(512, 4, 32, 32)
    plain, offset = training_noise(latents, 0.0), training_noise(latents, 0.1)
    assert plain.shape == offset.shape == latents.shape
    # The spread of an image-channel's mean: 1/32 for i.i.d. cells, sqrt(0.1^2 + 1/32^2) = 0.105 with the offset.
    assert abs(plain.mean(dim=(2, 3)).std().item() - 1 / 32) < 0.003
    assert abs(offset.mean(dim=(2, 3)).std().item() - 0.105) < 0.006
    assert abs(offset.std().item() - 1.005) < 0.01                 # the cells' own noise unchanged
    with pytest.raises(ValueError, match="noise_offset must be 0..1"):
        train_text2image(Text2ImageConfig(domain="skin", out=str(tmp_path / "bad"), noise_offset=2.0))
    assert not (tmp_path / "bad").exists()
