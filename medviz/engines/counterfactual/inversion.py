"""Inversions of the input latent (edit-friendly DDPM, DDIM) and DiffEdit's map from the same UNet calls."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..common import StepControl, forward_noise, make_scheduler
from .config import EditConfig


@dataclass
class EditRun:
    """What every step of one edit shares: the pipeline, the DDIM schedule of the edited steps, the input latent
    ``x0`` (1, C, h, w), the (source, target) prompt states ``embeds`` (2, T, D), the resolved config and seed."""

    pipe: object
    scheduler: object
    timesteps: object          # descending, the edited part of the schedule
    x0: object
    embeds: object
    config: EditConfig
    seed: int
    control: StepControl

    @property
    def auto_mask(self) -> bool:
        return self.config.mask_mode == "auto"


@dataclass
class Inverted:
    """The inversion: ``trajectory`` [x_t0, ..., x_0] (n_edit + 1 latents), the edit-friendly noise maps (None for
    DDIM), DiffEdit's score map (None without an automatic mask) and the UNet passes spent."""

    trajectory: object
    noise_maps: object | None
    score: object | None
    passes: int


def invert(run: EditRun) -> Inverted:
    """Step 3: edit-friendly DDPM inversion (its calls also give DiffEdit's map), or DDIM inversion and then
    DiffEdit's own draws."""
    if run.config.inversion == "edit_friendly":
        return Inverted(*_edit_friendly_inversion(run))
    trajectory, passes = _ddim_inversion(run.pipe, run.x0, run.config.steps, len(run.timesteps), run.embeds[:1],
                                         run.control)
    score = None
    if run.auto_mask:
        score, mask_passes = _diffedit_score(run.pipe, run.scheduler, run.x0, run.embeds, run.config, run.seed,
                                             run.control)
        passes += mask_passes
    return Inverted(trajectory, None, score, passes)


def denoise(run: EditRun, inverted: Inverted, latent_mask) -> tuple[object, int]:
    """Step 5, the edit: DDPM (eta = 1) with the inversion's noise maps, or DDIM (eta = 0), from the inverted latent,
    guided from the source prompt towards the target; outside a mask, the input's own path (DiffEdit sec. 3.2).
    Returns (the edited latents (1, C, h, w), UNet passes)."""
    import torch

    latents, passes = inverted.trajectory[0].clone(), 0
    for i, t in enumerate(run.timesteps):
        run.control.check()
        with torch.no_grad():
            eps_source, eps_target = run.pipe.unet(latents.expand(2, -1, -1, -1), t,
                                                   encoder_hidden_states=run.embeds).sample.chunk(2)
        passes += 2
        eps = eps_source + run.config.guidance_scale * (eps_target - eps_source)
        if inverted.noise_maps is not None:
            latents = _ddpm_mean(run.scheduler, eps, t, latents) + inverted.noise_maps[i]
        else:
            latents = run.scheduler.step(eps, t, latents, eta=0.0).prev_sample
        if latent_mask is not None:
            latents = latent_mask * latents + (1 - latent_mask) * inverted.trajectory[i + 1]
        run.control.step()
    return latents, passes


def _ddpm_mean(scheduler, eps, t, latents):
    """mu_t(x_t): the DDIM eta = 1 (= DDPM posterior) update without its noise term."""
    import torch

    return scheduler.step(eps, t, latents, eta=1.0, variance_noise=torch.zeros_like(latents)).prev_sample


def _edit_friendly_inversion(run: EditRun):
    """Noisy copies (eq. 6) and noise maps sigma_t z_t (eq. 7); with an automatic mask, DiffEdit's map from the same
    calls.

    Returns (trajectory [x_t0, ..., x_0] of n_edit + 1 latents, the noise maps times sigma_t, the mask
    score map or None, UNet passes).
    """
    import torch

    pipe, scheduler, x0, timesteps, embeds = run.pipe, run.scheduler, run.x0, run.timesteps, run.embeds
    config, seed, auto_mask, control = run.config, run.seed, run.auto_mask, run.control
    n_edit = len(timesteps)
    generator = torch.Generator("cpu").manual_seed(seed)
    noise = torch.randn((n_edit, *x0.shape[1:]), generator=generator).to(device=x0.device, dtype=torch.float32)
    copies = forward_noise(scheduler.alphas_cumprod, x0, noise, timesteps)  # eq. 6
    trajectory = torch.cat([copies, x0])  # x_{t_0} .. x_{t_last}, x_0
    # DiffEdit's draws: the copies whose t is nearest to mask_t * T also get the target prompt.
    train_t = scheduler.config.num_train_timesteps
    order = np.argsort(np.abs(timesteps.cpu().numpy() - config.mask_t * train_t), kind="stable")
    mask_rows = set(order[: config.mask_draws].tolist()) if auto_mask else set()
    eps_source = torch.empty_like(copies)
    differences = []
    passes = 0
    for start in range(0, n_edit, config.batch_size):
        rows = list(range(start, min(start + config.batch_size, n_edit)))
        extra = [r for r in rows if r in mask_rows]
        batch = torch.cat([copies[rows], copies[extra]])
        t = torch.cat([timesteps[rows], timesteps[extra]])
        hidden = torch.cat([embeds[:1].expand(len(rows), -1, -1), embeds[1:].expand(len(extra), -1, -1)])
        with torch.no_grad():
            predicted = pipe.unet(batch, t, encoder_hidden_states=hidden).sample
        passes += len(batch)
        eps_source[rows] = predicted[: len(rows)]
        for k, r in enumerate(extra):
            differences.append((predicted[len(rows) + k] - eps_source[r]).abs().float().mean(0))
        control.check()
    # Eq. 7 times sigma_t: sigma_t z_t = x_{t-1} - mu_t(x_t), so that mu_t + sigma_t z_t lands on x_{t-1}.
    means = torch.cat([_ddpm_mean(scheduler, eps_source[i:i + 1], t, copies[i:i + 1]) for i, t in enumerate(timesteps)])
    maps = trajectory[1:] - means
    control.step(n_edit)
    if auto_mask:
        control.step()
    score = torch.stack(differences).mean(0) if differences else None
    return trajectory, maps, score, passes


def _ddim_inversion(pipe, x0, steps: int, n_edit: int, source_embeds, control: StepControl):
    """DDIM inversion under the source prompt (diffusers' ``DDIMInverseScheduler``), first ``n_edit`` steps.

    Returns (trajectory [x_{t_0}, ..., x_0] in the sampler's (descending) order, UNet passes).
    """
    import torch

    inverse = make_scheduler("DDIM inverse", pipe.scheduler.config, steps, pipe._execution_device)
    latents = x0
    path = [x0]
    for t in inverse.timesteps[:n_edit]:
        control.check()
        with torch.no_grad():
            eps = pipe.unet(latents, t, encoder_hidden_states=source_embeds).sample
        latents = inverse.step(eps, t, latents).prev_sample
        path.append(latents)
        control.step()
    return torch.cat(path[::-1]), n_edit


def _diffedit_score(pipe, scheduler, x0, embeds, config: EditConfig, seed: int, control: StepControl):
    """DiffEdit's map from fresh draws at t = mask_t T: mean |eps(target) - eps(source)| over draws and channels."""
    import torch

    t = scheduler.timesteps[int(np.argmin(np.abs(scheduler.timesteps.cpu().numpy() -
                                                 config.mask_t * scheduler.config.num_train_timesteps)))]
    generator = torch.Generator("cpu").manual_seed(seed + 1)
    noise = torch.randn((config.mask_draws, *x0.shape[1:]), generator=generator).to(x0.device, x0.dtype)
    noisy = forward_noise(scheduler.alphas_cumprod, x0, noise, t.expand(config.mask_draws))
    total = torch.zeros(x0.shape[-2:], device=x0.device)
    for start in range(0, config.mask_draws, max(1, config.batch_size // 2)):
        chunk = noisy[start:start + max(1, config.batch_size // 2)]
        n = len(chunk)
        with torch.no_grad():
            eps = pipe.unet(chunk.repeat(2, 1, 1, 1), t, encoder_hidden_states=embeds.repeat_interleave(n, 0)).sample
        total += (eps[n:] - eps[:n]).abs().float().mean(1).sum(0)
        control.step(n)
    return total / config.mask_draws, 2 * config.mask_draws
