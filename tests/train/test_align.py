import json

import numpy as np
import pytest
import torch

from medviz.prompts import caption_conditional
from medviz.train.align import (AlignConfig, attribute_scores, caption_prompts,
                                ddim_step_with_log_prob, ddpo_surrogate, per_prompt_advantages, target_matrix,
                                train_align)
from medviz.train.architectures import make_sampling_scheduler
from tests.tiny import tiny_model


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_the_ddim_step_is_diffusers_and_its_log_prob_is_the_gaussians(eta):
    scheduler = make_sampling_scheduler()
    scheduler.set_timesteps(10)
    generator = torch.Generator().manual_seed(0)
    latents, eps = torch.randn(3, 4, 8, 8, generator=generator), torch.randn(3, 4, 8, 8, generator=generator)
    timestep = int(scheduler.timesteps[4])
    ours, log_prob = ddim_step_with_log_prob(scheduler, eps, timestep, latents, eta,
                                             generator=torch.Generator().manual_seed(7))
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(7))
    theirs = scheduler.step(eps, timestep, latents, eta=eta, variance_noise=noise).prev_sample
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    if eta == 0:
        assert log_prob is None
        return
    # The exact density of the draw: mean and std from the same step without noise and from DDIM's variance.
    mean = scheduler.step(eps, timestep, latents, eta=0.0).prev_sample      # at eta 0 the direction term differs:
    sigma = eta * scheduler._get_variance(timestep, timestep - 100) ** 0.5
    alpha_prev = scheduler.alphas_cumprod[timestep - 100]
    mean = mean - ((1 - alpha_prev).sqrt() - (1 - alpha_prev - sigma ** 2).sqrt()) * eps
    expected = torch.distributions.Normal(mean, sigma).log_prob(ours).mean(dim=(1, 2, 3))
    torch.testing.assert_close(log_prob, expected, rtol=1e-4, atol=1e-4)
    # Recomputed for a given next latent (DDPO's second pass): the same value.
    _, again = ddim_step_with_log_prob(scheduler, eps, timestep, latents, eta, prev_latents=ours)
    torch.testing.assert_close(again, log_prob)


def test_advantages_are_centred_per_prompt_and_clipped():
    rewards = torch.tensor([0.1, 0.3, 0.9, 0.9, 0.0, 1.0])
    advantages = per_prompt_advantages(rewards, 2, clip=5.0)
    assert torch.allclose(advantages.view(3, 2).sum(1), torch.zeros(3), atol=1e-6)
    assert advantages[2] == 0 and advantages[5] > advantages[1] > 0
    assert per_prompt_advantages(torch.tensor([0.0, 1.0]), 2, clip=0.5).abs().max() == 0.5


def test_the_surrogate_is_the_advantage_at_ratio_one_and_is_clipped():
    advantages = torch.tensor([1.0, -2.0])
    same = torch.zeros(2)
    assert ddpo_surrogate(same, same, advantages, 0.1).item() == pytest.approx(0.5)       # -(1 - 2) / 2
    # A ratio of e for a positive advantage gains no more than the clip allows.
    loss = ddpo_surrogate(torch.tensor([1.0, 0.0]), same, torch.tensor([1.0, 0.0]), 0.1)
    assert loss.item() == pytest.approx(-1.1 / 2)


def test_the_reward_is_the_oracles_agreement_with_what_the_prompt_fixes():
    model = tiny_model("skin")
    oracle = model.oracle
    drawn = caption_prompts("skin", 4, np.random.default_rng(0))
    assert all(targets == caption_conditional("skin", prompt) for prompt, targets in drawn)
    assert all("melanoma" in targets for _, targets in drawn)              # every caption names the lesion
    wanted, fixed = target_matrix(oracle.attributes, [t for _, t in drawn])
    images = torch.rand(4, 3, 32, 32, requires_grad=True) * 2 - 1
    images.retain_grad()
    reward = attribute_scores(oracle.model, oracle.image_size, images, wanted, fixed)[0]
    with torch.no_grad():
        p = torch.sigmoid(oracle.model(pixel_values=images).logits)
    expected = ((wanted * p + (1 - wanted) * (1 - p)) * fixed).sum(1) / fixed.sum(1)
    torch.testing.assert_close(reward, expected)
    assert reward.shape == (4,) and ((0 <= reward) & (reward <= 1)).all()
    reward.sum().backward()
    assert images.grad.abs().sum() > 0                                      # differentiable: DRaFT needs it


def test_the_log_objective_keeps_its_gradient_where_the_oracle_is_sure_of_a_miss():
    """A named ruler drawn nowhere: P(as asked) ~ 1e-4. The agreement's gradient on that logit is P (1 - P) ~ 1e-4,
    the log objective's 1 - P ~ 1 (why ``objective='log'`` is the default)."""

    class FixedLogits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.logits = torch.nn.Parameter(torch.tensor([[-9.0, 3.0]]))

        def forward(self, pixel_values):
            return type("Out", (), {"logits": self.logits.expand(len(pixel_values), -1)})()

    oracle = FixedLogits()
    wanted, fixed = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]])      # ruler asked; the second unfixed
    agreement, log_agreement = attribute_scores(oracle, 8, torch.zeros(1, 3, 8, 8), wanted, fixed)
    assert agreement.item() == pytest.approx(torch.sigmoid(torch.tensor(-9.0)).item())
    assert log_agreement.item() == pytest.approx(torch.nn.functional.logsigmoid(torch.tensor(-9.0)).item())
    agreement.sum().backward()
    vanishing = oracle.logits.grad[0, 0].item()
    oracle.logits.grad = None
    attribute_scores(oracle, 8, torch.zeros(1, 3, 8, 8), wanted, fixed)[1].sum().backward()
    assert vanishing == pytest.approx(1.23e-4, rel=0.01) and oracle.logits.grad[0, 0].item() > 0.99
    assert oracle.logits.grad[0, 1].item() == 0                                # an unfixed attribute gets none
    with pytest.raises(ValueError, match="objective must be one of"):
        AlignConfig(domain="skin", out="x", objective="mse").validate()


def test_boosted_prompts_ask_for_each_attribute_more_often_in_the_captions_words():
    def asked(boost):
        drawn = caption_prompts("skin", 120, np.random.default_rng(1), boost)
        return {a: sum(bool(t.get(a)) for _, t in drawn) for a in ("ruler", "hair", "ink")}

    plain, boosted = asked(0.0), asked(1.0)
    assert all(boosted[a] > plain[a] + 10 for a in plain), (plain, boosted)      # each gets ~1/6 of 120 by do()
    assert all(
        p.startswith("Dermoscopy image of a") for p, _ in caption_prompts("skin", 10, np.random.default_rng(2), 1.0)
    )
    with pytest.raises(ValueError, match="boost is a share"):
        AlignConfig(domain="skin", out="x", boost=1.5).validate()


def test_config_errors_name_the_setting():
    with pytest.raises(ValueError, match="method must be one of"):
        AlignConfig(domain="skin", out="x", method="ppo").validate()
    with pytest.raises(ValueError, match="multiple of samples per prompt"):
        AlignConfig(domain="skin", out="x", batch_size=6, samples_per_prompt=4).validate()
    with pytest.raises(ValueError, match="ddpo needs eta > 0"):
        AlignConfig(domain="skin", out="x", method="ddpo", eta=0.0).validate()
    assert AlignConfig(domain="skin", out="x", method="ddpo").sampling_eta == 1.0
    assert AlignConfig(domain="skin", out="x").sampling_eta == 0.0                  # the Generate tab's DDIM


def test_ddpo_steps_move_the_adapters(tmp_path):
    model = tiny_model("skin")
    base = {k: v.clone() for k, v in model.pipe.unet.state_dict().items()}
    record = train_align(AlignConfig(domain="skin", out=str(tmp_path), method="ddpo", steps=2, batch_size=4,
                                     samples_per_prompt=2, sampling_steps=2, learning_rate=1e-2), model=model)
    assert [h["step"] for h in record["history"]] == [1, 2] and record["method"] == "ddpo"
    assert record["unet_passes"] == 2 * 2 * 2 * 4 * 2           # steps x (sampling + recomputation) x CFG x images x T
    merged = model.pipe.unet.state_dict()                         # fused and unloaded by the save
    changed = [k for k, v in merged.items() if not torch.equal(v, base[k])]
    assert changed and all(k.rsplit(".", 2)[-2] in ("to_q", "to_k", "to_v", "0") for k in changed)


def test_backprop_moves_only_the_adapters_and_saves_a_stock_pipeline(tmp_path):
    from diffusers import StableDiffusionPipeline

    model = tiny_model("skin")
    base = {k: v.clone() for k, v in model.pipe.unet.state_dict().items()}
    config = AlignConfig(domain="skin", out=str(tmp_path), steps=2, batch_size=4, samples_per_prompt=2,
                         sampling_steps=3, learning_rate=1e-2)
    record = train_align(config, model=model)
    assert [h["step"] for h in record["history"]] == [1, 2]
    assert record["unet_passes"] == 2 * 2 * 4 * 3                 # steps x CFG x images x T
    saved = json.loads((tmp_path / "medviz_train.json").read_text())
    assert saved["config"]["method"] == "backprop" and saved["steps_run"] == 2
    # The merged pipeline loads in stock diffusers, and equals the base UNet with the saved LoRA loaded.
    merged = StableDiffusionPipeline.from_pretrained(str(tmp_path / "pipeline"), local_files_only=True)
    assert json.loads((tmp_path / "pipeline" / "medviz.json").read_text())["aligned"]["steps_run"] == 2
    fresh = tiny_model("skin")
    assert all(torch.equal(fresh.pipe.unet.state_dict()[k], v) for k, v in base.items())   # same random base
    latents, states = torch.randn(2, 4, 8, 8), torch.randn(2, 32, 32)
    with torch.no_grad():
        plain = fresh.pipe.unet(latents, 500, encoder_hidden_states=states).sample
        fresh.pipe.load_lora_weights(str(tmp_path / "lora"))
        with_lora = fresh.pipe.unet(latents, 500, encoder_hidden_states=states).sample
        ours = merged.unet(latents, 500, encoder_hidden_states=states).sample
    torch.testing.assert_close(ours, with_lora, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(ours, plain, atol=1e-6)                          # the adapters learnt something
    changed = [k for k, v in merged.unet.state_dict().items() if not torch.equal(v, base[k])]
    assert changed and all("attn" in k and k.rsplit(".", 2)[-2] in ("to_q", "to_k", "to_v", "0") for k in changed)


def test_a_run_stopped_mid_way_keeps_the_adapters_and_record_of_its_last_save(tmp_path, monkeypatch):
    import medviz.train.align as align

    def crash(*args, **kwargs):                       # the process dies where the final save would run
        raise KeyboardInterrupt

    monkeypatch.setattr(align, "save_aligned", crash)
    config = AlignConfig(domain="skin", out=str(tmp_path), steps=3, batch_size=2, samples_per_prompt=2,
                         sampling_steps=2, save_every=2)
    with pytest.raises(KeyboardInterrupt):
        train_align(config, model=tiny_model("skin"))
    saved = json.loads((tmp_path / "medviz_train.json").read_text())
    assert saved["partial"] is True and [h["step"] for h in saved["history"]] == [1, 2]
    assert (tmp_path / "lora" / "pytorch_lora_weights.safetensors").is_file()
    assert not (tmp_path / "pipeline").exists()
