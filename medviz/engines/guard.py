"""Domain check: is an image from the world this model was trained on? (``check_domain``)

The model's own machinery scores an image, as DDPM-OOD does (Graham et al. 2023: a diffusion model
reconstructs what it knows and fails on what it does not):

- ``vae``: the VAE round trip's mean absolute error (contract units);
- ``denoise@t``: the UNet's noise-prediction error at a few fixed timesteps under the empty prompt, with fixed
  noise: DDPM-OOD's reconstruction error in one step per noise level (``len(TIMESTEPS)`` UNet passes).

Each feature is standardised by its median and spread on in-domain images; the score is the norm of the
standardised features (``scores``), two-sided because an image can be too easy to reconstruct (a constant
one) as well as too hard. The calibration (centres, spreads, threshold) and the figures it was measured at
are the model card's ``domain_check`` (``python -m medviz.bench guard --write-card``; docs/guard.md). A model
without one (a user's checkpoint not yet calibrated) gets ``in_domain = None`` and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..card import domain_calibration
from ..io import from_array
from ..models import Model
from .common import encode_prompts, forward_noise, model_rgb, vae_input, vae_means

#: Timesteps of the denoising-error features (of 1000): low enough to read texture, high enough to read layout.
TIMESTEPS = (100, 300, 600)
NOISE_SEED = 20230401                      # fixed noise: the same image always gets the same score
CARD_KEY = "domain_check"
NO_CHECK = ("there is no domain check for this model: its readouts and verdicts on images unlike its training "
            "images are not known to be meaningful (calibrate one from a folder of in-domain images: python -m "
            "medviz.bench guard --model PATH --images FOLDER --write-card)")


@dataclass(frozen=True)
class DomainCheck:
    """The verdict on one image. ``in_domain`` is None where the model has no calibration; ``score`` and
    ``threshold`` are then NaN. ``features``: each feature's standardised value (the score is their norm,
    ``scores``); ``unet_passes``: what the check cost."""

    in_domain: bool | None
    score: float
    threshold: float
    reason: str
    features: dict = field(default_factory=dict)
    unet_passes: int = 0

    @property
    def warning(self) -> str:
        """The sentence a result shows ('' for an in-domain image)."""
        if self.in_domain is None:
            return "No domain check for this model: " + NO_CHECK.split(": ", 1)[1] + "."
        if self.in_domain:
            return ""
        return ("This image is outside the model's training domain (" + self.reason + "): its readouts and "
                "verdicts are not meaningful.")

    def record(self) -> dict:
        """What results and exports keep."""
        return {"in_domain": self.in_domain, "score": _finite(self.score), "threshold": _finite(self.threshold),
                "reason": self.reason}


def _finite(value: float) -> float | None:
    return None if value != value else round(float(value), 4)


def raw_features(model: Model, images, batch: int = 16) -> dict[str, np.ndarray]:
    """Unstandardised features of N images (contract floats or uint8, any size): {name: (N,)}."""
    import torch

    pipe, size = model.pipe, model.image_size
    device, dtype = pipe._execution_device, pipe.unet.dtype
    empty = encode_prompts(pipe, [""])
    scaling = pipe.vae.config.scaling_factor
    out: dict[str, list] = {"vae": [], **{f"denoise@{t}": [] for t in TIMESTEPS}}
    with torch.no_grad():
        for start in range(0, len(images), batch):
            chunk = [model_rgb(from_array(image).pixels, size) for image in images[start:start + batch]]
            x = vae_input(pipe, np.stack(chunk))
            latents = vae_means(pipe, x)
            decoded = pipe.vae.decode(latents).sample.float().clamp(-1, 1)
            out["vae"].append(((decoded - x.float()).abs().mean((1, 2, 3)) / 2).cpu().numpy())
            latents = latents * scaling
            noise = torch.randn(latents.shape[1:], generator=torch.Generator("cpu").manual_seed(NOISE_SEED))
            noise = noise.to(device, dtype)
            for t in TIMESTEPS:          # one call per timestep over the chunk; per image that is one UNet pass each
                steps = torch.full((len(latents),), t, device=device, dtype=torch.long)
                noisy = forward_noise(pipe.scheduler.alphas_cumprod, latents, noise.expand_as(latents), steps).to(dtype)
                eps = pipe.unet(noisy, steps, encoder_hidden_states=empty.expand(len(latents), -1, -1)).sample
                out[f"denoise@{t}"].append(((eps.float() - noise.float()) ** 2).mean((1, 2, 3)).cpu().numpy())
    return {name: np.concatenate(values) for name, values in out.items()}


def standardise(features: dict[str, np.ndarray], calibration: dict) -> dict[str, np.ndarray]:
    """Each feature as (value - median) / spread, the calibration's (N,) per feature."""
    centre, spread = calibration["centre"], calibration["spread"]
    return {name: (features[name] - centre[name]) / spread[name] for name in centre}


def scores(features: dict[str, np.ndarray], calibration: dict) -> np.ndarray:
    """(N,) each image's distance from the in-domain centre: the Euclidean norm of its standardised features
    (a Mahalanobis distance with a diagonal covariance). Far images are off on every feature at once, rare
    in-domain ones on one: the norm separates them better than the largest feature (docs/guard.md)."""
    z = standardise(features, calibration)
    return np.sqrt(np.sum(np.stack(list(z.values())) ** 2, axis=0))


def fit_scale(features: dict[str, np.ndarray]) -> dict:
    """Medians and spreads of in-domain images' features (the spread: 1.4826 x the median absolute deviation,
    the standard deviation of a normal sample, robust to the few odd images a folder may hold)."""
    centre = {name: float(np.median(v)) for name, v in features.items()}
    spread = {name: float(1.4826 * np.median(np.abs(v - centre[name]))) or 1e-6 for name, v in features.items()}
    return {"centre": centre, "spread": spread}


def fit_threshold(calibration: dict, features: dict[str, np.ndarray], margin: float) -> float:
    """The largest score of in-domain images (a split ``fit_scale`` did not see) times ``margin``."""
    return float(scores(features, calibration).max() * margin)


def check_domain(model: Model, image: np.ndarray) -> DomainCheck:
    """Is ``image`` (contract float or uint8, any size) like the images the model was calibrated on?"""
    calibration = domain_calibration(model.card)
    if calibration is None:
        return DomainCheck(None, float("nan"), float("nan"), NO_CHECK)
    z = {name: float(v[0]) for name, v in standardise(raw_features(model, [image]), calibration).items()}
    score = float(np.sqrt(sum(v * v for v in z.values())))
    threshold = float(calibration["threshold"])
    worst = max(z, key=lambda name: abs(z[name]))
    reason = (f"score {score:.1f} within the threshold {threshold:.1f}" if score <= threshold else
              f"score {score:.1f} above the threshold {threshold:.1f}; furthest: {describe_feature(worst, z[worst])}")
    return DomainCheck(score <= threshold, score, threshold, reason, z, unet_passes=len(TIMESTEPS))


def flagger(model: Model, batch: int = 16):
    """``flags(images) -> bool (N,)``, True where the domain check flags an image (batched: 1 + len(TIMESTEPS)
    passes per image, as ``check_domain``); None when the model's card has no domain-check calibration."""
    calibration = domain_calibration(model.card)
    if calibration is None:
        return None
    threshold = float(calibration["threshold"])

    def flags(images) -> np.ndarray:
        return scores(raw_features(model, images, batch), calibration) > threshold

    return flags


def describe_feature(name: str, z: float) -> str:
    """'the VAE round trip error, 14 spreads above in-domain images'."""
    what = {"vae": "the VAE round-trip error"}.get(
        name, f"the denoising error at t = {name.split('@')[-1]}")
    return f"{what}, {abs(z):.0f} spreads {'above' if z > 0 else 'below'} in-domain images"
