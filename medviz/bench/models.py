"""Benchmark of the bundled text-to-image models, judged by the oracle (an attribute readout).

* Prompt fidelity: for each attribute, ``n`` samples of a "with X" and of a "without X" prompt; the
  share whose oracle readout agrees with the prompt.
* Diversity: mean pairwise distance of oracle features among same-prompt samples, divided by the same
  figure among real phantoms with those attributes (1 = as diverse as the data; mode collapse -> 0).
  "Those attributes" are what the prompt means in the training captions' language
  (``caption_conditional``): a caption names every attribute a phantom has, so an unnamed finding or
  artifact is absent ("Chest X-ray of a female patient" is a female phantom with no finding and no
  device). The ratio against phantoms that match only the attribute the row tests (any others) is kept
  beside it: that reference also spans images the prompt excludes, so it understates diversity.
* Fréchet distance in oracle features to held-out phantoms, beside that of a Gaussian-blurred copy of
  the held-out set (a reference for "how far is clearly wrong").
* Thin-line shapes (``thin_line_shapes``): junction density, segment length and straightness of the thin
  dark lines of each prompt's samples beside those of the phantoms that fit it. The oracle reads "hair"
  off a net of branching cracks as readily as off a few straight shafts; these figures tell them apart.
  For the domain's line structures (skin ruler, hair, ink; CXR devices) also the structure's lines alone: the
  samples' less those of the same noise asked for none, the phantoms' less those of their twins without it.
* Device kinds (CXR, ``device_kinds``): for a prompt naming one device kind ("... showing support
  devices, central venous line"), how often the oracle reads each kind on the samples, beside the same
  phantoms given exactly that device. A caption that names kinds names every kind present, so any other
  kind drawn is one the prompt did not ask for; adding a named device (the Edit tab) draws what this shows.
* VAE round trip: the oracle's recall of each attribute on held-out phantoms after encode -> decode.
  Whatever the decoder cannot draw, no sampler or edit can show: this is the ceiling of every engine.
  ``vae`` names a candidate VAE folder (e.g. a fine-tuned decoder) measured beside the bundled one.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import domains
from ..engines.common import SCHEDULERS
from ..io import to_model_batch, uint8_rgb
from ..metrics import thin_line_shapes, tone_spread
from ..models import MODELS_DIR, load_pipeline, resolve
from ..phantoms import get_domain
from ..prompts import caption_conditional, class_prompts, describe
from ..train.data import render_phantoms, render_sample, round_trip
from ..train.oracle import HELD_OUT_FIRST_SEED
from ..train.vae import load_vae
from .cards import record_models_bench
from .cli import add_common, chosen_domains, write_json
from .paraphrases import paraphrases

#: The attributes whose "with" and "without" prompts the bench asks for, per domain.
FIDELITY_ATTRIBUTES = {name: domains.get(name).fidelity for name in ("cxr", "skin")}
#: attribute -> (its prompt, the prompt of its absence), in the training captions' words (``class_prompts``).
FIDELITY_PROMPTS = {domain: {a: class_prompts(domain, a) for a in attributes}
                    for domain, attributes in FIDELITY_ATTRIBUTES.items()}

POOL_FIRST_SEED = HELD_OUT_FIRST_SEED + 500_000   # the reference phantoms': held out from every model's training
LINE_REFERENCE = 256                   # fitting phantoms whose thin lines each prompt's samples are compared with


@dataclass(frozen=True)
class ModelsBenchConfig:
    domain: str
    n: int = 64
    steps: int = 25
    guidance_scale: float = 4.0
    n_reference: int = 512
    seed: int = 0
    vae: str | None = None             # a candidate VAE folder: its round trip, and its decode of the same samples
    round_trip_only: bool = False      # skip generation (fidelity, diversity, FD): the VAE check alone
    n_diversity_reference: int = 2000  # phantoms (from the same seeds) that the diversity references are drawn from
    model: str | None = None           # a pipeline folder of the domain (None: the bundled {domain}-phantom)
    sheet: str | None = None           # also write a contact sheet (generated vs real phantoms) to this PNG
    device_kinds: bool = False         # CXR: only the device-kind table (each kind asked alone: which kinds drawn)
    paraphrases: bool = False          # only the paraphrased prompts' table (bench.paraphrases): read as asked?
    oracle: str | None = None          # the oracle folder that reads the samples (None: the bundled {domain}-oracle);
                                       # an independent judge for a pipeline trained against the bundled one
    attributes: tuple[str, ...] = ()   # only these rows of FIDELITY_PROMPTS (empty: all)


#: Issue 3's bars for a model's prompts: the oracle agrees with the prompt's attribute in >= 90% of samples,
#: and same-prompt samples spread >= 0.5 as far as the phantoms that fit the prompt (no mode collapse).
PROMPT_BARS = {"agreement": 0.9, "diversity_ratio": 0.5}



def fidelity_prompts(config: ModelsBenchConfig) -> dict[str, tuple[str, str]]:
    """The rows the run asks for: ``FIDELITY_PROMPTS`` of the domain, or the ``attributes`` named of them."""
    rows = FIDELITY_PROMPTS[config.domain]
    unknown = [a for a in config.attributes if a not in rows]
    if unknown:
        raise ValueError(f"--attributes: {', '.join(unknown)} not among the {config.domain} rows ({', '.join(rows)})")
    return {a: rows[a] for a in rows if not config.attributes or a in config.attributes}


def card_problem(config: ModelsBenchConfig) -> str | None:
    """Why a run with ``config`` may not write its figures into the model card (None: it may)."""
    if config.round_trip_only or config.device_kinds or config.paraphrases:
        return "a card holds the prompt figures of a full run (drop --round-trip-only / --device-kinds / --paraphrases)"
    if config.oracle:
        return "a card holds the figures its own oracle reads; --oracle names another"
    if config.attributes:
        return "a card holds every prompt's figures (drop --attributes)"
    if config.vae:
        return "--vae measures a candidate VAE beside the model's own; a card holds the model's figures alone"
    defaults = ModelsBenchConfig(domain=config.domain)
    if config.n < defaults.n:
        return f"a card holds figures on at least {defaults.n} samples per prompt, not {config.n}"
    changed = [name for name in ("steps", "guidance_scale", "seed", "n_reference", "n_diversity_reference")
               if getattr(config, name) != getattr(defaults, name)]
    if changed:
        return f"a card holds the bench's default settings, and this run sets {', '.join(changed)}"
    return None


def card_record(result: dict, date: str, command: str) -> dict:
    """What a model card keeps of a ``run`` result (medviz.json ``models_bench``, written by
    ``medviz.bench.cards.record_models_bench``): each prompt's figures and whether they meet ``PROMPT_BARS``,
    the Fréchet distances, the VAE round trip, the settings the samples were drawn with, how to reproduce."""
    keep = ("attribute", "prompt", "wanted", "agreement", "fits_all", "diversity_ratio", "n_matching",
            "diversity_ratio_named_only", "lines", "lines_real", "structure_lines", "structure_lines_real", "tone",
            "tone_real")
    rows = [{**{key: row[key] for key in keep if key in row},
             "meets": {key: bool(row[key] >= bar) for key, bar in PROMPT_BARS.items()}} for row in result["rows"]]
    config = result["config"]
    # The bench samples with the pipeline's own scheduler and no negative prompt: in the Generate tab's terms,
    # the sampler of that class (the bundled pipelines': DDIM), or the class name where the tab has none.
    sampler = next((name for name, (cls, _) in SCHEDULERS.items() if cls == result["scheduler"]), result["scheduler"])
    return {"rows": rows, "n": config["n"], "bars": dict(PROMPT_BARS),
            "settings": {"steps": config["steps"], "guidance_scale": config["guidance_scale"], "scheduler": sampler,
                         "negative_prompt": ""},
            **{key: result[key] for key in ("fd_generated_vs_held_out", "fd_blurred_held_out_vs_held_out",
                                            "fd_held_out_half_vs_half")},
            "n_reference": config["n_reference"], "vae_round_trip": result["vae_round_trip"]["bundled"],
            "seed": config["seed"], "date": date, "command": command}


def write_models_card(result: dict, command: str) -> str:
    """Put a ``run`` result in its model's card (``card_problem`` must have passed); returns medviz.json's path."""
    import datetime

    folder = resolve(result["config"]["model"] or f"{result['domain']}-phantom")
    if not (folder / "medviz.json").is_file():
        raise SystemExit(f"--write-card: {folder} has no medviz.json to hold the figures")
    path = record_models_bench(folder, card_record(result, datetime.date.today().isoformat(), command))
    print(f"written to {folder} (medviz.json and README.md): prompt fidelity, diversity, FD, VAE round trip")
    return str(path)


def _features(oracle, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sigmoid probabilities, pooled penultimate features) of uint8 N x H x W x 3 images."""
    import torch

    probabilities, features = [], []
    with torch.no_grad():
        for start in range(0, len(images), 128):
            out = oracle(pixel_values=to_model_batch(images[start:start + 128], "cpu"), output_hidden_states=True)
            probabilities.append(torch.sigmoid(out.logits).numpy())
            features.append(out.hidden_states[-1].mean(dim=(2, 3)).numpy())
    return np.concatenate(probabilities), np.concatenate(features)


def vae_round_trip(vae, oracle, images: np.ndarray, truth: np.ndarray, labels, batch: int = 64,
                   masks: np.ndarray | None = None, structures: tuple[str, ...] = ()) -> dict:
    """Encode (posterior mean) and decode uint8 images; PSNR and the oracle's per-attribute readout after.

    Returns ``{"psnr_db": mean PSNR over images, "attributes": {name: {"n_positive", "recall",
    "specificity"}}}``; recall is the share of phantoms with the attribute that the oracle still finds.
    Images of another side than the oracle's are resized to it (``io.uint8_rgb``) before it reads them.
    Given the images' fine-structure bit ``masks`` (N, H, W; bit i: ``structures[i]``), also
    ``"structure_psnr_db"``: ``structure_psnr``, a figure that needs no reader.
    """
    decoded, psnr = round_trip(vae, images, batch)
    result = {"psnr_db": float(psnr.mean()), "attributes": oracle_readout(oracle, decoded, truth, labels)}
    if masks is not None:
        result["structure_psnr_db"] = structure_psnr(decoded, images, masks, structures)
    return result


def structure_psnr(decoded: np.ndarray, images: np.ndarray, masks: np.ndarray, structures: tuple[str, ...]) -> dict:
    """``{structure: mean PSNR (dB) over the images holding it, on its pixels grown by 1 px}``.

    The phantom SCM knows where it drew each hair, tick or catheter: the error there says whether a decoder kept the
    structure without a reader, so VAEs for different image sides compare on one grid (``_other_vae_round_trip``),
    where an oracle trained at 128 px reads a 256-px image only after a reduction that fades its thinnest lines.
    """
    from scipy.ndimage import binary_dilation

    grow = np.ones((1, 3, 3), bool)
    error = ((decoded.astype(np.float32) - images.astype(np.float32)) / 255.0) ** 2
    result = {}
    for bit, name in enumerate(structures):
        where = binary_dilation((masks >> bit & 1).astype(bool), grow)
        held = where.any(axis=(1, 2))
        if not held.any():
            result[name] = float("nan")
            continue
        mse = np.array([error[i][where[i]].mean() for i in np.flatnonzero(held)])
        result[name] = float((10 * np.log10(1.0 / np.maximum(mse, 1e-10))).mean())
    return result


def oracle_readout(oracle, images: np.ndarray, truth: np.ndarray, labels) -> dict:
    """``{name: {"n_positive", "recall", "specificity"}}`` of the oracle's reading (> 0.5) of uint8 images
    (N, H, W, 3) against the truth (N, len(labels)); images are resized to the oracle's side first."""
    side = getattr(oracle.config, "image_size", images.shape[1])
    if images.shape[1] != side:
        images = np.stack([uint8_rgb(image, side) for image in images])
    found = _features(oracle, images)[0] > 0.5
    attributes = {}
    for k, name in enumerate(labels):
        positive = truth[:, k].astype(bool)
        attributes[name] = {"n_positive": int(positive.sum()),
                            "recall": float(found[positive, k].mean()) if positive.any() else float("nan"),
                            "specificity": float((~found[~positive, k]).mean()) if (~positive).any() else float("nan")}
    return attributes


def _other_vae_round_trip(config: ModelsBenchConfig, vae, oracle, reference: tuple, size: int) -> dict:
    """``{config.vae: its round trip}`` of the ``reference`` phantoms (images, truth, fine-structure masks).

    A VAE for another image side (issue 52's f = 8 VAE at 256 px) codes the same seeds rendered at its side; its
    round trips and those phantoms are box-filtered to ``size`` (a box keeps a sub-pixel line's ink where a bilinear
    filter fades it: the 128-px oracle reads ruler ticks on 82% of box-reduced 256-px phantoms, 12% of bilinear ones)
    and read there, beside the row ``"phantoms at S px"`` (the reduced phantoms: its ceiling). Its structure PSNR is
    measured there too, against the reduced phantoms, so that it compares with the pipeline's VAE on one grid; and at
    its own side (``structure_psnr_db_at_S_px``).
    """
    from PIL import Image

    images, truth, masks = reference
    labels = domains.get(config.domain).oracle_labels
    structures = get_domain(config.domain).FINE_STRUCTURES
    side = vae.config.sample_size
    if side == size:
        return {config.vae: vae_round_trip(vae, oracle, images, truth, labels, masks=masks, structures=structures)}
    if not config.round_trip_only:
        raise ValueError(f"{config.vae} codes {side}-px images and the pipeline draws {size}-px ones: measure it "
                         "with --round-trip-only")
    own, _, own_masks = render_phantoms(config.domain, len(images), side, POOL_FIRST_SEED,
                                        fine_structure_masks=True)
    decoded, psnr = round_trip(vae, own)

    def reduced(batch: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(Image.fromarray(image).resize((size, size), Image.BOX)) for image in batch])

    ceiling, kept = reduced(own), reduced(decoded)
    return {f"phantoms at {side} px": {"psnr_db": None, "attributes": oracle_readout(oracle, ceiling, truth, labels)},
            config.vae: {"psnr_db": float(psnr.mean()), "attributes": oracle_readout(oracle, kept, truth, labels),
                         "structure_psnr_db": structure_psnr(kept, ceiling, masks, structures),
                         f"structure_psnr_db_at_{side}_px": structure_psnr(decoded, own, own_masks, structures)}}


def mean_pairwise_distance(features: np.ndarray) -> float:
    diff = features[:, None, :] - features[None, :, :]
    distances = np.sqrt((diff ** 2).sum(-1))
    n = len(features)
    return float(distances.sum() / (n * (n - 1)))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, eq. 6)."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    root = root.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def _pipeline_and_reader(config: ModelsBenchConfig):
    """(the pipeline measured, the oracle reading it, that oracle's labels, the image side); an oracle that reads
    other labels than the domain's, or in another order, is refused by name."""
    from transformers import AutoModelForImageClassification

    pipe = load_pipeline(config.model or f"{config.domain}-phantom", device="cpu")
    oracle = AutoModelForImageClassification.from_pretrained(
        config.oracle or str(MODELS_DIR / f"{config.domain}-oracle"), local_files_only=True
    ).eval()
    labels = domains.get(config.domain).oracle_labels
    read = tuple(oracle.config.id2label[i] for i in range(oracle.config.num_labels))
    if read != tuple(labels):
        raise ValueError(f"the oracle reads {read}, not the {config.domain} labels {tuple(labels)} in that order")
    return pipe, oracle, labels, pipe.unet.config.sample_size * pipe.vae_scale_factor


def _frechet_distances(oracle, reference: np.ndarray, ref_feat: np.ndarray, generated: np.ndarray) -> dict:
    """FD in the oracle's features: generated vs held-out, and the two yardsticks (blurred held-out, half vs half)."""
    from PIL import Image, ImageFilter

    blurred = np.stack([np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(2))) for im in reference])
    _, blurred_feat = _features(oracle, blurred)
    half = len(reference) // 2
    return {"fd_generated_vs_held_out": frechet_distance(generated, ref_feat),
            "fd_blurred_held_out_vs_held_out": frechet_distance(blurred_feat[:half], ref_feat[half:]),
            "fd_held_out_half_vs_half": frechet_distance(ref_feat[:half], ref_feat[half:])}


def run(config: ModelsBenchConfig, progress: Callable[[str], None] | None = None) -> dict:
    """Measure one domain's pipeline (see the module docstring); ``progress`` gets a line per finished prompt."""
    pipe, oracle, labels, size = _pipeline_and_reader(config)
    vocabulary = domains.get(config.domain)
    if config.device_kinds or config.paraphrases:
        return _one_table(config, pipe, oracle, size, progress)
    pool, pool_feat, pool_truth, decoders, round_trips = _pool_and_round_trips(config, pipe, oracle, labels, size)
    reference, ref_feat = pool[:config.n_reference], pool_feat[:config.n_reference]
    if config.round_trip_only:
        return {"domain": config.domain, "config": config.__dict__, "rows": [], "vae_round_trip": round_trips}

    rows = {name: [] for name in decoders}
    decoded_samples: dict[str, np.ndarray] = {}      # prompt -> the pipeline's own decode, for the contact sheet
    generated_features = {name: [] for name in decoders}
    references: dict[tuple, dict] = {}               # fitting attributes -> their phantoms' line shapes and tones
    bright = vocabulary.thin_lines == "bright"       # catheters are bright on an X-ray; hair and ink dark on skin
    seconds = 0.0
    structure_reference: dict[str, dict] = {}        # line structure -> its phantoms' lines less their twins'
    for attribute, (with_prompt, without_prompt) in fidelity_prompts(config).items():
        k = labels.index(attribute)
        asked_images: dict[tuple[str, bool], np.ndarray] = {}
        for wanted, prompt in ((True, with_prompt), (False, without_prompt)):
            tic = time.perf_counter()
            latents = _sample_latents(pipe, prompt, config, size)
            seconds += time.perf_counter() - tic
            if progress:
                progress(f"{prompt!r}: {config.n} samples in {time.perf_counter() - tic:.0f} s")
            conditional = caption_conditional(config.domain, prompt)
            matching = np.all([pool_truth[:, labels.index(a)] == v for a, v in conditional.items()], axis=0)
            named_only = pool_truth[:, k] == wanted
            # Several prompts fix the same attributes ("benign nevus", "... with no hair"): measure each
            # set of fitting phantoms once.
            fitting = tuple(sorted(conditional.items()))
            if fitting not in references:
                references[fitting] = {"lines_real": thin_line_shapes(pool[np.flatnonzero(matching)[:LINE_REFERENCE]],
                                                                       bright=bright),
                                       "tone_real": tone_spread(pool[matching])}
            if wanted and attribute in vocabulary.line_structures:
                structure_reference[attribute] = structure_lines_of_phantoms(config.domain, attribute, pool, matching,
                                                                             size)
            # A candidate decoder (decoder-only fine-tune: same latent space) decodes the very same latents,
            # so the two rows differ only by the decoder.
            for name, vae in decoders.items():
                images = _decode(pipe, vae, latents)
                asked_images[name, wanted] = images
                if name == "bundled" and config.sheet:
                    decoded_samples[prompt] = images
                probabilities, features = _features(oracle, images)
                generated_features[name].append(features)
                spread = mean_pairwise_distance(features)
                fits = np.all([(probabilities[:, labels.index(a)] > 0.5) == v for a, v in conditional.items()], axis=0)
                rows[name].append({"attribute": attribute, "prompt": prompt, "wanted": wanted,
                                   "agreement": float(((probabilities[:, k] > 0.5) == wanted).mean()),
                                   "diversity_ratio": spread / mean_pairwise_distance(pool_feat[matching]),
                                   "n_matching": int(matching.sum()), "fits_all": float(fits.mean()),
                                   "diversity_ratio_named_only": spread / mean_pairwise_distance(pool_feat[named_only]),
                                   "lines": thin_line_shapes(images, bright=bright), "tone": tone_spread(images),
                                   **references[fitting]})
        if attribute in vocabulary.line_structures:       # the asked row: the structure's own lines, both decoders
            for name in decoders:
                rows[name][-2].update(structure_lines=thin_line_shapes(asked_images[name, True], bright=bright,
                                                                       background=asked_images[name, False]),
                                      structure_lines_real=structure_reference[attribute])
    result = {
        "domain": config.domain, "config": config.__dict__, "rows": rows["bundled"],
        **_frechet_distances(oracle, reference, ref_feat, np.concatenate(generated_features["bundled"])),
        "generation_seconds": seconds, "images_generated": config.n * len(rows["bundled"]),
        "scheduler": type(pipe.scheduler).__name__,
        "vae_round_trip": round_trips,
    }
    if config.sheet:
        layout = SheetLayout(steps=config.steps, guidance_scale=config.guidance_scale, seed=config.seed)
        result["sheet"] = contact_sheet(pipe, config.domain, config.sheet, config.model or f"{config.domain}-phantom",
                                        layout, samples=decoded_samples)
    if config.vae:
        result["candidate_vae"] = {"vae": config.vae, "rows": rows[config.vae], "fd_generated_vs_held_out":
                                   frechet_distance(np.concatenate(generated_features[config.vae]), ref_feat)}
    return result


def _pool_and_round_trips(config: ModelsBenchConfig, pipe, oracle, labels, size: int) -> tuple:
    """The held-out reference pool (images, oracle features, truth), the decoders by name (the pipeline's, and
    ``config.vae``'s) and each one's round trip of the pool's first ``n_reference``."""
    vocabulary = domains.get(config.domain)
    pool_size = max(config.n_reference, config.n_diversity_reference)
    pool, pool_factors, pool_masks = render_phantoms(config.domain, pool_size, size, POOL_FIRST_SEED,
                                                     fine_structure_masks=True)
    pool_feat = _features(oracle, pool)[1]
    pool_truth = np.array([[vocabulary.attributes_of(f)[k] for k in labels] for f in pool_factors])
    reference, ref_truth, ref_masks = (a[:config.n_reference] for a in (pool, pool_truth, pool_masks))
    round_trips = {"bundled": vae_round_trip(pipe.vae, oracle, reference, ref_truth, labels, masks=ref_masks,
                                             structures=get_domain(config.domain).FINE_STRUCTURES)}
    decoders = {"bundled": pipe.vae}
    if config.vae:
        decoders[config.vae] = load_vae(config.vae).eval()       # a VAE folder, or one holding vae/
        round_trips.update(_other_vae_round_trip(config, decoders[config.vae], oracle,
                                                 (reference, ref_truth, ref_masks), size))
    return pool, pool_feat, pool_truth, decoders, round_trips


def structure_lines_of_phantoms(domain: str, attribute: str, pool: np.ndarray, fitting: np.ndarray, size: int) -> dict:
    """``thin_line_shapes`` of a line structure alone on up to ``LINE_REFERENCE`` of the ``fitting`` (bool) pool
    phantoms (which have it): their lines less those of their twins without it."""
    which = np.flatnonzero(fitting)[:LINE_REFERENCE]
    twins = twin_phantoms(domain, POOL_FIRST_SEED + which, size, **{attribute: False})
    return thin_line_shapes(pool[which], bright=domains.get(domain).thin_lines == "bright", background=twins)


def twin_phantoms(domain: str, seeds, size: int, **changes) -> np.ndarray:
    """uint8 N x H x W x 3: the phantoms of ``seeds`` under ``do(**changes)`` (their true counterfactuals)."""
    graph = get_domain(domain).build_graph()
    twins = [render_sample(domain, graph.intervene(graph.sample(int(seed)), **changes), size) for seed in seeds]
    return np.stack(twins) if twins else np.zeros((0, size, size, 3), np.uint8)


def _one_table(config: ModelsBenchConfig, pipe, oracle, size: int, progress=None) -> dict:
    """A run of the device-kind table or of the paraphrases' alone."""
    result = {"domain": config.domain, "config": config.__dict__, "rows": [], "vae_round_trip": {}}
    if config.device_kinds:
        return {**result, "device_kinds": device_kinds(pipe, oracle, config, size, progress),
                **({"sheet": config.sheet} if config.sheet else {})}
    return {**result, "paraphrases": paraphrase_rows(pipe, oracle, config, size, progress)}


def device_kinds(pipe, oracle, config: ModelsBenchConfig, size: int, progress=None) -> list[dict]:
    """Per device kind: ``config.n`` samples of the prompt naming that kind alone, and the same number of
    held-out phantoms given exactly that device; the share of each in which the oracle reads each kind."""
    if config.domain != "cxr":
        raise ValueError(f"device kinds are a CXR measurement; --domain is {config.domain}")
    labels = domains.get("cxr").oracle_labels
    kinds = domains.get("cxr").kinds("support_devices")
    seeds = POOL_FIRST_SEED + np.arange(config.n)
    # A device's own lines, not the lung texture beside them: each image's lines less those of the same scene without
    # devices (the phantom's do(support_devices=False) twin; the sample of the same noise asked for no devices).
    no_devices = FIDELITY_PROMPTS["cxr"]["support_devices"][1]
    bare_samples = _decode(pipe, pipe.vae, _sample_latents(pipe, no_devices, config, size))
    bare_phantoms = twin_phantoms("cxr", seeds, size, support_devices=False)
    rows, sheet_rows = [], []
    for kind in kinds:
        prompt = describe("cxr", {"support_devices": True, kind: True})
        latents = _sample_latents(pipe, prompt, config, size)
        images = _decode(pipe, pipe.vae, latents)
        generated = _features(oracle, images)[0]
        phantoms = twin_phantoms("cxr", seeds, size, support_devices=True, devices=(kind,))
        real = _features(oracle, phantoms)[0]
        sheet_rows.append((prompt, images, phantoms))
        rows.append({"kind": kind, "prompt": prompt,
                     "generated": {k: float((generated[:, labels.index(k)] > 0.5).mean()) for k in kinds},
                     "phantoms": {k: float((real[:, labels.index(k)] > 0.5).mean()) for k in kinds},
                     "lines": thin_line_shapes(images, bright=True, background=bare_samples),
                     "lines_real": thin_line_shapes(phantoms, bright=True, background=bare_phantoms)})
        if progress:
            progress(f"{prompt!r}: {config.n} samples")
    if config.sheet:                 # each column one noise seed: does the asked kind or the seed decide the devices?
        layout = SheetLayout(per_prompt=min(6, config.n), real=min(2, config.n), steps=config.steps,
                             guidance_scale=config.guidance_scale, seed=config.seed)
        draw_sheet(sheet_rows, config.sheet, config.model or "cxr-phantom", layout,
                   real_title="phantoms given exactly that device")
    return rows


def paraphrase_rows(pipe, oracle, config: ModelsBenchConfig, size: int, progress=None) -> list[dict]:
    """Per prompt of ``bench.paraphrases`` (worded unlike the training captions): the share of ``config.n`` samples
    in which the oracle reads its attribute as asked."""
    labels = domains.get(config.domain).oracle_labels
    rows = []
    for attribute, prompt, asked in paraphrases(config.domain):
        latents = _sample_latents(pipe, prompt, config, size)
        probabilities = _features(oracle, _decode(pipe, pipe.vae, latents))[0][:, labels.index(attribute)]
        rows.append({"attribute": attribute, "prompt": prompt, "asked": asked,
                     "as_asked": float(((probabilities > 0.5) == asked).mean())})
        if progress:
            progress(f"{prompt!r}: {rows[-1]['as_asked']:.0%} as asked")
    return rows


def print_paraphrases(result: dict) -> None:
    rows = result.get("paraphrases") or []
    if not rows:
        return
    print(f"\n{result['domain']}: prompts worded unlike the training captions ({result['config']['n']} samples each)")
    for attribute in dict.fromkeys(r["attribute"] for r in rows):
        mine = [r for r in rows if r["attribute"] == attribute]
        for asked in (True, False):
            shares = [r["as_asked"] for r in mine if r["asked"] == asked]
            if shares:
                print(f"  {attribute:<17} {'present' if asked else 'absent':<8} {len(shares)} prompts: "
                      f"{np.mean(shares):6.1%} as asked (min {min(shares):.0%})")


def _sample_latents(pipe, prompt: str, config: ModelsBenchConfig, size: int):
    """``config.n`` samples of ``prompt`` as latents, from ``config.seed``, at the bench's steps and guidance."""
    import torch

    generator = torch.Generator().manual_seed(config.seed)
    return pipe([prompt] * config.n, num_inference_steps=config.steps, guidance_scale=config.guidance_scale,
                height=size, width=size, generator=generator, output_type="latent").images


def _decode(pipe, vae, latents) -> np.ndarray:
    """The pipeline's own decode and post-processing of its latents, by ``vae``: uint8 N x H x W x 3.

    The latents are in the pipeline's units, so they are unscaled by its VAE's factor, whichever VAE decodes.
    """
    import torch

    scale = pipe.vae.config.scaling_factor
    with torch.no_grad():
        decoded = torch.cat([vae.decode(chunk / scale).sample for chunk in latents.split(32)])
    images = pipe.image_processor.postprocess(decoded, output_type="np")
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8)


def print_round_trips(result: dict) -> None:
    trips = result["vae_round_trip"]
    if not trips:                                # a --paraphrases run measures none
        return
    print(f"\nVAE round trip on {result['config']['n_reference']} held-out {result['domain']} phantoms: oracle recall "
          "(specificity) after encode -> decode")
    # "bundled" is the measured pipeline's own VAE (a --model folder's, when one was given).
    own = result["config"].get("model") or "bundled"
    print(
        f"{'attribute':<18}{'n+':>5}" + "".join(f"{(own if name == 'bundled' else name)[-28:]:>30}" for name in trips)
    )
    for attribute, first in trips["bundled"]["attributes"].items():
        cells = "".join(
            f"{t['attributes'][attribute]['recall']:>22.1%} ({t['attributes'][attribute]['specificity']:.1%})"
            for t in trips.values()
        )
        print(f"{attribute:<18}{first['n_positive']:>5}{cells}")
    print(f"{'PSNR (dB)':<23}" + "".join(f"{t['psnr_db']:>30.2f}" if t["psnr_db"] is not None else f"{'-':>30}"
                                         for t in trips.values()))
    for structure in next((t["structure_psnr_db"] for t in trips.values() if "structure_psnr_db" in t), {}):
        print(f"{'  on ' + structure:<23}" + "".join(f"{t['structure_psnr_db'][structure]:>30.2f}"
                                                    if "structure_psnr_db" in t else f"{'-':>30}"
                                                    for t in trips.values()))


def print_table(result: dict) -> None:
    if result.get("device_kinds"):
        print_device_kinds(result)
        return
    print_round_trips(result)
    if not result["rows"]:
        return
    print(f"\nmodels bench: {result['domain']}  (n={result['config']['n']} per prompt, "
          f"{result['config']['steps']} DDIM steps, CFG {result['config']['guidance_scale']})")
    print("agree: the oracle reads the row's attribute as asked; fits all: every attribute the prompt fixes as the "
          "training captions read it (unnamed findings absent)\ndiversity: vs the phantoms that fit the prompt (n of "
          "them), and vs those matching only the row's attribute")
    tables = [(f"{result['config'].get('model') or 'bundled'} VAE", result["rows"], result["fd_generated_vs_held_out"])]
    if result.get("candidate_vae"):
        candidate = result["candidate_vae"]
        tables.append((f"candidate VAE {candidate['vae']} (same latents)", candidate["rows"],
                       candidate["fd_generated_vs_held_out"]))
    for title, rows, _ in tables:
        print(f"-- decoded by the {title}")
        print(
            f"{'attribute':<18}{'prompt':<62}{'agree':>7}{'fits all':>9}{'diversity':>11}{'(n)':>6}{'named only':>12}"
        )
        for row in rows:
            named = row.get("diversity_ratio_named_only", float("nan"))
            print(
                f"{row['attribute']:<18}{row['prompt']:<62}{row['agreement']:>7.1%}"
                f"{row.get('fits_all', float('nan')):>9.1%}{row['diversity_ratio']:>11.2f}{row.get('n_matching', 0):>6}"
                f"{named:>12.2f}"
            )
    polarity = domains.get(result["domain"]).thin_lines
    print_line_shapes(result["rows"], polarity, "fitting phantoms")
    structures = [{**row, "lines": row["structure_lines"], "lines_real": row["structure_lines_real"]}
                  for row in result["rows"] if "structure_lines" in row]
    if structures:
        print_line_shapes(structures, polarity, "the same phantoms' lines less those of their twins without the "
                          "structure; the samples' less those of the same noise asked for none")
    print_tones(result["rows"])
    print("Fréchet distance (oracle features): generated vs held-out "
          + "; ".join(f"{fd:.2f} ({title.split(' (')[0]})" for title, _, fd in tables)
          + f"; blurred held-out vs held-out {result['fd_blurred_held_out_vs_held_out']:.2f}; "
          f"held-out half vs half {result['fd_held_out_half_vs_half']:.2f}")
    print(f"generation: {result['images_generated']} images in {result['generation_seconds']:.0f} s")
    if result.get("sheet"):
        print(f"contact sheet: {result['sheet']}")


def print_line_shapes(rows: list[dict], polarity: str, reference: str) -> None:
    """Each row's thin-line shapes (``lines``) beside its reference phantoms' (``lines_real``)."""
    print(f"thin {polarity} lines, generated ({reference}): junctions per 100 line px; mean segment px; straightness "
          "(1 = straight); line px per image")
    for row in rows:
        if "lines" not in row:
            continue
        cells = [(row["lines"][key], row["lines_real"][key], fmt) for key, fmt in
                 (("junctions_per_100px", ".2f"), ("segment_px", ".1f"), ("straightness", ".3f"), ("line_px", ".0f"))]
        print(f"{row['prompt']:<62}" + "".join(f"{g:>9{fmt}} ({r:{fmt}})" for g, r, fmt in cells))


def print_tones(rows: list[dict]) -> None:
    """Each row's spread of mean image intensity beside its fitting phantoms' (``tone``, ``tone_real``)."""
    rows = [row for row in rows if "tone" in row]
    if rows:
        print("mean intensity per image (0-255), 10th / 50th / 90th percentile, generated (fitting phantoms)")
    for row in rows:
        print(f"{row['prompt']:<62}" + "".join(f"{row['tone'][p]:>9.0f} ({row['tone_real'][p]:.0f})"
                                               for p in ("p10", "p50", "p90")))


def print_device_kinds(result: dict) -> None:
    rows = result["device_kinds"]
    kinds = list(rows[0]["generated"])
    print(f"\ndevice kinds: {result['config']['n']} samples per prompt naming one kind, beside as many phantoms given "
          "exactly that device; share the oracle reads as each kind, generated (phantoms)")
    print(f"{'kind asked':<12}" + "".join(f"{k:>16}" for k in kinds))
    for row in rows:
        print(
            f"{row['kind']:<12}" + "".join(f"{row['generated'][k]:>9.0%} ({row['phantoms'][k]:>4.0%})" for k in kinds)
        )
    print_line_shapes(rows, "bright", "phantoms given exactly that device; each image's lines less those of its scene "
                      "without devices")


@dataclass(frozen=True)
class SheetLayout:
    """A contact sheet's rows: ``per_prompt`` generated and ``real`` phantom images per fidelity prompt, the real ones
    the first that fit among ``pool`` held-out phantoms; generated with ``steps`` DDIM steps at ``guidance_scale``,
    every row from ``seed``'s noise."""

    per_prompt: int = 6
    real: int = 3
    pool: int = 400
    steps: int = 25
    guidance_scale: float = 4.0
    seed: int = 0


def contact_sheet(pipe, domain: str, out: str, title: str, layout: SheetLayout = SheetLayout(),
                  samples: dict[str, np.ndarray] | None = None) -> str:
    """Generated samples per fidelity prompt (left) beside real phantoms with those attributes (right).

    Args:
        pipe: a ``StableDiffusionPipeline`` of ``domain`` (the bundled one or a candidate folder's).
        out: the PNG to write; ``title`` names the model in its heading.
        samples: {prompt: uint8 images N x H x W x 3} already generated with the layout's settings (the bench's
            own); a row shows their first ``per_prompt`` instead of sampling again. Prompts not in it, or with
            fewer images, are sampled.
    Returns:
        ``out``.
    """
    per_prompt, real, pool = layout.per_prompt, layout.real, layout.pool
    import torch

    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    pool_images, pool_factors = render_phantoms(domain, pool, size, HELD_OUT_FIRST_SEED + 700_000, workers=1)
    pool_attributes = [domains.get(domain).attributes_of(f) for f in pool_factors]
    rows = []
    for prompt in [p for pair in FIDELITY_PROMPTS[domain].values() for p in pair]:        # with, then without
        if samples and len(samples.get(prompt, ())) >= per_prompt:
            images = samples[prompt][:per_prompt]
        else:
            images = pipe([prompt] * per_prompt, num_inference_steps=layout.steps,
                          guidance_scale=layout.guidance_scale, height=size, width=size,
                          generator=torch.Generator().manual_seed(layout.seed), output_type="np").images
        # Real phantoms that fit the whole prompt as the training captions read it (unnamed artifacts
        # absent), so a 'benign nevus with hair' row shows hairy nevi, not hairy melanomas with rulers.
        fixed = caption_conditional(domain, prompt)
        matches = [i for i, a in enumerate(pool_attributes) if all(a[k] == v for k, v in fixed.items())][:real]
        if len(matches) < real:
            raise ValueError(f"only {len(matches)} of {pool} phantoms fit {prompt!r}; ask for fewer real images")
        rows.append((prompt, images, pool_images[matches]))
    return draw_sheet(rows, out, title, layout)


def draw_sheet(rows: list[tuple[str, np.ndarray, np.ndarray]], out: str, title: str, layout: SheetLayout,
               real_title: str = "real phantoms") -> str:
    """A contact sheet: per row (prompt, its generated images, real images), the first ``layout.per_prompt``
    generated (orange frames, the same noise in each column) beside ``layout.real`` real ones (cyan); ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_prompt, real = layout.per_prompt, layout.real
    columns, label_in, tile_in, head_in = per_prompt + real, 1.9, 1.25, 0.55
    figure, axes = plt.subplots(len(rows), columns, squeeze=False, facecolor="black",
                                figsize=(label_in + tile_in * columns, head_in + tile_in * len(rows)))
    width, height = figure.get_size_inches()
    figure.subplots_adjust(
        left=label_in / width, right=0.995, bottom=0.005, top=1 - head_in / height, wspace=0.04, hspace=0.04
    )
    for r, (prompt, images, real_images) in enumerate(rows):
        for c in range(columns):
            ax = axes[r, c]
            ax.imshow(images[c] if c < per_prompt else real_images[c - per_prompt])
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color("orange" if c < per_prompt else "cyan")
        axes[r, 0].set_ylabel(prompt.replace("Dermoscopy image of ", "").replace("Chest X-ray ", ""), color="white",
                              fontsize=7, rotation=0, ha="right", va="center", wrap=True)
    axes[0, 0].set_title("generated", color="orange", fontsize=8, loc="left")
    axes[0, per_prompt].set_title(real_title, color="cyan", fontsize=8, loc="left")
    figure.suptitle(
        f"{title}\ngenerated: {layout.steps} DDIM steps, CFG {layout.guidance_scale:g}, seed {layout.seed}; "
        "synthetic, research use only",
        color="white",
        fontsize=7,
        y=1 - 0.05 / height,
        va="top",
    )
    figure.savefig(out, dpi=110, facecolor="black")
    plt.close(figure)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, metavar="DIR",
                        help="a pipeline folder of --domain, measured instead of its bundled model")
    parser.add_argument("--n", type=int, default=64, help="samples per prompt")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps")
    parser.add_argument("--guidance-scale", type=float, default=ModelsBenchConfig.guidance_scale,
                        help="classifier-free guidance of the samples (default: the Generate tab's)")
    parser.add_argument("--vae", default=None, metavar="DIR",
                        help="a candidate VAE folder (or a folder holding vae/) measured beside the bundled one: its "
                             "round trip, and its decode of the very same generated latents ({domain} is replaced)")
    parser.add_argument("--round-trip-only", action="store_true", help="only the VAE round trip (no generation)")
    parser.add_argument(
        "--oracle",
        default=None,
        metavar="DIR",
        help="read the samples with this oracle folder (an independent judge) instead of the bundled one",
    )
    parser.add_argument(
        "--attributes",
        nargs="+",
        default=(),
        metavar="NAME",
        help="only these attributes' rows (e.g. ink), not for --write-card",
    )
    parser.add_argument(
        "--paraphrases",
        action="store_true",
        help="only the table of prompts worded unlike the training captions (bench.paraphrases)",
    )
    parser.add_argument(
        "--device-kinds",
        action="store_true",
        help="CXR: only the device-kind table: each kind asked alone, which kinds are drawn",
    )
    parser.add_argument(
        "--sheet",
        default=None,
        metavar="PNG",
        help="also write a contact sheet: each prompt's samples beside real phantoms that fit it (with "
        "--device-kinds: each kind's samples beside phantoms given exactly it; {domain} is replaced by the domain)",
    )
    parser.add_argument(
        "--write-card",
        action="store_true",
        help="store each prompt's figures, the FD and the VAE round trip in the model's card "
        "(medviz.json and README.md; the Generate tab shows them before it runs): a full run at "
        "the bench's default settings only",
    )
    add_common(parser)


def main(args: argparse.Namespace, command: str) -> int:
    if args.sheet and (args.round_trip_only or args.paraphrases):
        raise SystemExit("--sheet draws the fidelity prompts' or the device kinds' samples: drop --round-trip-only "
                         "and --paraphrases")
    if args.device_kinds and args.domain == "skin":
        raise SystemExit("--device-kinds is a CXR measurement: use --domain cxr")
    configs = [ModelsBenchConfig(domain=domain, n=args.n, steps=args.steps, guidance_scale=args.guidance_scale,
                                 model=args.model,
                                 vae=args.vae.replace("{domain}", domain) if args.vae else None,
                                 round_trip_only=args.round_trip_only, device_kinds=args.device_kinds,
                                 paraphrases=args.paraphrases, attributes=tuple(args.attributes),
                                 oracle=args.oracle.replace("{domain}", domain) if args.oracle else None,
                                 sheet=args.sheet.replace("{domain}", domain) if args.sheet else None)
               for domain in (["cxr"] if args.device_kinds else chosen_domains(args))]
    if args.write_card:
        if args.model and len(configs) > 1:
            raise SystemExit("--write-card: with --model, name the model's --domain")
        problem = next(filter(None, map(card_problem, configs)), None)
        if problem:
            raise SystemExit(f"--write-card: {problem}")
    results = []
    for config in configs:
        result = run(config, progress=lambda line: print(line, file=sys.stderr, flush=True))
        print_table(result)
        print_paraphrases(result)
        results.append(result)
        if args.write_card:
            write_models_card(result, command)
    return write_json(args.json, results)
