"""Edit: the counterfactual of an uploaded image -- add or remove a device or a disease, keep the rest.

Prompts from the oracle's readout (or the user's), edit-friendly DDPM inversion (Huberman-Spiegelglas et
al., CVPR 2024, eqs. 6-7: exact reconstruction, every inversion pass in one batch) or DDIM inversion, a
DiffEdit mask (Couairon et al., ICLR 2023, sec. 3.1) from the inversion's own noisy copies or a painted one,
an edit loop with the source prompt as the negative prompt (an empty edit reproduces the input), and a
composite that takes from the edit only the pixels it redrew. The steps, and why the per-domain defaults:
docs/counterfactual.md. One module per step: ``config``, ``prompts``, ``inversion``, ``mask``, ``composite``,
``effect``; ``counterfactual`` below runs them in order.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np

from ...metrics import change_metrics, channel_mean
from ..common import (Progress, ShouldStop, StepControl, decode_latents, encode_prompts, encode_rgb, make_scheduler,
                      model_rgb, new_seed)
from ..guard import check_domain
from .composite import composite
from .config import INVERSIONS, MASK_MODES, EditConfig, EditDefaults, EditResult, edit_defaults, editable
from .effect import EFFECT_MOVE, EffectCheck, edit_warnings, effect_check, measured_edit
from .inversion import EditRun, denoise, invert
from .mask import latent_cells, masks, pixel_settings
from .prompts import edit_prompts

__all__ = ["EFFECT_MOVE", "INVERSIONS", "MASK_MODES", "EditConfig", "EditDefaults", "EditResult", "EffectCheck",
           "composite", "counterfactual", "edit_defaults", "edit_prompts", "editable", "effect_check", "latent_cells",
           "measured_edit", "pixel_settings"]


def counterfactual(model, image: np.ndarray, config: EditConfig, mask: np.ndarray | None = None,
                   progress: Progress = None, should_stop: ShouldStop = None) -> EditResult:
    """Edit ``image`` as ``config`` asks.

    Args:
        model: a ``medviz.models.Model``.
        image: float32 (H, W) or (H, W, 3) in [0, 1] (the I/O contract); resized to the model's size.
        mask: painted mask (mask_mode "painted"), bool or float (H', W'), any size; True = may change.
        progress: ``progress(done, total)`` per UNet call group; should_stop: polled at every step.
    """
    # 1. The request, resolved for the model's domain; the input as the model sees it, and what the oracle reads.
    config.validate(model.domain)
    config = config.for_domain(model.domain)
    if config.mask_mode == "painted" and (mask is None or not np.asarray(mask).any()):
        raise ValueError("painted mask mode: paint the region to edit first (the mask is empty)")
    pipe, size, tic = model.pipe, model.image_size, time.perf_counter()
    seed = new_seed() if config.seed is None else int(config.seed)
    checked = check_domain(model, image) if config.domain_check else None
    rgb = model_rgb(image, size)
    readout_before = model.oracle.readout_dicts([rgb])[0] if model.oracle is not None else None
    # 2. Source and target prompts.
    source, target = edit_prompts(model.domain, readout_before, config)
    # 3. Encode and invert; DiffEdit's map comes from the same UNet calls (edit-friendly) or its own draws (DDIM).
    mask_calls = 0 if config.mask_mode != "auto" else (config.mask_draws if config.inversion == "ddim" else 1)
    control = StepControl(total=config.edit_steps * 2 + mask_calls, progress=progress, should_stop=should_stop)
    control.check()
    dtype = pipe.unet.dtype
    scheduler = make_scheduler("DDIM", pipe.scheduler.config, config.steps, pipe._execution_device)
    run = EditRun(pipe, scheduler, scheduler.timesteps[config.steps - config.edit_steps:],
                  encode_rgb(pipe, rgb).to(dtype), encode_prompts(pipe, [source, target]).to(dtype), config, seed,
                  control)
    inverted = invert(run)
    # 4. The mask: where the edit may change pixels (automatic, painted, or none).
    latent_mask, pixel_mask, mask_score = masks(config, inverted.score, mask, run.x0.shape[-1], size,
                                                pipe._execution_device)
    if latent_mask is not None:
        latent_mask = latent_mask.to(dtype)                  # fp16 on a GPU: keep the latents in the UNet's dtype
    # 5. The edit loop, from the inverted latent.
    latents, edit_passes = denoise(run, inverted, latent_mask)
    # 6. Decode, and composite into the input only what the edit redrew.
    restrict = bool(config.change_threshold) and latent_mask is not None
    reference = decode_latents(pipe, run.x0)[0] if config.residual or restrict else None   # the input, decoded
    decoded, edited = composite(decode_latents(pipe, latents)[0], rgb,
                                pixel_mask if latent_mask is not None else None, reference, config)
    edited = pixel_mask if edited is None else edited             # no mask: every pixel is the edit's
    # 7. Read the result, check the effect, and say what a user should know first.
    readout_after = model.oracle.readout_dicts([decoded])[0] if model.oracle is not None else None
    effect = effect_check(config, readout_before, readout_after)
    measured = measured_edit(model.card, config)
    shown = channel_mean if np.asarray(image).ndim == 2 else np.asarray
    l1_in, l1_out, ssim_in, ssim_out = change_metrics(rgb, decoded, pixel_mask)
    parameters = {**asdict(config), "seed": seed, "source_prompt": source, "target_prompt": target,
                  "model": model.name, "engine": "counterfactual", "image_size": size,
                  "input_size": list(np.asarray(image).shape[:2]),
                  "domain_check": checked.record() if checked else None,
                  "effect_check": effect.record() if effect else None}
    return EditResult(
        input=np.ascontiguousarray(shown(rgb), np.float32), counterfactual=np.ascontiguousarray(shown(decoded),
                                                                                                np.float32),
        difference=(channel_mean(decoded) - channel_mean(rgb)).astype(np.float32), mask=pixel_mask, edited=edited,
        mask_score=mask_score, source_prompt=source, target_prompt=target, readout_before=readout_before,
        readout_after=readout_after, l1_inside=l1_in, l1_outside=l1_out, ssim_inside=ssim_in, ssim_outside=ssim_out,
        unet_passes=inverted.passes + edit_passes, seconds=time.perf_counter() - tic, seed=seed,
        parameters=parameters, measured=measured, domain_check=checked, effect=effect,
        warnings=edit_warnings(checked, effect, measured, config, restrict and not edited.any()))
