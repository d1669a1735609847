"""Train the oracle: a multi-attribute ResNet (``transformers``) that reads attributes off any image.

It is an *attribute readout* used to measure the generative engines, never a diagnosis. Trained from
scratch on phantoms with binary cross-entropy; judged by ROC AUC per attribute on held-out phantoms
(different seeds from the training set).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import domains
from ..io import to_model_batch
from ..metrics import roc_auc
from ..oracle import READOUT_KIND, predict
from ..progress import printed_progress
from .architectures import PRESETS, make_oracle
from .common import (BudgetedSchedule, Log, Progress, RowSampler, TrainConfig, announce_scale, make_accelerator,
                     optimizer_step, resume_latest, save_checkpoint, scale_record, write_record)
from .data import cached_round_trip, render_phantoms, round_trip
from .vae import load_vae

HELD_OUT_FIRST_SEED = 10_000_000   # held-out phantoms never overlap the training seeds
#: The folder under ``out`` with a resumable run's checkpoints and kept round trips.
CHECKPOINTS = "oracle-checkpoints"


@dataclass(frozen=True)
class OracleConfig(TrainConfig):
    n_held_out: int = 2000             # held-out phantoms the AUCs are measured on
    steps: int = 3000
    batch_size: int = 128
    learning_rate: float = 2e-3
    family: str = "resnet"             # architectures.ORACLE_FAMILIES; "convnext": the independent judge
    first_seed: int = 0                # training phantoms first_seed ..; the judge trains on others
    decoded_by: str | None = None      # a VAE (or a folder holding vae/): a share of the images is its round trip
    decoded_share: float = 0.5         # that share (issue 52: a reader that sees what the decoder draws)
    checkpoint_every: int = 0          # > 0: resumable (checkpoints and the round trips kept under out/)


def attribute_matrix(domain: str, factors: list) -> np.ndarray:
    """(N, A) float32 of the oracle's labels (the domain's ``oracle_labels``) for N phantoms' factors."""
    d = domains.get(domain)
    return np.array([[d.attributes_of(f)[k] for k in d.oracle_labels] for f in factors], dtype=np.float32)


def train_oracle(config: OracleConfig, images: np.ndarray | None = None, factors: list | None = None,
                 progress: Progress | None = None, should_stop: Callable[[], bool] | None = None) -> dict:
    """Train, evaluate AUC on held-out phantoms and save ``out/oracle``. Returns the AUC per attribute."""
    import torch

    arch = PRESETS[config.preset]
    labels = domains.get(config.domain).oracle_labels
    held_out_end = HELD_OUT_FIRST_SEED + config.n_held_out
    if config.first_seed < held_out_end and config.first_seed + config.n_images > HELD_OUT_FIRST_SEED:
        raise ValueError(f"training seeds {config.first_seed}..{config.first_seed + config.n_images - 1} overlap the "
                         f"held-out phantoms {HELD_OUT_FIRST_SEED}..{held_out_end - 1}")
    accelerator = make_accelerator(config.seed)
    vae = _decoder(config)
    if images is None or factors is None:
        images, factors = render_phantoms(config.domain, config.n_images, arch.image_size, config.first_seed,
                                          config.workers)
    if vae is not None:
        images = np.array(images)
        rows = np.random.default_rng(config.seed).permutation(len(images))[:round(config.decoded_share * len(images))]
        said = None
        if accelerator.is_main_process:        # as long as the training: 10,000 at 128 px ~40 min on a shared core
            print(f"[oracle] {len(rows)} of {len(images)} images through {config.decoded_by}'s round trip", flush=True)
            said = printed_progress("[oracle] round trips")
        images[rows] = _round_trip(config, "round-trips", vae, images[rows], said)
    targets = torch.as_tensor(attribute_matrix(config.domain, factors))
    model = make_oracle(arch, labels, config.family)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler = BudgetedSchedule(optimizer, 200, config.steps)
    checkpoints = Path(config.out) / CHECKPOINTS
    start = resume_latest(accelerator, checkpoints) if config.checkpoint_every else 0
    sampler = RowSampler(len(images), accelerator, config.seed + start)
    rng = sampler.rng
    announce_scale(accelerator, "oracle", config.batch_size, len(images))
    log = Log("oracle", config.steps, progress=progress, enabled=accelerator.is_main_process)
    model.train()
    for step in range(start + 1, config.steps + 1):
        index = sampler.draw(config.batch_size)
        batch = images[index]
        if rng.random() < 0.5 and domains.get(config.domain).mirrored:
            batch = batch[:, :, ::-1]          # dermoscopy has no left/right; X-rays do (heart side)
        with accelerator.autocast():
            logits = model(pixel_values=to_model_batch(np.ascontiguousarray(batch), accelerator.device)).logits
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), targets[index].to(logits.device))
        optimizer_step(accelerator, loss, optimizer, scheduler, step, log, bce=loss.item())
        stop = bool(should_stop and should_stop())
        if config.checkpoint_every and (step % config.checkpoint_every == 0 or stop):
            save_checkpoint(accelerator, checkpoints, step, config)
        if stop:
            if config.checkpoint_every:        # resumable: the same command goes on from here
                return {"stopped_at": step}
            break
    model = accelerator.unwrap_model(model)
    scale = scale_record(accelerator, sampler, config.batch_size)
    if not accelerator.is_main_process:        # one process measures and writes
        accelerator.wait_for_everyone()       # until the main process has written
        return {"process": accelerator.process_index, **scale}
    held_images, held_factors = render_phantoms(config.domain, config.n_held_out, arch.image_size,
                                                HELD_OUT_FIRST_SEED, config.workers)
    probabilities = predict(model, held_images, accelerator.device)
    truth = attribute_matrix(config.domain, held_factors)
    auc = {name: roc_auc(truth[:, k], probabilities[:, k]) for k, name in enumerate(labels)}
    if vae is not None:                        # and on the same held-out phantoms' round trips
        decoded = _round_trip(config, "held-out-round-trips", vae, held_images,
                              printed_progress("[oracle] held-out round trips"))
        decoded = predict(model, decoded, accelerator.device)
        auc_decoded = {name: roc_auc(truth[:, k], decoded[:, k]) for k, name in enumerate(labels)}
    out = Path(config.out) / "oracle"
    model.save_pretrained(str(out), safe_serialization=True)
    result = {"held_out_auc": auc, "held_out_n": config.n_held_out, "held_out_first_seed": HELD_OUT_FIRST_SEED,
              "kind": READOUT_KIND, "scale": scale}
    if vae is not None:
        result.update(held_out_auc_decoded=auc_decoded, decoded_by=str(config.decoded_by))
    write_record(out, "medviz_train.json", config, result)
    accelerator.wait_for_everyone()
    return result


def _round_trip(config: OracleConfig, name: str, vae, images: np.ndarray, progress) -> np.ndarray:
    """The decoded images; a resumable run keeps them under ``out/oracle-checkpoints/name``."""
    if config.checkpoint_every:
        return cached_round_trip(Path(config.out) / CHECKPOINTS / name, vae, images, progress=progress)[0]
    return round_trip(vae, images, progress=progress)[0]


def _decoder(config: OracleConfig):
    """The ``decoded_by`` VAE (fp32, eval), or None; a bad share or folder is named before anything is rendered."""
    if not config.decoded_by:
        return None
    if not 0 < config.decoded_share <= 1:
        raise ValueError(f"decoded_share must be in (0, 1], got {config.decoded_share}")
    if not Path(config.decoded_by).is_dir():
        raise FileNotFoundError(f"decoded_by: {config.decoded_by} is not a folder (a VAE, or a folder holding vae/)")
    return load_vae(config.decoded_by).float().eval()
