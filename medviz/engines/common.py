"""What the engines share: schedulers by name, step control (progress, interrupt), latent <-> image."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..io import as_rgb, to_uint8

Progress = Callable[[int, int], None] | None        # progress(done, total)
ShouldStop = Callable[[], bool] | None               # True -> stop at the next step

#: Sampler name -> (diffusers class name, config overrides). Built with ``from_config`` from the model's
#: own scheduler config, so the noise schedule the model was trained with carries over.
SCHEDULERS = {
    "DDIM": ("DDIMScheduler", {}),
    "DPM-Solver++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "Euler ancestral": ("EulerAncestralDiscreteScheduler", {}),
}

#: Schedulers the engines use inside, never offered as a sampler: DDIM inversion (Song et al. 2021, run backwards).
INTERNAL_SCHEDULERS = {"DDIM inverse": ("DDIMInverseScheduler", {})}

#: Samplers whose step is a deterministic function of (x_t, eps): the only ones a branching
#: trajectory (traverse) can share between branches.
DETERMINISTIC_SCHEDULERS = ("DDIM",)


class Interrupted(RuntimeError):
    """The user stopped a running engine; nothing partial is returned."""


def make_scheduler(name: str, base_config, steps: int | None = None, device=None):
    """A fresh scheduler of kind ``name`` from the model's scheduler config (never mutates the model), with its
    timesteps set when ``steps`` is given."""
    import diffusers

    if name not in SCHEDULERS and name not in INTERNAL_SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    class_name, overrides = {**SCHEDULERS, **INTERNAL_SCHEDULERS}[name]
    scheduler = getattr(diffusers, class_name).from_config(base_config, **overrides)
    if steps is not None:
        scheduler.set_timesteps(steps, device=device)
    return scheduler


def forward_noise(alphas_cumprod, latents, noise, timesteps):
    """DDPM's forward process (Ho et al. 2020, eq. 4): sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, in float32.

    Args:
        alphas_cumprod: (T,) the scheduler's abar; latents: (1 or B, C, h, w) x_0; noise: (B, C, h, w) eps;
        timesteps: (B,) ints.
    Returns (B, C, h, w) in the latents' dtype. Any scheduler has the alphas, so any sampler noises alike.
    """
    import torch

    abar = alphas_cumprod.to(device=latents.device, dtype=torch.float32)[timesteps.long()].view(-1, 1, 1, 1)
    return (abar.sqrt() * latents.float() + (1 - abar).sqrt() * noise.float()).to(latents.dtype)


def setting_differences(measured: dict, config) -> dict:
    """{setting: (measured at, this request)} for each of a bench record's ``measured`` settings that ``config``
    (an engine config) does not share; empty when the record's figures hold for the request."""
    return {key: (value, getattr(config, key)) for key, value in measured.items() if getattr(config, key) != value}


def new_seed() -> int:
    """A random seed in A1111's range, to be reported so the result can be reproduced."""
    return secrets.randbelow(2**32 - 1)


@dataclass
class StepControl:
    """Counts denoising steps across a job, reports progress and honours the interrupt check."""

    total: int
    progress: Progress = None
    should_stop: ShouldStop = None
    done: int = 0

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Interrupted(f"stopped by the user after {self.done} of {self.total} steps")

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)
        self.check()

    def diffusers_callback(self):
        """A ``callback_on_step_end`` for diffusers pipelines: progress per step, raise to interrupt."""

        def callback(pipe, step_index, timestep, tensors):
            self.step()
            return tensors

        return callback


def initial_noise(seeds: list[int], shape: tuple[int, ...], dtype, device):
    """One latent noise tensor per seed, drawn on the CPU so a seed gives the same noise on any device."""
    import torch

    noise = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(s)), dtype=torch.float32)
             for s in seeds]
    return torch.stack(noise).to(device=device, dtype=dtype)


#: Most samples per UNet call on a CPU: past ~48 the attention matrices outgrow the caches (docs/engines.md);
#: GPUs have no such knee within the engines' batches, so they get no limit.
CPU_UNET_BATCH = 32


def predict_noise(unet, noisy, timesteps, embeddings, max_batch: int | None = None):
    """eps_hat for B samples, in UNet calls of at most ``max_batch`` samples (default: ``CPU_UNET_BATCH`` on a CPU).

    Args:
        noisy: (B, C, h, w) noised latents; timesteps: (B,) ints; embeddings: (B, tokens, width) text states.
    Returns (B, C, h, w) in the UNet's dtype. Splitting a batch changes nothing but speed.
    """
    import torch

    if max_batch is None:
        max_batch = CPU_UNET_BATCH if noisy.device.type == "cpu" else len(noisy)
    with torch.no_grad():
        return torch.cat([unet(noisy[i:i + max_batch], timesteps[i:i + max_batch],
                               encoder_hidden_states=embeddings[i:i + max_batch]).sample
                          for i in range(0, len(noisy), max(1, max_batch))])


def decode_latents(pipe, latents, batch: int = 16) -> np.ndarray:
    """VAE-decode denoised latents to float32 (N, H, W, 3) in [0, 1] (the I/O contract's range)."""
    import torch

    images = []
    with torch.no_grad():
        for start in range(0, len(latents), batch):
            chunk = latents[start:start + batch] / pipe.vae.config.scaling_factor
            decoded = pipe.vae.decode(chunk.to(pipe.vae.dtype)).sample
            images.append(((decoded.float() / 2 + 0.5).clamp(0, 1)).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(images).astype(np.float32)


def encode_prompts(pipe, prompts: list[str]):
    """Text-encoder hidden states (N, tokens, width) of ``prompts``, as the pipeline conditions on them."""
    import torch

    with torch.no_grad():
        embeds, _ = pipe.encode_prompt(prompts, pipe._execution_device, 1, False)
    return embeds


def model_rgb(pixels: np.ndarray, size: int) -> np.ndarray:
    """Contract image (H, W) or (H, W, 3) in [0, 1] -> float32 (size, size, 3) in [0, 1], as the model sees it.

    Grayscale is repeated to three channels (real SD checkpoints are RGB); other sizes are resized
    bicubically through 8-bit, the precision of the images the models were trained on.
    """
    from PIL import Image

    rgb = as_rgb(np.asarray(pixels, dtype=np.float32))
    if rgb.shape[:2] != (size, size):
        rgb = np.asarray(Image.fromarray(to_uint8(rgb)).resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0
    return np.ascontiguousarray(rgb, dtype=np.float32)


def encode_image(pipe, pixels: np.ndarray, size: int):
    """Contract image (H, W) or (H, W, 3) in [0, 1] -> the VAE latent mean (1, C, h, w), scaled as in training."""
    return encode_rgb(pipe, model_rgb(pixels, size))


def encode_rgb(pipe, rgb: np.ndarray):
    """float32 (H, W, 3) in [0, 1] -> the VAE latent mean (1, C, h, w), scaled as in training."""
    return vae_means(pipe, vae_input(pipe, rgb[None])) * pipe.vae.config.scaling_factor


def vae_input(pipe, rgb: np.ndarray):
    """float32 (N, H, W, 3) in [0, 1] -> (N, 3, H, W) in [-1, 1] on the VAE's device and dtype: the model boundary."""
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2) * 2 - 1
    return tensor.to(device=pipe._execution_device, dtype=pipe.vae.dtype)


def vae_means(pipe, x):
    """(N, 3, H, W) in [-1, 1] -> the VAE posterior means (N, C, h, w), unscaled (as the decoder takes them)."""
    import torch

    with torch.no_grad():
        return pipe.vae.encode(x).latent_dist.mean
