"""Generate: prompt-guided synthesis through the stock ``StableDiffusionPipeline``.

Nothing of the pipeline is re-implemented: the engine only picks the scheduler (by name, from the
model's own scheduler config), draws one CPU generator per image (A1111 convention: image ``i`` of a
batch has seed ``seed + i``, so any single image can be regenerated alone), reports progress through
``callback_on_step_end`` and interrupts by raising from it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from .. import backends, domains
from ..card import prompt_bench
from ..prompts import prompt_attributes
from .common import Progress, ShouldStop, StepControl, make_scheduler, new_seed, setting_differences


@dataclass(frozen=True)
class GenerateConfig:
    """What to generate.

    Args:
        prompt: the text condition, e.g. "Chest X-ray showing pleural effusion".
        negative_prompt: what classifier-free guidance steers away from ("" = unconditional).
        batch_size: images per call, 1..16.
        seed: ``None`` draws a random seed (reported in the result); a fixed seed with the same
            parameters gives bit-identical images on the same machine and library versions. Image
            ``i`` uses seed ``seed + i``; regenerated alone (batch 1) it matches to float rounding
            (~1e-5), since batched convolutions round differently.
        steps: denoising steps, 1..200.
        guidance_scale: classifier-free guidance weight w (eps = eps_u + w (eps_c - eps_u)); 1 = off.
        scheduler: "DDIM", "DPM-Solver++" or "Euler ancestral".
        preview: run in bfloat16 where the CPU has AMX tiles (``medviz.backends``): ~2.9x faster per guided step
            at 512 px, approximate; the result says so.
    """

    prompt: str
    negative_prompt: str = ""
    batch_size: int = 4
    seed: int | None = None
    steps: int = 25
    guidance_scale: float = 4.0
    scheduler: str = "DDIM"
    preview: bool = False

    def validate(self) -> None:
        if not 1 <= self.batch_size <= 16:
            raise ValueError(f"batch size must be 1..16, got {self.batch_size}")
        if not 1 <= self.steps <= 200:
            raise ValueError(f"steps must be 1..200, got {self.steps}")
        if not 0.0 <= self.guidance_scale <= 30.0:
            raise ValueError(f"guidance scale must be 0..30, got {self.guidance_scale}")
        if self.seed is not None and not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be 0..4294967295, got {self.seed}")


@dataclass(frozen=True)
class GenerateResult:
    """images: float32 (H, W, 3) in [0, 1], one per seed; parameters: everything to reproduce them."""

    images: list[np.ndarray]
    seeds: list[int]
    parameters: dict
    seconds: float
    readouts: list[dict[str, float]] | None = None     # oracle attribute readout per image, if any
    unet_passes: int = 0                                # UNet evaluations per image (x2 batch with CFG)
    measured: dict | None = None                        # the card's prompt figures for the attributes named
                                                        # (``measured_prompt``), None where it has none
    warnings: tuple[str, ...] = ()                      # what a user should know first (a prompt below a bar)

    def image_parameters(self, index: int) -> dict:
        """Parameters of image ``index`` alone (its own seed, batch size 1): what a PNG should carry."""
        return {**self.parameters, "seed": self.seeds[index], "batch_size": 1, "batch_index": index}


def measured_prompt(card: dict, domain: str | None, config: GenerateConfig) -> dict | None:
    """The model card's prompt-fidelity rows for the attributes ``config.prompt`` names, or None.

    The rows (medviz.json ``models_bench``, written by ``python -m medviz.bench models --write-card``) hold
    each attribute asked for ("with hair") and negated ("no hair") in one bench prompt. A row applies to an
    attribute this prompt names the same way; the rest of the prompt may differ from the bench's, so the row
    says how often the model drew that attribute under the bench's prompt, not under this one.

    Returns None for a card without the record or a model of unknown domain; otherwise ``rows`` (the applying
    rows, each with ``meets``, and ``phrase``: the attribute as asked, "hair", "no hair", "male"), ``unmeasured``
    (attributes named that no row covers, e.g. a device kind), ``warnings`` (a sentence on the rows below a bar),
    ``differences`` ({setting: (measured at, this run)} for steps, guidance scale, scheduler and negative
    prompt), ``same_settings``, and the record's ``n``, ``bars`` and ``date``.
    """
    record = prompt_bench(card)
    if record is None or domains.find(domain) is None:
        return None
    named = prompt_attributes(config.prompt, domain)
    vocabulary = domains.get(domain)
    rows, unmeasured, shortfalls = [], [], []
    bars = record.bars
    for attribute, wanted in named.items():
        asked = vocabulary.attribute(attribute)
        row = next((r for r in record.rows if r["attribute"] == attribute and r["wanted"] == wanted), None)
        if row is None:
            unmeasured.append(asked.phrase)
            continue
        phrase = asked.phrase if wanted else asked.absent_phrase
        rows.append({**row, "phrase": phrase})
        if row["agreement"] < bars["agreement"]:
            # A head attribute's absence is a thing drawn too ("male"); a listed one's is a thing left out.
            shortfalls.append(
                f"asked for {phrase}, it drew it in only {row['agreement']:.0%} of samples"
                if wanted or asked.absent is not None
                else f"asked for {phrase}, it still drew {asked.phrase} in {1 - row['agreement']:.0%} of samples"
            )
        if row["diversity_ratio"] < bars["diversity_ratio"]:
            shortfalls.append(
                f"asked for {phrase}, its samples were much alike (diversity {row['diversity_ratio']:.2f} "
                "of the phantoms')"
            )
    differences = setting_differences(record.settings, config)
    warnings = [f"On this model, {'; '.join(shortfalls)}."] if shortfalls else []
    return {
        "rows": rows,
        "unmeasured": unmeasured,
        "warnings": warnings,
        "differences": differences,
        "same_settings": not differences,
        "n": record.n,
        "bars": record.bars,
        "date": record.date,
    }


def generate(
    model, config: GenerateConfig, progress: Progress = None, should_stop: ShouldStop = None
) -> GenerateResult:
    """Run the stock pipeline with ``config``.

    Args:
        model: a ``medviz.models.Model`` (pipeline, optional oracle).
        config: see ``GenerateConfig``.
        progress: called as ``progress(step, steps)`` after every denoising step.
        should_stop: polled after every step; returning True raises ``Interrupted``.
    """
    import torch
    from diffusers import StableDiffusionPipeline

    config.validate()
    seed = new_seed() if config.seed is None else int(config.seed)
    seeds = [(seed + i) % 2**32 for i in range(config.batch_size)]
    pipe = model.pipe
    scheduler = make_scheduler(config.scheduler, pipe.scheduler.config)
    # A view of the same modules with its own scheduler: the shared model is never mutated.
    runner = StableDiffusionPipeline(**{**pipe.components, "scheduler": scheduler}, requires_safety_checker=False)
    runner.set_progress_bar_config(disable=True)
    control = StepControl(total=config.steps, progress=progress, should_stop=should_stop)
    control.check()
    size = model.image_size
    route, note = (backends.preview_route(pipe.device.type, pipe.unet.config.sample_size) if config.preview
                   else ("eager", ""))
    tic = time.perf_counter()
    with torch.no_grad(), backends.running(route, pipe.unet):
        output = runner(
            prompt=[config.prompt] * config.batch_size,
            negative_prompt=[config.negative_prompt] * config.batch_size,
            num_inference_steps=config.steps, guidance_scale=config.guidance_scale, height=size, width=size,
            generator=[torch.Generator("cpu").manual_seed(s) for s in seeds], output_type="np",
            callback_on_step_end=control.diffusers_callback())
    seconds = time.perf_counter() - tic
    images = [np.ascontiguousarray(np.clip(im, 0.0, 1.0), dtype=np.float32) for im in output.images]
    parameters = {**asdict(config), "seed": seed, "size": size, "model": model.name,
                  "sampler": config.scheduler, "engine": "generate", "route": route}
    readouts = model.oracle.readout_dicts(images) if model.oracle is not None else None
    passes = config.steps * (2 if config.guidance_scale > 1 else 1)
    measured = measured_prompt(model.card, model.domain, config)
    warnings = (note,) * bool(note) + tuple((measured or {}).get("warnings", ()))
    return GenerateResult(images=images, seeds=seeds, parameters=parameters, seconds=seconds, readouts=readouts,
                          unet_passes=passes, measured=measured, warnings=warnings)
