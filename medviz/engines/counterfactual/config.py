"""The edit's request (``EditConfig``, resolved per domain by ``EditDefaults``) and its result (``EditResult``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ... import domains

if TYPE_CHECKING:
    from ..guard import DomainCheck
    from .effect import EffectCheck

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
            from the decoded input latent by less than this intensity (``composite``); 0: the whole
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
