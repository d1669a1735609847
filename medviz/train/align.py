"""Prompt alignment by reward fine-tuning: the pipeline learns to draw what its prompt names.

Reward: the oracle's agreement with every attribute the prompt fixes under the training captions'
convention (``prompts.caption_conditional``: named -> present, negated or unnamed -> absent), averaged over
those attributes, in [0, 1]. Prompts are training captions of freshly drawn phantoms, so the reward covers
the whole caption distribution and unasked attributes are learnt absent too (RL4Med-DDPO, arXiv 2503.15784).

Two methods, LoRA adapters on the UNet's attention (peft, as diffusers' LoRA scripts do):

* ``ddpo``: DDPO_IS (Black et al. 2023, arXiv 2305.13301, sec. 4.3): DDIM at eta = 1 makes every step a
  Gaussian with an exact log-probability; sample trajectories, reward the images, normalise the rewards per
  prompt, then PPO's clipped surrogate on the per-step likelihood ratio.
* ``backprop``: DRaFT-K (Clark et al. 2023, arXiv 2309.17400, alg. 1): sample without gradients to the last
  ``draft_k`` steps, then backpropagate the (differentiable) oracle's reward through them and the VAE decoder.

The oracle that rewards is never the one that judges: the models bench reads the result with an independent
oracle (`--oracle`, a ConvNeXt trained on other phantoms: `python -m medviz.train oracle --family convnext`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import domains
from ..models import load_model
from ..phantoms import get_domain
from ..prompts import caption_conditional, training_caption
from .common import Log, Progress, TrainConfig, make_accelerator, write_record

METHODS = ("ddpo", "backprop")
OBJECTIVES = ("log", "agreement")
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
PROMPT_FIRST_SEED = 20_000_000      # phantoms whose captions are the prompts: no overlap with training or held-out


@dataclass(frozen=True)
class AlignConfig(TrainConfig):
    method: str = "backprop"
    model: str = ""                    # pipeline to align: a bundled name or folder (default: <domain>-phantom)
    steps: int = 200                   # optimizer steps
    batch_size: int = 8                # images per step (prompts x samples_per_prompt)
    samples_per_prompt: int = 4        # DDPO normalises each prompt's rewards over its own samples
    boost: float = 0.5                 # share of prompt phantoms given one attribute by do() (caption_prompts)
    sampling_steps: int = 25           # as the Generate tab
    guidance_scale: float = 4.0        # as the Generate tab
    eta: float | None = None           # DDIM noise; default 1 for ddpo (its steps need a log-probability), else 0
                                       # (the Generate tab's deterministic DDIM)
    learning_rate: float = 3e-4        # DDPO's LoRA default
    lora_rank: int = 8
    draft_k: int = 1                   # backprop: the last K steps carry gradients (DRaFT-K)
    objective: str = "log"             # what is optimised: "log" (mean log P(as asked)) or "agreement" (the reward)
    clip_range: float = 1e-4           # ddpo: PPO clip of the likelihood ratio
    advantage_clip: float = 5.0        # ddpo
    time_budget_s: float = 0.0         # >0: stop after about this many seconds
    save_every: int = 25               # >0: every this many steps, write OUT/lora and the record so far

    @property
    def sampling_eta(self) -> float:
        return float(self.eta) if self.eta is not None else (1.0 if self.method == "ddpo" else 0.0)

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.batch_size % self.samples_per_prompt:
            raise ValueError(f"batch size {self.batch_size} is not a multiple of samples per prompt "
                             f"{self.samples_per_prompt}")
        if self.method == "ddpo" and self.sampling_eta <= 0:
            raise ValueError("ddpo needs eta > 0: at eta = 0 a DDIM step has no log-probability")
        if not 0.0 <= self.boost <= 1.0:
            raise ValueError(f"boost is a share in [0, 1], got {self.boost}")
        if not 1 <= self.draft_k <= self.sampling_steps:
            raise ValueError(f"draft_k must be 1..sampling_steps ({self.sampling_steps}), got {self.draft_k}")


def caption_prompts(domain: str, n: int, rng: np.random.Generator, boost: float = 0.0) -> list[tuple[str, dict]]:
    """``n`` training captions of new phantoms, each with the attributes it fixes (``caption_conditional``).

    ``boost``: the share of phantoms given one attribute by ``do()`` (the domain's ``add`` intervention of an
    attribute drawn uniformly: a ruler, one device kind): most phantoms lack the rare attributes, so their captions
    alone would rarely ask for what the model fails to draw. The wording stays the captions'."""
    graph = get_domain(domain).build_graph()
    addable = [attribute for attribute in domains.get(domain).attributes if attribute.add]
    drawn = []
    for seed in rng.integers(PROMPT_FIRST_SEED, PROMPT_FIRST_SEED + 10_000_000, n):
        sample = graph.sample(int(seed))
        if rng.random() < boost:
            sample = graph.intervene(sample, **addable[int(rng.integers(len(addable)))].add)
        prompt = training_caption(domain, sample.factors, rng)
        drawn.append((prompt, caption_conditional(domain, prompt)))
    return drawn


def target_matrix(attributes: tuple[str, ...], targets: list[dict[str, bool]]):
    """(N, A) wanted values and (N, A) mask of the attributes each prompt fixes, as float tensors."""
    import torch

    wanted = torch.tensor([[float(t.get(a, False)) for a in attributes] for t in targets])
    fixed = torch.tensor([[float(a in t) for a in attributes] for t in targets])
    return wanted, fixed


def attribute_scores(oracle_model, image_size: int, images, wanted, fixed):
    """Per image, over the attributes the prompt fixes: the mean P(attribute as asked), (N,) in [0, 1] (the reward
    every figure reports), and the mean log P(as asked), (N,) <= 0; both differentiable, from one oracle pass.

    Why the log: the bundled models miss a named ruler with the oracle at P ~ 1e-3, where d P / d logit = P (1 - P)
    vanishes; d log P / d logit = 1 - P does not (the gradient classifier guidance follows, Dhariwal & Nichol 2021,
    eq. 10). ``images``: (N, 3, H, W) in [-1, 1] (the VAE's output range, the oracle's input range)."""
    import torch
    import torch.nn.functional as F

    if images.shape[-1] != image_size:
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", antialias=True)
    logits = oracle_model(pixel_values=images).logits.float()
    signed = (2 * wanted - 1) * logits                       # the logit of "as asked"
    count = fixed.sum(1).clamp(min=1)
    agreement = (torch.sigmoid(signed) * fixed).sum(1) / count
    log_agreement = (F.logsigmoid(signed) * fixed).sum(1) / count
    return agreement, log_agreement


def ddim_step_with_log_prob(scheduler, eps, timestep: int, latents, eta: float, generator=None, prev_latents=None):
    """One DDIM step x_t -> x_{t-1} and log p(x_{t-1} | x_t) per sample (Song et al. 2021, eq. 12; DDPO eq. 3).

    At eta > 0 the step is a Gaussian: mean sqrt(a_prev) x0_hat + sqrt(1 - a_prev - sigma^2) eps, std
    sigma = eta sqrt((1 - a_prev) / (1 - a_t)) sqrt(1 - a_t / a_prev). ``prev_latents`` given: its log-probability
    under this step (DDPO's recomputation); else a new draw. Returns (prev_latents (B, C, h, w), log_prob (B,)),
    log_prob None at eta = 0.
    """
    import torch

    step = scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    prev_timestep = timestep - step
    alphas = scheduler.alphas_cumprod.to(latents.device)
    alpha_t = alphas[timestep]
    alpha_prev = alphas[prev_timestep] if prev_timestep >= 0 else scheduler.final_alpha_cumprod.to(latents.device)
    x0_hat = (latents - (1 - alpha_t).sqrt() * eps) / alpha_t.sqrt()
    sigma = eta * ((1 - alpha_prev) / (1 - alpha_t) * (1 - alpha_t / alpha_prev)).sqrt()
    mean = alpha_prev.sqrt() * x0_hat + (1 - alpha_prev - sigma ** 2).clamp(min=0).sqrt() * eps
    if prev_latents is None:
        noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(latents.device)
        prev_latents = mean + sigma * noise
    if eta <= 0:                                   # deterministic: the step has no density
        return prev_latents, None
    log_prob = (-((prev_latents.detach() - mean) ** 2) / (2 * sigma ** 2) - torch.log(sigma)
                - 0.5 * math.log(2 * math.pi))
    return prev_latents, log_prob.mean(dim=tuple(range(1, latents.ndim)))


def guided_eps(unet, latents, timestep: int, embeddings, guidance_scale: float):
    """Classifier-free guided eps_hat (Ho & Salimans 2022): eps_u + w (eps_c - eps_u); ``embeddings`` holds the
    unconditional states first, then the conditional ones, (2B, tokens, width)."""
    import torch

    doubled = torch.cat([latents, latents])
    eps = unet(doubled, timestep, encoder_hidden_states=embeddings).sample
    unconditional, conditional = eps.chunk(2)
    return unconditional + guidance_scale * (conditional - unconditional)


def prompt_states(pipe, prompts: list[str]):
    """(2B, tokens, width): the empty prompt's states B times, then the prompts' (the Generate tab's CFG)."""
    import torch

    with torch.no_grad():
        conditional, unconditional = pipe.encode_prompt(prompts, pipe._execution_device, 1, True, [""] * len(prompts))
    return torch.cat([unconditional, conditional])


def decode(pipe, latents):
    """(B, 3, H, W) in [-1, 1] from denoised latents, differentiable."""
    return pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample.clamp(-1, 1)


def add_lora(unet, rank: int):
    """LoRA adapters (r = ``rank``, alpha = r) on every attention projection; only they train."""
    from peft import LoraConfig

    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=LORA_TARGETS))
    return [p for p in unet.parameters() if p.requires_grad]


def per_prompt_advantages(rewards, samples_per_prompt: int, clip: float):
    """(r - mean of the prompt's samples) / (std of the batch), clipped to +-clip (DDPO's per-prompt normalisation,
    over this batch's samples of each prompt: a caption rarely recurs, so no running statistics are kept)."""
    grouped = rewards.view(-1, samples_per_prompt)
    centred = (grouped - grouped.mean(1, keepdim=True)).view(-1)
    return (centred / (rewards.std() + 1e-6)).clamp(-clip, clip)


def ddpo_surrogate(log_prob, old_log_prob, advantages, clip_range: float):
    """PPO's clipped objective on the likelihood ratio of one step, as a loss (DDPO_IS, Black et al. sec. 4.3)."""
    import torch

    ratio = torch.exp(log_prob - old_log_prob)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
    return torch.maximum(unclipped, clipped).mean()


@dataclass
class Trajectories:
    """A batch of sampled chains: latents (T + 1, B, C, h, w) from noise to x_0, the steps' timesteps (T,),
    log-probabilities (T, B) (None at eta = 0), the images (B, 3, H, W) in [-1, 1], their rewards (B,) and the
    objective optimised (B,): the rewards, or their log form (``attribute_scores``)."""

    latents: list
    timesteps: list[int]
    log_probs: list | None
    images: object
    rewards: object
    objectives: object


@dataclass
class Reward:
    """What the samples are rewarded by: the oracle's model, its input side, and per sample the attributes its
    caption asks present (``wanted``) among those it fixes (``fixed``), both (B, A) bool (``target_matrix``)."""

    oracle_model: object
    oracle_size: int
    wanted: object
    fixed: object


def sample(pipe, unet, scheduler, states, config: AlignConfig, generator, reward: Reward,
           grad_steps: int = 0) -> Trajectories:
    """With ``unet`` (the pipeline's, or its DDP wrapper), denoise ``len(states) // 2`` latents with CFG, the last
    ``grad_steps`` steps with gradients (DRaFT-K), decode and reward them. Gradients flow into the result's
    ``rewards`` and ``objectives`` only when ``grad_steps`` > 0."""
    import torch

    batch = len(states) // 2
    channels, side = pipe.unet.config.in_channels, pipe.unet.config.sample_size
    latents = torch.randn((batch, channels, side, side), generator=generator) * scheduler.init_noise_sigma
    chain, log_probs, steps = [latents], [], len(scheduler.timesteps)
    for index, timestep in enumerate(scheduler.timesteps):
        # 1. noise prediction with guidance; 2. the DDIM step and its log-probability
        with torch.set_grad_enabled(index >= steps - grad_steps):
            eps = guided_eps(unet, latents, int(timestep), states, config.guidance_scale)
            latents, log_prob = ddim_step_with_log_prob(scheduler, eps, int(timestep), latents, config.sampling_eta,
                                                        generator)
        chain.append(latents.detach())
        log_probs.append(None if log_prob is None else log_prob.detach())
    # 3. decode and reward (through the decoder and the oracle when the last steps carry gradients)
    with torch.set_grad_enabled(grad_steps > 0):
        images = decode(pipe, latents)
        rewards, log_rewards = attribute_scores(reward.oracle_model, reward.oracle_size, images, reward.wanted,
                                                reward.fixed)
    return Trajectories(chain, [int(t) for t in scheduler.timesteps],
                        None if log_probs[0] is None else log_probs, images.detach(), rewards,
                        log_rewards if config.objective == "log" else rewards)


def ddpo_update(unet, scheduler, states, trajectories: Trajectories, config: AlignConfig, accelerator, optimizer):
    """One DDPO_IS update on a batch of trajectories: per-prompt advantages, then for every step the clipped
    surrogate of its recomputed log-probability, gradients accumulated over the steps, one optimizer step."""
    advantages = per_prompt_advantages(trajectories.objectives.detach(), config.samples_per_prompt,
                                       config.advantage_clip)
    steps = len(trajectories.timesteps)
    total = 0.0
    for index, timestep in enumerate(trajectories.timesteps):
        eps = guided_eps(unet, trajectories.latents[index], timestep, states, config.guidance_scale)
        _, log_prob = ddim_step_with_log_prob(scheduler, eps, timestep, trajectories.latents[index],
                                              config.sampling_eta, prev_latents=trajectories.latents[index + 1])
        loss = ddpo_surrogate(log_prob, trajectories.log_probs[index], advantages, config.clip_range) / steps
        accelerator.backward(loss)
        total += float(loss.detach())
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total


@dataclass
class _Update:
    """What one optimisation step of the adapters uses: the pipeline and its (possibly DDP-wrapped) UNet, the DDIM
    sampling schedule, the sampling generator, the accelerator and the optimiser."""

    pipe: object
    unet: object
    scheduler: object
    generator: object
    accelerator: object
    optimizer: object


def _update(run: _Update, states, reward: Reward, config: AlignConfig) -> tuple[Trajectories, float, int]:
    """One step: sample and reward a batch, then DRaFT-K (backprop through the last steps) or DDPO's clipped
    importance-sampled update. Returns (the trajectories, the loss, UNet passes per image spent)."""
    import torch

    if config.method == "backprop":
        trajectories = sample(run.pipe, run.unet, run.scheduler, states, config, run.generator, reward,
                              grad_steps=config.draft_k)
        objective = -trajectories.objectives.mean()
        run.accelerator.backward(objective)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        return trajectories, float(objective.detach()), 2 * config.batch_size * config.sampling_steps
    with torch.no_grad():
        trajectories = sample(run.pipe, run.unet, run.scheduler, states, config, run.generator, reward)
    loss = ddpo_update(run.unet, run.scheduler, states, trajectories, config, run.accelerator, run.optimizer)
    return trajectories, loss, 2 * 2 * config.batch_size * config.sampling_steps      # sampling, then recomputing


def train_align(config: AlignConfig, model=None, progress: Progress | None = None,
                should_stop: Callable[[], bool] | None = None, command: str = "") -> dict:
    """Fine-tune LoRA adapters of ``model``'s UNet (default: the domain's bundled pipeline) to its oracle's reward;
    write ``out/lora`` (the adapters), ``out/pipeline`` (merged, a stock pipeline folder) and the record.
    Returns the record: reward per step and UNet passes spent."""
    import torch
    from diffusers import DDIMScheduler

    config.validate()
    accelerator = make_accelerator(config.seed)
    if model is None:
        model = load_model(config.model or f"{config.domain}-phantom", device="cpu")
    if model.oracle is None:
        raise ValueError(f"{model.name} has no oracle: the reward needs one")
    pipe, oracle = model.pipe, model.oracle
    pipe.vae.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    oracle.model.requires_grad_(False).eval()
    parameters = add_lora(pipe.unet, config.lora_rank)
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=1e-4)
    unet, optimizer = accelerator.prepare(pipe.unet, optimizer)     # DDP-wrapped under a launch of several
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(config.sampling_steps)
    rng = np.random.default_rng([config.seed, accelerator.process_index])
    generator = torch.Generator("cpu").manual_seed(config.seed * 1000 + accelerator.process_index)
    log = Log("align", config.steps, every=10, progress=progress, enabled=accelerator.is_main_process)
    history, passes, tic = [], 0, time.perf_counter()
    n_prompts = config.batch_size // config.samples_per_prompt
    for step in range(config.steps):
        if should_stop is not None and should_stop():
            break
        if config.time_budget_s and time.perf_counter() - tic > config.time_budget_s:
            break
        drawn = caption_prompts(config.domain, n_prompts, rng, config.boost)
        prompts = [p for p, _ in drawn for _ in range(config.samples_per_prompt)]
        repeated = [t for _, t in drawn for _ in range(config.samples_per_prompt)]
        reward = Reward(oracle.model, oracle.image_size, *target_matrix(oracle.attributes, repeated))
        states = prompt_states(pipe, prompts)
        unet.train()
        trajectories, loss, spent = _update(_Update(pipe, unet, scheduler, generator, accelerator, optimizer), states,
                                            reward, config)
        passes += spent
        mean_reward = float(trajectories.rewards.detach().mean())
        history.append({"step": step + 1, "reward": mean_reward,
                        "objective": float(trajectories.objectives.detach().mean()), "loss": loss,
                        "unet_passes": passes, "seconds": round(time.perf_counter() - tic, 2)})
        log.step(step + 1, reward=mean_reward, loss=loss)
        if config.save_every and (step + 1) % config.save_every == 0 and accelerator.is_main_process:
            save_lora(accelerator.unwrap_model(unet), Path(config.out))        # a stopped run keeps its adapters
            write_record(Path(config.out), "medviz_train.json", config,
                         {"method": config.method, "command": command, "history": history, "partial": True})
    record = {"method": config.method, "command": command, "history": history, "unet_passes": passes,
              "seconds": round(time.perf_counter() - tic, 1), "steps_run": len(history),
              "passes_note": "per image: UNet forward evaluations (x2 for CFG), backward passes not counted"}
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_aligned(pipe, accelerator.unwrap_model(unet), model, Path(config.out), config, record)
    return record


def save_lora(unet, out: Path) -> None:
    """``out/lora``: the UNet's adapters in diffusers' format (``StableDiffusionPipeline.load_lora_weights``)."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    out.mkdir(parents=True, exist_ok=True)
    lora = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(str(out / "lora"), unet_lora_layers=lora, safe_serialization=True)


def save_aligned(pipe, unet, model, out: Path, config: AlignConfig, record: dict) -> None:
    """``out/lora`` (``StableDiffusionPipeline.load_lora_weights`` reads it) and ``out/pipeline``: the adapters merged
    into the UNet, a stock pipeline folder with the model's medviz.json (its oracle path made absolute)."""
    import json

    from diffusers import StableDiffusionPipeline

    save_lora(unet, out)
    unet.fuse_lora()
    unet.unload_lora()
    unet.eval()
    merged = StableDiffusionPipeline(**{**pipe.components, "unet": unet}, requires_safety_checker=False)
    merged.save_pretrained(str(out / "pipeline"), safe_serialization=True)
    card = dict(model.card)
    if card.get("oracle") and model.oracle is not None and model.oracle.path:
        card["oracle"] = str(Path(model.oracle.path).resolve())
    card["aligned"] = {"config": asdict(config), "steps_run": record["steps_run"], "unet_passes": record["unet_passes"]}
    (out / "pipeline" / "medviz.json").write_text(json.dumps(card, indent=2, default=str))
    write_record(out, "medviz_train.json", config, record)
