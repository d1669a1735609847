"""Edit: the counterfactual of an uploaded image -- add or remove a device or a disease, keep the rest.

Prompts from the oracle's readout (or the user's), edit-friendly DDPM inversion (Huberman-Spiegelglas et
al., CVPR 2024, eqs. 6-7: exact reconstruction, every inversion pass in one batch) or DDIM inversion, a
DiffEdit mask (Couairon et al., ICLR 2023, sec. 3.1) from the inversion's own noisy copies or a painted one,
an edit loop with the source prompt as the negative prompt (an empty edit reproduces the input), and a
composite that takes from the edit only the pixels it redrew. The steps, and why the per-domain defaults:
docs/counterfactual.md.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from .. import domains
from ..card import edit_phrase, edit_record
from ..prompts import describe
from .common import (Progress, ShouldStop, StepControl, decode_latents, encode_prompts, encode_rgb, forward_noise,
                     make_scheduler, model_rgb, new_seed, setting_differences)
from .guard import DomainCheck, check_domain

INVERSIONS = ("edit_friendly", "ddim")
MASK_MODES = ("none", "auto", "painted")

@dataclass(frozen=True)
class EditDefaults:
    """What an edit request leaves as ``None`` resolves to, per model domain (``EditConfig.for_domain``):
    these values, overridden by the domain's ``edit_defaults`` (chosen on edit-tuning phantoms,
    docs/counterfactual.md); a checkpoint of unknown domain keeps these."""

    strength: float = 0.8
    guidance_scale: float = 6.0
    mask_draws: int = 10
    add_mask_threshold: float = 0.4      # automatic mask of an edit that only adds
    mask_threshold: float = 0.4          # ... of every other edit
    change_threshold: float = 0.0        # 0: the whole mask is taken from the edit


def edit_defaults(domain: str | None) -> EditDefaults:
    """The values an edit request left as ``None`` take for a model of ``domain``."""
    known = domains.find(domain)
    return EditDefaults(**known.edit_defaults) if known else EditDefaults()


def editable(domain: str | None) -> tuple[str, ...]:
    """The attributes an edit can add or remove on a model of ``domain`` (none for an unknown domain)."""
    known = domains.find(domain)
    return tuple(a.name for a in known.editable) if known else ()


@dataclass(frozen=True)
class EditConfig:
    """One edit request.

    Args:
        add, remove: attribute names (``editable(domain)``) to switch on / off.
        target_prompt: a free target prompt; replaces the one composed from ``add``/``remove``.
        source_prompt: what the image shows; default: the caption of the oracle's readout.
        inversion: "edit_friendly" (exact) or "ddim".
        steps: schedule length; only the last ``round(strength * steps)`` steps are inverted and re-run.
        strength: in (0, 1]; how early in the trajectory the edit starts (1 = from pure noise level).
        guidance_scale: w >= 1 of eps(source) + w (eps(target) - eps(source)); 1 = target prompt alone.
        (Every argument that defaults to ``None`` takes the model domain's value: ``edit_defaults``.)
        mask_mode: "none", "auto" (DiffEdit) or "painted" (give ``mask`` to ``counterfactual``).
        mask_threshold: DiffEdit's binarisation threshold of the clamped, rescaled map (0..1; DiffEdit 0.5);
            the domain's default differs for an edit that only adds.
        mask_draws: noise draws averaged for the automatic mask.
        mask_t: noise level of the automatic mask, as a fraction of the training timesteps.
        change_threshold: 0..1; > 0: inside the mask, keep the input wherever the decoded edit differs
            from the decoded input latent by less than this intensity (see step 5 above); 0: the whole
            mask is taken from the edit. Ignored with mask mode "none". One more VAE decode, no UNet pass.
        residual: True: the result is the input plus the edit's change, input + decode(edited latent) -
            decode(input latent), instead of the decoded edit; it cancels the VAE's round-trip error (its
            decoder smooths fine texture), so pixels the edit leaves alone stay the input's inside the
            mask too. No extra UNet pass (one more decode). An empty edit then returns the input itself.
        seed: seeds the inversion noise; ``None`` draws one (reported in the result).
        batch_size: samples per UNet call during inversion.
        domain_check: check first that the image is like the model's training images (``medviz.guard``; its
            UNet passes are counted apart); the benches, on phantoms, leave it out.
    """

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    target_prompt: str | None = None
    source_prompt: str | None = None
    inversion: str = "edit_friendly"
    steps: int = 30
    strength: float | None = None
    guidance_scale: float | None = None
    mask_mode: str = "auto"
    mask_threshold: float | None = None
    mask_draws: int | None = None
    mask_t: float = 0.5
    change_threshold: float | None = None
    residual: bool = False
    seed: int | None = None
    batch_size: int = 16
    domain_check: bool = True

    def for_domain(self, domain: str | None) -> EditConfig:
        """This request with the domain's defaults (``edit_defaults``) wherever it gave ``None``."""
        defaults = edit_defaults(domain)
        only_adds = bool(self.add) and not self.remove and self.target_prompt is None
        filled = {"strength": defaults.strength, "guidance_scale": defaults.guidance_scale,
                  "mask_draws": defaults.mask_draws, "change_threshold": defaults.change_threshold,
                  "mask_threshold": defaults.add_mask_threshold if only_adds else defaults.mask_threshold}
        return replace(self, **{name: value for name, value in filled.items() if getattr(self, name) is None})

    @property
    def edit_steps(self) -> int:
        """Steps inverted and re-run (the strength must be resolved: ``for_domain``)."""
        return max(1, int(round(self.strength * self.steps)))

    def validate(self, domain: str | None = None) -> None:
        if self.inversion not in INVERSIONS:
            raise ValueError(f"unknown inversion {self.inversion!r}; choose one of {', '.join(INVERSIONS)}")
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f"unknown mask mode {self.mask_mode!r}; choose one of {', '.join(MASK_MODES)}")
        if not 2 <= self.steps <= 1000:
            raise ValueError(f"steps must be 2..1000, got {self.steps}")
        if self.strength is not None and not 0 < self.strength <= 1:
            raise ValueError(f"strength must be in (0, 1], got {self.strength}")
        if self.guidance_scale is not None and self.guidance_scale < 1:
            raise ValueError(f"guidance scale must be >= 1, got {self.guidance_scale}")
        threshold_ok = self.mask_threshold is None or 0 < self.mask_threshold < 1
        if not 0 < self.mask_t < 1 or not threshold_ok or (self.mask_draws is not None and self.mask_draws < 1):
            raise ValueError("mask_t and mask_threshold must lie in (0, 1) and mask_draws >= 1")
        if self.change_threshold is not None and not 0 <= self.change_threshold < 1:
            raise ValueError(f"change_threshold must lie in [0, 1), got {self.change_threshold}")
        both = set(self.add) & set(self.remove)
        if both:
            raise ValueError(f"cannot both add and remove {sorted(both)}")
        if self.target_prompt is not None and not self.target_prompt.strip():
            raise ValueError("the target prompt is empty")
        if domain is not None and (self.add or self.remove):
            allowed = editable(domain)
            unknown = sorted((set(self.add) | set(self.remove)) - set(allowed))
            if unknown:
                raise ValueError(f"cannot edit {unknown} with a {domain!r} model; editable: {', '.join(allowed)}")
        if domain is None and (self.add or self.remove) and self.target_prompt is None:
            raise ValueError("this model has no known domain: give a target prompt instead of add/remove")


@dataclass(frozen=True)
class EditResult:
    """One counterfactual; images at the model's resolution in the I/O contract (same layout as the input)."""

    input: np.ndarray                  # the input as the model saw it (resized), float32 in [0, 1]
    counterfactual: np.ndarray         # float32 in [0, 1]
    difference: np.ndarray             # float32 (H, W), luminance of counterfactual - input, in [-1, 1]
    mask: np.ndarray                   # bool (H, W): where the edit may change pixels (all True: no mask)
    edited: np.ndarray                 # bool (H, W): the pixels taken from the edit: the mask's, or with a
                                       # change threshold only those of them the edit changed
    mask_score: np.ndarray | None      # float32 (H, W) in [0, 1], the automatic mask's map before thresholding
    source_prompt: str
    target_prompt: str
    readout_before: dict | None        # oracle attribute readout (not a diagnosis), None without an oracle
    readout_after: dict | None
    l1_inside: float                   # mean |counterfactual - input| inside / outside the mask (NaN if empty)
    l1_outside: float
    ssim_inside: float                 # mean SSIM map inside / outside the mask (NaN if empty)
    ssim_outside: float
    unet_passes: int                   # sample evaluations: inversion + mask + 2 per edited step
    seconds: float
    seed: int
    parameters: dict
    measured: dict | None = None       # this kind of edit as the counterfactual bench measured it on this model
                                       # (``measured_edit``), None where it was not
    warnings: tuple[str, ...] = ()     # what a user should know first: an image outside the model's domain, an edit
                                       # that did not do what was asked, the bench's shortfalls, an edit that
                                       # changed nothing
    domain_check: DomainCheck | None = None  # None: not run (``EditConfig.domain_check`` False)
    effect: EffectCheck | None = None  # None: nothing to check (no oracle, or a free target prompt)


@dataclass(frozen=True)
class EffectCheck:
    """Did the edited attribute's readout move the way asked? ``passed``: it ends on the asked side of 0.5."""

    attribute: str
    action: str                        # "add" or "remove"
    before: float
    after: float
    passed: bool
    verdict: str                       # one plain sentence

    def record(self) -> dict:
        return {"attribute": self.attribute, "action": self.action, "before": round(self.before, 4),
                "after": round(self.after, 4), "passed": self.passed, "verdict": self.verdict}


#: A readout change smaller than this is "did not move" (the oracle's readouts of one image vary by less).
EFFECT_MOVE = 0.1


def effect_check(config: EditConfig, before: dict | None, after: dict | None) -> EffectCheck | None:
    """The effect check of a one-attribute add/remove edit (None: a free prompt, several attributes, no oracle)."""
    edits = [(name, "add") for name in config.add] + [(name, "remove") for name in config.remove]
    if config.target_prompt is not None or len(edits) != 1 or before is None or edits[0][0] not in before:
        return None
    (name, action), sign = edits[0], 1 if edits[0][1] == "add" else -1
    start, end = float(before[name]), float(after[name])
    moved = sign * (end - start)
    passed = end >= 0.5 if action == "add" else end < 0.5
    reading = f"the {name} readout went from {start:.2f} to {end:.2f}"
    if passed and (start >= 0.5) == (action == "add"):
        verdict = f"Nothing to {action}: {reading}; it already read {'present' if action == 'add' else 'absent'}."
    elif passed:
        verdict = f"The edit did what was asked: {reading}."
    elif moved <= -EFFECT_MOVE:
        verdict = f"The edit moved the other way: {reading}, the opposite of {action}."
    elif moved < EFFECT_MOVE:
        verdict = f"The edit did not {action} {name}: {reading}."
    else:
        verdict = f"The edit only partly did what was asked: {reading}, not past 0.5."
    return EffectCheck(name, action, start, end, passed, verdict)


def measured_edit(card: dict, config: EditConfig) -> dict | None:
    """The model card's counterfactual-bench record of the edit ``config`` asks for, or None.

    A record (medviz.json ``edit_bench``, written by ``python -m medviz.bench counterfactual --write-card``)
    holds for an add/remove request of one of its ``attributes`` with no free target prompt. The returned copy
    adds ``edit`` (the bench's name for it), ``differences`` ({setting: (measured at, this request)} wherever
    ``config``, resolved for the model's domain, differs from the settings the figures hold for),
    ``same_settings`` (no differences) and ``warnings`` (one sentence naming every bar the edit misses, or none).
    """
    names = config.add or config.remove
    if config.target_prompt is not None or len(names) != 1 or (config.add and config.remove):
        return None
    record = edit_record(card, "add" if config.add else "remove", names[0])
    if record is None:
        return None
    differences = setting_differences(record.settings, config)
    return {**record.figures, "edit": record.edit, "phrase": edit_phrase(record.figures, (card or {}).get("domain")),
            "differences": differences, "same_settings": not differences, "warnings": _shortfalls(record.figures)}


#: What a benched edit that misses a bar does.
EDIT_SHORTFALLS = {"effectiveness": "often fails to make the change",
                   "preservation_all": "often changes other attributes too",
                   "faithfulness": "rarely looks like this image's true counterfactual"}


def _shortfalls(record: dict) -> list[str]:
    """['On this model this edit often fails to make the change and ...'] for the bars a record misses; [] for none."""
    failed = [EDIT_SHORTFALLS[name] for name, met in record.get("meets", {}).items() if not met]
    if not failed:
        return []
    listed = failed[0] if len(failed) == 1 else ", ".join(failed[:-1]) + " and " + failed[-1]
    return [f"On this model this edit {listed}."]


def edit_prompts(domain: str | None, readout: dict | None, config: EditConfig) -> tuple[str, str]:
    """(source, target) prompts of an edit: from the user's text or from the oracle readout.

    The source is the caption of what the oracle reads; the target switches the requested attributes,
    removed ones named after "no" as in the training captions. Kinds follow their parent: no support
    devices means no device kind, a device kind means support devices, removing devices removes every kind.
    Adding the generic attribute names no kind: the model picks (its card: mostly tubes).
    """
    if config.source_prompt and config.target_prompt:
        return config.source_prompt, config.target_prompt
    if domain is None or readout is None:
        if config.source_prompt is None or config.target_prompt is None:
            raise ValueError("this model has no oracle to read what the image shows: type the source prompt as well as "
                             "the target prompt")
    vocabulary = domains.get(domain)
    parents = [a.name for a in vocabulary.attributes if vocabulary.kinds(a.name)]
    present = {k: v > 0.5 for k, v in (readout or {}).items()}
    for parent in parents:
        if present.get(parent) is False:
            present.update({kind: False for kind in vocabulary.kinds(parent)})
    source = config.source_prompt or describe(domain, present)
    if config.target_prompt:
        return source, config.target_prompt
    target = dict(present)
    negated = list(config.remove)
    for name in config.add:
        target[name] = True
    for name in config.remove:
        target[name] = False
        target.update({kind: False for kind in vocabulary.kinds(name)})
    for parent in parents:
        if any(target.get(kind) for kind in vocabulary.kinds(parent)):
            target[parent] = True
    return source, describe(domain, target, negated=negated)


def counterfactual(model, image: np.ndarray, config: EditConfig, mask: np.ndarray | None = None,
                   progress: Progress = None, should_stop: ShouldStop = None) -> EditResult:
    """Edit ``image`` as ``config`` asks.

    Args:
        model: a ``medviz.models.Model``.
        image: float32 (H, W) or (H, W, 3) in [0, 1] (the I/O contract); resized to the model's size.
        mask: painted mask (mask_mode "painted"), bool or float (H', W'), any size; True = may change.
        progress: ``progress(done, total)`` per UNet call group; should_stop: polled at every step.
    """
    import torch

    config.validate(model.domain)
    config = config.for_domain(model.domain)
    if config.mask_mode == "painted" and (mask is None or not np.asarray(mask).any()):
        raise ValueError("painted mask mode: paint the region to edit first (the mask is empty)")
    pipe = model.pipe
    size = model.image_size
    seed = new_seed() if config.seed is None else int(config.seed)
    tic = time.perf_counter()
    checked = check_domain(model, image) if config.domain_check else None
    rgb = model_rgb(image, size)
    readout_before = model.oracle.readout_dicts([rgb])[0] if model.oracle is not None else None
    source, target = edit_prompts(model.domain, readout_before, config)

    n_edit = config.edit_steps
    auto_mask = config.mask_mode == "auto"
    mask_calls = 0 if not auto_mask else (config.mask_draws if config.inversion == "ddim" else 1)
    control = StepControl(total=n_edit * 2 + mask_calls, progress=progress, should_stop=should_stop)
    control.check()
    device, dtype = pipe._execution_device, pipe.unet.dtype
    x0 = encode_rgb(pipe, rgb).to(dtype)  # (1, C, h, w)
    embeds = encode_prompts(pipe, [source, target]).to(dtype)  # (2, T, D), once
    scheduler = make_scheduler("DDIM", pipe.scheduler.config, config.steps, pipe._execution_device)
    timesteps = scheduler.timesteps[config.steps - n_edit :]  # descending, the edited part

    if config.inversion == "edit_friendly":
        trajectory, noise_maps, score, passes = _edit_friendly_inversion(
            pipe, scheduler, x0, timesteps, embeds, config, seed, auto_mask, control)
    else:
        trajectory, passes = _ddim_inversion(pipe, x0, config.steps, n_edit, embeds[:1], control)
        noise_maps, score = None, None
        if auto_mask:
            score, mask_passes = _diffedit_score(pipe, scheduler, x0, embeds, config, seed, control)
            passes += mask_passes

    latent_mask, pixel_mask, mask_score = _masks(config, score, mask, x0.shape[-1], size, device)
    if latent_mask is not None:
        latent_mask = latent_mask.to(dtype)                  # fp16 on a GPU: keep the latents in the UNet's dtype

    # The edit: DDPM (eta = 1) with the inversion's noise maps, or DDIM (eta = 0), from the inverted latent.
    latents = trajectory[0].clone()
    for i, t in enumerate(timesteps):
        control.check()
        with torch.no_grad():
            eps_source, eps_target = pipe.unet(latents.expand(2, -1, -1, -1), t,
                                               encoder_hidden_states=embeds).sample.chunk(2)
        passes += 2
        eps = eps_source + config.guidance_scale * (eps_target - eps_source)
        if noise_maps is not None:
            latents = _ddpm_mean(scheduler, eps, t, latents) + noise_maps[i]
        else:
            latents = scheduler.step(eps, t, latents, eta=0.0).prev_sample
        if latent_mask is not None:                       # DiffEdit sec. 3.2: keep the input's own path outside
            latents = latent_mask * latents + (1 - latent_mask) * trajectory[i + 1]
        control.step()

    decoded = decode_latents(pipe, latents)[0]                                 # (size, size, 3)
    restrict = bool(config.change_threshold) and latent_mask is not None
    reference = decode_latents(pipe, x0)[0] if config.residual or restrict else None    # the input latent, decoded
    decoded, edited = composite(decoded, rgb, pixel_mask if latent_mask is not None else None, reference, config)
    edited = pixel_mask if edited is None else edited             # no mask: every pixel is the edit's
    readout_after = model.oracle.readout_dicts([decoded])[0] if model.oracle is not None else None
    gray_input = np.asarray(image).ndim == 2
    shown_input = channel_mean(rgb) if gray_input else rgb
    shown_output = channel_mean(decoded) if gray_input else decoded
    difference = (channel_mean(decoded) - channel_mean(rgb)).astype(np.float32)
    l1_in, l1_out, ssim_in, ssim_out = change_metrics(rgb, decoded, pixel_mask)
    effect = effect_check(config, readout_before, readout_after)
    parameters = {
        **asdict(config),
        "seed": seed,
        "source_prompt": source,
        "target_prompt": target,
        "model": model.name,
        "engine": "counterfactual",
        "image_size": size,
        "input_size": list(np.asarray(image).shape[:2]),
        "domain_check": checked.record() if checked else None,
        "effect_check": effect.record() if effect else None,
    }
    measured = measured_edit(model.card, config)
    warnings = [checked.warning] if checked is not None and checked.warning else []
    if effect is not None and not effect.passed:
        warnings.append(effect.verdict)
    warnings += list((measured or {}).get("warnings", ()))
    if restrict and not edited.any():
        warnings.append(
            f"The edit changed no pixel by more than the change threshold {config.change_threshold:g}: the "
            "result is the input; try a higher guidance or strength, or a lower threshold."
        )
    return EditResult(
        input=np.ascontiguousarray(shown_input, np.float32),
        counterfactual=np.ascontiguousarray(shown_output, np.float32),
        difference=difference,
        mask=pixel_mask,
        edited=edited,
        mask_score=mask_score,
        source_prompt=source,
        target_prompt=target,
        readout_before=readout_before,
        readout_after=readout_after,
        l1_inside=l1_in,
        l1_outside=l1_out,
        ssim_inside=ssim_in,
        ssim_outside=ssim_out,
        unet_passes=passes,
        seconds=time.perf_counter() - tic,
        seed=seed,
        parameters=parameters,
        measured=measured,
        warnings=tuple(warnings),
        domain_check=checked,
        effect=effect,
    )


def _ddpm_mean(scheduler, eps, t, latents):
    """mu_t(x_t): the DDIM eta = 1 (= DDPM posterior) update without its noise term."""
    import torch

    return scheduler.step(eps, t, latents, eta=1.0, variance_noise=torch.zeros_like(latents)).prev_sample


def _edit_friendly_inversion(pipe, scheduler, x0, timesteps, embeds, config: EditConfig, seed: int,
                             auto_mask: bool, control: StepControl):
    """Noisy copies (eq. 6) and noise maps sigma_t z_t (eq. 7); optionally DiffEdit's map from the same calls.

    Returns (trajectory [x_t0, ..., x_0] of n_edit + 1 latents, the noise maps times sigma_t, the mask
    score map or None, UNet passes).
    """
    import torch

    n_edit = len(timesteps)
    generator = torch.Generator("cpu").manual_seed(seed)
    noise = torch.randn((n_edit, *x0.shape[1:]), generator=generator).to(device=x0.device, dtype=torch.float32)
    copies = forward_noise(scheduler.alphas_cumprod, x0, noise, timesteps)  # eq. 6
    trajectory = torch.cat([copies, x0])  # x_{t_0} .. x_{t_last}, x_0
    # DiffEdit's draws: the copies whose t is nearest to mask_t * T also get the target prompt.
    train_t = scheduler.config.num_train_timesteps
    order = np.argsort(np.abs(timesteps.cpu().numpy() - config.mask_t * train_t), kind="stable")
    mask_rows = set(order[: config.mask_draws].tolist()) if auto_mask else set()
    eps_source = torch.empty_like(copies)
    differences = []
    passes = 0
    for start in range(0, n_edit, config.batch_size):
        rows = list(range(start, min(start + config.batch_size, n_edit)))
        extra = [r for r in rows if r in mask_rows]
        batch = torch.cat([copies[rows], copies[extra]])
        t = torch.cat([timesteps[rows], timesteps[extra]])
        hidden = torch.cat([embeds[:1].expand(len(rows), -1, -1), embeds[1:].expand(len(extra), -1, -1)])
        with torch.no_grad():
            predicted = pipe.unet(batch, t, encoder_hidden_states=hidden).sample
        passes += len(batch)
        eps_source[rows] = predicted[: len(rows)]
        for k, r in enumerate(extra):
            differences.append((predicted[len(rows) + k] - eps_source[r]).abs().float().mean(0))
        control.check()
    # Eq. 7 times sigma_t: sigma_t z_t = x_{t-1} - mu_t(x_t), so that mu_t + sigma_t z_t lands on x_{t-1}.
    means = torch.cat([_ddpm_mean(scheduler, eps_source[i:i + 1], t, copies[i:i + 1]) for i, t in enumerate(timesteps)])
    maps = trajectory[1:] - means
    control.step(n_edit)
    if auto_mask:
        control.step()
    score = torch.stack(differences).mean(0) if differences else None
    return trajectory, maps, score, passes


def _ddim_inversion(pipe, x0, steps: int, n_edit: int, source_embeds, control: StepControl):
    """DDIM inversion under the source prompt (diffusers' ``DDIMInverseScheduler``), first ``n_edit`` steps.

    Returns (trajectory [x_{t_0}, ..., x_0] in the sampler's (descending) order, UNet passes).
    """
    import torch

    inverse = make_scheduler("DDIM inverse", pipe.scheduler.config, steps, pipe._execution_device)
    latents = x0
    path = [x0]
    for t in inverse.timesteps[:n_edit]:
        control.check()
        with torch.no_grad():
            eps = pipe.unet(latents, t, encoder_hidden_states=source_embeds).sample
        latents = inverse.step(eps, t, latents).prev_sample
        path.append(latents)
        control.step()
    return torch.cat(path[::-1]), n_edit


def _diffedit_score(pipe, scheduler, x0, embeds, config: EditConfig, seed: int, control: StepControl):
    """DiffEdit's map from fresh draws at t = mask_t T: mean |eps(target) - eps(source)| over draws and channels."""
    import torch

    t = scheduler.timesteps[int(np.argmin(np.abs(scheduler.timesteps.cpu().numpy() -
                                                 config.mask_t * scheduler.config.num_train_timesteps)))]
    generator = torch.Generator("cpu").manual_seed(seed + 1)
    noise = torch.randn((config.mask_draws, *x0.shape[1:]), generator=generator).to(x0.device, x0.dtype)
    noisy = scheduler.add_noise(x0.expand_as(noise), noise, t.expand(config.mask_draws))
    total = torch.zeros(x0.shape[-2:], device=x0.device)
    for start in range(0, config.mask_draws, max(1, config.batch_size // 2)):
        chunk = noisy[start:start + max(1, config.batch_size // 2)]
        n = len(chunk)
        with torch.no_grad():
            eps = pipe.unet(chunk.repeat(2, 1, 1, 1), t, encoder_hidden_states=embeds.repeat_interleave(n, 0)).sample
        total += (eps[n:] - eps[:n]).abs().float().mean(1).sum(0)
        control.step(n)
    return total / config.mask_draws, 2 * config.mask_draws


def _masks(config: EditConfig, score, painted, latent_size: int, size: int, device):
    """(latent mask tensor or None, pixel mask bool (all True without a mask), score map or None)."""
    import torch
    import torch.nn.functional as F

    if config.mask_mode == "none":
        return None, np.ones((size, size), bool), None
    if config.mask_mode == "auto":
        from scipy.ndimage import binary_dilation, gaussian_filter

        # DiffEdit as diffusers (clamp at 3x the mean, rescale to [0, 1], threshold), after smoothing the
        # map over one latent cell and then dilating the mask by one cell: ten draws leave a speckled
        # map, and thin structures (lines, tubes) otherwise keep a residue just outside the mask.
        # In latent cells: one at the bundled models' 32-cell latents, as many more as a latent is larger (SD 1.5: 2).
        cells = latent_cells(latent_size)
        smooth = gaussian_filter(score.float().cpu().numpy(), sigma=float(cells))
        scaled = np.clip(smooth / (3.0 * max(float(smooth.mean()), 1e-12)), 0.0, 1.0)   # identical prompts: all 0
        latent_np = binary_dilation(scaled > config.mask_threshold, iterations=cells)
        latent = torch.from_numpy(latent_np.astype(np.float32))
        pixel = F.interpolate(latent[None, None], size=(size, size), mode="nearest")[0, 0].numpy() > 0.5
        mask_score = (
            F.interpolate(
                torch.from_numpy(scaled.astype(np.float32))[None, None],
                size=(size, size),
                mode="bilinear",
                align_corners=False,
            )[0, 0]
            .numpy()
            .astype(np.float32)
        )
    else:
        from PIL import Image

        user = np.asarray(painted, dtype=np.float32)
        user = user if user.ndim == 2 else user.max(-1)
        pixel = (
            np.asarray(Image.fromarray((user > 0.5).astype(np.uint8) * 255).resize((size, size), Image.NEAREST)) > 127
        )
        # A latent cell is edited when any of its pixels is painted.
        latent = F.adaptive_max_pool2d(torch.from_numpy(pixel.astype(np.float32))[None, None], latent_size)[0, 0]
        mask_score = None
    return latent.to(device)[None, None], pixel, mask_score


def composite(decoded: np.ndarray, rgb: np.ndarray, pixel_mask: np.ndarray | None, reference: np.ndarray | None,
              config: EditConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """Steps 4-5: put the decoded edit into the input.

    Args:
        decoded: the decoded edited latents, float (H, W, 3) in [0, 1].
        rgb: the input at the model's size, float (H, W, 3) in [0, 1].
        pixel_mask: bool (H, W), True where the edit may change the input; None: no mask, the whole decode.
        reference: the decoded input latent (H, W, 3); needed for ``config.residual`` or a change threshold.
        config: ``change_threshold`` and ``residual`` as resolved for the domain.

    Returns:
        (the result, float32 (H, W, 3) in [0, 1]; the pixels taken from the edit, bool (H, W), or None
        without a mask).
    """
    restrict = bool(config.change_threshold) and pixel_mask is not None
    edited = pixel_mask
    if restrict:                            # step 5: only the pixels the edit redrew
        edited = _changed_pixels(decoded, reference, pixel_mask, config.change_threshold)
    if config.residual:                     # only the edit's change, added to the input's own pixels
        decoded = rgb + (decoded - reference)
    if pixel_mask is not None:
        # The seam: 4 px at 128 px inside a mask of latent cells, 2 px inside the pixels the edit changed.
        mask_ramp, changed_ramp = seam_ramps(rgb.shape[0])
        weight = _feather(edited, ramp=changed_ramp if restrict else mask_ramp)[..., None]
        decoded = weight * decoded + (1 - weight) * rgb
    return np.clip(decoded, 0.0, 1.0).astype(np.float32), edited


def latent_cells(latent_size: int) -> int:
    """The automatic mask's smoothing and dilation, in latent cells: one per 32 cells of latent side (at least one),
    so that in pixels they scale with the image as every other pixel setting does (``pixel_settings``)."""
    return max(1, round(latent_size / 32))


def seam_ramps(size: int) -> tuple[float, float]:
    """The composite's seam, px: (inside a mask of latent cells, inside the pixels the edit changed): 4 and 2 at
    128 px."""
    return size / 32, size / 64


def change_reach(size: int) -> tuple[float, int]:
    """The change threshold's smoothing sigma and dilation, px: 1 and 1 at 128 px."""
    scale = size / 128
    return scale, max(1, round(scale))


def pixel_settings(size: int, latent_size: int) -> dict[str, float]:
    """Every edit setting measured in pixels, at an image side of ``size`` px with ``latent_size`` latent cells, as
    the engine uses them: each is a fixed share of the image side (the bundled models' value at 128 px, scaled)."""
    (mask_ramp, changed_ramp), (sigma, reach) = seam_ramps(size), change_reach(size)
    return {"mask_dilation_px": latent_cells(latent_size) * size / latent_size, "seam_ramp_mask_px": mask_ramp,
            "seam_ramp_changed_px": changed_ramp, "change_smoothing_sigma_px": sigma, "change_dilation_px": reach}


def _feather(pixel: np.ndarray, ramp: float) -> np.ndarray:
    """Composite weight of a bool mask: 0 outside (those pixels stay exactly the input's), rising
    linearly over the first ``ramp`` pixels inside (at least 1), so the edit meets the input without a seam."""
    from scipy.ndimage import distance_transform_edt

    return np.clip(distance_transform_edt(pixel) / max(1.0, ramp), 0.0, 1.0).astype(np.float32)


def _changed_pixels(edited: np.ndarray, reference: np.ndarray, mask: np.ndarray, threshold: float) -> np.ndarray:
    """The pixels of ``mask`` (bool (H, W)) where the decoded edit (H, W, 3) differs from the decoded input
    latent by more than ``threshold``: the largest channel change, smoothed over ~1 px at 128 px (a
    Gaussian of sigma H/128, so that the decoder's pixel noise does not speckle it), then dilated by as
    much, so that the edge of a removed structure is inside."""
    from scipy.ndimage import binary_dilation, gaussian_filter

    sigma, reach = change_reach(edited.shape[0])
    change = gaussian_filter(np.abs(edited - reference).max(-1), sigma=sigma)
    return binary_dilation(change > threshold, iterations=reach) & mask


def channel_mean(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) mean of the channels (the luminance the edit metrics use); (H, W) unchanged.

    The plain mean, not BT.601 luma: for X-rays stored as equal RGB channels both agree exactly.
    """
    return image.mean(-1) if image.ndim == 3 else image


def change_metrics(before: np.ndarray, after: np.ndarray, mask: np.ndarray) -> tuple[float, float, float, float]:
    """(L1 inside, L1 outside, SSIM inside, SSIM outside) of two images in [0, 1] over a bool mask.

    L1 is the mean absolute difference of the luminance; SSIM is scikit-image's SSIM map (Wang et al.
    2004, 7x7 window) averaged over the region. NaN for an empty region.
    """
    from skimage.metrics import structural_similarity

    a = channel_mean(np.asarray(before, np.float32))
    b = channel_mean(np.asarray(after, np.float32))
    _, ssim_map = structural_similarity(a, b, data_range=1.0, full=True)
    absolute = np.abs(a - b)

    def region(values: np.ndarray, where: np.ndarray) -> float:
        return float(values[where].mean()) if where.any() else float("nan")

    return region(absolute, mask), region(absolute, ~mask), region(ssim_map, mask), region(ssim_map, ~mask)
