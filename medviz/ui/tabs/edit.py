"""Edit tab: upload an image (DICOM with window/level), paint a mask or let DiffEdit find one, get its
counterfactual."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np
from PIL import Image

from ... import RESEARCH_ONLY_NOTICE, domains
from ...display import for_display, overlay
from ...engines.counterfactual import EditConfig, counterfactual, edit_defaults, editable, measured_edit
from ...io import write_dicom, write_png
from ...oracle import READOUT_KIND
from ..common import (MODEL_JOBS, NO_IMAGE, Job, Page, domain_banner, errors_as_messages, example_images, first_example,
                      image_input, number, outside, pre_run_line, read_input, start_job, take_upload,
                      unmeasured_settings, warned)
from ..session import FILE_LIFETIME
from . import Tab

#: Mask-mode labels shown in the tab -> the engine's mask modes.
#: The mask radio, (label, the engine's mask mode).
MASK_MODES = (("automatic (DiffEdit)", "auto"), ("painted with the brush", "painted"), ("none (whole image)", "none"))
ACTIONS = ("remove", "add")


def dicom_window(center: float | None, width: float | None) -> tuple[float, float] | None:
    """(center, width) when both are given and the width is positive, else None (the file's own VOI)."""
    if center is not None and width is not None and float(width) > 0:
        return float(center), float(width)
    return None


def canvas_of(pixels: np.ndarray) -> dict:
    """The ImageEditor value for an image: enlarged for painting as its background, no painted layer."""
    background = for_display(pixels)
    return {"background": background, "layers": [], "composite": background}


def painted_mask(canvas: dict | None, shape: tuple[int, int] | None = None) -> np.ndarray | None:
    """Bool (H, W): every pixel painted on any layer of an ImageEditor value (the layers' alpha), or None;
    ``shape``: resized (nearest) to the image's (H, W), as the canvas shows it enlarged."""
    if not canvas or not canvas.get("layers"):
        return None
    masks = []
    for layer in map(np.asarray, canvas["layers"]):
        if layer.ndim == 3 and layer.shape[-1] == 4:
            masks.append(layer[..., 3] > 0)
        elif layer.ndim == 3:
            masks.append(layer.max(-1) > 0)
        elif layer.ndim == 2:
            masks.append(layer > 0)
    if not masks:
        return None
    mask = np.logical_or.reduce(masks)
    if shape is not None and mask.shape != tuple(shape):
        mask = np.asarray(Image.fromarray(mask).resize((shape[1], shape[0]), Image.NEAREST))
    return mask


def attribute_choices(domain: str | None) -> list[tuple[str, str]]:
    """The attribute box, (UI words, identifier) of what an edit can add or remove (none for an unknown domain)."""
    known = domains.find(domain)
    return [(known.attribute(name).shown, name) for name in editable(domain)] if known else []


@dataclass(frozen=True)
class EditRequest:
    """The Edit tab's controls: the loaded image and painted canvas, the edit, and its settings (seed < 0:
    random; ``change_threshold`` None: the model's default). Fields are ``EditConfig``'s names and values."""

    pixels: np.ndarray | None = None
    canvas: dict | None = None
    action: str = "remove"
    attribute: str | None = None
    target_prompt: str = ""
    source_prompt: str = ""
    mask_mode: str = "auto"
    strength: float = 0.8
    guidance_scale: float = 6.0
    steps: int = 30
    seed: int = 0
    change_threshold: float | None = None

    def config(self) -> EditConfig:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; choose add or remove")
        if self.mask_mode not in (mode for _, mode in MASK_MODES):
            raise ValueError(f"unknown mask mode {self.mask_mode!r}; choose {', '.join(m for _, m in MASK_MODES)}")
        target_prompt = (self.target_prompt or "").strip() or None
        if target_prompt is None and not self.attribute:
            raise ValueError("pick an attribute to add or remove, or type a target prompt")
        edit = () if target_prompt else (self.attribute,)
        return EditConfig(add=edit if self.action == "add" else (), remove=edit if self.action == "remove" else (),
                          target_prompt=target_prompt, source_prompt=(self.source_prompt or "").strip() or None,
                          mask_mode=self.mask_mode, strength=float(self.strength),
                          guidance_scale=float(self.guidance_scale), steps=int(self.steps),
                          change_threshold=None if self.change_threshold is None else float(self.change_threshold),
                          seed=None if self.seed is None or int(self.seed) < 0 else int(self.seed))


@dataclass(frozen=True)
class EditView:
    before: np.ndarray                 # the input as the model saw it, contract float
    after: np.ndarray                  # the counterfactual, contract float
    difference: np.ndarray             # signed luminance difference, float32 (H, W)
    mask: np.ndarray                   # bool (H, W)
    summary: str                       # markdown
    readout: list[list]                # rows: attribute, before, after (oracle readout, not a diagnosis)
    files: list[str]                   # PNG and DICOM Secondary Capture of the counterfactual


def expectation(model, request: EditRequest) -> str:
    """Markdown, before any edit runs: how this kind of edit did on this model in the counterfactual bench
    (``measured_markdown``); empty while the controls ask for nothing runnable. No model call."""
    try:
        config = request.config()
        config.validate(model.domain)
    except ValueError:
        return ""
    return measured_markdown(measured_edit(model.card, config.for_domain(model.domain)), model.domain is not None)


def measured_markdown(measured: dict | None, known_domain: bool) -> str:
    """The word above the Edit button on how far to trust this kind of edit on this model: its counterfactual-bench
    record (``medviz.engines.counterfactual.measured_edit``) and its warning; empty for a model of unknown domain
    (nothing can be measured without phantoms)."""
    if measured is None:
        return ("*This edit was not measured on this model against true counterfactuals (model card: Counterfactual "
                "edits as measured).*  \n" if known_domain else "")
    m = measured
    text = (
        f"**Measured on this model** for *{m['phrase']}* ({m['n']} held-out phantoms with known true "
        f"counterfactuals, {m['date']}): the oracle read the change asked for in {m['effectiveness']:.0%}, every "
        f"other attribute kept its readout in {m['preservation_all']:.0%}, and the result was closer to the true "
        f"counterfactual than the input in {m['faithfulness']:.0%}."
    )
    return warned(m["warnings"], text + unmeasured_settings(m["differences"])) + "  \n"


def edit_view(model, request: EditRequest, job: Job) -> EditView:
    """Run the counterfactual engine on the loaded input and shape the result for the tab, files included."""
    if request.pixels is None:
        raise ValueError(NO_IMAGE)
    config = request.config()
    shape = np.asarray(request.pixels).shape[:2]
    mask = painted_mask(request.canvas, shape) if config.mask_mode == "painted" else None
    result = counterfactual(model, np.asarray(request.pixels, np.float32), config, mask=mask, progress=job.progress,
                            should_stop=job.should_stop)
    readout = []
    if result.readout_before is not None:
        shown = (lambda v: f"{v:.3f} (not meaningful)") if outside(result.domain_check) else number
        readout = [[name, shown(result.readout_before[name]), shown(result.readout_after[name])]
                   for name in result.readout_before]
    mask_label = next(label for label, mode in MASK_MODES if mode == request.mask_mode)
    return EditView(before=result.input, after=result.counterfactual, difference=result.difference, mask=result.mask,
                    summary=_summary(model, result, mask_label), readout=readout, files=_export(result, job))


def _export(result, job: Job) -> list[str]:
    """PNG and DICOM Secondary Capture of the counterfactual, with its parameters and the bench's record."""
    stem = f"counterfactual-{result.seed}"
    parameters = {**result.parameters, "notice": RESEARCH_ONLY_NOTICE}       # domain and effect checks included
    if result.measured is not None:          # the exported file keeps how far this kind of edit can be trusted
        parameters["bench_record"] = {key: result.measured[key] for key in (
            "edit", "n", "effectiveness", "preservation_all", "faithfulness", "meets", "date", "same_settings")}
    png = write_png(job.file(stem, ".png"), result.counterfactual, parameters)
    dicom = write_dicom(job.file(stem, ".dcm"), result.counterfactual, parameters,
                        description="medviz counterfactual edit (synthetic)")
    return [str(png), str(dicom)]


def _summary(model, result, mask_label: str) -> str:
    inside = "whole image" if result.mask.all() else f"{result.mask.mean():.0%} of the image"
    change = result.parameters["change_threshold"] if result.parameters["mask_mode"] != "none" else 0
    if change:
        inside += (
            f"; taken from the edit: the {result.edited.mean():.0%} of the image where it changed the "
            f"intensity by more than {change:g}"
        )
    text = (
        f"**Source prompt:** {result.source_prompt}  \n**Target prompt:** {result.target_prompt}  \n"
        f"Mask: {mask_label} ({inside}). Change inside the mask: L1 {number(result.l1_inside)}, SSIM "
        f"{number(result.ssim_inside)}; outside: L1 {number(result.l1_outside)}, SSIM "
        f"{number(result.ssim_outside)}.  \n"
        f"Seed {result.seed}, {result.unet_passes} UNet passes"
        + (f" (+{result.domain_check.unet_passes} for the domain check)" if result.domain_check else "")
        + f", {result.seconds:.1f} s, {model.image_size} px (the model's resolution).  \n"
        f"*A synthetic counterfactual from a generative model; the table is an {READOUT_KIND}. "
        f"{RESEARCH_ONLY_NOTICE.capitalize()}.*"
    )
    if result.effect is not None and result.effect.passed:
        text = f"**Effect check:** {result.effect.verdict}  \n" + text
    others = [w for w in result.warnings if not result.domain_check or w != result.domain_check.warning]
    return domain_banner(result.domain_check) + warned(others, text)


def difference_overlay(view: EditView | None, opacity: float) -> np.ndarray | None:
    """uint8 RGB: the signed difference (red brighter, blue darker) over the counterfactual; no model call."""
    if view is None:
        return None
    return for_display(overlay(view.after, view.difference, opacity, "RdBu_r", True))


def _controls(domain: str | None) -> dict:
    """The edit's controls, by ``EditRequest`` field name; the sliders start at the domain's defaults."""
    defaults = edit_defaults(domain)
    attributes = attribute_choices(domain)
    with gr.Row():
        controls = {
            "action": gr.Radio(list(ACTIONS), value="remove", label="Action"),
            "attribute": gr.Dropdown(attributes, value=attributes[0][1] if attributes else None, label="Attribute"),
        }
    with gr.Row():
        controls["target_prompt"] = gr.Textbox(
            "",
            label="…or a free target prompt (overrides add/remove)",
            placeholder="Chest X-ray of a female patient with no pleural effusion",
        )
        controls["source_prompt"] = gr.Textbox(
            "",
            label="Source prompt: what the image shows (blank = from the oracle's readout)",
            placeholder="Chest X-ray of a female patient with pleural effusion",
            elem_id="edit-source-prompt",
        )
    controls["mask_mode"] = gr.Radio(
        list(MASK_MODES), value="auto", label="Mask: where the edit may change pixels"
    )
    controls["strength"] = gr.Slider(
        0.2, 1.0, value=defaults.strength, step=0.05, label="Strength (how early in the trajectory the edit starts)"
    )
    with gr.Row():
        controls["guidance_scale"] = gr.Slider(1, 12, value=defaults.guidance_scale, step=0.5,
                                               label="Guidance scale")
        controls["steps"] = gr.Slider(10, 100, value=EditConfig().steps, step=5, label="Steps", elem_id="edit-steps")
        controls["seed"] = gr.Number(value=0, precision=0, label="Seed (-1 = random)", minimum=-1)
    controls["change_threshold"] = gr.Slider(
        0,
        0.2,
        value=defaults.change_threshold,
        step=0.01,
        label="Keep the input where the edit changed the intensity by less than (0 = take the whole mask)",
    )
    return controls


def _input_column(domain: str | None) -> dict:
    """The input's widgets: upload or example, DICOM window / level, what was read, the painting canvas."""
    widgets = dict(zip(("upload", "example"), image_input("edit", domain)))
    with gr.Row():
        widgets["center"] = gr.Number(label="DICOM window center", value=None)
        widgets["width"] = gr.Number(label="DICOM window width", value=None, minimum=0)
        widgets["apply"] = gr.Button("Apply window / level", scale=0)
    widgets["info"] = gr.Markdown(elem_id="edit-input-info")
    widgets["canvas"] = gr.ImageEditor(label="Input — paint the region to edit (mask mode 'painted')", type="numpy",
                                       format="png", image_mode="RGBA", sources=(), transforms=(), layers=False,
                                       height=420, elem_id="edit-canvas",
                                       brush=gr.Brush(colors=["#ffd000"], color_mode="fixed"))
    return widgets


def loaded_outputs(page: Page, model_name: str | None, source: dict | None, center: float | None = None,
                   width: float | None = None) -> list:
    """The loading events' outputs (source, pixels, canvas, info, window center and width) for ``source``
    ({"upload": bytes} or {"example": name}); a file that cannot be read leaves no image, never an earlier one."""
    if not source:
        return [None, None, None, "", None, None]
    image, info = read_input(page, model_name, source, dicom_window(center, width))
    if image is None:
        return [None, None, None, info, None, None]
    center, width = image.info.window or (None, None)
    return [source, image.pixels, canvas_of(image.pixels), info, center, width]


def build(page: Page, domain: str | None) -> Tab:
    with gr.Tab("Edit", id="edit"):
        with gr.Row():
            with gr.Column(scale=2):
                loading = _input_column(domain)
            with gr.Column(scale=2):
                controls = _controls(domain)
                expect = gr.Markdown(elem_id="edit-expect")        # the card's figures for this edit
                button = gr.Button("Edit", variant="primary", elem_id="edit-button")
                summary = gr.Markdown(elem_id="edit-summary")
                readout = gr.Dataframe(headers=["attribute", "before", "after"], interactive=False,
                                       label=f"Oracle {READOUT_KIND}")
        with gr.Row():
            before_after = gr.ImageSlider(label="Before / after (drag)", format="png", type="numpy",
                                          elem_id="edit-slider", max_height=420)
            with gr.Column():
                difference = gr.Image(label="Difference (red: brighter, blue: darker)", format="png",
                                      interactive=False, elem_id="edit-difference", height=360)
                opacity = gr.Slider(0, 1, value=0.6, step=0.05, label="Difference overlay opacity")
        files = gr.File(label="Export: PNG and DICOM Secondary Capture (parameters and notice embedded)",
                        file_count="multiple")
        # What was loaded ({"upload": bytes} or {"example": name}; in memory, for a new window/level) and its pixels:
        # kept FILE_LIFETIME s after they were loaded, as the server's files are.
        source, pixels = gr.State(None, time_to_live=FILE_LIFETIME), gr.State(None, time_to_live=FILE_LIFETIME)
        state = gr.State(None)

    def on_example(model_name, example):
        if not example:                       # emptied by an upload (below): the upload is the input
            return [gr.skip()] * 6
        return loaded_outputs(page, model_name, {"example": example})

    def on_upload(model_name, upload, center, width):
        data = take_upload(upload)            # read into memory; the file and its name leave the server now
        return [*loaded_outputs(page, model_name, {"upload": data} if data else None, center, width), None, None]

    @errors_as_messages
    def on_edit(model_name, opacity, request: gr.Request, progress=gr.Progress(), **values):
        job = start_job(page, request, progress, "edit")
        view = edit_view(page.registry.get(model_name), EditRequest(**values), job)
        return (view, (for_display(view.before), for_display(view.after)), difference_overlay(view, opacity),
                view.summary, view.readout, view.files)

    window = [loading["center"], loading["width"]]
    loaded = [source, pixels, loading["canvas"], loading["info"], *window]
    loading["upload"].upload(on_upload, [page.model_name, loading["upload"], *window],
                             [*loaded, loading["upload"], loading["example"]], api_name="edit_load")
    loading["upload"].clear(lambda: loaded_outputs(page, None, None), None, loaded, api_name=False)
    loading["example"].change(on_example, [page.model_name, loading["example"]], loaded, api_name="edit_example")
    loading["apply"].click(lambda model_name, source, center, width: loaded_outputs(page, model_name, source,
                                                                                    center, width),
                           [page.model_name, source, *window], loaded, api_name="edit_window")
    button.click(on_edit, [page.model_name, opacity], [state, before_after, difference, summary, readout, files],
                 inputs_kwargs={"pixels": pixels, "canvas": loading["canvas"], **controls}, api_name="edit",
                 concurrency_id=MODEL_JOBS)
    line_controls = {k: v for k, v in controls.items() if k != "seed"}
    after_model = pre_run_line(page, lambda model, **values: expectation(model, EditRequest(**values)), expect,
                               line_controls, "edit_expect")
    opacity.change(difference_overlay, [state, opacity], difference, api_name="edit_opacity", queue=False,
                   show_progress="hidden")

    def on_model(model) -> list:
        defaults, attributes = edit_defaults(model.domain), attribute_choices(model.domain)
        examples = example_images(model.domain)
        return [gr.Dropdown(choices=attributes, value=attributes[0][1] if attributes else None),
                gr.Dropdown(choices=examples, value=first_example(examples, "edit")),
                gr.Slider(value=defaults.strength), gr.Slider(value=defaults.guidance_scale),
                gr.Slider(value=defaults.change_threshold)]

    return Tab(outputs=[controls["attribute"], loading["example"], controls["strength"], controls["guidance_scale"],
                        controls["change_threshold"]], on_model=on_model, after_model=after_model,
               on_load=lambda demo: demo.load(on_example, [page.model_name, loading["example"]], loaded,
                                              api_name=False))
