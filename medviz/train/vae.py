"""Train the domain's ``AutoencoderKL`` (3 channels in and out, like SD's, so X-rays take the same path).

Loss: L1 reconstruction + an image-gradient L1 term that keeps edges (ribs, lines, hair) sharp, with a
small KL weight as in SD's VAE (Rombach et al. 2022, sec. 3). No perceptual or adversarial term: those
need pretrained networks that we cannot download. ``detail_weight`` > 0 weights every pixel's error by
its high-pass magnitude, so thin high-contrast structures (catheters, tubes, hair, ruler ticks), a tiny
share of the pixels, are not averaged away. ``structure_weight`` > 0 weights instead the pixels the phantom
renderer drew a thin structure in (``FINE_STRUCTURES``: the SCM knows where they are), so the loss pays for
them without also rewarding invented texture on skin or lung that merely has high-pass content.

``init_from`` + ``train_encoder=False`` fine-tunes only the decoder of a bundled VAE: the encoder, and
so the latent space the UNet was trained on, stay exactly as they were, so the UNet needs no retraining
and its samples simply decode sharper. A decoder can only draw what the latents hold, though; when the
encoder drops a structure (the skin VAE's ruler ticks and ink), ``init_from`` with the encoder trained and
``anchor_weight`` > 0 lets it learn to keep that structure while its posterior means stay near the initial
encoder's elsewhere, so that a UNet trained on the old latents needs fine-tuning, not retraining.
``structure_windows`` puts that share of the steps' crop windows on fine structures, and
``balance_structures`` gives every structure type the same share of them, however few images hold it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import to_model_batch
from .architectures import PRESETS, grow_vae, make_vae
from .common import (BudgetedSchedule, Log, Progress, RowSampler, TrainConfig, announce_scale, make_accelerator,
                     resume_latest, save_checkpoint, scale_record, write_record)
from .data import encode_latents, render_training_set


@dataclass(frozen=True)
class VAEConfig(TrainConfig):
    steps: int = 4000
    batch_size: int = 32
    kl_weight: float = 1e-6
    edge_weight: float = 0.5
    checkpoint_every: int = 0          # 0: only at the end
    time_budget_s: float = 0.0         # >0: cut the step count to end in about this many seconds
    detail_weight: float = 0.0         # >0: extra weight on pixels with high-pass detail (thin lines)
    init_from: str | None = None       # start from this VAE folder (or a pipeline folder with vae/)
    train_encoder: bool = True         # False: decoder only; the latent space stays the same
    crop_latents: int = 0              # train on windows this many latent cells wide (0: whole images)
    structure_weight: float = 0.0      # >0: extra weight on the pixels of the domain's FINE_STRUCTURES
    anchor_weight: float = 0.0  # >0 (with init_from, encoder trained): keep posterior means near the initial ones
    structure_windows: float = 0.0
    balance_structures: bool = False  # those steps pick images so that every fine structure gets as many windows
    structures: str = ""               # comma-separated render supports to weight instead of FINE_STRUCTURES
    contrast_balance: bool = False     # with structure_weight: a structure pixel's weight ~ 1 / its local contrast


def _gradients(x):
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


#: Contrast of detail that counts as fully "thin structure" in the detail weight (images in [-1, 1]).
DETAIL_SCALE = 0.05


def detail_weights(batch, strength: float):
    """Per-pixel loss weights 1 + strength * |x - box5(x)| / DETAIL_SCALE, shape (N, 1, H, W).

    The 5 x 5 box high-pass is large where a structure narrower than ~2 px differs from its
    surroundings (a 1-px catheter at contrast 0.1 gets 1.6 x strength extra weight) and ~0 on smooth
    anatomy, so the loss stops trading those few pixels away for smooth-region accuracy.
    """
    import torch.nn.functional as F

    gray = batch.mean(dim=1, keepdim=True)
    local_mean = F.avg_pool2d(F.pad(gray, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    return 1.0 + strength * (gray - local_mean).abs() / DETAIL_SCALE


#: Contrast balance: local contrasts below this (images in [-1, 1]) count as this; a pixel's factor is at most
#: ``CONTRAST_CAP`` times the batch's mean, so a structure pixel that matches its surround cannot take the loss.
CONTRAST_FLOOR, CONTRAST_CAP = 0.05, 4.0


def structure_weights(masks: np.ndarray, strength: float, device, images: np.ndarray | None = None):
    """Per-pixel loss weights 1 + strength * (mask dilated by 1 px), shape (N, 1, H, W).

    ``masks`` (N, H, W), nonzero where the renderer drew a fine structure. The 1-px dilation also weights the
    pixels beside a line, so that drawing it one pixel off or blurred over its neighbours is paid for.

    With ``images`` (uint8 N x H x W x 3, contrast balance) the mask's pixels are weighted by 1 / their local
    contrast (the largest channel difference to the 7 x 7 mean), scaled to mean 1 over the batch's mask pixels,
    at most ``CONTRAST_CAP``: the L1 loss pays for a line in proportion to its contrast, so a violet ink mark on
    dark skin (contrast ~22 of 255) was drawn at a fifth of it while marks on light skin (~60) were kept.
    """
    import torch
    import torch.nn.functional as F

    mask = torch.from_numpy(np.ascontiguousarray(masks != 0)).to(device).float()[:, None]
    grown = F.max_pool2d(mask, 3, stride=1, padding=1)
    if images is None:
        return 1.0 + strength * grown
    x = to_model_batch(images, device).float()
    local = F.avg_pool2d(F.pad(x, (3, 3, 3, 3), mode="replicate"), 7, stride=1)
    inverse = grown / (x - local).abs().amax(dim=1, keepdim=True).clamp_min(CONTRAST_FLOOR)
    factor = inverse / (inverse.sum() / grown.sum().clamp_min(1.0)).clamp_min(1e-12)
    return 1.0 + strength * factor.clamp(max=CONTRAST_CAP)


def _weighted_mean(errors, weights):
    """Mean of (N, C, H, W) errors, each pixel weighted by ``weights`` (N, 1, H', W') cropped to fit."""
    if weights is None:
        return errors.mean()
    return (errors * weights[..., :errors.shape[-2], :errors.shape[-1]]).mean()


def load_vae(path: str):
    """The ``AutoencoderKL`` in ``path``: a VAE folder, or a pipeline / training folder that holds ``vae/``."""
    from diffusers import AutoencoderKL

    root = Path(path)
    folder = root / "vae" if (root / "vae").is_dir() else root
    return AutoencoderKL.from_pretrained(str(folder), local_files_only=True)


def _objective(vae):
    """A module whose forward runs encode -> sample -> decode, so DDP (accelerate launch) syncs gradients.

    Given ``latents`` instead (decoder-only fine-tuning) it only decodes them; the KL term is then 0.
    """
    import torch

    class Objective(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vae = vae

        def forward(self, batch=None, latents=None):
            """(reconstruction, KL, posterior mean); given latents, the KL is 0 and the mean is the latents."""
            if latents is not None:
                return self.vae.decode(latents).sample, latents.new_zeros(()), latents
            posterior = self.vae.encode(batch).latent_dist
            return self.vae.decode(posterior.sample()).sample, posterior.kl().mean(), posterior.mean

    return Objective()


def _pixel_window(image_side: int, latent_side: int, crop: int, rng, around: tuple[int, int] | None = None
                  ) -> tuple[slice, slice]:
    """A random window ``crop`` latent cells square, in pixels, aligned to the latent grid (whole: no crop).

    ``around`` (row, col), a pixel: the window is drawn among those that hold it.
    """
    if not crop or crop >= latent_side:
        return slice(None), slice(None)
    factor = image_side // latent_side
    if around is None:
        top, left = (int(v) for v in rng.integers(0, latent_side - crop + 1, 2))
    else:
        top, left = (int(rng.integers(max(0, p // factor - crop + 1), min(p // factor, latent_side - crop) + 1))
                     for p in around)
    top, left = top * factor, left * factor
    return slice(top, top + crop * factor), slice(left, left + crop * factor)


def _structure_pixel(mask: np.ndarray, rng, bit: int | None = None) -> tuple[int, int] | None:
    """A pixel of one fine structure in one image's bit mask (H, W), or None when it holds none.

    The structure (a bit of the mask, e.g. skin's ruler ticks) is ``bit``, or else drawn uniformly among those
    the image holds, not in proportion to their pixels: ruler ticks and ink, far fewer pixels than hair, get as
    many windows.
    """
    if bit is None:
        held = int(np.bitwise_or.reduce(mask, axis=None))
        bits = [b for b in range(8) if held >> b & 1]
        if not bits:
            return None
        bit = int(rng.choice(bits))
    rows, cols = np.nonzero(mask & (1 << bit))
    if not len(rows):
        return None
    k = int(rng.integers(len(rows)))
    return int(rows[k]), int(cols[k])


def _windows(n: int, image_side: int, latent_side: int, crop: int, rng, masks: np.ndarray | None = None
             ) -> list[tuple[slice, slice]]:
    """Pixel windows (rows, cols) for a batch of ``n`` images: one random window shared by all, or, given
    the images' bit ``masks`` (n, H, W), one per image on one of its fine structures (random if it has none)."""
    if masks is None:
        return [_pixel_window(image_side, latent_side, crop, rng)] * n
    return [_pixel_window(image_side, latent_side, crop, rng, _structure_pixel(mask, rng)) for mask in masks]


def _images_by_structure(masks: np.ndarray) -> dict[int, np.ndarray]:
    """For each fine structure (bit) present in the bit ``masks`` (N, H, W): the indices of the images holding it."""
    held = np.bitwise_or.reduce(masks.reshape(len(masks), -1), axis=1)
    return {bit: np.flatnonzero(held >> bit & 1) for bit in range(8) if (held >> bit & 1).any()}


def _balanced_windows(images_by_structure: dict[int, np.ndarray], masks: np.ndarray, n: int, image_side: int,
                      latent_side: int, crop: int, rng) -> tuple[np.ndarray, list[tuple[slice, slice]]]:
    """``n`` images and their windows, each drawn as: a fine structure uniformly among the domain's, then an
    image that holds it, then a window on it.

    Per-image drawing (``_windows``) still gives a structure windows in proportion to how many images hold it;
    skin's ink strokes (15% of phantoms, beside 43% with hair) then get ~9% of the windows (hair ~31%) and come
    back as dark hair-like strokes. Balanced, each of the four skin structures gets 25%.
    """
    bits = sorted(images_by_structure)
    chosen = [bits[int(k)] for k in rng.integers(0, len(bits), n)]
    picked = np.array([int(rng.choice(images_by_structure[bit])) for bit in chosen])
    windows = [_pixel_window(image_side, latent_side, crop, rng, _structure_pixel(masks[i], rng, bit))
               for i, bit in zip(picked, chosen)]
    return picked, windows


def _cut(batch, windows: list[tuple[slice, slice]], factor: int = 1):
    """``batch`` (N, C, H, W) cut to each image's pixel window; ``factor``: pixels per element of ``batch``."""
    import torch

    def scaled(w: slice) -> slice:
        return w if w.start is None else slice(w.start // factor, w.stop // factor)

    if all(w == windows[0] for w in windows):
        return batch[..., scaled(windows[0][0]), scaled(windows[0][1])]
    return torch.stack([b[..., scaled(rows), scaled(cols)] for b, (rows, cols) in zip(batch, windows)])


def _latent_crops(means, stds, images: np.ndarray, picked: np.ndarray, windows: list[tuple[slice, slice]], device):
    """Sampled latents of the picked images and their pixels, both cut to each image's pixel window.

    The windows (``_windows``) are latent-aligned. The decoder is convolutional, so windows teach it the same
    local rendering at (latent / crop)^2 times less compute: what makes decoder fine-tuning fit a CPU budget.
    """
    import torch

    index = torch.as_tensor(picked, device=means.device)
    latents = means[index] + stds[index] * torch.randn_like(stds[index])
    factor = images.shape[1] // latents.shape[-1]
    return _cut(latents, windows, factor), _cut(to_model_batch(images[picked], device), windows)


def train_vae(config: VAEConfig, images: np.ndarray | None = None, progress: Progress | None = None,
              should_stop: Callable[[], bool] | None = None, masks: np.ndarray | None = None) -> dict:
    """Train and save ``out/vae`` (diffusers folder, safetensors). Returns final metrics.

    ``images`` (N, H, W, 3) uint8, rendered from the domain's phantoms when None; ``masks`` (N, H, W) bool,
    their fine-structure pixels, are needed with ``structure_weight`` and rendered alongside when images are.

    ``scaling_factor`` is set to 1 / std of the latents, as SD does, so latents enter the UNet at unit scale.
    """
    import torch

    arch = PRESETS[config.preset]
    out = Path(config.out)
    accelerator = make_accelerator(config.seed)
    if images is None:
        images, _, masks = render_training_set(config.domain, config.n_images, arch.image_size, config.workers,
                                               bool(config.structure_weight or config.structure_windows),
                                               tuple(filter(None, config.structures.split(","))))
    _check(config, images, masks)
    images_by_structure = _images_by_structure(masks) if config.balance_structures else None
    vae, anchor = _vae_to_train(config, arch)
    latent_side = images.shape[1] // 2 ** (len(vae.config.block_out_channels) - 1)
    objective = _objective(vae)
    trainable = [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=1e-4)
    objective, optimizer = accelerator.prepare(objective, optimizer)
    if not config.train_encoder:
        # The encoder is frozen: its posteriors are computed once (before the time budget starts).
        frozen = accelerator.unwrap_model(objective).vae
        means, stds = (v / frozen.config.scaling_factor for v in encode_latents(frozen, images, accelerator.device))
    scheduler = BudgetedSchedule(optimizer, 200, config.steps, config.time_budget_s or None, accelerator=accelerator)
    start = resume_latest(accelerator, out / "vae-checkpoints")
    sampler = RowSampler(len(images), accelerator, config.seed + start)
    if images_by_structure:                    # this process's rows only
        images_by_structure = {bit: rows[np.isin(rows, sampler.rows)] for bit, rows in images_by_structure.items()}
        images_by_structure = {bit: rows for bit, rows in images_by_structure.items() if len(rows)}
    announce_scale(accelerator, "vae", config.batch_size, len(images))
    log = Log("vae", config.steps, progress=progress, enabled=accelerator.is_main_process)
    objective.train()
    for step in range(start + 1, config.steps + 1):
        picked, windows = _draw_batch(config, sampler, (images, masks), images_by_structure, latent_side)
        with accelerator.autocast():
            if config.train_encoder:
                batch = _cut(to_model_batch(images[picked], accelerator.device), windows)
                reconstruction, kl, mean = objective(batch)
            else:
                latents, batch = _latent_crops(means, stds, images, picked, windows, accelerator.device)
                reconstruction, kl, mean = objective(latents=latents)
        fine = None
        if config.structure_weight:
            # Dilate on the whole image, then cut the window, so a line just outside it still weights its edge.
            fine = _cut(structure_weights(masks[picked], config.structure_weight, accelerator.device,
                                          images[picked] if config.contrast_balance else None), windows)
        loss, l1, edges, drift = _loss(config, batch, (reconstruction, kl, mean), anchor, fine)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        scheduler.step(step)
        optimizer.zero_grad(set_to_none=True)
        log.total = scheduler.total
        log.step(step, l1=l1.item(), edge=edges.item(), kl=kl.item(), drift=drift.item())
        if config.checkpoint_every and step % config.checkpoint_every == 0:
            save_checkpoint(accelerator, out / "vae-checkpoints", step, config)
        if should_stop and should_stop():
            save_checkpoint(accelerator, out / "vae-checkpoints", step, config)
            return {"stopped_at": step}
        if scheduler.done(step):
            break

    return _save(accelerator.unwrap_model(objective).vae.eval(), config, images, accelerator,
                 scale_record(accelerator, sampler, config.batch_size), step)


def _vae_to_train(config: VAEConfig, arch):
    """(the VAE to train: ``init_from``'s or a new one of ``arch``, its encoder frozen for decoder-only training;
    the anchor: a frozen copy of the initial VAE when ``anchor_weight`` keeps the encoder near it, else None).

    An ``init_from`` VAE with fewer levels than ``arch`` (the f = 4 VAE, preset "f8-256") is grown into it
    (``architectures.grow_vae``): a warm start, whose new level has no latent space to anchor to."""
    vae = load_vae(config.init_from) if config.init_from else make_vae(arch)
    if config.init_from and tuple(vae.config.block_out_channels) != arch.vae_channels:
        if len(vae.config.block_out_channels) >= len(arch.vae_channels):
            raise ValueError(f"init_from's VAE has channels {tuple(vae.config.block_out_channels)}, the preset "
                             f"{config.preset!r} {arch.vae_channels}: give the preset it was trained at (--preset)")
        if config.anchor_weight or not config.train_encoder:
            raise ValueError(f"init_from's VAE has channels {tuple(vae.config.block_out_channels)}, the preset "
                             f"{config.preset!r} {arch.vae_channels}: growing it makes a new latent space, so "
                             "anchor_weight must be 0 and the encoder trained")
        vae, share = grow_vae(vae, arch)
        print(f"[vae] grown from {config.init_from} into preset {config.preset!r}: {share:.0%} of its parameter "
              "tensors copied", flush=True)
    if not config.train_encoder:
        for module in (vae.encoder, vae.quant_conv):
            module.requires_grad_(False)
    anchor = None
    if config.anchor_weight:
        import copy

        anchor = copy.deepcopy(vae).requires_grad_(False).eval()      # the initial encoder, frozen
    return vae, anchor


def _draw_batch(config: VAEConfig, sampler, data: tuple, images_by_structure, latent_side: int):
    """(the batch's rows, each one's pixel window). Convolutions (and the mid-block attention over fewer cells)
    learn the same local coding from latent-aligned windows at a fraction of the compute: what fits a CPU budget.
    ``structure_windows`` of the steps put the windows on thin structures (balanced over their types when
    ``images_by_structure`` is given: then the rows are drawn anew)."""
    images, masks = data
    rng = sampler.rng
    picked = sampler.draw(config.batch_size)
    on_structure = config.structure_windows and rng.random() < config.structure_windows   # (no draw when off)
    if on_structure and images_by_structure:
        # Drawn anew (the draw above keeps the random stream of unbalanced runs as it was).
        picked, windows = _balanced_windows(images_by_structure, masks, len(picked), images.shape[1],
                                            latent_side, config.crop_latents, rng)
        sampler.note(picked)
        return picked, windows
    return picked, _windows(len(picked), images.shape[1], latent_side, config.crop_latents, rng,
                            masks[picked] if on_structure else None)


def _check(config: VAEConfig, images: np.ndarray, masks: np.ndarray | None) -> None:
    """Refuse a config whose options need what is not there (one sentence each)."""
    if (config.structure_weight or config.structure_windows) and (masks is None or masks.shape != images.shape[:3]):
        raise ValueError("structure_weight and structure_windows need the images' fine-structure masks, "
                         "shape (N, H, W) like the images")
    if config.structure_windows and not config.crop_latents:
        raise ValueError("structure_windows places crop windows: it needs crop_latents > 0")
    if config.balance_structures and not config.structure_windows:
        raise ValueError("balance_structures balances the structure windows: it needs structure_windows > 0")
    if config.contrast_balance and not config.structure_weight:
        raise ValueError("contrast_balance shares the structure weight by contrast: it needs structure_weight > 0")
    if not config.train_encoder and not config.init_from:
        raise ValueError("train_encoder=False needs init_from: a trained VAE whose latent space to keep")
    if config.anchor_weight and not (config.init_from and config.train_encoder):
        raise ValueError("anchor_weight keeps a trained encoder near where it started: it needs init_from "
                         "and the encoder trained")


def _loss(config: VAEConfig, batch, outputs: tuple, anchor, fine):
    """(loss, L1, edge term, anchor drift) of one batch: the reconstruction's L1 and image-gradient L1, weighted per
    pixel by the detail and structure weights (``fine``: the structure weights cut to the windows, or None), plus the
    KL and the anchor's drift of the posterior means."""
    import torch

    reconstruction, kl, mean = outputs
    reconstruction = reconstruction.float()
    drift = mean.new_zeros(())
    if anchor is not None:
        with torch.no_grad():
            start_mean = anchor.encode(batch).latent_dist.mean
        # In the UNet's units (x scaling_factor), where the latents have unit scale.
        drift = ((mean.float() - start_mean.float()) * anchor.config.scaling_factor).pow(2).mean()
    weights = detail_weights(batch, config.detail_weight) if config.detail_weight else None
    if fine is not None:
        weights = fine if weights is None else weights * fine
    l1 = _weighted_mean((reconstruction - batch).abs(), weights)
    edges = sum(_weighted_mean((a - b).abs(), weights) for a, b in zip(_gradients(reconstruction), _gradients(batch)))
    loss = l1 + config.edge_weight * edges + config.kl_weight * kl.float() + config.anchor_weight * drift
    return loss, l1, edges, drift


def _save(model, config: VAEConfig, images: np.ndarray, accelerator, scale: dict, step: int) -> dict:
    """The main process measures the round trip on the first 512 training images, sets ``scaling_factor`` and
    writes ``out/vae`` with its record; the others wait for it. Returns the metrics."""
    import torch

    out = Path(config.out)
    if not accelerator.is_main_process:        # one process measures and writes
        accelerator.wait_for_everyone()       # until the main process has written
        return {"process": accelerator.process_index, **scale}
    with torch.no_grad():
        sample = to_model_batch(images[: min(512, len(images))], accelerator.device)
        latents = torch.cat([model.encode(chunk).latent_dist.mean for chunk in sample.split(64)])
        reconstruction = torch.cat([model.decode(chunk).sample for chunk in latents.split(64)]).clamp(-1, 1)
        mse = ((reconstruction - sample) / 2).pow(2).mean(dim=(1, 2, 3))
        psnr = float((10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean())
        # Decoder-only fine-tuning keeps the latent space, so it keeps the scale the UNet was trained at.
        scaling = model.config.scaling_factor if not config.train_encoder else float(1.0 / latents.std())
    model.register_to_config(scaling_factor=scaling)
    model.save_pretrained(str(out / "vae"), safe_serialization=True)
    result = {"psnr_db_train_images": psnr, "scaling_factor": scaling, "steps": step, "scale": scale}
    write_record(out / "vae", "medviz_train.json", config, result)
    accelerator.wait_for_everyone()
    return result
