"""Generate tab: a prompt from the domain's attributes (or free text), the stock pipeline, PNGs with parameters."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np

from ... import RESEARCH_ONLY_NOTICE, domains
from ...engines import SCHEDULERS
from ...engines.generate import GenerateConfig, generate, measured_prompt
from ...io import to_uint8, write_png
from ...oracle import READOUT_KIND
from ...prompts import describe
from ..common import (PREVIEW_LABEL, MODEL_JOBS, Job, Page, errors_as_messages, pre_run_line, start_job,
                      unmeasured_settings, warned)
from . import Tab

UNSPECIFIED = "unspecified"


def attribute_choices(domain: str | None) -> list[tuple[str, str]]:
    """The checkboxes, (UI words, identifier) of the domain's listed attributes (none for an unknown domain)."""
    known = domains.find(domain)
    return [(a.shown, a.name) for a in known.listed] if known else []


def head_choices(domain: str | None) -> tuple[str, list[tuple[str, str]], str] | None:
    """(label, choices, default) of the radio for the domain's caption head (CXR's sex, skin's lesion), or None;
    the choices are (UI words, identifier): ("male", "male"), ("benign nevus", "benign_nevus")."""
    known = domains.find(domain)
    if known is None or not known.heads:
        return None
    head = known.heads[0]
    neutral = known.neutral.get(head.name, False if head.always_named else None)
    present, absent = (head.phrase, head.name), (head.absent, head.absent_name)
    words = [present, absent] if neutral is not False else [absent, present]
    return head.shown, ([] if head.always_named else [(UNSPECIFIED, UNSPECIFIED)]) + words, words[0][1]


@dataclass(frozen=True)
class GenerateRequest:
    """The Generate tab's controls; ``seed`` < 0 draws one."""

    attributes: tuple[str, ...] = ()
    head: str = UNSPECIFIED
    free_text: str = ""
    negative: str = ""
    seed: int = -1
    batch: int = 4
    scheduler: str = "DDIM"
    steps: int = 25
    guidance_scale: float = 4.0
    preview: bool = False

    def prompt(self, domain: str | None) -> str:
        """In the training captions' words (``describe``), the free text appended after a comma; the free text
        alone for a model of unknown domain."""
        free_text = (self.free_text or "").strip()
        known = domains.find(domain)
        if known is None:
            return free_text
        ticked = set(self.attributes or ())
        present = {a.name: True for a in known.listed if a.name in ticked}
        for head in known.heads[:1]:
            if self.head in (head.name, head.absent_name):
                present[head.name] = self.head == head.name
        text = describe(known.name, present)
        return f"{text}, {free_text}" if free_text else text

    def config(self, domain: str | None) -> GenerateConfig:
        prompt = self.prompt(domain)
        if not prompt.strip():
            raise ValueError("the prompt is empty: tick attributes or write a prompt")
        return GenerateConfig(prompt=prompt.strip(), negative_prompt=self.negative or "", batch_size=int(self.batch),
                              seed=None if self.seed is None or int(self.seed) < 0 else int(self.seed),
                              steps=int(self.steps), guidance_scale=float(self.guidance_scale),
                              scheduler=self.scheduler, preview=bool(self.preview))


@dataclass(frozen=True)
class GeneratedView:
    gallery: list[tuple[np.ndarray, str]]     # (uint8 image, caption) per image
    files: list[str]                          # PNGs with parameters embedded
    seed: int
    info: str                                 # markdown: parameters and readouts
    history_row: list


def expectation(model, request: GenerateRequest) -> str:
    """Markdown, before anything is generated: how often this model drew the attributes the prompt names in
    the models bench (``measured_markdown``); empty for an empty prompt. No model call."""
    try:
        config = request.config(model.domain)
    except ValueError:
        return ""
    return measured_markdown(measured_prompt(model.card, model.domain, config), model.domain is not None)


def measured_markdown(measured: dict | None, known_domain: bool) -> str:
    """The word above the Generate button on how often this model draws what the prompt names: the models-bench
    rows (``medviz.engines.generate.measured_prompt``) and its warnings; empty for a model of unknown domain and
    for a prompt that names no attribute."""
    if measured is None:
        return "*This model's prompts were not measured (model card: Measured quality).*  \n" if known_domain else ""
    if not measured["rows"] and not measured["unmeasured"]:
        return ""
    text = ""
    if measured["rows"]:
        read = ", ".join(f"*{row['phrase']}* in {row['agreement']:.0%}" for row in measured["rows"])
        text = (f"**Measured on this model** (models bench, {measured['date']}; {measured['n']} samples of the "
                f"bench's own prompt for each attribute): the oracle read {read}.")
    if measured["unmeasured"]:
        text += (" " if text else "") + "Not measured on this model: " + ", ".join(measured["unmeasured"]) + "."
    # Quoted: a negative prompt may be empty, a sampler name has spaces.
    text += unmeasured_settings(measured["differences"], lambda v: repr(v) if isinstance(v, str) else str(v))
    return warned(measured["warnings"], text) + "  \n"


def generate_view(model, request: GenerateRequest, job: Job) -> GeneratedView:
    """Run the generate engine and shape its result for the tab: gallery, PNG files, parameters line."""
    config = request.config(model.domain)
    result = generate(model, config, progress=job.progress, should_stop=job.should_stop)
    gallery, files = [], []
    for i, image in enumerate(result.images):
        parameters = {**result.image_parameters(i), "notice": RESEARCH_ONLY_NOTICE}
        if result.readouts:
            parameters["oracle_readout"] = {k: round(v, 4) for k, v in result.readouts[i].items()}
        if result.measured and result.measured["rows"]:     # the file keeps how often the model draws what it names
            parameters["bench_record"] = {
                "n": result.measured["n"],
                "date": result.measured["date"],
                "same_settings": result.measured["same_settings"],
                "rows": [
                    {key: row[key] for key in ("attribute", "wanted", "prompt", "agreement")}
                    for row in result.measured["rows"]
                ],
            }
        files.append(str(write_png(job.file(f"medviz_{result.seeds[i]}_{i}", ".png"), image, parameters)))
        caption = f"seed {result.seeds[i]}"
        if result.readouts:
            caption += " · " + ", ".join(
                f"{k} {v:.2f}" for k, v in result.readouts[i].items() if k in model.oracle.factors
            )
        gallery.append((to_uint8(image), caption))
    info = (
        f"**Seed {result.parameters['seed']}** (image *i* uses seed + *i*) · {config.steps} {config.scheduler} steps · "
        f"guidance {config.guidance_scale} · {result.seconds:.1f} s  \n`{config.prompt}`"
    )
    if result.readouts:
        info += f"  \nCaptions show the oracle's {READOUT_KIND}."
    row = [
        result.parameters["seed"],
        config.prompt,
        config.negative_prompt,
        config.scheduler,
        config.steps,
        config.guidance_scale,
        config.batch_size,
    ]
    return GeneratedView(
        gallery=gallery,
        files=files,
        seed=result.parameters["seed"],
        info=warned(result.warnings, info),
        history_row=row,
    )


def _controls(domain: str | None) -> dict:
    """The controls whose values make a ``GenerateRequest``, by field name."""
    label, choices, default = head_choices(domain) or ("", [], None)
    controls = {
        "attributes": gr.CheckboxGroup(attribute_choices(domain), value=[], label="Findings and devices"),
        "head": gr.Radio(choices, value=default, label=label, visible=bool(choices)),
        "free_text": gr.Textbox("", label="More prompt text (appended)", placeholder="e.g. small left effusion"),
        "negative": gr.Textbox(label="Negative prompt", value=""),
    }
    with gr.Row(equal_height=True):
        controls["seed"] = gr.Number(value=-1, precision=0, label="Seed (-1 = random)", minimum=-1, scale=2)
        with gr.Column(scale=1, min_width=140):
            controls["random_seed"] = gr.Button("Random seed", size="sm")
            controls["reuse_seed"] = gr.Button("Reuse last seed", size="sm")
    with gr.Row():
        controls["batch"] = gr.Slider(1, 8, value=4, step=1, label="Batch size")
        controls["steps"] = gr.Slider(2, 100, value=25, step=1, label="Steps", elem_id="generate-steps")
    with gr.Row():
        controls["guidance_scale"] = gr.Slider(1, 15, value=4.0, step=0.5, label="Guidance scale")
        controls["scheduler"] = gr.Dropdown(list(SCHEDULERS), value="DDIM", label="Sampler")
    controls["preview"] = gr.Checkbox(False, label=PREVIEW_LABEL, elem_id="generate-preview")
    return controls


def build(page: Page, domain: str | None) -> Tab:
    """The tab's layout and events; ``domain``: the default model's, for the first choices."""
    with gr.Tab("Generate", id="generate"):
        with gr.Row():
            with gr.Column(scale=2):
                controls = _controls(domain)
                expect = gr.Markdown(elem_id="generate-expect")            # the card's figures for this prompt
                button = gr.Button("Generate", variant="primary", elem_id="generate-button")
            with gr.Column(scale=3):
                gallery = gr.Gallery(
                    label="Generated (synthetic)", format="png", columns=4, height=360, elem_id="gallery"
                )
                info = gr.Markdown()
                files = gr.File(
                    label="PNG downloads (parameters and research-only notice embedded)", file_count="multiple"
                )
        history_table = gr.Dataframe(
            headers=["seed", "prompt", "negative", "sampler", "steps", "guidance", "batch"],
            label="This session's history",
            interactive=False,
            wrap=True,
        )
        last_seed, history = gr.State(None), gr.State([])
    random_seed, reuse_seed = controls.pop("random_seed"), controls.pop("reuse_seed")
    line_controls = {k: v for k, v in controls.items() if k not in ("seed", "batch")}
    after_model = pre_run_line(page, lambda model, **values: expectation(model, GenerateRequest(**values)), expect,
                               line_controls, "generate_expect")

    @errors_as_messages
    def on_generate(model_name, history, request: gr.Request, progress=gr.Progress(), **values):
        view = generate_view(page.registry.get(model_name), GenerateRequest(**values),
                             start_job(page, request, progress, "denoising"))
        history = ([view.history_row] + list(history or []))[:50]
        return view.gallery, view.files, view.info, view.seed, history, history

    button.click(on_generate, [page.model_name, history], [gallery, files, info, last_seed, history, history_table],
                 inputs_kwargs=controls, api_name="generate", concurrency_id=MODEL_JOBS)
    random_seed.click(lambda: -1, None, controls["seed"], api_name=False, queue=False)
    reuse_seed.click(
        lambda last: -1 if last is None else last, last_seed, controls["seed"], api_name=False, queue=False
    )

    def on_model(model) -> list:
        label, choices, default = head_choices(model.domain) or ("", [], None)
        return [gr.CheckboxGroup(choices=attribute_choices(model.domain), value=[]),
                gr.Radio(choices=choices, value=default, label=label, visible=bool(choices))]


    return Tab(outputs=[controls["attributes"], controls["head"]], on_model=on_model, after_model=after_model)
