"""Train LaDiNE (``medviz.ladine``) on phantoms for one target attribute, in two stages, as the paper does:

1. the ViT encoder and its mapping heads, by the sum of the heads' cross-entropies (every member's guide);
2. per member, CARD's label denoiser on the frozen encoder's features (computed once per image), Adam 1e-3,
   batch 30 (LaDiNE's settings).

Resumable: ``out/checkpoint.safetensors`` (the network) and ``out/checkpoint.json`` (stage and step) every
``checkpoint_every`` steps; the same command picks up there. The folder written at the end loads with
``medviz.ladine.load`` and is a stress-test classifier.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import domains, ladine
from ..io import to_model_batch, uint8_rgb
from .common import TrainConfig
from .data import render_phantoms

#: Seeds of LaDiNE's training phantoms: apart from every other training, bench and tab set.
TRAIN_FIRST_SEED = 60_000_000
SHAPES = {   # the network per preset: "small" for the domains' 128 px phantoms, "tiny" for tests
    "small": {},
    "tiny": {"image_size": 32, "patch_size": 8, "hidden": 32, "layers": 2, "heads": 2, "taps": (1, 2),
             "denoiser_width": 16, "timesteps": 100},
}


@dataclass(frozen=True)
class LaDiNETrainConfig(TrainConfig):
    """``steps``: encoder steps (stage 1); ``denoiser_steps``: stage 2's, per member; ``batch_size``: stage 1's
    (stage 2 uses the paper's 30)."""

    target: str = ""
    n_images: int = 4000
    steps: int = 1500
    denoiser_steps: int = 2000
    batch_size: int = 32
    learning_rate: float = 3e-4
    checkpoint_every: int = 250

    def validate(self) -> None:
        if self.target not in domains.get(self.domain).names:
            raise ValueError(f"target {self.target!r} is not an attribute of {self.domain}")
        if self.preset not in SHAPES:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {', '.join(SHAPES)}")


def _data(config: LaDiNETrainConfig, shape: ladine.LaDiNEConfig) -> tuple[np.ndarray, np.ndarray]:
    """uint8 training phantoms at the network's side (rendered at 128 px or more) and their 0/1 target labels."""
    images, factors = render_phantoms(config.domain, config.n_images, max(128, shape.image_size), TRAIN_FIRST_SEED,
                                      workers=config.workers)
    if shape.image_size < 128:
        images = np.stack([uint8_rgb(im, shape.image_size) for im in images])
    attributes_of = domains.get(config.domain).attributes_of
    return images, np.array([int(attributes_of(f)[config.target]) for f in factors])


def _resume(network, out: Path) -> tuple[int, int]:
    """(stage, step) of the last checkpoint, its weights loaded; (1, 0) without one."""
    if not (out / "checkpoint.json").is_file():
        return 1, 0
    from safetensors.torch import load_file

    network.load_state_dict(load_file(str(out / "checkpoint.safetensors")))
    state = json.loads((out / "checkpoint.json").read_text())
    print(f"[ladine] resuming at stage {state['stage']} step {state['step']}", flush=True)
    return state["stage"], state["step"]


def _checkpoint(network, out: Path, stage: int, step: int) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(out / "checkpoint.safetensors"))
    (out / "checkpoint.json").write_text(json.dumps({"stage": stage, "step": step}))


def _step(optimizer, loss, saving: tuple, stage: str, step: int, total: int) -> None:
    """One optimiser step, a log line every 50 steps and a checkpoint every ``saving[2]`` (network, folder, every)."""
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if (step + 1) % 50 == 0:
        print(f"[ladine] {stage} step {step + 1}/{total} loss {loss.item():.4f}", flush=True)
    network, out, every = saving
    if (step + 1) % every == 0:
        _checkpoint(network, out, 1 if stage == "encoder" else 2, step + 1)


def encoder_learning_rate(peak: float, step: int, steps: int, warmup: float = 0.05) -> float:
    """Linear warm-up over the first 5% of the steps, then cosine decay to zero: the usual schedule for a ViT
    trained from scratch (DeiT, arXiv 2012.12877; constant 3e-4 left the encoder at 84% training accuracy)."""
    warm = max(1, int(warmup * steps))
    if step < warm:
        return peak * (step + 1) / warm
    return peak * 0.5 * (1 + np.cos(np.pi * (step - warm) / max(1, steps - warm)))


def _train_encoder(network, shape, config, images, labels, first_step: int, out: Path) -> None:
    """Stage 1: the encoder and every mapping head by the sum of their cross-entropies."""
    import torch

    parameters = [*network.encoder.parameters(), *network.heads.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=0.05)
    rng = np.random.default_rng(config.seed + first_step)
    network.train()
    for step in range(first_step, config.steps):
        for group in optimizer.param_groups:        # a function of the step, so a resumed run continues the schedule
            group["lr"] = encoder_learning_rate(config.learning_rate, step, config.steps)
        rows = rng.integers(0, len(images), config.batch_size)
        x = to_model_batch(images[rows], "cpu")
        flipped = torch.flip(x, dims=[3]) if domains.get(config.domain).mirrored and step % 2 else x
        _, guides = ladine.tapped_features(network, shape, flipped)
        target = torch.as_tensor(labels[rows])
        loss = sum(torch.nn.functional.nll_loss(torch.log(g + 1e-8), target) for g in guides)
        _step(optimizer, loss, (network, out, config.checkpoint_every), "encoder", step, config.steps)


def _features(network, shape, images, batch: int = 128):
    """(members, N, hidden) features and (members, N, classes) guides of every training image, once."""
    import torch

    network.eval()
    features, guides = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            f, g = ladine.tapped_features(network, shape, to_model_batch(images[start:start + batch], "cpu"))
            features.append(f)
            guides.append(g)
    return torch.cat(features, 1), torch.cat(guides, 1)


def _train_denoisers(network, shape, config, features, guides, labels, first_step: int, out: Path) -> None:
    """Stage 2: each member's CARD denoiser on the frozen features (LaDiNE: Adam 1e-3, batch 30)."""
    import torch

    scheduler = ladine.make_scheduler(shape)
    optimizer = torch.optim.Adam(network.denoisers.parameters(), lr=1e-3)
    one_hot = torch.nn.functional.one_hot(torch.as_tensor(labels), len(shape.labels)).float()
    generator = torch.Generator().manual_seed(config.seed + first_step)
    network.denoisers.train()
    for step in range(first_step, config.denoiser_steps):
        rows = torch.randint(0, len(labels), (30,), generator=generator)
        loss = sum(ladine.card_loss(d, scheduler, features[m, rows], guides[m, rows], one_hot[rows], generator)
                   for m, d in enumerate(network.denoisers))
        _step(optimizer, loss, (network, out, config.checkpoint_every), "denoiser", step, config.denoiser_steps)


def train_ladine(config: LaDiNETrainConfig, command: str = "") -> dict:
    """Both stages, resumable; writes a LaDiNE folder to ``config.out`` and returns its record."""
    import torch

    config.validate()
    torch.manual_seed(config.seed)
    out, started = Path(config.out), time.perf_counter()
    shape = ladine.LaDiNEConfig(labels=(f"no {config.target}", config.target), **SHAPES[config.preset])
    network = ladine.build(shape)
    stage, step = _resume(network, out / "checkpoints")
    images, labels = _data(config, shape)                                          # 1. the training phantoms
    if stage == 1:
        _train_encoder(network, shape, config, images, labels, step, out / "checkpoints")   # 2. encoder + heads
        _checkpoint(network, out / "checkpoints", 2, 0)
        step = 0
    features, guides = _features(network, shape, images)                            # 3. features, once
    _train_denoisers(network, shape, config, features, guides, labels, step, out / "checkpoints")   # 4. CARD
    guide_accuracy = [float((g.argmax(-1).numpy() == labels).mean()) for g in guides]
    record = {"config": asdict(config), "command": command, "target": config.target,
              "train_guide_accuracy": guide_accuracy, "seconds": round(time.perf_counter() - started, 1)}
    ladine.save(network, shape, out, record)                                        # 5. the folder
    return record
