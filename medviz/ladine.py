"""LaDiNE (Shen, Huang, Nichyporuk, Arbel; arXiv 2310.15952): a ViT whose intermediate blocks each feed a mapping
head (one guiding prediction per ensemble member) and, per member, a CARD conditional diffusion over the label
vector (Han et al. 2022, arXiv 2206.07275); predictions by majority vote over members x samples, with an
instance-level uncertainty.

CARD's forward process is centred on the guide: y_t = sqrt(a_t) y_0 + (1 - sqrt(a_t)) y_hat + sqrt(1 - a_t) eps
(CARD eq. 2). With z = y - y_hat it is plain DDPM noising of z, so training predicts eps from z_t (eq. 4's loss)
and sampling is diffusers' DDIM on z, y_0 = z_0 + y_hat. No library has the label denoiser or this offset; both
are written here, short. The image features are computed once per image: only the small denoisers run per step.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from .folders import check_weights
from .io import to_model_batch, uint8_rgb

CONFIG = "medviz_ladine.json"      # the LaDiNE settings beside the weights (and the trainer's record)


@dataclass(frozen=True)
class LaDiNEConfig:
    """The network's shape. ``taps``: the ViT blocks (1-based) whose CLS token feeds a member; ``labels``: the
    class names (class 1 the target: ("no pleural_effusion", "pleural_effusion"))."""

    labels: tuple[str, ...] = ("negative", "positive")
    image_size: int = 128
    patch_size: int = 16
    hidden: int = 192
    layers: int = 6
    heads: int = 3
    taps: tuple[int, ...] = (2, 4, 6)
    denoiser_width: int = 128
    timesteps: int = 1000            # CARD: T = 1000, linear betas 1e-4 .. 0.02
    temperature: float = 0.1         # probabilities softmax(-(y - 1)^2 / temperature) (LaDiNE's readout)


def build(config: LaDiNEConfig):
    """The untrained network: ``encoder`` (transformers ViT), ``heads`` (one mapping MLP per tap), ``denoisers``."""
    import torch.nn as nn
    from transformers import ViTConfig, ViTModel

    vit = ViTConfig(image_size=config.image_size, patch_size=config.patch_size, hidden_size=config.hidden,
                    num_hidden_layers=config.layers, num_attention_heads=config.heads,
                    intermediate_size=4 * config.hidden, num_channels=3)
    classes = len(config.labels)
    network = nn.Module()
    network.encoder = ViTModel(vit, add_pooling_layer=False)
    network.heads = nn.ModuleList(
        nn.Sequential(nn.LayerNorm(config.hidden), nn.Linear(config.hidden, config.hidden), nn.GELU(),
                      nn.Linear(config.hidden, classes)) for _ in config.taps)
    network.denoisers = nn.ModuleList(LabelDenoiser(classes, config.hidden, config.denoiser_width, config.timesteps)
                                      for _ in config.taps)
    return network


@functools.cache
def _label_denoiser_class():     # defined on first use: medviz imports torch only where it runs a network
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class LabelDenoiser(nn.Module):
        """eps_theta(z_t, y_hat, features, t) of CARD's classification denoiser: (z_t, y_hat) embedded and gated by a
        learnt per-timestep scale, multiplied by the image features, two more gated layers (CARD, App. A.2)."""

        def __init__(self, classes: int, features: int, width: int, timesteps: int):
            super().__init__()
            self.inputs = nn.Linear(2 * classes, width)
            self.features = nn.Linear(features, width)
            self.middle = nn.Linear(width, width)
            self.out = nn.Linear(width, classes)
            self.gates = nn.ModuleList(nn.Embedding(timesteps, width) for _ in range(2))
            for gate in self.gates:
                nn.init.uniform_(gate.weight)

        def forward(self, z_t, y_hat, features, t):
            h = F.softplus(self.gates[0](t) * self.inputs(torch.cat([z_t, y_hat], dim=-1)))
            h = h * self.features(features)
            h = F.softplus(self.gates[1](t) * self.middle(h))
            return self.out(h)

    return LabelDenoiser


def LabelDenoiser(classes: int, features: int, width: int, timesteps: int):  # noqa: N802  (a class, built lazily)
    return _label_denoiser_class()(classes, features, width, timesteps)


def make_scheduler(config: LaDiNEConfig):
    """CARD's schedule as a diffusers DDIM scheduler (linear betas 1e-4 .. 0.02 over ``timesteps``)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=config.timesteps, beta_start=1e-4, beta_end=0.02,
                         beta_schedule="linear", clip_sample=False, set_alpha_to_one=True)


def tapped_features(network, config: LaDiNEConfig, pixel_values):
    """(members, B, hidden): the CLS token after each tapped block, and (members, B, classes) the guides y_hat."""
    import torch

    hidden = network.encoder(pixel_values=pixel_values, output_hidden_states=True).hidden_states
    features = torch.stack([hidden[tap][:, 0] for tap in config.taps])
    guides = torch.stack([head(f).softmax(-1) for head, f in zip(network.heads, features)])
    return features, guides


def card_loss(denoiser, scheduler, features, guide, labels_one_hot, generator=None):
    """CARD's training loss (eq. 4): || eps - eps_theta(z_t, y_hat, f, t) ||^2, z_t = sqrt(a_t)(y_0 - y_hat) +
    sqrt(1 - a_t) eps, t uniform over the schedule."""
    import torch

    batch = len(labels_one_hot)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=generator)
    eps = torch.randn(labels_one_hot.shape, generator=generator)
    alpha = scheduler.alphas_cumprod[t].unsqueeze(-1)
    z_t = alpha.sqrt() * (labels_one_hot - guide) + (1 - alpha).sqrt() * eps
    return ((eps - denoiser(z_t, guide, features, t)) ** 2).mean()


@dataclass
class LaDiNEPrediction:
    """Per image: class probabilities (C,) averaged over members x samples, the voted class, its confidence, the
    paired t-test's p-value between the two top classes (LaDiNE's instance uncertainty: uncertain when >= 0.05) and
    the 2.5-97.5% interval width of the voted class's probability."""

    probabilities: np.ndarray
    predicted: int
    confidence: float
    p_value: float
    interval_width: float

    @property
    def uncertain(self) -> bool:
        return self.p_value >= 0.05


@dataclass
class LaDiNE:
    """A loaded LaDiNE classifier: ``predict(images)`` per image; ``score(images)`` P(class 1)."""

    network: object
    config: LaDiNEConfig
    name: str = "ladine"
    samples: int = 20              # LaDiNE: 20 samples per member
    steps: int = 20                # DDIM steps per sample
    seed: int = 0

    def predict(self, images, batch: int = 64) -> list[LaDiNEPrediction]:
        """Images in the I/O contract (or uint8), any size: resized to the network's side."""
        import torch

        out = []
        with torch.no_grad():
            for features, guides in self._encoded(images, batch):
                y0 = self._sample(features, guides)                     # (members, samples, B, C)
                probabilities = torch.softmax(-((y0 - 1) ** 2) / self.config.temperature, dim=-1)
                out += [_aggregate(probabilities[:, :, i].reshape(-1, y0.shape[-1]).numpy())
                        for i in range(y0.shape[2])]
        return out

    def score(self, images) -> np.ndarray:
        return np.array([p.probabilities[1] for p in self.predict(images)])

    def guides(self, images, batch: int = 64) -> np.ndarray:
        """(members, N, C) each member's guiding prediction y_hat (its mapping head's softmax), without the label
        diffusion: what the denoisers start from."""
        import torch

        with torch.no_grad():
            return np.concatenate([guides.numpy() for _, guides in self._encoded(images, batch)], axis=1)

    def _encoded(self, images, batch: int):
        """``tapped_features`` of each chunk of ``batch`` images, resized to the network's side (call under no_grad)."""
        for start in range(0, len(images), batch):
            chunk = np.stack([uint8_rgb(im, self.config.image_size) for im in images[start:start + batch]])
            yield tapped_features(self.network, self.config, to_model_batch(chunk, "cpu"))

    def _sample(self, features, guides):
        """DDIM on z = y - y_hat from z_T ~ N(0, I), each member ``samples`` times: (members, samples, B, C)."""
        import torch

        scheduler = make_scheduler(self.config)
        scheduler.set_timesteps(self.steps)
        generator = torch.Generator().manual_seed(self.seed)
        members, batch, classes = guides.shape
        outputs = []
        for m in range(members):
            f = features[m].repeat(self.samples, 1)
            guide = guides[m].repeat(self.samples, 1)
            z = torch.randn(guide.shape, generator=generator)
            for t in scheduler.timesteps:                              # 1. predict eps; 2. one DDIM step
                eps = self.network.denoisers[m](z, guide, f, t.repeat(len(z)))
                z = scheduler.step(eps, t, z).prev_sample
            outputs.append((z + guide).reshape(self.samples, batch, classes))
        return torch.stack(outputs)


def _aggregate(probabilities: np.ndarray) -> LaDiNEPrediction:
    """LaDiNE's readout of one image's (members x samples, C) probabilities: majority vote, mean probability as
    confidence, a paired t-test between the two most probable classes and the interval width."""
    votes = np.bincount(probabilities.argmax(-1), minlength=probabilities.shape[1])
    predicted = int(votes.argmax())
    mean = probabilities.mean(0)
    top, second = np.argsort(mean)[::-1][:2]
    difference = probabilities[:, top] - probabilities[:, second]
    p_value = 1.0 if np.allclose(difference, difference[0]) and difference[0] == 0 else float(
        stats.ttest_rel(probabilities[:, top], probabilities[:, second]).pvalue)
    low, high = np.percentile(probabilities[:, predicted], [2.5, 97.5])
    return LaDiNEPrediction(mean, predicted, float(mean[predicted]), 0.0 if np.isnan(p_value) else p_value,
                            float(high - low))


def save(network, config: LaDiNEConfig, folder: str | Path, record: dict | None = None) -> None:
    """``folder/model.safetensors`` and ``folder/medviz_ladine.json`` (the config and the trainer's record)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / CONFIG).write_text(json.dumps({"ladine": asdict(config), **(record or {})}, indent=2, default=str))


def trained_domain(folder: str | Path) -> str | None:
    """The domain a LaDiNE folder was trained on (its trainer's record), None when the record does not say."""
    try:
        return json.loads((Path(folder) / CONFIG).read_text()).get("config", {}).get("domain")
    except (OSError, json.JSONDecodeError):
        return None


def load(folder: str | Path, name: str | None = None) -> LaDiNE:
    """Load a LaDiNE folder offline; a broken one gets one sentence naming what is missing."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / CONFIG).is_file():
        raise ValueError(f"{folder.name}: no {CONFIG}, so this is not a LaDiNE folder")
    check_weights(folder, ValueError, folder.name)
    settings = json.loads((folder / CONFIG).read_text())["ladine"]
    config = LaDiNEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})
    network = build(config)
    network.load_state_dict(load_file(str(folder / "model.safetensors")))
    return LaDiNE(network.eval(), config, name or folder.name)
