"""Counterfactual-edit bench on held-out phantoms, against the true counterfactuals of the phantom SCM.

Per edit type (``EDITS``: the add and the remove of every editable attribute; a device kind is added to a
phantom without devices, and devices are removed all at once, as the Edit tab offers them) on ``n`` held-out
phantoms for which the edit makes sense (no effusion to add one, ...):
* effectiveness: the oracle reads the target attribute as asked on the counterfactual;
* preservation: every other factor attribute keeps the oracle label it had on the input;
* faithfulness: L1(counterfactual, true counterfactual) < L1(input, true counterfactual), where the true
  counterfactual is the SCM's do(target) with the same exogenous noise and render seed, the edit's other
  attributes held (the edit asks to change one attribute and keep the rest: the effusion -> devices and
  melanoma -> ruler links are not followed); the automatic mask's IoU with the true changed region, and
  that of the pixels taken from the edit (the mask narrowed to what the edit changed, ``change_threshold``);
* faithfulness ceilings, what no edit of this kind can beat: (a) the true counterfactual put through the
  model's own VAE and the engine's composite under a perfect mask (the edit a perfect UNet would make);
  (b) for edits whose true counterfactual depends on render noise the input does not show (where the
  added devices' paths wander), the SCM's own rendering under fresh draws of that noise;
* where an unfaithful edit goes wrong: "faithful near the truth" scores the counterfactual with every pixel
  farther than ``NEAR_TRUTH_PX`` (at 128 px) from the true changed region put back to the input. High
  beside a low "faithful": the edit changes what it should not (other devices, the lesion under a mask);
  low too: the edit draws the target itself wrongly (a tube wider than the true one and beside it);
* reconstruction, on ``n_reconstruction`` images per domain: the empty edit's PSNR against the VAE round
  trip of the input;
* cost, on the first ``n_cost`` images per edit type: the engine beside a plain DDIM-inversion edit
  (DDIM inversion, no mask), UNet passes and wall time side by side.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import domains
from ..engines.common import decode_latents, encode_image, encode_rgb, model_rgb
from ..engines.counterfactual import EditConfig, composite, counterfactual
from ..metrics import channel_mean, psnr
from ..models import load_model, resolve
from ..phantoms import get_domain, mask_between
from ..phantoms.cxr import DEVICES
from ..phantoms.render import redrawn
from ..train.data import render_phantoms
from ..train.oracle import HELD_OUT_FIRST_SEED
from .cards import record_edit_bench
from .cli import add_common, write_json
from .figures import save_edit_figure
from .truth import switch

_ENGINE = EditConfig()

_EFFUSION = ("effusion", "effusion_severity")
#: name -> (domain, "add"/"remove", attribute, SCM factors held at their values: the planted link (effusion ->
#: devices, melanoma -> ruler) and cardiomegaly -> effusion are not followed: an edit changes one attribute).
EDITS = {
    "add pleural effusion": ("cxr", "add", "pleural_effusion", ("support_devices", "devices")),
    "remove pleural effusion": ("cxr", "remove", "pleural_effusion", ("support_devices", "devices")),
    "add cardiomegaly": ("cxr", "add", "cardiomegaly", (*_EFFUSION, "support_devices", "devices")),
    "remove cardiomegaly": ("cxr", "remove", "cardiomegaly", (*_EFFUSION, "support_devices", "devices")),
    "add support devices": ("cxr", "add", "support_devices", ()),    # the request names the devices
    "remove support devices": ("cxr", "remove", "support_devices", ()),
    **{f"add {kind}": ("cxr", "add", kind, ()) for kind in DEVICES},  # to phantoms without devices
    "add ruler": ("skin", "add", "ruler", ()),
    "remove ruler": ("skin", "remove", "ruler", ()),
    "add hair": ("skin", "add", "hair", ()),
    "remove hair": ("skin", "remove", "hair", ()),
    "add ink": ("skin", "add", "ink", ()),
    "remove ink": ("skin", "remove", "ink", ()),
    "add gel bubbles": ("skin", "add", "gel_bubbles", ()),
    "remove gel bubbles": ("skin", "remove", "gel_bubbles", ()),
    "add vignette": ("skin", "add", "vignette", ()),
    "remove vignette": ("skin", "remove", "vignette", ()),
    "add melanoma": ("skin", "add", "melanoma", ("ruler",)),
    "remove melanoma": ("skin", "remove", "melanoma", ("ruler",)),
}
#: edit -> the render components whose noise its input does not show: where an added device's path wanders,
#: where the added hair, ink marks and bubbles lie, which edge the ruler takes (the devices themselves are named in
#: the request). Every other edit's true counterfactual is fixed by noise the input shows: added effusion has a
#: set side and severity and no render noise; a melanoma grows from the nevus's own lesion noise, a heart from its
#: own outline; a vignette has none; a removal only takes away.
UNSEEN_RENDER_NOISE = {"add support devices": tuple(f"device-{name}" for name in DEVICES),
                       **{f"add {kind}": (f"device-{kind}",) for kind in DEVICES},
                       "add ruler": ("ruler",), "add hair": ("hair",), "add ink": ("ink",),
                       "add gel bubbles": ("bubbles",)}
NEAR_TRUTH_PX = 2                    # "near the truth": within this many pixels (at 128 px) of the true change
#: The issue's acceptance bars (a model card says whether each benched edit meets them).
BARS = {"effectiveness": 0.9, "preservation_all": 0.95, "faithfulness": 0.8}
#: The engine settings a card record keeps (``card_record``): what the measured figures hold for.
RECORDED_SETTINGS = ("steps", "strength", "guidance_scale", "mask_mode", "mask_threshold", "mask_draws",
                     "change_threshold")
CEILING_DRAWS = 8                    # fresh draws of that noise per phantom
FIRST_SEED_OFFSET = 300_000          # held-out seeds, disjoint from the oracle's, the tuning and classify sets
TUNING_SEED_OFFSET = 950_000         # edit tuning phantoms (seeds 10,950,000+): choosing defaults, never the bench


@dataclass(frozen=True)
class CounterfactualBenchConfig:
    edits: tuple[str, ...] = tuple(EDITS)
    n: int = 100
    n_reconstruction: int = 100
    n_cost: int = 10
    # The engine's defaults unless a sweep asks otherwise; None: the engine's value for the model's domain
    # (``edit_defaults``; the mask threshold also depends on whether the edit only adds).
    steps: int = _ENGINE.steps
    strength: float | None = _ENGINE.strength
    guidance_scale: float | None = _ENGINE.guidance_scale
    mask_mode: str = _ENGINE.mask_mode
    mask_threshold: float | None = _ENGINE.mask_threshold
    mask_draws: int | None = _ENGINE.mask_draws
    change_threshold: float | None = _ENGINE.change_threshold
    residual: bool = _ENGINE.residual
    seed: int = 0
    tuning: bool = False             # True: the tuning phantoms instead of the held-out bench set
    model: str | None = None         # a pipeline folder of the edits' one domain (None: the bundled {domain}-phantom)
    ceilings_only: bool = False      # only the faithfulness ceilings (no edit is run)
    oracle: str | None = None        # the oracle folder that reads the edits (None: the model's own; a judge)


def true_counterfactual(domain: str, seed: int, edit: str, size: int):
    """(input rendering, true counterfactual rendering, changed-region mask, counterfactual sample) of ``seed``."""
    _, action, attribute, held = EDITS[edit]
    module = get_domain(domain)
    graph = module.build_graph()
    sample = graph.sample(seed)
    changes = switch(domain, sample, attribute, action == "add")
    after = graph.intervene(sample, **changes, **{name: sample.factors[name] for name in held})
    before_image = module.render(sample.factors, sample.seed, size)
    after_image = module.render(after.factors, after.seed, size)
    return before_image, after_image, mask_between(before_image, after_image), after


def eligible_seeds(edit: str, n: int, first_seed: int) -> list[int]:
    """The first ``n`` seeds from ``first_seed`` whose phantom lacks (add) or has (remove) the attribute; a kind
    (a device) is added only where there is none of its family (the kind's ``add`` sets the whole device set)."""
    domain, action, attribute, _ = EDITS[edit]
    graph = get_domain(domain).build_graph()
    attributes_of = domains.get(domain).attributes_of
    family = domains.get(domain).attribute(attribute).kind_of
    seeds, seed = [], first_seed
    while len(seeds) < n:
        present = attributes_of(graph.sample(seed).factors)
        if present[attribute] == (action == "remove") and not (family and action == "add" and present[family]):
            seeds.append(seed)
        seed += 1
    return seeds


def redrawn_truths(domain: str, edit: str, after, size: int, draws: int = CEILING_DRAWS) -> list[np.ndarray]:
    """Renders of the true counterfactual sample ``after`` with the render noise its input does not show
    (``UNSEEN_RENDER_NOISE[edit]``) drawn afresh ``draws`` times: what an edit that renders exactly as the
    SCM does, but must guess that noise, would return. Empty for edits without such noise."""
    components = UNSEEN_RENDER_NOISE.get(edit, ())
    if not components:
        return []
    module = get_domain(domain)
    images = []
    for draw in range(1, draws + 1):
        with redrawn({name: 10**12 + 1000 * int(after.seed) + draw for name in components}):
            images.append(module.render(after.factors, after.seed, size).image)
    return images


def decoder_ceiling(model, before: np.ndarray, truth: np.ndarray, changed: np.ndarray, engine) -> np.ndarray:
    """The true counterfactual ``truth`` as the engine would return it if its UNet drew exactly truth's
    latent: encoded and decoded by the model's VAE, composited into ``before`` by the engine's own rule
    (``engine``: an EditConfig resolved for the domain) under a perfect mask, the true changed region
    ``changed`` (bool (H, W)) grown to whole latent cells. No edit through this VAE can do better."""
    import torch
    import torch.nn.functional as F

    size = model.image_size
    rgb, rgb_truth = model_rgb(before, size), model_rgb(truth, size)
    latents = torch.cat([encode_rgb(model.pipe, rgb), encode_rgb(model.pipe, rgb_truth)])
    reference, decoded = decode_latents(model.pipe, latents)
    cells = F.adaptive_max_pool2d(torch.from_numpy(changed.astype(np.float32))[None, None], latents.shape[-1])
    mask = F.interpolate(cells, size=(size, size), mode="nearest")[0, 0].numpy() > 0.5
    return composite(decoded, rgb, mask, reference, engine)[0]


def near_truth(before: np.ndarray, result: np.ndarray, changed: np.ndarray) -> np.ndarray:
    """``result`` with every pixel farther than ``NEAR_TRUTH_PX`` (scaled from 128 px; city-block distance) from
    the true changed region ``changed`` (bool (H, W)) put back to ``before``: the edit as it would be had it
    changed nothing but the target. ``before`` and ``result``: float (H, W) in [0, 1]."""
    from scipy.ndimage import binary_dilation

    reach = max(1, round(NEAR_TRUTH_PX * changed.shape[0] / 128))
    return np.where(binary_dilation(changed, iterations=reach), result, before)


def _request(edit: str) -> dict:
    """The EditConfig fields that ask for ``edit``: its attribute added or removed."""
    _, action, attribute, _ = EDITS[edit]
    return {"add": (attribute,) if action == "add" else (), "remove": (attribute,) if action == "remove" else ()}


def edit_attributes(edit: str) -> tuple[str, ...]:
    """The attributes an engine request may name for it to be this benched edit: its own, and for adding
    support devices each device kind too (the bench's request names the kinds the SCM added)."""
    domain, _, attribute, _ = EDITS[edit]
    return (attribute, *domains.get(domain).kinds(attribute)) if edit == "add support devices" else (attribute,)


def card_record(summary: dict, date: str, command: str) -> dict:
    """What a model card keeps of one edit's ``run_edit`` summary: the figures, the settings they hold for,
    whether they meet ``BARS``, and how to reproduce them (``medviz.bench.cards.record_edit_bench``)."""
    _, action, _, _ = EDITS[summary["edit"]]
    figures = ("n", "effectiveness", "preservation_all", "faithfulness", "faithfulness_near_truth",
               "mask_iou_mean", "edited_iou_mean", "mean_passes")
    return {"action": action, "attributes": list(edit_attributes(summary["edit"])),
            **{key: summary[key] for key in figures},
            "bars": dict(BARS), "meets": {key: bool(summary[key] >= bar) for key, bar in BARS.items()},
            "near_truth_px": NEAR_TRUTH_PX,
            "settings": {key: summary[key] for key in RECORDED_SETTINGS}, "date": date, "command": command}


def card_problem(config: CounterfactualBenchConfig) -> str | None:
    """Why a run with ``config`` may not write its figures into a model card (None: it may)."""
    if config.tuning:
        return "the tuning phantoms choose the defaults; a card holds held-out figures (drop --tuning)"
    if config.ceilings_only:
        return "--ceilings-only runs no edit"
    if config.oracle:
        return "a card holds the figures its own oracle reads; --oracle names another"
    if config.n < 100:
        return f"a card holds figures on at least 100 phantoms per edit, not {config.n}"
    changed = [name for name in (*RECORDED_SETTINGS, "residual") if getattr(config, name) != getattr(_ENGINE, name)]
    if changed:
        return f"a card holds the engine's default settings, and this run sets {', '.join(changed)}"
    return None


def write_edit_card(result: dict, command: str) -> list[str]:
    """Put a ``run`` result's edits in their model's card (``card_problem`` must have passed); returns the
    medviz.json paths written."""
    import datetime

    date = datetime.date.today().isoformat()
    written = []
    for domain in sorted({r["domain"] for r in result["edits"]}):
        folder = resolve(result["config"]["model"] or f"{domain}-phantom")
        if not (folder / "medviz.json").is_file():
            raise SystemExit(f"--write-card: {folder} has no medviz.json to hold the figures")
        records = {r["edit"]: card_record(r, date, command) for r in result["edits"] if r["domain"] == domain}
        written.append(str(record_edit_bench(folder, records)))
        print(f"written to {folder} (medviz.json and README.md): {', '.join(records)}")
    return written


def run_edit(edit: str, config: CounterfactualBenchConfig, model, first_seed: int, progress=None) -> dict:
    """Every figure of one edit type; ``cases`` keeps three examples for the figure."""
    domain, action, attribute, _ = EDITS[edit]
    size = model.image_size
    engine = EditConfig(**_request(edit), steps=config.steps, strength=config.strength,
                        guidance_scale=config.guidance_scale, mask_mode=config.mask_mode,
                        mask_threshold=config.mask_threshold, mask_draws=config.mask_draws,
                        change_threshold=config.change_threshold, residual=config.residual, seed=config.seed,
                        domain_check=False)             # phantoms: in the domain by construction
    baseline = replace(engine, inversion="ddim", mask_mode="none", residual=False)
    resolved = engine.for_domain(domain)             # the settings the engine uses
    factors = [a.name for a in domains.get(domain).factors]
    others = [a for a in factors if a != attribute]
    index = {a: model.oracle.attributes.index(a) for a in factors}
    rows, cases, cost = [], [], []
    for i, seed in enumerate(eligible_seeds(edit, config.n, first_seed)):
        before, after, changed, truth = true_counterfactual(domain, seed, edit, size)
        if edit == "add support devices":
            # Which device the SCM adds is exogenous noise, invisible in the input: the request names it,
            # as a clinician asking "with a pacemaker" would.
            engine = replace(engine, add=("support_devices", *truth.factors["devices"]))
            baseline = replace(baseline, add=engine.add)
        result = counterfactual(model, before.image, engine)
        readouts = model.oracle.readout([before.image, result.counterfactual, after.image])
        wanted = action == "add"
        kept = {a: bool((readouts[1, index[a]] > 0.5) == (readouts[0, index[a]] > 0.5)) for a in others}
        true_image = channel_mean(after.image)
        result_gray = channel_mean(result.counterfactual)
        l1_edit = float(np.abs(result_gray - true_image).mean())
        local = near_truth(channel_mean(before.image), result_gray, changed)
        ceilings = _ceilings(model, edit, before, after, changed, truth, resolved)
        l1_input = ceilings["l1_input_to_truth"]
        union = (result.mask | changed).sum()
        edited_union = (result.edited | changed).sum()
        row = {"seed": seed, "effective": bool((readouts[1, index[attribute]] > 0.5) == wanted),
               "true_effective": bool((readouts[2, index[attribute]] > 0.5) == wanted),
               "kept": kept, "all_kept": all(kept.values()), "l1_to_truth": l1_edit, **ceilings,
               "faithful": l1_edit < l1_input,
               "faithful_near_truth": float(np.abs(local - true_image).mean()) < l1_input,
               "mask_iou": float((result.mask & changed).sum() / union) if union else float("nan"),
               "edited_iou": float((result.edited & changed).sum() / edited_union) if edited_union else float("nan"),
               "passes": result.unet_passes, "seconds": result.seconds}
        if i < config.n_cost:
            plain = counterfactual(model, before.image, baseline)
            plain_readout = model.oracle.readout([plain.counterfactual])[0]
            cost.append({"passes": plain.unet_passes, "seconds": plain.seconds,
                         "effective": bool((plain_readout[index[attribute]] > 0.5) == wanted),
                         "faithful": float(np.abs(channel_mean(plain.counterfactual) - true_image).mean()) < l1_input,
                         "engine_passes": result.unet_passes, "engine_seconds": result.seconds})
        if len(cases) < 3:
            cases.append({"input": before.image, "counterfactual": result.counterfactual, "truth": after.image,
                          "difference": result.difference, "mask": result.mask, "edited": result.edited,
                          "effective": row["effective"],
                          "readout": float(readouts[1, index[attribute]])})
        rows.append(row)
        if progress:
            progress(i + 1, config.n)
    return {
        "edit": edit, "domain": domain, "n": len(rows), "steps": config.steps, "strength": resolved.strength,
        "guidance_scale": resolved.guidance_scale, "mask_mode": config.mask_mode,
        "mask_threshold": resolved.mask_threshold, "mask_draws": resolved.mask_draws,
        "change_threshold": resolved.change_threshold,
        "effectiveness": float(np.mean([r["effective"] for r in rows])),
        "true_counterfactual_effectiveness": float(np.mean([r["true_effective"] for r in rows])),
        "preservation_all": float(np.mean([r["all_kept"] for r in rows])),
        "preservation": {a: float(np.mean([r["kept"][a] for r in rows])) for a in others},
        "faithfulness": float(np.mean([r["faithful"] for r in rows])),
        "faithfulness_near_truth": float(np.mean([r["faithful_near_truth"] for r in rows])),
        **_summarise_ceilings(rows),
        "median_l1_to_truth": float(np.median([r["l1_to_truth"] for r in rows])),
        "mask_iou_mean": float(np.nanmean([r["mask_iou"] for r in rows])),
        "edited_iou_mean": float(np.nanmean([r["edited_iou"] for r in rows])),
        "mean_passes": float(np.mean([r["passes"] for r in rows])),
        "mean_seconds": float(np.mean([r["seconds"] for r in rows])),
        "cost": _summarise_cost(cost), "cases": cases,
        "rows": rows,                                # per phantom, so that two runs can be compared row by row
    }


def _ceilings(model, edit: str, before, after, changed: np.ndarray, truth, engine) -> dict:
    """One phantom's faithfulness ceilings (module docstring): L1 of the input to the true counterfactual,
    whether the truth through the VAE beats it, and in what share of fresh draws of the unseen noise
    the SCM's own rendering does (None: no unseen noise)."""
    true_image = channel_mean(after.image)
    l1_input = float(np.abs(channel_mean(before.image) - true_image).mean())
    ceiling = decoder_ceiling(model, before.image, after.image, changed, engine)
    redrawn_l1 = [float(np.abs(channel_mean(image) - true_image).mean())
                  for image in redrawn_truths(EDITS[edit][0], edit, truth, model.image_size)]
    return {"l1_input_to_truth": l1_input,
            "ceiling_decoder_faithful": float(np.abs(channel_mean(ceiling) - true_image).mean()) < l1_input,
            "ceiling_redrawn_faithful": float(np.mean([l1 < l1_input for l1 in redrawn_l1])) if redrawn_l1 else None}


def _summarise_ceilings(rows: list[dict]) -> dict:
    redrawn_rows = [r["ceiling_redrawn_faithful"] for r in rows if r["ceiling_redrawn_faithful"] is not None]
    return {"faithfulness_ceiling_decoder": float(np.mean([r["ceiling_decoder_faithful"] for r in rows])),
            "faithfulness_ceiling_redrawn": float(np.mean(redrawn_rows)) if redrawn_rows else None,
            "median_l1_input_to_truth": float(np.median([r["l1_input_to_truth"] for r in rows]))}


def run_ceilings(edit: str, config: CounterfactualBenchConfig, model, first_seed: int) -> dict:
    """The faithfulness ceilings alone, on the same phantoms as ``run_edit`` (VAE passes only, no UNet)."""
    domain = EDITS[edit][0]
    engine = EditConfig(**_request(edit), change_threshold=config.change_threshold,
                        residual=config.residual).for_domain(domain)
    rows = []
    for seed in eligible_seeds(edit, config.n, first_seed):
        before, after, changed, truth = true_counterfactual(domain, seed, edit, model.image_size)
        rows.append(_ceilings(model, edit, before, after, changed, truth, engine))
    return {"edit": edit, "domain": domain, "n": len(rows), "change_threshold": engine.change_threshold,
            **_summarise_ceilings(rows)}


def _summarise_cost(cost: list[dict]) -> dict:
    if not cost:
        return {}
    return {"n": len(cost),
            "engine_passes": float(np.mean([c["engine_passes"] for c in cost])),
            "engine_seconds": float(np.sum([c["engine_seconds"] for c in cost])),
            "ddim_passes": float(np.mean([c["passes"] for c in cost])),
            "ddim_seconds": float(np.sum([c["seconds"] for c in cost])),
            "ddim_effectiveness": float(np.mean([c["effective"] for c in cost])),
            "ddim_faithfulness": float(np.mean([c["faithful"] for c in cost]))}


def run_reconstruction(domain: str, config: CounterfactualBenchConfig, model, first_seed: int) -> dict:
    """Empty edits (target = source, no mask): PSNR of the result against the VAE round trip of the input."""
    images, _ = render_phantoms(domain, config.n_reconstruction, model.image_size, first_seed, workers=1)
    engine = EditConfig(steps=config.steps, strength=config.strength, guidance_scale=config.guidance_scale,
                        mask_mode="none", seed=config.seed, domain_check=False)
    values = []
    for image in images:
        pixels = image.astype(np.float32) / 255.0
        round_trip = decode_latents(model.pipe, encode_image(model.pipe, pixels, model.image_size))[0]
        result = counterfactual(model, pixels, engine)
        values.append(psnr(channel_mean(result.counterfactual), channel_mean(round_trip)))
    values = np.array(values)
    return {
        "domain": domain,
        "n": len(values),
        "psnr_min": float(values.min()),
        "psnr_median": float(np.median(values)),
        "share_at_least_35db": float((values >= 35).mean()),
    }


def run(config: CounterfactualBenchConfig, progress=None) -> dict:
    first_seed = HELD_OUT_FIRST_SEED + (TUNING_SEED_OFFSET if config.tuning else FIRST_SEED_OFFSET)
    spanned = sorted({EDITS[e][0] for e in config.edits}, key=["cxr", "skin"].index)
    if config.model and len(spanned) > 1:
        raise ValueError(
            f"model {config.model!r} is one domain's pipeline, but the edits span {' and '.join(spanned)}: "
            "choose the edits of one domain"
        )
    out = {"config": {k: v for k, v in config.__dict__.items()}, "reconstruction": [], "edits": []}
    for domain in spanned:
        model = load_model(config.model or f"{domain}-phantom", device="cpu", oracle=config.oracle)
        if model.domain != domain:
            raise ValueError(f"model {config.model!r} is a {model.domain} pipeline; the edits are {domain} edits")
        if config.ceilings_only:
            out["edits"] += [run_ceilings(edit, config, model, first_seed) for edit in config.edits
                             if EDITS[edit][0] == domain]
            continue
        if config.n_reconstruction:
            out["reconstruction"].append(run_reconstruction(domain, config, model, first_seed))
            if progress:
                progress(f"{domain} reconstruction", out["reconstruction"][-1])
        for edit in config.edits:
            if EDITS[edit][0] == domain:
                out["edits"].append(run_edit(edit, config, model, first_seed))
                if progress:
                    progress(edit, {k: v for k, v in out["edits"][-1].items() if k not in ("cases", "rows")})
    return out


def _print_ceilings(result: dict) -> None:
    print("faithfulness ceilings (what no edit can beat): the true counterfactual through this VAE and the engine's "
          "composite, perfect mask | the SCM's own rendering under fresh draws of the noise the input does not show:")
    for r in result["edits"]:
        redrawn_share = r["faithfulness_ceiling_redrawn"]
        engine = ""
        if "faithfulness" in r:  # a run of the edits, not --ceilings-only
            engine = (
                f"faithful {r['faithfulness']:.0%} (its changes within {NEAR_TRUTH_PX} px of the truth only: "
                f"{r['faithfulness_near_truth']:.0%}) | "
            )
        print(
            f"  {r['edit']:<25} {r['n']:>4} phantoms: {engine}through the VAE {r['faithfulness_ceiling_decoder']:.0%}"
            f" (change threshold {r['change_threshold']}) | redrawn noise "
            + ("none unseen" if redrawn_share is None else f"{redrawn_share:.0%} of {CEILING_DRAWS} draws per phantom")
        )


def _setting_text(result: dict, key: str, by: str) -> str:
    """The value of ``key`` a run used: one value, or each edit's grouped ``by`` "domain" or "edit"."""
    used = {r[by]: r.get(key) for r in result["edits"]}
    if not used:
        given = result["config"][key]
        return "the engine's default" if given is None else str(given)
    values = set(used.values())
    return str(values.pop()) if len(values) == 1 else ", ".join(f"{k} {v}" for k, v in used.items())


def print_table(result: dict) -> None:
    c = result["config"]
    if c.get("ceilings_only"):
        _print_ceilings(result)
        return
    strength, guidance, draws, change = (_setting_text(result, key, "domain") for key in
                                         ("strength", "guidance_scale", "mask_draws", "change_threshold"))
    threshold = _setting_text(result, "mask_threshold", "edit")
    print(f"\ncounterfactual bench{' (TUNING phantoms)' if c.get('tuning') else ''}: steps {c['steps']}, "
          f"strength {strength}, guidance {guidance}, mask {c['mask_mode']} (threshold {threshold}, {draws} draws, "
          f"change threshold {change}) "
          "(oracle = attribute readout, not a diagnosis)")
    for r in result["reconstruction"]:
        print(f"{r['domain']} empty edit on {r['n']} phantoms: PSNR vs VAE round trip min {r['psnr_min']:.1f} dB, "
              f"median {r['psnr_median']:.1f} dB, >= 35 dB in {r['share_at_least_35db']:.0%}")
    print(f"{'edit':<25}{'n':>5}{'effective':>11}{'(truth)':>9}{'kept all':>10}{'worst kept':>12}{'faithful':>10}"
          f"{'mask IoU':>10}{'edited IoU':>12}{'passes':>8}{'s/edit':>8}")
    for r in result["edits"]:
        worst = min(r["preservation"].items(), key=lambda kv: kv[1])
        print(f"{r['edit']:<25}{r['n']:>5}{r['effectiveness']:>11.1%}{r['true_counterfactual_effectiveness']:>9.0%}"
              f"{r['preservation_all']:>10.1%}{worst[1]:>7.1%} {worst[0][:4]:<4}{r['faithfulness']:>10.1%}"
              f"{r['mask_iou_mean']:>10.2f}{r['edited_iou_mean']:>12.2f}{r['mean_passes']:>8.0f}"
              f"{r['mean_seconds']:>8.2f}")
    _print_ceilings(result)
    print("cost beside a plain DDIM-inversion edit (DDIM inversion, no mask), same images, same run:")
    for r in result["edits"]:
        k = r["cost"]
        if k:
            print(f"  {r['edit']:<25} engine {k['engine_passes']:.0f} passes, {k['engine_seconds']:.1f} s | DDIM "
                  f"{k['ddim_passes']:.0f} passes, {k['ddim_seconds']:.1f} s (effective {k['ddim_effectiveness']:.0%}, "
                  f"faithful {k['ddim_faithfulness']:.0%}) on {k['n']} images; time ratio "
                  f"{k['ddim_seconds'] / k['engine_seconds']:.2f}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=100, help="phantoms per edit type")
    parser.add_argument("--n-reconstruction", type=int, default=100, help="empty edits per domain")
    parser.add_argument("--n-cost", type=int, default=10, help="images per edit type for the DDIM-inversion comparison")
    parser.add_argument(
        "--edit",
        action="append",
        default=None,
        metavar="NAME",
        help="only this edit type, e.g. 'add support devices' (repeatable; default: every edit of "
        f"--domain): {', '.join(EDITS)}",
    )
    for flag, kind, what in (
        ("--steps", int, "denoising steps"),
        ("--strength", float, "edit strength"),
        ("--guidance", float, "guidance scale"),
        ("--mask-threshold", float, "automatic mask threshold"),
        ("--mask-draws", int, "noise draws of the automatic mask"),
        (
            "--change-threshold",
            float,
            "keep the input where the edit changed the decoded image by less than this (0 = off)",
        ),
    ):
        parser.add_argument(flag, type=kind, default=None, help=f"{what} (default: the engine's for the domain)")
    parser.add_argument("--mask", default="auto", choices=["auto", "none"], help="mask mode")
    parser.add_argument("--residual", default=None, choices=["on", "off"],
                        help="add only the edit's change to the input (default: the engine's)")
    parser.add_argument("--tuning", action="store_true",
                        help="run on the tuning phantoms (for choosing defaults), not the bench set")
    parser.add_argument("--ceilings-only", action="store_true",
                        help="only the faithfulness ceilings (the true counterfactual through the VAE, and under fresh "
                             "draws of the noise the input does not show); no edit is run")
    parser.add_argument("--model", default=None, metavar="DIR", help="a pipeline folder for the edits' one domain")
    parser.add_argument("--oracle", default=None, metavar="DIR",
                        help="read the edits with this oracle folder (an independent judge) instead of the model's")
    parser.add_argument("--figure-dir", default=None, metavar="DIR", help="write counterfactual_<domain>.png here")
    parser.add_argument("--write-card", action="store_true",
                        help="store each edit's figures in the model's card (medviz.json and README.md; the Edit tab "
                             "shows them before an edit runs): held-out phantoms, n >= 100, the engine's defaults only")
    add_common(parser)


def main(args: argparse.Namespace, command: str) -> int:
    unknown = sorted(set(args.edit or ()) - set(EDITS))
    if unknown:
        raise SystemExit(f"unknown edit type {unknown[0]!r}; known: {', '.join(EDITS)}")
    edits = tuple(e for e in EDITS if args.domain in ("all", EDITS[e][0]) and (not args.edit or e in args.edit))
    if not edits:
        raise SystemExit(f"no edit of --domain {args.domain} among {', '.join(args.edit)}; "
                         f"{args.domain} edits: {', '.join(e for e in EDITS if EDITS[e][0] == args.domain)}")
    chosen = {"steps": args.steps, "strength": args.strength, "guidance_scale": args.guidance,
              "mask_threshold": args.mask_threshold, "mask_draws": args.mask_draws,
              "change_threshold": args.change_threshold,
              "residual": None if args.residual is None else args.residual == "on"}
    config = CounterfactualBenchConfig(edits=edits, n=args.n, n_reconstruction=args.n_reconstruction,
                                       n_cost=args.n_cost, mask_mode=args.mask, tuning=args.tuning, model=args.model,
                                       ceilings_only=args.ceilings_only, oracle=args.oracle,
                                       **{k: v for k, v in chosen.items() if v is not None})
    if args.write_card:
        problem = card_problem(config)
        if problem:
            raise SystemExit(f"--write-card: {problem}")
    result = run(config, progress=lambda name, row: print(f"done: {name} {json.dumps(row, default=str)}", flush=True))
    print_table(result)
    if args.write_card:
        write_edit_card(result, command)
    if args.figure_dir:
        write_figures(result, config, args.figure_dir)
    for r in result["edits"]:
        r.pop("cases", None)
    return write_json(args.json, result)


def write_figures(result: dict, config: CounterfactualBenchConfig, folder: str) -> None:
    """counterfactual_<domain>.png: each edit's first case beside the SCM's true counterfactual."""
    for domain in sorted({EDITS[e][0] for e in config.edits}):
        done = [r for r in result["edits"] if r["domain"] == domain and r.get("cases")]
        if not done:
            continue
        rows = [{**r["cases"][0], "edit": r["edit"]} for r in done]
        used = done[0]                                  # the settings the engine resolved for the domain
        change = f", change threshold {used['change_threshold']:g}" if used["change_threshold"] else ""
        save_edit_figure(rows, str(Path(folder) / f"counterfactual_{domain}.png"),
                         title=f"{config.model or domain + '-phantom'} counterfactual edits (edit-friendly DDPM "
                               f"inversion, strength {used['strength']}, guidance {used['guidance_scale']}, "
                               f"{config.steps} steps{change})")
