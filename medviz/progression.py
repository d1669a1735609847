"""A patient's course under each treatment: a causal neural SDE (Durso-Finley et al., arXiv 2406.12807) started from
a baseline image and tabular data, fused by a hypernetwork (HyperFusion, Duenias et al., arXiv 2403.13319).

    Z(0)  = fuse(phi(image), psi(tabular))        the encoders; ``fusion`` picks how (below)
    Z(0+) = Z(0) + jump(Z(0), s)                  a treatment's immediate action (a drain empties at once)
    dZ    = f(Z, s) dt + g(Z, s) dW               drift and diagonal diffusion, both given the treatment s
    size  = sigmoid(w . Z(t) + b)                 the effusion size, in [0, 1]

Switching s on the same Z(0) and the same Brownian path gives the factual and counterfactual courses; many paths
give pathwise bands and the individual effect's interval. Solved with torchsde (Euler, Ito, diagonal noise).

Fusions of the image feature h (``width``) and the tabular embedding e: ``concat`` (an MLP on [h, e]), ``film``
(h * (1 + gamma(e)) + beta(e)), ``hyperfusion`` (the image branch's last layer W(e) h + b(e), its weights generated
per patient by a hypernetwork, initialised so W(e)'s entries start with the variance of a standard layer: the
paper's input-variance initialisation) and ``image_only`` (no tabular data: a baseline).

``model`` picks what runs from Z(0) (the same encoders and fusion for each): ``sde`` (the above), and the issue's
deterministic baselines, one course per arm and no band: ``mlp`` (sizes at ``KNOT_DAYS`` from [Z(0), s], linearly
interpolated between) and ``gru`` (a GRU cell stepped daily from h(0) = Z(0) with s as its input).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

CARD = "medviz_progression.json"            # a progression folder's card, beside model.safetensors
FUSIONS = ("hyperfusion", "film", "concat", "image_only")
MODELS = ("sde", "mlp", "gru")
KNOT_DAYS = (0.0, 7.0, 14.0, 21.0, 28.0)       # the per-horizon MLP's outputs
GRU_STEP_DAYS = 1.0
EFFECT_DAY = 14.0            # the individual treatment effect is read on this day's size
RESPONSE_MARGIN = 0.15       # a response: the diuretic lowers the day-14 size by more than this (on a 0-1 scale)
CONFIDENT = 0.9              # a confident call: at least this share of the paths agree


@dataclass(frozen=True)
class ProgressionConfig:
    """The network's shape. ``tabular``: the record's fields in order; ``treatments``: the arms in order."""

    tabular: tuple[str, ...] = ("age", "female", "heart_failure", "log10_bnp")
    treatments: tuple[str, ...] = ("none", "diuretic", "drain")
    image_size: int = 64
    latent: int = 8
    width: int = 64
    embedding: int = 8
    fusion: str = "hyperfusion"
    model: str = "sde"
    horizon_days: float = 28.0
    dt_days: float = 0.25
    tabular_centre: tuple[float, ...] = ()        # the training records' means and spreads (empty: 0 and 1)
    tabular_scale: tuple[float, ...] = ()

    def validate(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; choose one of {', '.join(FUSIONS)}")
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")


def _mlp(config: ProgressionConfig, inputs: int, outputs: int):
    from torch import nn

    return nn.Sequential(nn.Linear(inputs, config.width), nn.SiLU(), nn.Linear(config.width, outputs))


def _fusion(config: ProgressionConfig):
    """The module fusing the image feature h (B, width) and the tabular embedding e (B, embedding) into Z(0)."""
    import torch
    from torch import nn

    class Fusion(nn.Module):
        def __init__(self):
            super().__init__()
            w, e, z = config.width, config.embedding, config.latent
            if config.fusion == "concat":
                self.head = _mlp(config, w + e, z)
            elif config.fusion == "film":
                self.film, self.head = nn.Linear(e, 2 * w), nn.Linear(w, z)
                nn.init.zeros_(self.film.weight)
                nn.init.zeros_(self.film.bias)
            elif config.fusion == "hyperfusion":
                self.hyper = nn.Linear(e, z * w + z)
                # HyperFusion's principled init: with e of unit variance, each generated weight starts with the
                # variance 1 / w of a standard layer's (fan-in w), so the image branch starts where it would alone.
                nn.init.normal_(self.hyper.weight, std=(1.0 / (w * e)) ** 0.5)
                nn.init.zeros_(self.hyper.bias)
            else:
                self.head = nn.Linear(w, z)

        def forward(self, h, e):
            if config.fusion == "concat":
                return self.head(torch.cat([h, e], -1))
            if config.fusion == "film":
                gamma, beta = self.film(e).chunk(2, -1)
                return self.head(h * (1 + gamma) + beta)
            if config.fusion == "hyperfusion":
                z, w = config.latent, config.width
                generated = self.hyper(e)
                weight, bias = generated[:, :z * w].view(-1, z, w), generated[:, z * w:]
                return torch.einsum("bzw,bw->bz", weight, h) + bias
            return self.head(h)

    return Fusion()


def build(config: ProgressionConfig):
    """The network (a ``torch.nn.Module``) for ``config``."""
    import torch
    from torch import nn

    config.validate()
    arms = len(config.treatments)

    def mlp(inputs: int, outputs: int) -> nn.Sequential:
        return _mlp(config, inputs, outputs)

    class TreatmentSDE(nn.Module):
        """dZ = f(Z, s) dt + g(Z, s) dW; ``treatment`` (B, arms) one-hot is set before each solve."""

        noise_type, sde_type = "diagonal", "ito"

        def __init__(self):
            super().__init__()
            self.drift, self.diffusion = mlp(config.latent + arms, config.latent), mlp(config.latent + arms,
                                                                                       config.latent)
            self.treatment = None

        def f(self, t, z):
            return self.drift(torch.cat([z, self.treatment], -1))

        def g(self, t, z):
            return 0.1 * nn.functional.softplus(self.diffusion(torch.cat([z, self.treatment], -1)))

    class Progression(nn.Module):
        def __init__(self):
            super().__init__()
            channels = (1, 16, 32, config.width)
            layers = []
            for a, b in zip(channels, channels[1:]):
                layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.GroupNorm(8 if b >= 16 else 1, b), nn.SiLU()]
            self.image = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.tabular = mlp(len(config.tabular), config.embedding)
            self.fusion = _fusion(config)
            if config.model == "sde":
                self.jump = mlp(config.latent + arms, config.latent)
                self.sde = TreatmentSDE()
            elif config.model == "mlp":
                self.knots = mlp(config.latent + arms, len(KNOT_DAYS))
            else:
                self.gru = nn.GRUCell(arms, config.latent)
            self.decoder = nn.Linear(config.latent, 1)
            self.log_noise = nn.Parameter(torch.tensor(-3.0))    # the recorded sizes' noise (log std), learned

    return Progression()


def tabular_tensor(config: ProgressionConfig, records: list[dict]):
    """(B, fields) float32: each record's ``config.tabular`` fields, standardised by the training records' figures.

    Raises ValueError naming the first missing or non-numeric field."""
    import torch

    rows = []
    for record in records:
        row = []
        for name in config.tabular:
            value = record.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ValueError(f"{name} must be a number, got {value!r}")
            row.append(float(value))
        rows.append(row)
    centre = np.array(config.tabular_centre or [0.0] * len(config.tabular))
    scale = np.array(config.tabular_scale or [1.0] * len(config.tabular))
    return torch.as_tensor((np.array(rows) - centre) / scale, dtype=torch.float32)


def encode(network, config: ProgressionConfig, images, tabular):
    """Z(0): (B, latent) from images (B, 1, S, S) in [-1, 1] and standardised tabular rows (B, fields)."""
    return network.fusion(network.image(images), network.tabular(tabular))


def paths(network, config: ProgressionConfig, z0, treatment, times, n_paths: int, seed: int = 0):
    """Decoded sizes (n_paths, B, T) at ``times`` (days, ascending, from 0) under ``treatment`` (B,) arm indices.

    The same ``seed`` gives the same Brownian paths whatever the treatment: switching it is a counterfactual.
    The deterministic baselines (``config.model`` mlp or gru) give one path: (1, B, T)."""
    import torch
    import torchsde

    batch = z0.shape[0]
    one_hot = torch.nn.functional.one_hot(treatment, len(config.treatments)).float()
    if config.model != "sde":
        return _deterministic(network, config, z0, one_hot, times)[None]
    one_hot = one_hot.repeat(n_paths, 1)
    z = z0.repeat(n_paths, 1)
    z = z + network.jump(torch.cat([z, one_hot], -1))                  # Z(0+): the treatment's immediate action
    network.sde.treatment = one_hot
    ts = torch.as_tensor(times, dtype=z.dtype)
    brownian = torchsde.BrownianInterval(t0=float(ts[0]), t1=float(ts[-1]), size=z.shape, dtype=z.dtype,
                                         entropy=seed, levy_area_approximation="none")
    solved = torchsde.sdeint(network.sde, z, ts, bm=brownian, method="euler", dt=config.dt_days)   # (T, nB, latent)
    sizes = torch.sigmoid(network.decoder(solved)).squeeze(-1)                                        # (T, nB)
    return sizes.view(len(ts), n_paths, batch).permute(1, 2, 0)


def courses(network, config: ProgressionConfig, images, tabular, times, n_paths: int, seed: int = 0) -> np.ndarray:
    """Sizes (n_paths, B, arms, T) at ``times`` under every arm, each arm on the same Brownian paths (no grad).

    images: (B, 1, S, S) in [-1, 1]; tabular: ``tabular_tensor`` rows (B, fields)."""
    import torch

    with torch.no_grad():
        z0 = encode(network, config, images, tabular)
        arms = [paths(network, config, z0, torch.full((z0.shape[0],), a), times, n_paths, seed).numpy()
                for a in range(len(config.treatments))]
    return np.stack(arms, 2)


def _deterministic(network, config: ProgressionConfig, z0, one_hot, times):
    """Sizes (B, T) of a baseline: knots interpolated (mlp), or a GRU's daily states interpolated (gru)."""
    import torch

    if config.model == "mlp":
        knots, knot_days = torch.sigmoid(network.knots(torch.cat([z0, one_hot], -1))), KNOT_DAYS
    else:
        hidden, states = z0, [z0]
        knot_days = tuple(np.arange(0.0, config.horizon_days + GRU_STEP_DAYS / 2, GRU_STEP_DAYS))
        for _ in knot_days[1:]:
            hidden = network.gru(one_hot, hidden)
            states.append(hidden)
        knots = torch.sigmoid(network.decoder(torch.stack(states, 1))).squeeze(-1)        # (B, knots)
    days = torch.as_tensor(knot_days, dtype=z0.dtype)
    at = torch.as_tensor(times, dtype=z0.dtype).clamp(0, days[-1])
    upper = torch.searchsorted(days, at, right=True).clamp(1, len(days) - 1)
    weight = (at - days[upper - 1]) / (days[upper] - days[upper - 1])
    return knots[:, upper - 1] + (knots[:, upper] - knots[:, upper - 1]) * weight


def band_level(card: dict) -> float:
    """The central level of the paths that makes a folder's 90% band (calibrated on validation patients by
    ``train.progression.calibrate_band``); 0.9 for a folder without one."""
    level = card.get("band_level")
    return 0.9 if level is None or level != level else float(level)       # None or nan: uncalibrated


def summary(sizes: np.ndarray, level: float = 0.9) -> dict[str, np.ndarray]:
    """Mean and the central ``level`` band over paths of (n_paths, ..., T) sizes: {mean, low, high}."""
    tail = (1 - level) / 2
    return {"mean": sizes.mean(0), "low": np.quantile(sizes, tail, axis=0),
            "high": np.quantile(sizes, 1 - tail, axis=0)}


def save(network, config: ProgressionConfig, folder, record: dict) -> None:
    """A folder: ``model.safetensors`` and ``medviz_progression.json`` (the config and the training record)."""
    from pathlib import Path

    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(out / "model.safetensors"))
    save_card(config, out, record)


def save_card(config: ProgressionConfig, folder, record: dict) -> None:
    """(Re)write a folder's ``medviz_progression.json``: the network's config and ``record`` (training, band, bench)."""
    import json
    from pathlib import Path

    (Path(folder) / CARD).write_text(json.dumps({"progression": asdict(config), **record}, indent=2))


def load(folder):
    """(network, config, record) of a folder ``save`` wrote."""
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    card = json.loads((Path(folder) / CARD).read_text())
    fields = card.pop("progression")
    config = ProgressionConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    network = build(config)
    network.load_state_dict(load_file(str(Path(folder) / "model.safetensors")))
    return network.eval(), config, card
