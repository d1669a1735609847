"""Train (or fine-tune) the text-to-image part: CLIP text encoder + conditional UNet on VAE latents.

From scratch on phantoms: the tokenizer vocabulary is learned from our caption corpus, text encoder
and UNet are trained jointly with epsilon-prediction MSE under SD's DDPM schedule, min-SNR weighting
(Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting", eq. 6, gamma 5), caption
dropout for classifier-free guidance (Ho & Salimans 2022), and an EMA of the weights.

``train_tokens`` (with ``init_from``, UNet frozen) learns only the input-embedding rows of the given
words' tokens, as textual inversion does (Gal et al. 2022, "An Image is Worth One Word", eq. 2, here
on existing tokens instead of a new one): every prompt without those tokens encodes bit for bit as
before, so what else the model was measured to do stays measured.

``structure_weight`` > 0 weights the noise-prediction error of the latent cells where the phantom renderer
drew a fine structure (``FINE_STRUCTURES``: catheters and tubes, hair, ruler ticks) by 1 + that weight, as
the VAE's loss does for their pixels: a device is a few percent of the cells of the few images that hold
one, so an unweighted loss lets it be drawn a few pixels off its anatomical path for almost no cost.

Fine-tuning an existing SD folder on a folder + CSV dataset follows PRISM (arXiv 2503.00196): UNet
only, VAE and text encoder frozen, AdamW lr 1e-5, weight decay 1e-2, grad clip 1.0, fp16 on GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import data
from ..io import as_rgb, to_uint8
from ..phantoms import get_domain
from ..prompts import training_caption
from .architectures import PRESETS, grow_unet, make_noise_scheduler, make_text_encoder, make_unet
from .common import (BudgetedSchedule, Log, Progress, RowSampler, TrainConfig, announce_scale, latest_checkpoint,
                     make_accelerator, save_checkpoint, scale_record, write_record)
from .data import cached_latents, render_training_set
from .tokenizer import build_clip_tokenizer, prompt_corpus
from .vae import structure_weights


#: The folder under ``out`` with the resumable checkpoints (and the cached latents) of a run.
CHECKPOINTS = "text2image-checkpoints"


@dataclass(frozen=True)
class Text2ImageConfig(TrainConfig):
    steps: int = 20000
    learning_rate: float = 3e-4
    weight_decay: float = 1e-2
    caption_dropout: float = 0.1
    caption_variants: int = 8          # augmented captions drawn per image, tokenized once
    ema_decay: float = 0.999
    snr_gamma: float = 5.0
    checkpoint_every: int = 0
    vocab_size: int = 1024
    time_budget_s: float = 0.0         # >0: cut the step count to end in about this many seconds
    pretrained: str | None = None      # fine-tune this SD folder (UNet only) instead of training from scratch
    init_from: str | None = None       # continue training a bundled phantom pipeline (text encoder + UNet)
    train_unet: bool = True            # False (with init_from): text encoder only, the UNet frozen
    train_tokens: str | None = None    # with init_from, train_unet=False: only these words' embeddings learn
    data_csv: str | None = None        # CheXpert- or ISIC-layout CSV (fine-tuning data)
    grow_attention: bool = False       # with init_from: add attention at the full latent resolution
    grow_layer: bool = False           # with init_from: add a resnet at the full latent resolution
    structure_weight: float = 0.0      # >0: extra loss weight on latent cells holding a fine structure
    single_device_share: float = 0.0   # cxr: share of device phantoms drawn with one kind (phantoms.cxr.build_graph)
    noise_offset: float = 0.0          # > 0: offset noise (per image and channel) so samples can leave the mean tone


def _denoiser(text_encoder, unet):
    """Text encoder + UNet as one module, so that DDP under ``accelerate launch`` syncs both."""
    import torch

    class Denoiser(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.text_encoder, self.unet = text_encoder, unet

        def forward(self, noisy, timesteps, input_ids):
            states = self.text_encoder(input_ids)[0]
            return self.unet(noisy, timesteps, states).sample

    return Denoiser()


def _token_ids(tokenizer, words: str) -> list[int]:
    """The vocabulary ids of ``words`` (special tokens left out); each word must be one token of its own.

    Why whole words: a word the vocabulary splits into pieces ("zebra" -> z, e, b, r, a) shares them
    with other words, and re-learning a piece would change every prompt that uses it.
    """
    ids = []
    for word in words.split():
        pieces = tokenizer(word, add_special_tokens=False).input_ids
        if len(pieces) != 1 or pieces[0] == tokenizer.unk_token_id:
            raise ValueError(f"train_tokens: {word!r} is not one token of this tokenizer "
                             f"({tokenizer.convert_ids_to_tokens(pieces)}); name whole words of its vocabulary")
        ids.append(pieces[0])
    if not ids:
        raise ValueError("train_tokens names no word")
    return sorted(set(ids))


def latent_structure_weights(masks: np.ndarray, latent_side: int, strength: float, device):
    """Per-latent-cell loss weights 1 + strength * (cell holds a fine structure), shape (N, 1, h, h).

    ``masks`` (N, H, W), nonzero where the renderer drew a fine structure; H a multiple of ``latent_side``.
    The VAE's pixel weights (mask dilated by 1 px), max-pooled to the cells: a line along a cell border
    weights the cells on both sides of it.
    """
    import torch.nn.functional as F

    side = masks.shape[-1]
    if side % latent_side:
        raise ValueError(f"masks of {side} px do not tile {latent_side} latent cells")
    # Pooled on the CPU: the full-resolution weights of a whole training set need not visit the GPU.
    return F.max_pool2d(structure_weights(masks, strength, "cpu"), side // latent_side).to(device)


def training_noise(latents, offset: float):
    """The noise added to ``latents`` (N, C, h, w): standard normal, plus with ``offset`` > 0 one normal draw of
    std ``offset`` per image and channel, shared by its cells (offset noise, Guttenberg 2023; diffusers'
    ``noise_offset``). SD's schedule leaves sqrt(alpha_bar_T) = 0.068 of the image at its last step, so a model
    learns to read an image's mean tone off its starting noise, whose mean is ~0: without the offset it draws
    every sample near the mean tone (the skin models draw no dark skin unasked, docs/results/gen2.md)."""
    import torch

    noise = torch.randn_like(latents)
    if offset:
        noise = noise + offset * torch.randn(latents.shape[0], latents.shape[1], 1, 1, device=latents.device,
                                             dtype=latents.dtype)
    return noise


def _snr_weights(scheduler, timesteps, gamma: float):
    """min(SNR, gamma) / SNR for epsilon prediction (Hang et al. 2023, eq. 6)."""
    alphas = scheduler.alphas_cumprod.to(timesteps.device)[timesteps]
    snr = alphas / (1 - alphas)
    return snr.clamp(max=gamma) / snr


def train_text2image(config: Text2ImageConfig, images: np.ndarray | None = None, factors: list | None = None,
                     progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
                     masks: np.ndarray | None = None) -> dict:
    """Train and save ``out/text_encoder``, ``out/unet`` (and ``out/tokenizer``). Returns final metrics.

    ``images`` (N, H, W, 3) uint8 and their ``factors``, rendered from the domain's phantoms when None;
    ``masks`` (N, H, W), their fine-structure pixels, are needed with ``structure_weight`` and rendered
    alongside when images are.
    """
    import torch

    # 1. The models and the data: a pretrained pipeline and a CSV, a phantom pipeline, or new models.
    _check(config, images, masks)
    out = Path(config.out)
    accelerator = make_accelerator(config.seed)
    device = accelerator.device
    parts = _starting_point(config, accelerator, (images, factors, masks))
    text_encoder, trained_ids = parts.text_encoder, parts.trained_ids
    parts.vae.requires_grad_(False)
    frozen_rows = _freeze_other_tokens(text_encoder, trained_ids, device) if trained_ids is not None else None
    latent_mean, latent_std = cached_latents(out / CHECKPOINTS / "latents.pt", parts.vae, parts.images, device,
                                             write=accelerator.is_main_process)
    parts.vae = None                           # not needed past the latents: its memory goes back
    cell_weights = (latent_structure_weights(parts.masks, latent_mean.shape[-1], config.structure_weight, device)
                    if config.structure_weight else None)
    # 2. The optimiser, its schedule and the EMA, resumed from the latest checkpoint.
    noise_scheduler = make_noise_scheduler()
    denoiser, trainable, optimizer, lr_scheduler, ema = _optimisation(config, accelerator, text_encoder, parts.unet)
    start = _resume(accelerator, ema, out, device)
    denoiser.train()
    n = len(latent_mean)
    sampler = RowSampler(n, accelerator, config.seed + start)
    announce_scale(accelerator, "text2image", config.batch_size, n)
    log = Log("text2image", config.steps, progress=progress, enabled=accelerator.is_main_process)
    # 3. Captions, tokenized up front; then the steps.
    captions = _tokenized_captions(config, parts, sampler, device)
    for step in range(start + 1, config.steps + 1):
        picked, input_ids = _caption_batch(config, captions, sampler, device)
        latents = latent_mean[picked] + latent_std[picked] * torch.randn_like(latent_std[picked])
        noise = training_noise(latents, config.noise_offset)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(picked),), device=device)
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        with accelerator.autocast():
            prediction = denoiser(noisy, timesteps, input_ids)
        errors = (prediction.float() - noise).pow(2)
        if cell_weights is not None:
            errors = errors * cell_weights[picked]
        per_sample = errors.mean(dim=(1, 2, 3))
        loss = (per_sample * _snr_weights(noise_scheduler, timesteps, config.snr_gamma)).mean()
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        if frozen_rows is not None:
            # AdamW's decoupled weight decay moves every row, gradient or not: put the others back.
            with torch.no_grad():
                weight = accelerator.unwrap_model(denoiser).text_encoder.get_input_embeddings().weight
                weight[frozen_rows[0]] = frozen_rows[1][frozen_rows[0]]
        lr_scheduler.step(step)
        optimizer.zero_grad(set_to_none=True)
        ema.step([p for p in accelerator.unwrap_model(denoiser).parameters() if p.requires_grad])
        log.total = lr_scheduler.total
        log.step(step, loss=loss.item(), mse=per_sample.mean().item())
        stop = should_stop() if should_stop else False
        if (config.checkpoint_every and step % config.checkpoint_every == 0) or stop:
            path = save_checkpoint(accelerator, out / CHECKPOINTS, step, config)
            torch.save(ema.state_dict(), path / "ema.pt")
        if stop:
            return {"stopped_at": step}
        if lr_scheduler.done(step):
            break
    # 4. The EMA weights, written by the main process.
    result = {"steps": step, "images": n, "final_loss": float(loss.item()),
              "scale": scale_record(accelerator, sampler, config.batch_size)}
    return _save(accelerator, accelerator.unwrap_model(denoiser), ema, parts, config, result)


def _optimisation(config: Text2ImageConfig, accelerator, text_encoder, unet) -> tuple:
    """(the denoiser (text encoder + UNet, prepared), its trainable parameters (text encoder first), AdamW, the
    budgeted learning-rate schedule, the EMA of the trainable weights)."""
    import torch
    from diffusers.training_utils import EMAModel

    denoiser = _denoiser(text_encoder, unet)
    trainable = [p for p in denoiser.parameters() if p.requires_grad]   # text encoder first, then UNet
    lr = 1e-5 if config.pretrained else config.learning_rate
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=config.weight_decay)
    denoiser, optimizer = accelerator.prepare(denoiser, optimizer)
    lr_scheduler = BudgetedSchedule(optimizer, 500, config.steps, config.time_budget_s or None, accelerator=accelerator)
    ema = EMAModel([p for p in accelerator.unwrap_model(denoiser).parameters() if p.requires_grad],
                   decay=config.ema_decay, foreach=True)
    ema.to(accelerator.device)
    return denoiser, trainable, optimizer, lr_scheduler, ema


def _check(config: Text2ImageConfig, images: np.ndarray | None, masks: np.ndarray | None) -> None:
    """Refuse a config whose options need what is not there (one sentence each), before anything is written."""
    if not config.train_unet and not config.init_from:
        raise ValueError("train_unet=False needs init_from (a trained phantom pipeline whose UNet is kept)")
    if config.train_tokens and not config.init_from:
        raise ValueError("train_tokens needs init_from (a trained phantom pipeline whose words to re-learn)")
    if (config.grow_attention or config.grow_layer) and not (config.init_from and config.train_unet):
        raise ValueError("grow_attention/grow_layer add UNet capacity to a trained pipeline: they need init_from "
                         "and a UNet that trains")
    if config.structure_weight and config.pretrained:
        raise ValueError("structure_weight needs the phantoms' fine-structure masks: a CSV dataset has none")
    if config.structure_weight and images is not None and (masks is None or masks.shape != images.shape[:3]):
        # Checked before anything is written: given images need their masks (rendered ones come with them).
        raise ValueError("structure_weight needs the images' fine-structure masks, shape (N, H, W) like the images")
    if config.train_tokens and config.train_unet:
        raise ValueError("train_tokens learns token embeddings only: set train_unet=False (--no-train-unet)")
    if not 0.0 <= config.noise_offset <= 1.0:
        raise ValueError(f"noise_offset must be 0..1 (diffusers' fine-tunes use ~0.05-0.1), got {config.noise_offset}")
    if config.single_device_share:
        if config.domain != "cxr" or config.pretrained or images is not None:
            raise ValueError("single_device_share changes which CXR phantoms are rendered: it needs domain cxr and "
                             "phantoms rendered by the run (no pretrained CSV, no given images)")
        get_domain("cxr").build_graph(single_device_share=config.single_device_share)    # its range, checked now


@dataclass
class _Parts:
    """Where a run starts: the models, the tokenizer and its caption length, the training images with their factors
    and structure masks (or the CSV's fixed captions), the token ids whose embeddings alone learn (or None)."""

    vae: object
    tokenizer: object
    text_encoder: object
    unet: object
    max_tokens: int
    images: np.ndarray
    factors: list | None
    masks: np.ndarray | None
    fixed_captions: list[str] | None = None
    trained_ids: list[int] | None = None


def _starting_point(config: Text2ImageConfig, accelerator, data: tuple) -> _Parts:
    """A pretrained pipeline and a CSV (PRISM), a phantom pipeline to continue (``init_from``), or new models on the
    VAE trained in ``out/vae``; the phantoms rendered when ``data`` (images, factors, masks) has none."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    images, factors, masks = data
    out, device, main = Path(config.out), accelerator.device, accelerator.is_main_process
    if config.pretrained:
        # PRISM: fine-tune the UNet of an existing pipeline; VAE and text encoder stay frozen.
        # float32 whatever the folder stores (SD checkpoints often ship fp16; transformers keeps a file's dtype).
        root, fp32 = Path(config.pretrained), {"local_files_only": True, "torch_dtype": torch.float32}
        vae = AutoencoderKL.from_pretrained(root / "vae", **fp32).to(device).eval()
        tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
        text_encoder = CLIPTextModel.from_pretrained(root / "text_encoder", **fp32)
        unet = UNet2DConditionModel.from_pretrained(root / "unet", **fp32)
        text_encoder.requires_grad_(False)
        if not config.data_csv:
            raise ValueError("fine-tuning needs data_csv: a CheXpert- or ISIC-layout CSV")
        images, fixed_captions = _load_csv_images(config.data_csv, vae.config.sample_size)
        return _Parts(vae, tokenizer, text_encoder, unet, tokenizer.model_max_length, images, None, None,
                      fixed_captions)
    if config.init_from:
        return _continued(config, accelerator, data)
    arch = PRESETS[config.preset]
    if not (out / "vae").is_dir():
        raise FileNotFoundError(f"{out / 'vae'} not found: train the VAE first (python -m medviz.train vae)")
    vae = AutoencoderKL.from_pretrained(out / "vae", local_files_only=True).to(device).eval()
    tokenizer = (build_clip_tokenizer(prompt_corpus(config.domain), out / "tokenizer", config.vocab_size,
                                      arch.max_tokens) if main else None)   # written once; the others read it
    accelerator.wait_for_everyone()
    tokenizer = tokenizer or CLIPTokenizer.from_pretrained(out / "tokenizer", local_files_only=True)
    text_encoder = make_text_encoder(arch, tokenizer)
    unet = make_unet(arch)
    if images is None or factors is None:
        images, factors, masks = render_training_set(
            config.domain, config.n_images, arch.image_size, config.workers, bool(config.structure_weight),
            graph_parameters=_graph_parameters(config),
        )
    return _Parts(vae, tokenizer, text_encoder, unet, arch.max_tokens, images, factors, masks)


def _continued(config: Text2ImageConfig, accelerator, data: tuple) -> _Parts:
    """Continue training a bundled phantom model (text encoder, and the UNet unless train_unet=False; same tokenizer
    and VAE, both copied to ``out``)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    images, factors, masks = data
    out, device = Path(config.out), accelerator.device
    root = Path(config.init_from)
    tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
    # Checked before anything is written or rendered: a word the tokenizer lacks fails at once.
    trained_ids = _token_ids(tokenizer, config.train_tokens) if config.train_tokens else None
    vae = AutoencoderKL.from_pretrained(root / "vae", local_files_only=True, torch_dtype=torch.float32)
    if accelerator.is_main_process:
        tokenizer.save_pretrained(str(out / "tokenizer"))
        vae.save_pretrained(str(out / "vae"), safe_serialization=True)
    vae = vae.to(device).eval()
    text_encoder = CLIPTextModel.from_pretrained(root / "text_encoder", local_files_only=True,
                                                 torch_dtype=torch.float32)
    unet = UNet2DConditionModel.from_pretrained(root / "unet", local_files_only=True, torch_dtype=torch.float32)
    if config.grow_attention or config.grow_layer:
        # Starts as the same function (new modules are identities), so the step-0 model is the old one.
        unet = grow_unet(unet, full_resolution_attention=config.grow_attention,
                         full_resolution_layer=config.grow_layer)
    if images is None or factors is None:
        images, factors, masks = render_training_set(config.domain, config.n_images, vae.config.sample_size,
                                                      config.workers, bool(config.structure_weight),
                                                      graph_parameters=_graph_parameters(config))
    # A frozen UNet keeps what it draws and changes only what the words ask for: a cheap way to
    # teach a phrase (a new caption wording) without moving the image model.
    unet.requires_grad_(config.train_unet)
    return _Parts(vae, tokenizer, text_encoder, unet, tokenizer.model_max_length, images, factors, masks,
                  trained_ids=trained_ids)


def _graph_parameters(config: Text2ImageConfig) -> dict:
    """The SCM's parameters the training phantoms are drawn with (the domain's own but for the config's changes)."""
    return {"single_device_share": config.single_device_share} if config.single_device_share else {}


def _freeze_other_tokens(text_encoder, trained_ids: list[int], device) -> tuple:
    """Only the embedding rows of ``trained_ids`` learn: (the other rows' mask, their initial values), to restore."""
    import torch

    text_encoder.requires_grad_(False)
    text_encoder.get_input_embeddings().weight.requires_grad_(True)
    frozen_rows = torch.ones(text_encoder.config.vocab_size, dtype=torch.bool)
    frozen_rows[trained_ids] = False
    frozen_rows = frozen_rows.to(device)
    return frozen_rows, text_encoder.get_input_embeddings().weight.detach().clone().to(device)


def _resume(accelerator, ema, out: Path, device) -> int:
    """Load the latest checkpoint (and its EMA) under ``out``; returns its step (0: none)."""
    import torch

    resumed = latest_checkpoint(out / CHECKPOINTS)
    if not resumed:
        return 0
    accelerator.load_state(str(resumed[0]))
    ema_state = resumed[0] / "ema.pt"
    if ema_state.exists():
        ema.load_state_dict(torch.load(ema_state, map_location=device))
    return resumed[1]


@dataclass
class _Captions:
    """Token ids (variants, N, tokens) of every image's caption variants, of the empty caption, and with
    ``train_tokens`` the (variant, image) pairs whose caption holds a trained token."""

    ids: object
    empty: object
    variants: int
    usable: object | None = None


def _tokenized_captions(config: Text2ImageConfig, parts: _Parts, sampler, device) -> _Captions:
    """Captions drawn and tokenized up front (several augmented variants per image) so that the step loop does no
    Python text work: on a GPU that work, not the model, limited the step rate."""
    import torch

    n, fixed, max_tokens = len(parts.images), parts.fixed_captions, parts.max_tokens
    variants = 1 if fixed is not None else config.caption_variants
    texts = [fixed[i] if fixed is not None else training_caption(config.domain, parts.factors[i], sampler.rng)
             for _ in range(variants) for i in range(n)]
    ids = (parts.tokenizer(texts, padding="max_length", max_length=max_tokens, truncation=True, return_tensors="pt")
           .input_ids.view(variants, n, max_tokens).to(device))
    empty = parts.tokenizer([""], padding="max_length", max_length=max_tokens, return_tensors="pt").input_ids.to(device)
    captions = _Captions(ids, empty, variants)
    if parts.trained_ids is not None:
        # Only captions with a trained token move its row: draw from those alone, and drop none (an
        # empty caption has no gradient here), instead of spending most of each batch on zeros.
        usable = torch.isin(ids, torch.as_tensor(parts.trained_ids, device=device)).any(-1).nonzero()
        usable = usable[torch.isin(usable[:, 1], torch.as_tensor(sampler.rows, device=device))]   # this process's
        if len(usable) == 0:
            raise ValueError(f"no training caption contains a token of {config.train_tokens!r}")
        captions.usable = usable
    return captions


def _caption_batch(config: Text2ImageConfig, captions: _Captions, sampler, device):
    """(the batch's rows, their token ids): a random variant per row, ``caption_dropout`` of them emptied for
    classifier-free guidance; with ``train_tokens``, rows among the captions holding a trained token, none dropped."""
    import torch

    rng = sampler.rng
    if captions.usable is not None:
        pair = captions.usable[torch.as_tensor(rng.integers(0, len(captions.usable), config.batch_size), device=device)]
        variant, picked = pair[:, 0], pair[:, 1]
        sampler.note(picked.cpu().numpy())
        dropped = torch.zeros(config.batch_size, dtype=torch.bool, device=device)
    else:
        picked = torch.as_tensor(sampler.draw(config.batch_size), device=device)
        variant = torch.as_tensor(rng.integers(0, captions.variants, config.batch_size), device=device)
        dropped = torch.as_tensor(rng.random(config.batch_size) < config.caption_dropout, device=device)
    return picked, torch.where(dropped[:, None], captions.empty, captions.ids[variant, picked])


def _save(accelerator, model, ema, parts: _Parts, config: Text2ImageConfig, result: dict) -> dict:
    """The main process writes the EMA weights (text encoder, UNet; the tokenizer of a pretrained pipeline) and the
    record; the others wait for it."""
    out = Path(config.out)
    if not accelerator.is_main_process:        # one process writes
        accelerator.wait_for_everyone()       # until the main process has written
        return {"process": accelerator.process_index, **result["scale"]}
    ema.copy_to([p for p in model.parameters() if p.requires_grad])
    model.text_encoder.save_pretrained(str(out / "text_encoder"), safe_serialization=True)
    model.unet.save_pretrained(str(out / "unet"), safe_serialization=True)
    if config.pretrained:
        parts.tokenizer.save_pretrained(str(out / "tokenizer"))
    if parts.trained_ids is not None:
        result["trained_tokens"] = parts.tokenizer.convert_ids_to_tokens(parts.trained_ids)
    write_record(out / "unet", "medviz_train.json", config, result)
    accelerator.wait_for_everyone()
    return result


def _load_csv_images(csv_path: str, size: int) -> tuple[np.ndarray, list[str]]:
    """Images (uint8, resized to ``size``, 3 channels) and captions of a CheXpert- or ISIC-layout CSV."""
    from PIL import Image

    try:
        records = data.load_chexpert(csv_path)
    except data.DatasetError:
        records = data.load_isic(csv_path)
    images = np.empty((len(records), size, size, 3), np.uint8)
    for i, record in enumerate(records):
        pixels = to_uint8(as_rgb(record.load().pixels))
        images[i] = np.asarray(Image.fromarray(pixels).resize((size, size), Image.BICUBIC))
    return images, [r.caption for r in records]
