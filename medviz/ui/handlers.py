"""Plain functions behind the UI's events; no gradio here, so they are testable without a browser.

They translate widget values into engine configs and engine results into what widgets show (uint8
images, figures, files, text). No model logic lives here: that is the engines' job.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import RESEARCH_ONLY_NOTICE
from ..io import as_rgb, to_uint8, write_png
from .. import domains
from ..oracle import READOUT_KIND
from ..phantoms import get_domain, mask_between
from ..prompts import describe


def _factor_names(domain: str | None) -> tuple[str, ...]:
    known = domains.find(domain)
    return tuple(a.name for a in known.factors) if known else ()


def phantom_preview(domain: str, seed: int, intervention: str, size: int = 256) -> tuple[np.ndarray, np.ndarray, str]:
    """A phantom, its true counterfactual under ``intervention`` with the changed region tinted red, and labels.

    Returns (factual uint8 image, counterfactual uint8 RGB with overlay, markdown description).
    """
    module = get_domain(domain)
    named = {"none": {}, **domains.get(domain).named_interventions()}
    changes = named.get(intervention)
    if changes is None:
        raise ValueError(f"unknown intervention {intervention!r} for {domain}")
    graph = module.build_graph()
    sample = graph.sample(int(seed))
    counterfactual = graph.intervene(sample, **changes) if changes else sample
    factual_render = module.render(sample.factors, sample.seed, size)
    counterfactual_render = module.render(counterfactual.factors, counterfactual.seed, size)
    factual = factual_render.image
    after = as_rgb(counterfactual_render.image).copy()
    if changes:
        mask = mask_between(factual_render, counterfactual_render)
        after[mask] = 0.6 * after[mask] + 0.4 * np.array([1.0, 0.15, 0.15], np.float32)
    text = (f"**Factual** (seed {sample.seed}): {module.summary(sample.factors)}\n\n"
            f"**Counterfactual**: {module.summary(counterfactual.factors)}").replace("\n", "  \n")
    return to_uint8(factual), to_uint8(after), text


def intervention_names(domain: str) -> list[str]:
    return ["none", *domains.get(domain).named_interventions()]



# ------------------------------------------------------------------------------------------------
# Generate

SEX_CHOICES = ("unspecified", "female", "male")
LESION_CHOICES = ("benign nevus", "melanoma")


def prompt_attributes(domain: str | None) -> list[str]:
    """The Generate tab's checkboxes: the listed attributes' UI words."""
    known = domains.find(domain)
    return [a.shown for a in known.listed] if known else []


def compose_prompt(domain: str | None, attributes: list[str] | None, free_text: str = "", sex: str = "unspecified",
                   lesion: str = "benign nevus") -> str:
    """The prompt the checkboxes and free text stand for, in the training captions' words (``describe``).

    cxr: "Chest X-ray of a female patient showing pleural effusion, support devices"; skin:
    "Dermoscopy image of a melanoma with ruler markings, hair"; free text is appended after a comma.
    For a model of unknown domain only the free text is used.
    """
    free_text = (free_text or "").strip()
    known = domains.find(domain)
    if known is None:
        return free_text
    ticked = set(attributes or [])
    present = {a.name: True for a in known.listed if a.shown in ticked}
    if "female" in known and sex in ("female", "male"):
        present["female"] = sex == "female"
    if "melanoma" in known:
        present["melanoma"] = lesion == "melanoma"
    text = describe(known.name, present)
    return f"{text}, {free_text}" if free_text else text


def session_folder(session: str) -> Path:
    """A private folder for this session's exports, inside Gradio's (private) temp dir."""
    root = Path(os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()) / "medviz-exports"
    folder = root / "".join(c for c in session if c.isalnum())[:64]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class GeneratedView:
    gallery: list[tuple[np.ndarray, str]]     # (uint8 image, caption) per image
    files: list[str]                          # PNGs with parameters embedded
    seed: int
    info: str                                 # markdown: parameters and readouts
    history_row: list


def generate_config(prompt: str, negative_prompt: str, seed: int | None, batch_size: int, scheduler: str, steps: int,
                    guidance_scale: float):
    """The engine's ``GenerateConfig`` for the Generate tab's controls (seed < 0 or None: random)."""
    from ..engines.generate import GenerateConfig

    if not (prompt or "").strip():
        raise ValueError("the prompt is empty: tick attributes or write a prompt")
    return GenerateConfig(prompt=prompt.strip(), negative_prompt=negative_prompt or "", batch_size=int(batch_size),
                          seed=None if seed is None or int(seed) < 0 else int(seed), steps=int(steps),
                          guidance_scale=float(guidance_scale), scheduler=scheduler)


def generate_expectation(model, prompt: str, negative_prompt: str, scheduler: str, steps: int,
                         guidance_scale: float) -> str:
    """Markdown, before anything is generated: how often this model drew the attributes the prompt names in
    the models bench (``prompt_measured_markdown``); empty for an empty prompt. No model call."""
    from ..engines.generate import measured_prompt

    try:
        config = generate_config(prompt, negative_prompt, None, 1, scheduler, steps, guidance_scale)
    except ValueError:
        return ""
    return prompt_measured_markdown(measured_prompt(model.card, model.domain, config), model.domain is not None)


def _attribute_phrase(attribute: str, wanted: bool) -> str:
    """'pleural effusion', 'no hair', 'male' (the bench's female row, negated)."""
    if attribute == "female":
        return "female" if wanted else "male"
    return attribute.replace("_", " ") if wanted else f"no {attribute.replace('_', ' ')}"


def prompt_measured_markdown(measured: dict | None, known_domain: bool) -> str:
    """The Generate tab's word, above its Generate button, on how often this model draws what the prompt names:
    the models-bench rows (``medviz.engines.generate.measured_prompt``), a warning for a row below a bar; empty
    for a model of unknown domain and for a prompt that names no attribute."""
    if measured is None:
        return ("*This model's prompts were not measured (model card: Measured quality).*  \n" if known_domain
                else "")
    if not measured["rows"] and not measured["unmeasured"]:
        return ""
    bars = measured["bars"]
    warnings, read = [], []
    for row in measured["rows"]:
        phrase = _attribute_phrase(row["attribute"], row["wanted"])
        read.append(f"*{phrase}* in {row['agreement']:.0%}")
        if row["agreement"] < bars["agreement"]:
            warnings.append(f"asked for {phrase}, it drew it in only {row['agreement']:.0%} of samples"
                            if row["wanted"] or row["attribute"] == "female" else
                            f"asked for {phrase}, it still drew {row['attribute'].replace('_', ' ')} in "
                            f"{1 - row['agreement']:.0%} of samples")
        if row["diversity_ratio"] < bars["diversity_ratio"]:
            warnings.append(f"asked for {phrase}, its samples were much alike (diversity {row['diversity_ratio']:.2f} "
                            "of the phantoms')")
    text = ""
    if read:
        text = (f"**Measured on this model** (models bench, {measured['date']}; {measured['n']} samples of the "
                "bench's own prompt for each attribute): the oracle read " + ", ".join(read) + ".")
    if measured["unmeasured"]:
        text += (" " if text else "") + "Not measured on this model: " + ", ".join(
            a.replace("_", " ") for a in measured["unmeasured"]) + "."
    # Quoted: a negative prompt may be empty, a sampler name has spaces.
    text += _unmeasured_settings(measured["differences"], lambda v: repr(v) if isinstance(v, str) else str(v))
    if warnings:
        text = "⚠ **On this model, " + "; ".join(warnings) + ".** " + text
    return text + "  \n"


def generate_view(model, prompt: str, negative_prompt: str, seed: int, batch_size: int, scheduler: str, steps: int,
                  guidance_scale: float, session: str, progress=None, should_stop=None) -> GeneratedView:
    """Run the generate engine and shape its result for the Generate tab (seed -1 = random)."""
    from ..engines.generate import generate

    config = generate_config(prompt, negative_prompt, seed, batch_size, scheduler, steps, guidance_scale)
    result = generate(model, config, progress=progress, should_stop=should_stop)
    folder = session_folder(session)
    gallery, files = [], []
    for i, image in enumerate(result.images):
        parameters = {**result.image_parameters(i), "notice": RESEARCH_ONLY_NOTICE}
        if result.readouts:
            parameters["oracle_readout"] = {k: round(v, 4) for k, v in result.readouts[i].items()}
        if result.measured and result.measured["rows"]:     # the file keeps how often the model draws what it names
            parameters["bench_record"] = {"n": result.measured["n"], "date": result.measured["date"],
                                          "same_settings": result.measured["same_settings"],
                                          "rows": [{key: row[key] for key in ("attribute", "wanted", "prompt", "agreement")}
                                                   for row in result.measured["rows"]]}
        path = write_png(folder / f"medviz_{result.seeds[i]}_{i}.png", image, parameters)
        files.append(str(path))
        caption = f"seed {result.seeds[i]}"
        if result.readouts:
            top = [f"{k} {v:.2f}" for k, v in result.readouts[i].items() if k in _factor_names(model.domain)]
            caption += " · " + ", ".join(top)
        gallery.append((to_uint8(image), caption))
    info = (f"**Seed {result.parameters['seed']}** (image *i* uses seed + *i*) · {config.steps} {config.scheduler} steps · "
            f"guidance {config.guidance_scale} · {result.seconds:.1f} s  \n`{config.prompt}`")
    if result.readouts:
        info += f"  \nCaptions show the oracle's {READOUT_KIND}."
    row = [result.parameters["seed"], config.prompt, config.negative_prompt, config.scheduler, config.steps,
           config.guidance_scale, config.batch_size]
    return GeneratedView(gallery=gallery, files=files, seed=result.parameters["seed"], info=info, history_row=row)


# ------------------------------------------------------------------------------------------------
# Traverse

TRAVERSE_KINDS = {"attribute sliders": "slider", "prompt switch (2503.23623)": "prompt_switch",
                  "patient interpolation": "interpolate"}


def slider_attributes(domain: str | None) -> list[str]:
    return list(_factor_names(domain))


@dataclass
class TrajectoryCache:
    """Frames of every computed trajectory (uint8), so that moving a slider needs no model call."""

    kind: str
    frames: dict[str, np.ndarray]             # trajectory name -> (K, H, W, 3) uint8
    positions: dict[str, list[float]]
    readouts: dict[str, np.ndarray]           # name -> (K, A) probabilities (may be empty)
    attributes: tuple[str, ...]
    summaries: dict[str, dict]
    parameters: dict


def compute_trajectories(model, kind_label: str, targets: list[str], prompt: str, seed: int, seed_b: int, frames: int,
                         steps: int, guidance_scale: float, strength: float, start_step: int,
                         progress=None, should_stop=None) -> TrajectoryCache:
    """One trajectory per target (sliders, prompt switch) or one patient walk, all frames at once."""
    from ..engines.traverse import TraverseConfig, traverse

    kind = TRAVERSE_KINDS.get(kind_label, kind_label)
    names = ["walk"] if kind == "interpolate" else list(targets or [])
    if not names:
        raise ValueError("tick at least one attribute to traverse")
    cache = TrajectoryCache(kind=kind, frames={}, positions={}, readouts={}, attributes=(), summaries={}, parameters={})
    for n, name in enumerate(names):
        def step_progress(done, total, n=n):
            if progress is not None:
                progress(n * total + done, len(names) * total)

        config = TraverseConfig(kind=kind, target=name if kind != "interpolate" else "pleural_effusion",
                                prompt=(prompt or "").strip() or None, seeds=(int(seed),),
                                seed_b=None if seed_b is None or int(seed_b) < 0 else int(seed_b), frames=int(frames),
                                steps=int(steps), guidance_scale=float(guidance_scale),
                                alpha_range=(-float(strength), float(strength)), start_step=int(start_step))
        result = traverse(model, config, progress=step_progress, should_stop=should_stop)
        cache.frames[name] = (np.clip(result.frames[0], 0, 1) * 255).round().astype(np.uint8)
        cache.positions[name] = [float(p) for p in result.positions]
        cache.readouts[name] = result.readouts[0] if result.readouts is not None else np.zeros((int(frames), 0))
        cache.attributes = result.attributes
        cache.summaries[name] = result.summary()
        cache.parameters[name] = result.parameters
    return cache


#: Images smaller than this (px, longer side) are enlarged for display by an integer factor with
#: nearest-neighbour sampling: every model pixel shows as a k x k block, nothing is interpolated.
DISPLAY_SIZE = 384


def for_display(pixels: np.ndarray, size: int = DISPLAY_SIZE) -> np.ndarray:
    """uint8 image enlarged k-fold (nearest) so that its longer side reaches about ``size``; files keep the original."""
    image = pixels if pixels.dtype == np.uint8 else to_uint8(np.clip(pixels, 0, 1).astype(np.float32))
    factor = max(1, size // max(image.shape[:2]))
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def frame_of(cache: TrajectoryCache, name: str, index: int) -> np.ndarray:
    """The cached frame ``index`` of trajectory ``name``, enlarged for display (no model call)."""
    frames = cache.frames[name]
    return for_display(frames[int(np.clip(index, 0, len(frames) - 1))])


def readout_figure(cache: TrajectoryCache, name: str, index: int, domain: str | None = None):
    """Plotly chart of the oracle readout along trajectory ``name``, the current frame marked."""
    import plotly.graph_objects as go

    figure = go.Figure()
    readouts = cache.readouts.get(name)
    positions = cache.positions[name]
    shown = [a for a in cache.attributes if a in (_factor_names(domain) or cache.attributes)]
    for attribute in shown:
        k = cache.attributes.index(attribute)
        figure.add_trace(go.Scatter(x=positions, y=readouts[:, k], mode="lines+markers", name=attribute,
                                    line={"width": 3 if attribute == name else 1.5}))
    index = int(np.clip(index, 0, len(positions) - 1))
    figure.add_vline(x=positions[index], line_dash="dash", line_color="orange")
    x_title = {"slider": "slider position (alpha)", "prompt_switch": "Bezier parameter (neutral → attribute)",
               "interpolate": "slerp fraction (patient A → B)"}[cache.kind]
    figure.update_layout(title=f"Oracle {READOUT_KIND} along the trajectory", xaxis_title=x_title,
                         yaxis_title="probability", yaxis_range=[-0.02, 1.02], height=320,
                         margin={"l": 40, "r": 10, "t": 40, "b": 80}, legend={"orientation": "h", "y": -0.35})
    return figure


def summary_markdown(cache: TrajectoryCache) -> str:
    lines = []
    for name, summary in cache.summaries.items():
        if summary:
            lines.append(f"**{name}**: Spearman {summary['median_spearman']:.2f}, leakage "
                         f"{summary['max_leakage']:.3f}, CFRT {'✓' if summary['cfrt'] >= 1 else '✗'}")
    return "  \n".join(lines) or "Patient interpolation (no target attribute)."


def trajectory_gif(cache: TrajectoryCache, name: str, session: str, duration_ms: int = 250) -> str:
    """The trajectory's frames as a looping GIF (there and back) in the session's export folder."""
    from PIL import Image

    frames = [Image.fromarray(f) for f in cache.frames[name]]
    frames = frames + frames[-2:0:-1]
    path = session_folder(session) / f"trajectory_{cache.kind}_{name}.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0,
                   comment=RESEARCH_ONLY_NOTICE.encode())
    return str(path)


# ------------------------------------------------------------------------------------------------
# Model & About

ABOUT = f"""### medviz
Look inside text-to-image diffusion models of medical images: **Generate** from prompts, **Traverse**
latent trajectories with attributes measured along the way, **Edit** an uploaded image (PNG, JPEG,
TIFF or DICOM) into its counterfactual — add or remove a device or a finding, with an automatic or
painted mask, the difference map and the attribute readout before and after — **Explain** an image
with the model as a diffusion classifier (votes, uncertainty, explanation and uncertainty maps), and
explore the **Phantoms** the bundled models were trained on (with their true counterfactuals).

Edits run at the model's resolution (128 px for the bundled models): a counterfactual is what *this
model* thinks the image would look like, not evidence about a patient.

Everything runs offline on this machine; nothing is uploaded anywhere. Uploads and exports live in a
private temporary folder that is deleted with the session. **{RESEARCH_ONLY_NOTICE.capitalize()}.**
"""


def model_about(model) -> str:
    """Markdown: what the loaded model is, from its card; the oracle labelled as an attribute readout."""
    card = model.card or {}
    lines = [ABOUT, f"#### Loaded model: `{model.name}`",
             f"- domain: **{model.domain or 'unknown'}** · output {model.image_size} px · device {model.device} "
             f"({model.pipe.unet.dtype})"]
    if card.get("trained_on"):
        lines.append(f"- trained on: {card['trained_on']}")
    if model.oracle is not None:
        lines.append(f"- oracle ({READOUT_KIND}): {', '.join(model.oracle.attributes)}")
    else:
        lines.append("- no oracle: attribute readouts are off for this model")
    lines.append("- model card: `README.md` in the model folder (data, recipe, measured quality, limits)")
    prompts = card.get("models_bench")
    if prompts:
        bars = prompts["bars"]
        lines += ["", f"#### Prompts as measured on this model ({prompts['n']} samples each, read by the oracle)",
                  "| prompt | attribute | the oracle reads it as asked | diversity (vs phantoms that fit) |",
                  "|---|---|---|---|"]
        for row in prompts["rows"]:
            agree = f"{row['agreement']:.0%}" + ("" if row["meets"]["agreement"] else " ⚠")
            spread = f"{row['diversity_ratio']:.2f}" + ("" if row["meets"]["diversity_ratio"] else " ⚠")
            lines.append(f"| {row['prompt']} | {_attribute_phrase(row['attribute'], row['wanted'])} | {agree} | "
                         f"{spread} |")
        lines += ["", f"⚠: below the bench's bar ({bars['agreement']:.0%}, {bars['diversity_ratio']:.2f}). Fréchet "
                      f"distance to held-out phantoms {prompts['fd_generated_vs_held_out']:.0f} (a blurred copy of them: "
                      f"{prompts['fd_blurred_held_out_vs_held_out']:.0f}); settings and dates: the model card."]
    classified = {task: entry["engine_trials_bench"] for task, entry in (card.get("explain_calibration") or {}).items()
                  if entry.get("engine_trials_bench")}
    if classified:
        lines += ["", "#### Diffusion classifier as measured on this model (held-out phantoms, at the card's operating "
                      "point)", "| task | phantoms | true label given | trials on average | UNet passes on average |",
                  "|---|---|---|---|---|"]
        lines += [f"| {task} | {r['n']} | {r['accuracy']:.2%} | {r['mean_trials']:.1f} | {r['mean_passes']:.0f} |"
                  for task, r in classified.items()]
    benched = card.get("edit_bench") or {}
    if benched:
        lines += ["", "#### Edits as measured on this model (held-out phantoms, against their true counterfactuals)",
                  "| edit | phantoms | change made | other attributes kept | closer to the truth than the input |",
                  "|---|---|---|---|---|"]
        columns = ("effectiveness", "preservation_all", "faithfulness")
        for edit, r in benched.items():
            cells = [f"{r[key]:.0%}" + ("" if r["meets"][key] else " ⚠") for key in columns]
            lines.append(f"| {edit} | {r['n']} | {' | '.join(cells)} |")
        bars = next(iter(benched.values()))["bars"]
        lines += ["", f"⚠: below the bench's bar ({', '.join(f'{bars[key]:.0%}' for key in columns)}). Settings and "
                     "dates: the model card."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Inputs shared by Edit and Explain: uploads and bundled examples

EXAMPLES_DIR = Path(__file__).resolve().parent.parent.parent / "assets" / "examples" / "inputs"


def example_images(domain: str | None = None) -> list[str]:
    """Bundled example inputs (phantoms) for a domain: file names under assets/examples/inputs."""
    if not EXAMPLES_DIR.is_dir():
        return []
    return sorted(p.name for p in EXAMPLES_DIR.iterdir()
                  if p.suffix in (".png", ".dcm") and (domain is None or p.name.startswith(domain)))


def load_input(upload: str | None, example: str | None, window: tuple[float, float] | None = None):
    """The image to work on, in the I/O contract: an upload (PNG/JPEG/TIFF/DICOM) wins over an example.

    ``window``: DICOM only, (center, width) in modality units instead of the file's own VOI.
    Raises ``ImageReadError`` (a ``ValueError``) with a one-sentence message for a bad file.
    """
    from ..io import read_image

    if upload:
        return read_image(upload, window=window)
    if example:
        if example not in example_images():
            raise ValueError(f"unknown example {example!r}")
        return read_image(EXAMPLES_DIR / example, window=window)
    raise ValueError("upload an image (PNG, JPEG, TIFF or DICOM) or pick an example")


def overlay(pixels: np.ndarray, heat: np.ndarray, opacity: float, colormap: str = "RdBu_r",
            symmetric: bool = True) -> np.ndarray:
    """uint8 RGB: ``heat`` (any size, resized) blended over ``pixels`` (contract) with ``opacity`` in [0, 1]."""
    import matplotlib
    from PIL import Image

    base = as_rgb(np.asarray(pixels, dtype=np.float32))
    h, w = base.shape[:2]
    if heat.shape != (h, w):
        heat = np.asarray(Image.fromarray(heat.astype(np.float32)).resize((w, h), Image.BILINEAR))
    if symmetric:
        scale = float(np.abs(heat).max()) or 1.0
        normalised = 0.5 + 0.5 * heat / scale
    else:
        low, high = float(heat.min()), float(heat.max())
        normalised = (heat - low) / ((high - low) or 1.0)
    colours = matplotlib.colormaps[colormap](np.clip(normalised, 0, 1))[..., :3].astype(np.float32)
    opacity = float(np.clip(opacity, 0, 1))
    return to_uint8(np.clip((1 - opacity) * base + opacity * colours, 0, 1).astype(np.float32))


# ------------------------------------------------------------------------------------------------
# Explain

def explain_presets(domain: str | None) -> list[str]:
    from ..engines.explain import preset_names

    return preset_names(domain) + ["custom"]


def explain_trials(model, preset: str) -> int:
    """The Explain tab's default N for a preset: its model card's N (``calibrated_settings``)."""
    from ..engines.explain import DEFAULT_TRIALS, calibrated_settings, preset_names

    if preset not in preset_names(model.domain):
        return DEFAULT_TRIALS
    return calibrated_settings(model, preset)["trials"]


@dataclass
class ExplainView:
    image: np.ndarray                  # the input at model resolution, contract float
    explanation: np.ndarray            # float32 maps at model resolution: where the classes differ (>= 0)
    evidence: np.ndarray               # signed: > 0 where the winner denoises better
    uncertainty: np.ndarray
    summary: str
    figure: object


#: Explain tab's error-weighting labels -> the engine's weightings (None: the model card's fitted operating
#: point for a preset, its weighting with its timestep window and vote threshold; else "disagreement").
EXPLAIN_WEIGHTINGS = {"model card's operating point (default)": None, "where the classes differ": "disagreement",
                      "uniform (Favero et al.)": "uniform"}


def explain_config(model, preset: str, custom_prompts: str, trials: int, early_stop: bool = True,
                   weighting: str = "model card's operating point (default)"):
    """The engine's ``ExplainConfig`` for the Explain tab's controls: a preset's prompts at its model card's
    operating point (``calibrated_settings``; N from the slider, made odd), or custom prompts (one per line)
    under the plain majority over the whole schedule."""
    from ..engines.explain import ExplainConfig, calibrated_settings
    from ..engines.explain import preset as preset_prompts

    if weighting not in EXPLAIN_WEIGHTINGS:
        raise ValueError(f"unknown error weighting {weighting!r}; choose one of {', '.join(EXPLAIN_WEIGHTINGS)}")
    classes = preset_prompts(model.domain, preset) if preset != "custom" else None
    is_preset = classes is not None
    if is_preset:
        labels, prompts = classes
    else:
        prompts = tuple(p.strip() for p in (custom_prompts or "").split("\n") if p.strip())
        labels = prompts
    # Custom prompts get no card's fit: the plain majority over the whole schedule.
    settings = calibrated_settings(model if is_preset else None, preset, EXPLAIN_WEIGHTINGS[weighting])
    settings.pop("trials")          # the N to run comes from the slider (its default is the card's N)
    return ExplainConfig(prompts=prompts, labels=labels, trials=int(trials) | 1, early_stop=bool(early_stop),
                         **settings)


def explain_expectation(model, preset: str, custom_prompts: str, trials: int, weighting: str) -> str:
    """Markdown, before anything is classified: the classify bench's held-out accuracy for this preset at its
    model card's operating point (``medviz.engines.explain.measured_classifier``), and the settings that differ
    from those it was measured at; empty for a model of unknown domain. No model call."""
    from ..engines.explain import measured_classifier, preset_names

    if model.domain is None:
        return ""
    if preset not in preset_names(model.domain):
        return "*Custom prompts were not measured on held-out phantoms.*  \n"
    measured = measured_classifier(model, preset, explain_config(model, preset, custom_prompts, trials, True, weighting))
    if measured is None:
        return (f"*{preset.capitalize()} was not measured on held-out phantoms with this model (model card: "
                "Diffusion-classifier operating point).*  \n")
    m = measured
    text = (f"**Measured on this model** for *{m['task']}* (classify bench, {m['n']} held-out phantoms"
            + (f", {m['date']}" if m.get("date") else "") + f"): at the card's operating point the diffusion "
            f"classifier gave the phantoms' true label in {m['accuracy']:.2%}, with {m['mean_trials']:.1f} trials on "
            "average.")
    if "points_behind_at_most" in m:
        text += f" At most {m['points_behind_at_most']:.2f} points behind N = {m['reference_trials']}."
    text += _unmeasured_settings(m["differences"], lambda v: "–".join(map(str, v)) if isinstance(v, tuple) else str(v))
    return text + "  \n"


def explain_view(model, upload: str | None, example: str | None, preset: str, custom_prompts: str, trials: int,
                 early_stop: bool, weighting: str = "model card's operating point (default)", progress=None,
                 should_stop=None) -> ExplainView:
    """Classify the input with the diffusion classifier and shape the result for the Explain tab."""
    import plotly.graph_objects as go

    from ..engines.common import model_rgb
    from ..engines.explain import DEFAULT_T_RANGE, classify, fitted_trials, preset_names, votes_needed

    source = load_input(upload, example)
    config = explain_config(model, preset, custom_prompts, trials, early_stop, weighting)
    fit_n = fitted_trials(model, preset) if preset in preset_names(model.domain) else None
    trials = config.trials
    threshold = config.vote_threshold
    result = classify(model, source.pixels, config, progress=progress, should_stop=should_stop)
    display = model_rgb(source.pixels, model.image_size)          # the input as the model saw it
    figure = go.Figure(go.Bar(x=list(result.labels), y=result.vote_fractions,
                              marker_color=["#d62728" if i == result.predicted else "#7f7f7f"
                                            for i in range(len(result.labels))],
                              text=[f"{v:.0%}" for v in result.vote_fractions], textposition="auto"))
    needed = votes_needed(trials, threshold)
    # With early stop the shares are of the trials run, so the operating point is stated, not drawn.
    operating_point = "" if threshold == 0.5 else f" ({result.labels[0]} needs {needed} of {trials})"
    figure.update_layout(title=f"Vote fractions over {result.trials_run} trials{operating_point}", yaxis_range=[0, 1],
                         yaxis_title="share of trials", height=280, template="none",
                         margin={"l": 40, "r": 10, "t": 40, "b": 40})
    certainty = "high" if abs(result.z_score) > 3 and result.vote_entropy < 0.5 else (
        "moderate" if abs(result.z_score) > 1.5 else "low")
    vote_rule = ("Majority vote" if threshold == 0.5 else
                 f"Vote at the model card's calibrated operating point ({result.labels[0]} needs {needed} of {trials} votes)")
    # The card may decide by the mean-error rule (fitted on tuning phantoms); the trials stop on the vote either way.
    rule = vote_rule if config.decision == "vote" else (
        f"Mean-error rule, the model card's decision rule (lowest mean denoising error over the trials run; "
        f"they stop once the vote is decided: {result.labels[0]} needs {needed} of {trials})")
    if tuple(config.t_range) != DEFAULT_T_RANGE:
        rule += f" over timesteps {config.t_range[0]}–{config.t_range[1]} (the model card's window)"
    if threshold != 0.5 and fit_n and trials != fit_n:
        # The share transfers; "k of N" was fitted (and is exact on the tuning draws) only at the fit's N.
        rule += (f"; the card fitted {votes_needed(fit_n, threshold)} of {fit_n} votes, "
                 f"applied here as the same share")
    summary = (f"### {result.label}  \n"
               f"{rule} **{result.label}** (votes: {result.vote_fractions[result.predicted]:.0%} of "
               f"{result.trials_run} trials{', stopped early: the remaining votes could not change the vote' if result.trials_run < trials else ''}); "
               + (f"mean-error rule: **{result.labels[result.predicted_mean_error]}**.  \n" if config.decision == "vote" else
                  f"{vote_rule.lower() if threshold == 0.5 else 'the vote at that operating point'}: "
                  f"**{result.labels[result.predicted_vote]}**.  \n") +
               f"Uncertainty: vote entropy {result.vote_entropy:.2f} bits, paired error z = {result.z_score:.1f} "
               f"→ **{certainty}** certainty. {result.unet_passes} UNet passes, {result.seconds:.1f} s; errors "
               f"weighted {'to where the class prompts differ' if config.weighting == 'disagreement' else 'uniformly'}.  \n"
               f"Explanation map: bright where the model's prediction changes between **{result.label}** and "
               f"**{result.labels[result.runner_up]}** (where the class matters); evidence map: red where the "
               f"**{result.label}** prompt denoises better, blue where the runner-up does; uncertainty map: spread "
               f"of that difference across trials.  \n"
               f"*A model's reading of a {'synthetic ' if model.domain else ''}image, not a diagnosis.*")
    return ExplainView(image=display, explanation=result.explanation_map, evidence=result.evidence_map,
                       uncertainty=result.uncertainty_map, summary=summary, figure=figure)


# ------------------------------------------------------------------------------------------------
# Edit

#: Mask-mode labels shown in the Edit tab -> the engine's mask modes.
EDIT_MASK_MODES = {"automatic (DiffEdit)": "auto", "painted with the brush": "painted", "none (whole image)": "none"}
EDIT_ACTIONS = ("remove", "add")


def edit_attributes(domain: str | None) -> list[str]:
    from ..engines.counterfactual import editable

    return list(editable(domain))


@dataclass(frozen=True)
class EditInput:
    pixels: np.ndarray                 # the image in the I/O contract (full resolution, full precision)
    canvas: dict                       # ImageEditor value: the image as background, no painted layer
    info: str                          # markdown: what was read and how it was mapped
    window: tuple[float, float] | None  # the DICOM window used (center, width), None for other formats


def edit_input(upload: str | None, example: str | None, window_center: float | None = None,
               window_width: float | None = None) -> EditInput:
    """Read the Edit tab's input; a DICOM takes the given window/level (both > 0) or its own VOI."""
    window = None
    if window_center is not None and window_width is not None and float(window_width) > 0:
        window = (float(window_center), float(window_width))
    image = load_input(upload, example, window)
    info = image.info
    text = f"{info.source_format}, {image.size[0]}×{image.size[1]}, {info.original_dtype}"
    if info.window is not None:
        text += f"; window center {info.window[0]:g}, width {info.window[1]:g}"
    if info.inverted:
        text += "; MONOCHROME1 inverted for display"
    background = to_uint8(image.pixels)
    return EditInput(pixels=image.pixels, canvas={"background": background, "layers": [], "composite": background},
                     info=text, window=info.window)


def painted_mask(canvas: dict | None) -> np.ndarray | None:
    """Bool (H, W): every pixel painted on any layer of an ImageEditor value (the layers' alpha), or None."""
    if not canvas or not canvas.get("layers"):
        return None
    masks = []
    for layer in canvas["layers"]:
        layer = np.asarray(layer)
        if layer.ndim == 3 and layer.shape[-1] == 4:
            masks.append(layer[..., 3] > 0)
        elif layer.ndim == 3:
            masks.append(layer.max(-1) > 0)
        elif layer.ndim == 2:
            masks.append(layer > 0)
    return np.logical_or.reduce(masks) if masks else None


@dataclass(frozen=True)
class EditView:
    before: np.ndarray                 # the input as the model saw it, contract float
    after: np.ndarray                  # the counterfactual, contract float
    difference: np.ndarray             # signed luminance difference, float32 (H, W)
    mask: np.ndarray                   # bool (H, W)
    summary: str                       # markdown
    readout: list[list]                # rows: attribute, before, after (oracle readout, not a diagnosis)
    files: list[str]                   # PNG and DICOM Secondary Capture of the counterfactual


def edit_config(action: str, attribute: str, target_prompt: str, mask_mode: str, strength: float, guidance: float,
                steps: int, seed: int | None = None, change_threshold: float | None = None):
    """The engine's ``EditConfig`` for the Edit tab's controls (seed < 0 or None: random)."""
    from ..engines.counterfactual import EditConfig

    if action not in EDIT_ACTIONS:
        raise ValueError(f"unknown action {action!r}; choose add or remove")
    if mask_mode not in EDIT_MASK_MODES:
        raise ValueError(f"unknown mask mode {mask_mode!r}")
    target_prompt = (target_prompt or "").strip() or None
    if target_prompt is None and not attribute:
        raise ValueError("pick an attribute to add or remove, or type a target prompt")
    edit = () if target_prompt else (attribute,)
    return EditConfig(add=edit if action == "add" else (), remove=edit if action == "remove" else (),
                      target_prompt=target_prompt, mask_mode=EDIT_MASK_MODES[mask_mode], strength=float(strength),
                      guidance_scale=float(guidance), steps=int(steps),
                      change_threshold=None if change_threshold is None else float(change_threshold),
                      seed=None if seed is None or int(seed) < 0 else int(seed))


def edit_expectation(model, action: str, attribute: str, target_prompt: str, mask_mode: str, strength: float,
                     guidance: float, steps: int, change_threshold: float | None = None) -> str:
    """Markdown, before any edit runs: how this kind of edit did on this model in the counterfactual bench
    (``measured_markdown``); empty while the controls ask for nothing runnable. No model call."""
    from ..engines.counterfactual import measured_edit

    try:
        config = edit_config(action, attribute, target_prompt, mask_mode, strength, guidance, steps,
                             change_threshold=change_threshold)
        config.validate(model.domain)
    except ValueError:
        return ""
    return measured_markdown(measured_edit(model.card, config.for_domain(model.domain)), model.domain is not None)


def edit_view(model, pixels: np.ndarray | None, canvas: dict | None, action: str, attribute: str, target_prompt: str,
              mask_mode: str, strength: float, guidance: float, steps: int, seed: int, session: str,
              progress=None, should_stop=None, change_threshold: float | None = None) -> EditView:
    """Run the counterfactual engine on the loaded input and shape the result for the Edit tab.

    ``change_threshold``: keep the input where the edit changed the intensity by less (0 = take the whole
    mask; ``None``: the model's default)."""
    from ..engines.counterfactual import counterfactual
    from ..io import write_dicom

    if pixels is None:
        raise ValueError("load an image first: upload a PNG, JPEG, TIFF or DICOM, or pick an example")
    config = edit_config(action, attribute, target_prompt, mask_mode, strength, guidance, steps, seed,
                         change_threshold)
    mask = painted_mask(canvas) if config.mask_mode == "painted" else None
    if mask is not None and mask.shape != np.asarray(pixels).shape[:2]:
        raise ValueError("the painted mask does not match the loaded image; load the image again and repaint")
    result = counterfactual(model, np.asarray(pixels, np.float32), config, mask=mask, progress=progress,
                            should_stop=should_stop)
    readout = []
    if result.readout_before is not None:
        readout = [[name, f"{result.readout_before[name]:.3f}", f"{result.readout_after[name]:.3f}"]
                   for name in result.readout_before]
    folder = session_folder(session)
    stem = f"counterfactual-{result.seed}"
    parameters = {**result.parameters, "notice": RESEARCH_ONLY_NOTICE}
    if result.measured is not None:          # the exported file keeps how far this kind of edit can be trusted
        parameters["bench_record"] = {key: result.measured[key] for key in (
            "edit", "n", "effectiveness", "preservation_all", "faithfulness", "meets", "date", "same_settings")}
    png = write_png(folder / f"{stem}.png", result.counterfactual, parameters)
    dicom = write_dicom(folder / f"{stem}.dcm", result.counterfactual, parameters,
                        description="medviz counterfactual edit (synthetic)")
    inside = "whole image" if result.mask.all() else f"{result.mask.mean():.0%} of the image"
    change = result.parameters["change_threshold"] if config.mask_mode != "none" else 0
    if change:
        inside += (f"; taken from the edit: the {result.edited.mean():.0%} of the image where it changed the "
                   f"intensity by more than {change:g}")
        if not result.edited.any():
            inside += " (none: the result is the input; try a higher guidance or strength, or a lower threshold)"
    summary = (f"**Source prompt:** {result.source_prompt}  \n**Target prompt:** {result.target_prompt}  \n"
               f"Mask: {mask_mode} ({inside}). Change inside the mask: L1 {_number(result.l1_inside)}, SSIM "
               f"{_number(result.ssim_inside)}; outside: L1 {_number(result.l1_outside)}, SSIM {_number(result.ssim_outside)}.  \n"
               f"Seed {result.seed}, {result.unet_passes} UNet passes, {result.seconds:.1f} s, "
               f"{model.image_size} px (the model's resolution).  \n"
               f"*A synthetic counterfactual from a generative model; the table is an {READOUT_KIND}. "
               f"{RESEARCH_ONLY_NOTICE.capitalize()}.*")
    return EditView(before=result.input, after=result.counterfactual, difference=result.difference, mask=result.mask,
                    summary=summary, readout=readout, files=[str(png), str(dicom)])


#: What a benched edit that misses a bar does (the Edit tab's warning).
EDIT_SHORTFALLS = {"effectiveness": "often fails to make the change",
                   "preservation_all": "often changes other attributes too",
                   "faithfulness": "rarely looks like this image's true counterfactual"}


def measured_markdown(measured: dict | None, known_domain: bool) -> str:
    """The Edit tab's word, above its Edit button, on how far to trust this kind of edit on this model: its
    counterfactual-bench record (``medviz.engines.counterfactual.measured_edit``), a warning where it falls
    below a bar; empty for a model of unknown domain (nothing can be measured without phantoms)."""
    if measured is None:
        return ("*This edit was not measured on this model against true counterfactuals (model card: Counterfactual "
                "edits as measured).*  \n" if known_domain else "")
    m = measured
    figures = (f"the oracle read the change asked for in {m['effectiveness']:.0%}, every other attribute kept its "
               f"readout in {m['preservation_all']:.0%}, and the result was closer to the true counterfactual than "
               f"the input in {m['faithfulness']:.0%}")
    text = (f"**Measured on this model** for *{m['edit']}* ({m['n']} held-out phantoms with known true "
            f"counterfactuals, {m['date']}): {figures}.")
    text += _unmeasured_settings(m["differences"])
    failed = [EDIT_SHORTFALLS[name] for name, met in m["meets"].items() if not met]
    if failed:
        listed = failed[0] if len(failed) == 1 else ", ".join(failed[:-1]) + " and " + failed[-1]
        text = f"⚠ **On this model this edit {listed}.** " + text
    return text + "  \n"


def _unmeasured_settings(differences: dict, shown=str) -> str:
    """' This run's settings differ and were not measured: steps 50 (measured at 25), ...' for a bench record's
    ``differences`` ({setting: (measured at, this run)}, ``medviz.engines.common.setting_differences``), each
    value written by ``shown``; '' when there are none."""
    if not differences:
        return ""
    changed = ", ".join(f"{name.replace('_', ' ')} {shown(mine)} (measured at {shown(theirs)})"
                        for name, (theirs, mine) in differences.items())
    return f" This run's settings differ and were not measured: {changed}."


def _number(value: float) -> str:
    return "n/a" if value != value else f"{value:.3f}"


def difference_overlay(view: EditView | None, opacity: float) -> np.ndarray | None:
    """uint8 RGB: the signed difference (red brighter, blue darker) over the counterfactual; no model call."""
    if view is None:
        return None
    return for_display(overlay(view.after, view.difference, opacity, "RdBu_r", True))


def explain_overlays(view: ExplainView | None, opacity: float) -> tuple[np.ndarray | None, ...]:
    """uint8 RGB explanation, evidence and uncertainty overlays at ``opacity``, enlarged for display; no model call."""
    if view is None:
        return None, None, None
    return (for_display(overlay(view.image, view.explanation, opacity, "inferno", False)),
            for_display(overlay(view.image, view.evidence, opacity, "RdBu_r", True)),
            for_display(overlay(view.image, view.uncertainty, opacity, "magma", False)))
