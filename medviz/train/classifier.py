"""Train a classifier to audit: a ``transformers`` ResNet for one target attribute, on phantoms whose planted link
to a spurious attribute has a chosen strength, by ERM or Group DRO.

Not the oracle: its own seed and training set, a single target, and a shortcut on purpose. Judged on a
balanced held-out set drawn without the link: accuracy per group (target × spurious), mean and worst.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import domains
from ..data import load_labelled
from ..io import to_model_batch, uint8_rgb
from ..oracle import predict
from ..phantoms.effects import link_groups, link_parameters
from .architectures import PRESETS
from .common import (BudgetedSchedule, Log, Progress, RowSampler, TrainConfig, announce_scale, make_accelerator,
                     optimizer_step, scale_record, write_record)
from .data import render_phantoms
from .oracle import HELD_OUT_FIRST_SEED

METHODS = ("erm", "groupdro")
#: Seeds of classifier training sets: apart from the generative models' (0..) and the oracle's held-out ones.
TRAIN_FIRST_SEED = 30_000_000
TEST_OFFSET = 900_000              # balanced test phantoms: HELD_OUT_FIRST_SEED + this, drawn without the link
CARD = "medviz_classifier.json"


@dataclass(frozen=True)
class ClassifierConfig(TrainConfig):
    """``strength``: the planted link's risk difference, P(spurious | target) - P(spurious | no target), of the
    training phantoms (the domain's ``planted_link``). ``method``: "erm" or "groupdro" (Sagawa et al. 2020,
    Algorithm 1: group weights q_g <- q_g exp(group_step * loss_g), renormalised, loss = sum_g q_g loss_g; it
    needs strong L2: ``weight_decay`` defaults to 0.1 for it, 1e-4 for ERM). ``image_size``: the side the classifier
    reads. ``zoom``: random magnification in [1 - zoom, 1 + zoom] per training image (default: 0.4 for skin, whose
    dermoscopes and crops vary in magnification, so that lesion size in pixels stops giving melanoma away; 0 for
    chest X-rays, whose detector fixes the scale). ``augment``: a CheXpert- or ISIC-layout CSV (e.g.
    counterfactuals) whose images, with their target and spurious labels, join the training phantoms. The defaults
    (32 px, 1,000 phantoms, 300 steps) make the target hard enough that ERM takes the shortcut at a strong link, as
    in Waterbirds; at 64 px and 4,000 phantoms it does not (docs/results/audit.md)."""

    target: str = ""
    spurious: str = ""
    strength: float = 0.9
    method: str = "erm"
    image_size: int = 32
    n_images: int = 1000
    n_test: int = 800
    steps: int = 300
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float | None = None
    group_step: float = 0.01
    augment: str = ""
    zoom: float | None = None

    @property
    def magnification(self) -> float:
        """The zoom used: ``zoom``, or the domain's default."""
        return self.zoom if self.zoom is not None else DEFAULT_ZOOM.get(self.domain, 0.0)

    @property
    def l2(self) -> float:
        """The weight decay used: ``weight_decay``, or the method's default."""
        return self.weight_decay if self.weight_decay is not None else (0.1 if self.method == "groupdro" else 1e-4)

    def validate(self) -> None:
        d = domains.get(self.domain)
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if d.planted_link is None:
            raise ValueError(f"domain {self.domain!r} plants no spurious link")
        _, cause, effect = d.planted_link
        if (self.target, self.spurious) != (cause, effect):
            raise ValueError(f"the {self.domain} phantoms plant one link, {cause} -> {effect}: train with --target "
                             f"{cause} --spurious {effect}")


#: Random magnification per domain (``ClassifierConfig.zoom``): without it the skin phantoms' melanoma (twice a
#: nevus's diameter) is read from its size alone and no classifier needs the ruler (docs/results/audit.md).
DEFAULT_ZOOM = {"skin": 0.4}


def random_zoom(batch: np.ndarray, rng, zoom: float) -> np.ndarray:
    """Each uint8 (S, S, 3) image scaled about its centre by U(1 - zoom, 1 + zoom): cropped, or edge-padded."""
    out = np.empty_like(batch)
    side = batch.shape[1]
    for i, image in enumerate(batch):
        n = max(4, int(round(side * rng.uniform(1 - zoom, 1 + zoom))))
        scaled = np.asarray(Image.fromarray(image).resize((n, n), Image.BILINEAR))
        if n >= side:
            o = (n - side) // 2
            out[i] = scaled[o:o + side, o:o + side]
        else:
            p = (side - n) // 2
            out[i] = np.pad(scaled, ((p, side - n - p), (p, side - n - p), (0, 0)), mode="edge")
    return out


def make_classifier(widths: tuple[int, ...], target: str, image_size: int):
    """A two-class ResNet (``transformers``), label 1 = ``target`` present."""
    from transformers import ResNetConfig, ResNetForImageClassification

    labels = (f"no {target}", target)
    config = ResNetConfig(num_channels=3, embedding_size=widths[0], hidden_sizes=list(widths), depths=[1] * len(widths),
                          layer_type="basic", num_labels=2, id2label=dict(enumerate(labels)),
                          label2id={label: i for i, label in enumerate(labels)}, image_size=image_size)
    return ResNetForImageClassification(config)


def group_dro_loss(losses, group, weights, step_size: float, total=None):
    """Sagawa et al. 2020, Algorithm 1, one step: update the group weights ``weights`` (4,) in place from this
    batch's mean loss per group present, and return the weighted loss. ``total``: sums a tensor over the processes
    (``accelerator.reduce(t, "sum")``), so that every process updates the same weights from the whole step's batch."""
    import torch

    group_losses = torch.zeros_like(weights)
    for g in torch.unique(group):
        group_losses[g] = losses[group == g].mean()
    with torch.no_grad():
        sums = torch.zeros_like(weights).index_add_(0, group, losses.detach())
        counts = torch.bincount(group, minlength=len(weights)).to(weights.dtype)
        if total is not None:
            sums, counts = total(sums), total(counts)
        weights.mul_(torch.exp(step_size * sums / counts.clamp_min(1)))
        weights.div_(weights.sum())
    return (weights * group_losses).sum()


def subgroup_accuracy(model, images: np.ndarray, labels: np.ndarray, group: np.ndarray, device) -> dict:
    """Accuracy per group (target × spurious), their mean, the worst, and each group's n."""
    correct = predict(model, images, device, softmax=True).argmax(-1) == labels
    per_group = {int(g): float(correct[group == g].mean()) for g in range(4) if (group == g).any()}
    return {"groups": per_group, "n": {int(g): int((group == g).sum()) for g in range(4)},
            "mean_accuracy": float(correct.mean()), "worst_group_accuracy": min(per_group.values())}


def balanced_test_set(config: ClassifierConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, groups): phantoms drawn without the link, subsampled to equal groups."""
    images, factors = render_phantoms(config.domain, config.n_test * 4, config.image_size,
                                      HELD_OUT_FIRST_SEED + TEST_OFFSET, config.workers,
                                      graph_parameters=link_parameters(config.domain, 0.0))
    labels, group = link_groups(config.domain, factors, config.target, config.spurious)
    smallest = min(int((group == g).sum()) for g in range(4))
    keep = np.sort(np.concatenate([np.flatnonzero(group == g)[:min(smallest, config.n_test // 4)] for g in range(4)]))
    return images[keep], labels[keep], group[keep]


def augmentation(config: ClassifierConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uint8 images (M, S, S, 3), labels (M,), groups (M,)) of ``config.augment``'s rows; a row without a target or
    spurious label (uncertain, blank) cannot join a group and is refused by name."""
    records = load_labelled(config.domain, config.augment)
    images, labels, group = [], [], []
    for record in records:
        named = record.attribute_labels()
        missing = [a for a in (config.target, config.spurious) if named.get(a) not in (0.0, 1.0)]
        if missing:
            raise ValueError(f"{config.augment}: {record.path.name} has no 0/1 label for {', '.join(missing)}")
        images.append(uint8_rgb(record.load(max_side=max(config.image_size, 128)).pixels, config.image_size))
        labels.append(int(named[config.target]))
        group.append(2 * labels[-1] + int(named[config.spurious]))
    if not images:
        raise ValueError(f"{config.augment}: no rows")
    return np.stack(images), np.array(labels), np.array(group)


def train_classifier(config: ClassifierConfig, progress: Progress | None = None,
                     should_stop: Callable[[], bool] | None = None, command: str = "") -> dict:
    """Train, measure per-group accuracy on the balanced test set, save ``out`` (a transformers folder + card)."""
    import torch

    config.validate()
    accelerator = make_accelerator(config.seed)
    images, factors = render_phantoms(config.domain, config.n_images, config.image_size, TRAIN_FIRST_SEED + config.seed,
                                      config.workers, graph_parameters=link_parameters(config.domain, config.strength))
    labels, group = link_groups(config.domain, factors, config.target, config.spurious)
    n_augment = 0
    if config.augment:
        extra, extra_labels, extra_group = augmentation(config)
        n_augment = len(extra)
        images, labels, group = (np.concatenate([images, extra]), np.concatenate([labels, extra_labels]),
                                 np.concatenate([group, extra_group]))
    model = make_classifier(PRESETS[config.preset].oracle_widths, config.target, config.image_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.l2)
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler = BudgetedSchedule(optimizer, min(100, config.steps // 10), config.steps)
    weights = torch.full((4,), 0.25, device=accelerator.device)
    sampler = RowSampler(len(images), accelerator, config.seed)
    rng = sampler.rng
    total = (lambda t: accelerator.reduce(t, "sum")) if accelerator.num_processes > 1 else None
    announce_scale(accelerator, "classifier", config.batch_size, len(images))
    log = Log(f"classifier {config.method}", config.steps, progress=progress, enabled=accelerator.is_main_process)
    model.train()
    started = time.perf_counter()
    for step in range(1, config.steps + 1):
        index = sampler.draw(config.batch_size)
        batch = images[index]
        if config.magnification:
            batch = random_zoom(batch, rng, config.magnification)
        if domains.get(config.domain).mirrored and rng.random() < 0.5:
            batch = batch[:, :, ::-1]              # dermoscopy has no left/right; X-rays do (heart side)
        logits = model(pixel_values=to_model_batch(np.ascontiguousarray(batch), accelerator.device)).logits
        target = torch.as_tensor(labels[index], device=logits.device)
        losses = torch.nn.functional.cross_entropy(logits.float(), target, reduction="none")
        if config.method == "groupdro":
            loss = group_dro_loss(
                losses, torch.as_tensor(group[index], device=logits.device), weights, config.group_step, total
            )
        else:
            loss = losses.mean()
        optimizer_step(accelerator, loss, optimizer, scheduler, step, log, cross_entropy=loss.item())
        if should_stop and should_stop():
            break
    model = accelerator.unwrap_model(model)
    scale = {**scale_record(accelerator, sampler, config.batch_size), "train_seconds": time.perf_counter() - started,
             "steps": step}
    if not accelerator.is_main_process:        # one process measures and writes
        accelerator.wait_for_everyone()       # until the main process has written
        return {"process": accelerator.process_index, **scale}
    test_images, test_labels, test_groups = balanced_test_set(config)
    measured = subgroup_accuracy(model, test_images, test_labels, test_groups, accelerator.device)
    train_share = {int(g): float((group == g).mean()) for g in range(4)}
    out = Path(config.out)
    model.save_pretrained(str(out), safe_serialization=True)
    result = {
        "target": config.target,
        "spurious": config.spurious,
        "strength": config.strength,
        "method": config.method,
        "weight_decay": config.l2,
        "zoom": config.magnification,
        "groups": {
            g: f"{'' if g // 2 else 'no '}{config.target}, {'' if g % 2 else 'no '}{config.spurious}" for g in range(4)
        },
        "train_group_share": train_share,
        "augment_rows": n_augment,
        "balanced_test": measured,
        "command": command,
        "scale": scale,
        "group_weights": weights.cpu().tolist() if config.method == "groupdro" else None,
    }
    write_record(out, CARD, config, result)
    accelerator.wait_for_everyone()
    return result
