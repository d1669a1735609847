"""Train the progression model (``medviz.progression``) on the phantom trial (``medviz.phantoms.trial``).

Each patient contributes its baseline image, its record and its noisy sizes at its own visits, under the arm it
was randomised to: the factual course only, as in a real trial. The loss is the Gaussian negative log-likelihood
of the recorded sizes under the model's paths: at each visit the mean and variance over ``n_paths`` sampled paths
(the same Brownian path for every visit of a path), plus a measurement variance (learned, or the protocol's).
Matching the spread of the paths to the spread of the courses is what makes the bands mean something (our choice;
the paper's training objective is not public).

    python -m medviz.train progression --domain cxr --out runs/progression/hyperfusion [--fusion film] [--steps N]

Resumable: ``OUT/checkpoints`` every ``checkpoint_every`` steps; the same command picks up there.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import progression
from ..io import uint8_rgb
from ..phantoms import get_domain
from ..phantoms import trial as world
from .common import TrainConfig

#: Validation patients for the band's calibration: within the trial's population, apart from training (the first
#: n_images seeds) and from the bench's held-out patients (81M).
VALIDATION_FIRST_SEED = world.TRIAL_FIRST_SEED + 500_000
GRID_STEP_DAYS = 0.5           # the solver's output times (or its step, if longer); a visit between two is interpolated
SHAPES = {"small": {}, "tiny": {"image_size": 32, "latent": 4, "width": 16, "embedding": 4, "dt_days": 2.0}}


@dataclass(frozen=True)
class ProgressionTrainConfig(TrainConfig):
    """``n_images``: patients enrolled (seeds from the trial's first seed); ``n_paths``: paths per patient per step;
    ``measurement_noise``: the recorded sizes' noise (std) when the protocol knows it (0: learned); ``model``: the
    SDE or a deterministic baseline (``progression.MODELS``), trained on the same loss with one path (then the
    Gaussian likelihood of the visits is a scaled squared error); ``mean_weight``: the weight of the paths' mean's
    own squared error in the loss (``nll``); ``n_validation``: the patients the band is calibrated on. Learned, it
    took the spread the paths should carry (0.068 against the world's 0.02; bands covered 71-73%)."""

    n_images: int = 2000
    steps: int = 3000
    batch_size: int = 64
    learning_rate: float = 1e-3
    fusion: str = "hyperfusion"
    model: str = "sde"
    n_paths: int = 8
    measurement_noise: float = 0.0
    mean_weight: float = 0.0
    n_validation: int = 300
    checkpoint_every: int = 250

    def validate(self) -> None:
        if self.domain != "cxr":
            raise ValueError("the phantom trial exists for the CXR domain only")
        if self.preset not in SHAPES:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {', '.join(SHAPES)}")
        progression.ProgressionConfig(fusion=self.fusion, model=self.model).validate()   # before any rendering


@dataclass
class TrialTensors:
    """The trial as tensors: images (N, 1, S, S) in [-1, 1], tabular (N, F) standardised, arm (N,), and per visit
    slot (N, V): the grid index below the visit, its interpolation weight, the recorded size and a mask."""

    images: object
    tabular: object
    arm: object
    below: object
    weight: object
    size: object
    mask: object


def baseline_images(patients, size: int) -> np.ndarray:
    """(N, size, size) uint8: each patient's day-0 image, rendered at 128 px and resized."""
    domain = get_domain("cxr")
    return np.stack([uint8_rgb(domain.render(world.factors_at(p, p.arm, 0.0), p.seed, 128).image, size)[..., 0]
                     for p in patients])


def baseline_tensor(patients, size: int):
    """(N, 1, size, size) float32 in [-1, 1]: the day-0 images as the image encoder reads them."""
    import torch

    return torch.as_tensor(baseline_images(patients, size)).float()[:, None] / 127.5 - 1


def trial_tensors(patients, config: progression.ProgressionConfig) -> TrialTensors:
    """The patients' images, records and visits, as the loss reads them."""
    import torch

    images = baseline_tensor(patients, config.image_size)
    records = [world.tabular(p) for p in patients]
    by_patient: dict[int, list[dict]] = {}
    for row in world.observations(patients):
        by_patient.setdefault(row["patient"], []).append(row)
    slots, step = max(len(p.visits) for p in patients), grid_step(config)
    below, weight, size, mask = (np.zeros((len(patients), slots)) for _ in range(4))
    for i, patient in enumerate(patients):
        for j, row in enumerate(by_patient[patient.seed]):
            position = row["day"] / step
            below[i, j] = min(math.floor(position), round(config.horizon_days / step) - 1)
            weight[i, j], size[i, j], mask[i, j] = position - below[i, j], row["effusion_size"], 1.0
    arms = torch.as_tensor([config.treatments.index(p.arm) for p in patients])
    return TrialTensors(images, progression.tabular_tensor(config, records), arms,
                        torch.as_tensor(below, dtype=torch.long), *(torch.as_tensor(a, dtype=torch.float32)
                                                                    for a in (weight, size, mask)))


def grid_step(config: progression.ProgressionConfig) -> float:
    return max(GRID_STEP_DAYS, config.dt_days)


def grid_times(config: progression.ProgressionConfig) -> np.ndarray:
    return np.arange(0.0, config.horizon_days + grid_step(config) / 2, grid_step(config))


def visit_sizes(sizes, below, weight):
    """Sizes (M, B, T) on the grid read at each visit slot (B, V): (M, B, V), linearly interpolated."""
    import torch

    index = below[None].expand(sizes.shape[0], -1, -1)
    low, high = torch.gather(sizes, 2, index), torch.gather(sizes, 2, index + 1)
    return low + (high - low) * weight[None]


def nll(network, config, data: TrialTensors, rows, n_paths: int, seed: int, noise: float = 0.0,
        mean_weight: float = 0.0):
    """The loss of a batch ``rows``: Gaussian NLL of the recorded sizes under the paths' mean and variance plus
    the measurement noise (``noise``, or the network's learned one when 0); with ``mean_weight``, plus that times the
    squared error of the paths' mean, scaled as a deterministic model's loss (1 / (2 noise^2)) and made unbiased by
    subtracting the mean's own sampling variance (variance / n_paths), so it fits the mean without narrowing the
    paths."""
    import torch

    z0 = progression.encode(network, config, data.images[rows], data.tabular[rows])
    sizes = progression.paths(network, config, z0, data.arm[rows], grid_times(config), n_paths, seed=seed)
    at_visits = visit_sizes(sizes, data.below[rows], data.weight[rows])
    measured = noise if noise > 0 else torch.exp(network.log_noise)
    spread = at_visits.var(0) if at_visits.shape[0] > 1 else torch.zeros_like(at_visits[0])   # a baseline: one path
    mean, variance = at_visits.mean(0), spread + measured ** 2
    terms = 0.5 * (torch.log(2 * math.pi * variance) + (data.size[rows] - mean) ** 2 / variance)
    if mean_weight > 0 and at_visits.shape[0] > 1:
        unbiased = (data.size[rows] - mean) ** 2 - spread / at_visits.shape[0]
        terms = terms + mean_weight * unbiased / (2 * measured ** 2)
    return (terms * data.mask[rows]).sum() / data.mask[rows].sum()


def calibrate_band(network, shape: progression.ProgressionConfig, noise: float, n: int = 300, n_paths: int = 100,
                   target: float = 0.9) -> tuple[float, float]:
    """(level, coverage): the smallest central level of the paths, plus the measurement noise, whose band holds
    ``target`` of ``n`` validation patients' recorded follow-up sizes under their own arm (split-conformal on the
    factual visits: a real trial has those, not the counterfactuals). Conservative for the true course, which
    carries no measurement noise. A deterministic model (one path) has no band: (nan, nan)."""
    import torch

    if shape.model != "sde":
        return float("nan"), float("nan")
    patients = world.trial(n, VALIDATION_FIRST_SEED)
    data = trial_tensors(patients, shape)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z0 = progression.encode(network, shape, data.images, data.tabular)
        sizes = progression.paths(network, shape, z0, data.arm, grid_times(shape), n_paths, seed=1)
        recorded = visit_sizes(sizes, data.below, data.weight)                       # (paths, N, visits)
        recorded = recorded + noise * torch.randn(recorded.shape, generator=generator)
    follow_up = data.mask.bool().clone()
    follow_up[:, 0] = False                                                          # day 0: the baseline itself
    level = coverage = float("nan")
    for level in np.arange(0.50, 0.995, 0.01):
        low, high = (torch.quantile(recorded, q, dim=0) for q in ((1 - level) / 2, (1 + level) / 2))
        coverage = float(((low <= data.size) & (data.size <= high))[follow_up].float().mean())
        if coverage >= target:
            break
    return round(float(level), 2), round(coverage, 4)


def calibrate_folder(folder, n: int = 300) -> dict:
    """Calibrate a progression folder's band on ``n`` validation patients (``calibrate_band``) and write it into its
    card; returns the card."""
    network, shape, card = progression.load(folder)
    card["band_level"], card["band_coverage_validation"] = calibrate_band(network, shape, card["measurement_noise"],
                                                                          n=n)
    progression.save_card(shape, folder, card)
    return card


def network_config(config: ProgressionTrainConfig, patients) -> progression.ProgressionConfig:
    records = np.array([[world.tabular(p)[k] for k in progression.ProgressionConfig.tabular] for p in patients])
    return progression.ProgressionConfig(fusion=config.fusion, model=config.model,
                                         tabular_centre=tuple(records.mean(0).round(4)),
                                         tabular_scale=tuple(np.maximum(records.std(0), 1e-3).round(4)),
                                         **SHAPES[config.preset])


def train_progression(config: ProgressionTrainConfig, command: str = "") -> dict:
    """Train, resumably; writes a progression folder to ``config.out`` and returns its record."""
    import torch
    from safetensors.torch import load_file, save_file

    config.validate()
    torch.manual_seed(config.seed)
    out, started = Path(config.out), time.perf_counter()
    patients = world.trial(config.n_images)                                          # 1. the trial
    shape = network_config(config, patients)
    network = progression.build(shape)
    data = trial_tensors(patients, shape)                                            # 2. its tensors
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    checkpoints, first = out / "checkpoints", 0
    if (checkpoints / "checkpoint.json").is_file():                                 # 3. resume
        network.load_state_dict(load_file(str(checkpoints / "checkpoint.safetensors")))
        first = json.loads((checkpoints / "checkpoint.json").read_text())["step"]
        print(f"[progression] resuming at step {first}", flush=True)
    generator = torch.Generator().manual_seed(config.seed + first)
    for step in range(first, config.steps):                                          # 4. the loop
        rows = torch.randint(0, len(patients), (config.batch_size,), generator=generator)
        loss = nll(network, shape, data, rows, config.n_paths, seed=config.seed * 100_003 + step,
                   noise=config.measurement_noise, mean_weight=config.mean_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (step + 1) % 50 == 0:
            print(f"[progression] step {step + 1}/{config.steps} nll {loss.item():.4f} "
                  f"noise {config.measurement_noise or math.exp(network.log_noise.item()):.4f}", flush=True)
        if (step + 1) % config.checkpoint_every == 0:
            checkpoints.mkdir(parents=True, exist_ok=True)
            save_file({k: v.contiguous() for k, v in network.state_dict().items()},
                      str(checkpoints / "checkpoint.safetensors"))
            (checkpoints / "checkpoint.json").write_text(json.dumps({"step": step + 1}))
    record = {"config": asdict(config), "command": command, "patients": len(patients),
              "measurement_noise": config.measurement_noise or math.exp(network.log_noise.item()),
              "seconds": round(time.perf_counter() - started, 1)}
    progression.save(network, shape, out, record)                                    # 5. the folder
    return calibrate_folder(out, config.n_validation)                                # 6. the band's level
