"""Train the domain's ``AutoencoderKL`` (3 channels in and out, like SD's, so X-rays take the same path).

Loss: L1 reconstruction + an image-gradient L1 term that keeps edges (ribs, lines, hair) sharp, with a
small KL weight as in SD's VAE (Rombach et al. 2022, sec. 3). No perceptual or adversarial term: those
need pretrained networks that we cannot download.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .architectures import PRESETS, make_vae
from .common import BudgetedSchedule, Log, Progress, latest_checkpoint, make_accelerator, save_checkpoint, write_record
from .data import render_phantoms, to_model_batch


@dataclass(frozen=True)
class VAEConfig:
    domain: str
    out: str
    preset: str = "small"
    n_images: int = 20000
    steps: int = 4000
    batch_size: int = 32
    learning_rate: float = 1e-3
    kl_weight: float = 1e-6
    edge_weight: float = 0.5
    seed: int = 0
    checkpoint_every: int = 0          # 0: only at the end
    workers: int | None = None
    time_budget_s: float = 0.0         # >0: cut the step count to end in about this many seconds


def _gradients(x):
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def _objective(vae):
    """A module whose forward runs encode -> sample -> decode, so DDP (accelerate launch) syncs gradients."""
    import torch

    class Objective(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vae = vae

        def forward(self, batch):
            posterior = self.vae.encode(batch).latent_dist
            return self.vae.decode(posterior.sample()).sample, posterior.kl().mean()

    return Objective()


def train_vae(config: VAEConfig, images: np.ndarray | None = None, progress: Progress | None = None,
              should_stop: Callable[[], bool] | None = None) -> dict:
    """Train and save ``out/vae`` (diffusers folder, safetensors). Returns final metrics.

    ``scaling_factor`` is set to 1 / std of the latents, as SD does, so latents enter the UNet at unit scale.
    """
    import torch

    arch = PRESETS[config.preset]
    out = Path(config.out)
    accelerator = make_accelerator(config.seed)
    if images is None:
        images, _ = render_phantoms(config.domain, config.n_images, arch.image_size, 0, config.workers)
    vae = make_vae(arch)
    objective = _objective(vae)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    objective, optimizer = accelerator.prepare(objective, optimizer)
    scheduler = BudgetedSchedule(optimizer, 200, config.steps, config.time_budget_s or None)
    start = 0
    resumed = latest_checkpoint(out / "vae-checkpoints")
    if resumed:
        accelerator.load_state(str(resumed[0]))
        start = resumed[1]
    rng = np.random.default_rng(config.seed + start)
    log = Log("vae", config.steps, progress=progress)
    objective.train()
    for step in range(start + 1, config.steps + 1):
        batch = to_model_batch(images[rng.integers(0, len(images), config.batch_size)], accelerator.device)
        with accelerator.autocast():
            reconstruction, kl = objective(batch)
        reconstruction = reconstruction.float()
        l1 = (reconstruction - batch).abs().mean()
        edges = sum((a - b).abs().mean() for a, b in zip(_gradients(reconstruction), _gradients(batch)))
        loss = l1 + config.edge_weight * edges + config.kl_weight * kl.float()
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(objective.parameters(), 1.0)
        optimizer.step()
        scheduler.step(step)
        optimizer.zero_grad(set_to_none=True)
        log.total = scheduler.total
        log.step(step, l1=l1.item(), edge=edges.item(), kl=kl.item())
        if config.checkpoint_every and step % config.checkpoint_every == 0:
            save_checkpoint(accelerator, out / "vae-checkpoints", step, config)
        if should_stop and should_stop():
            save_checkpoint(accelerator, out / "vae-checkpoints", step, config)
            return {"stopped_at": step}
        if scheduler.done(step):
            break

    model = accelerator.unwrap_model(objective).vae.eval()
    with torch.no_grad():
        sample = to_model_batch(images[: min(512, len(images))], accelerator.device)
        latents = torch.cat([model.encode(chunk).latent_dist.mean for chunk in sample.split(64)])
        reconstruction = torch.cat([model.decode(l).sample for l in latents.split(64)]).clamp(-1, 1)
        mse = ((reconstruction - sample) / 2).pow(2).mean(dim=(1, 2, 3))
        psnr = float((10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean())
        scaling = float(1.0 / latents.std())
    model.register_to_config(scaling_factor=scaling)
    model.save_pretrained(str(out / "vae"), safe_serialization=True)
    result = {"psnr_db_train_images": psnr, "scaling_factor": scaling, "steps": step}
    write_record(out / "vae", "medviz_train.json", config, result)
    return result
