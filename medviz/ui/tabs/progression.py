"""Progression tab: a patient's predicted effusion course under each treatment (``medviz.engines.progression``):
bands per treatment (plotly), each treatment's effect against none on day 14 with its interval, and for a phantom
patient of the trial its true courses and true images on chosen days beside them."""

from __future__ import annotations

import json
from dataclasses import dataclass

import gradio as gr
import numpy as np
import plotly.graph_objects as go

from ...domains.cxr import TREATMENTS
from ...engines.progression import (AGE_RANGE, CourseConfig, CourseResult, Record, phantom_image, phantom_patient,
                                    phantom_record, predict_course)
from ...io import read_image
from ...progression import EFFECT_DAY, RESPONSE_MARGIN, band_level
from ..common import MODEL_JOBS, Job, Page, errors_as_messages, start_job, take_upload, warned
from . import Tab

SOURCES = (("a phantom patient of the trial (its true courses shown)", "phantom"),
           ("an uploaded chest X-ray and its record", "upload"))
SEXES = ("female", "male")
COLOURS = {"none": "#7f7f7f", "diuretic": "#1f77b4", "drain": "#ff7f0e"}
PATIENTS = 200                          # phantom patients offered (the tab's own seeds)
TRUE_IMAGES = "The phantom's TRUE images, not predictions (rows: treatments; days 0, 3, 7, 14, 28)"


@dataclass(frozen=True)
class ProgressionRequest:
    """The tab's controls; the record's numbers as typed (checked by ``Record.from_fields``)."""

    progression_model: str = ""
    source: str = "phantom"
    patient: int = 0
    upload: str | None = None
    age: str = ""
    sex: str = "female"
    heart_failure: bool = False
    bnp: str = ""
    n_paths: int = 100

    def record(self) -> Record:
        if self.sex not in SEXES:
            raise ValueError(f"sex must be one of {', '.join(SEXES)}, got {self.sex!r}")
        return Record.from_fields(self.age, self.sex == "female", self.heart_failure, self.bnp)


def record_fields(number: int) -> tuple:
    """(age, sex, heart failure, BNP, day-0 image) of phantom patient ``number``: what the form shows for it."""
    patient = phantom_patient(int(number))
    record = phantom_record(patient)
    return (f"{record.age:g}", "female" if record.female else "male", record.heart_failure, f"{record.bnp:g}",
            phantom_image(patient, "none", 0.0))


def measured_line(page: Page, name: str | None) -> str:
    """What the bench measured on the chosen progression folder (its card), in a line above the button."""
    if not name:
        return "No progression model: train one (`python -m medviz.train progression`) into the models folder."
    _, shape, card = page.registry.progression(name)
    bench = card.get("bench")
    if not bench:
        return f"**{name}** ({shape.model}, {shape.fusion}): not benched yet (`python -m medviz.bench progression`)."
    coverage = ("no band" if bench["coverage_factual"] is None else
                f"90% bands cover {bench['coverage_factual']:.0%} of true courses (factual), "
                f"{bench['coverage_counterfactual']:.0%} (counterfactual)")
    return (f"Measured on {bench['n']} held-out trial patients: day-14 error {bench['error_factual'][1]:.3f} "
            f"(factual), {bench['error_counterfactual'][1]:.3f} (counterfactual); {coverage}; PEHE "
            f"{bench['pehe']:.3f}.")


def course_input(request: ProgressionRequest) -> tuple:
    """(the day-0 image, the phantom patient or None) the request names; an upload is read, then deleted."""
    if request.source == "phantom":
        patient = phantom_patient(int(request.patient))
        return phantom_image(patient, "none", 0.0), patient
    if request.source != "upload":
        raise ValueError(f"unknown source {request.source!r}; choose phantom or upload")
    data = take_upload(request.upload)
    if not data:
        raise ValueError("upload the patient's baseline chest X-ray (PNG, JPEG, TIFF or DICOM)")
    return read_image(data, max_side=256).pixels, None


def courses_figure(result: CourseResult) -> go.Figure:
    """Per treatment: the 90% band, the predicted mean and, for a phantom, the true course (dotted)."""
    figure = go.Figure()
    days = result.days.tolist()
    for a, arm in enumerate(result.arms):
        colour, name = COLOURS.get(arm, "#2ca02c"), TREATMENTS.get(arm, arm)
        figure.add_trace(go.Scatter(x=days + days[::-1], y=result.high[a].tolist() + result.low[a][::-1].tolist(),
                                    fill="toself", fillcolor=colour, opacity=0.18, line={"width": 0},
                                    name=f"{name}: 90% band", legendgroup=arm, hoverinfo="skip"))
        figure.add_trace(go.Scatter(x=days, y=result.mean[a].tolist(), name=f"{name}: predicted", legendgroup=arm,
                                    line={"color": colour}))
        if result.true is not None:
            figure.add_trace(go.Scatter(x=days, y=result.true[a].tolist(), name=f"{name}: true (phantom)",
                                        legendgroup=arm, line={"color": colour, "dash": "dot"}))
    figure.update_layout(title="Effusion size under each treatment", xaxis={"title": "day"},
                         yaxis={"title": "effusion size (0-1)", "range": [0, 1]}, height=380,
                         margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure


def summary(result: CourseResult) -> str:
    """Markdown: each treatment's predicted day-14 size and effect against none, with intervals (and the truth)."""
    day = int(np.argmin(np.abs(result.days - EFFECT_DAY)))
    truth = result.true is not None
    lines = [f"### Day {result.days[day]:g}: predicted size and effect against no treatment", "",
             "| treatment | size (90% band) | effect vs none (90% interval) |" + (" true size | true effect |" if truth
                                                                                else ""),
             "| --- | --- | --- |" + (" --- | --- |" if truth else "")]
    for a, arm in enumerate(result.arms):
        effect = result.effects.get(arm)
        shown = "" if effect is None else f"{effect[0]:+.2f} ({effect[1]:+.2f} to {effect[2]:+.2f})"
        row = f"| {TREATMENTS.get(arm, arm)} | {result.mean[a, day]:.2f} ({result.low[a, day]:.2f}-" \
              f"{result.high[a, day]:.2f}) | {shown} |"
        if truth:
            true_effect = result.true_effects.get(arm)
            row += f" {result.true[a, day]:.2f} | {'' if true_effect is None else f'{true_effect:+.2f}'} |"
        lines.append(row)
    if result.p_response is not None:
        lines += ["", f"P(the diuretic lowers the day-{EFFECT_DAY:g} size by more than {RESPONSE_MARGIN:g}) = "
                      f"**{result.p_response:.0%}** over {result.paths.shape[0]} paths."]
    lines += ["", f"Paths {result.parameters['seconds_paths']:.2f} s, {result.seconds:.2f} s in all. *A research "
                  "model trained on a phantom trial, not a clinical prediction.*"]
    return warned(result.warnings, "\n".join(lines))


def run_progression(page: Page, request: ProgressionRequest, job: Job) -> tuple:
    """The courses and what the widgets show: summary, figure, the phantom's true images, the JSON."""
    record = request.record()                       # the record first: a bad field is named before any work
    network, shape, card = page.registry.progression(request.progression_model)
    image, patient = course_input(request)
    config = CourseConfig(n_paths=int(request.n_paths), band_level=band_level(card))
    result = predict_course(network, shape, image, record, config, patient)
    gallery = [(picture, f"{TREATMENTS[arm]}, day {day:g}") for (arm, day), picture in result.images.items()]
    path = job.file("progression", ".json")
    path.write_text(json.dumps({"rows": result.records(), "effects": result.effects, "p_response": result.p_response,
                                "true_effects": result.true_effects, "parameters": result.parameters,
                                "warnings": result.warnings}, indent=2))
    return summary(result), courses_figure(result), gallery, [str(path)]


def _controls(page: Page) -> dict:
    choices = page.registry.progression_choices()
    age, sex, heart_failure, bnp, _ = record_fields(0)
    return {
        "progression_model": gr.Dropdown(choices, value=choices[0] if choices else None, allow_custom_value=True,
                                         label="Progression model (bundled, or a folder in the models folder)"),
        "source": gr.Radio(list(SOURCES), value="phantom", label="Patient"),
        "patient": gr.Slider(0, PATIENTS - 1, value=0, step=1, label="Phantom patient"),
        "upload": gr.File(label="…or the baseline chest X-ray (read into memory, then deleted from the server)",
                          type="filepath", file_types=[".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm"]),
        "age": gr.Textbox(age, label=f"Age (years, {AGE_RANGE[0]:g}-{AGE_RANGE[1]:g})"),
        "sex": gr.Radio(list(SEXES), value=sex, label="Sex"),
        "heart_failure": gr.Checkbox(heart_failure, label="Heart failure"),
        "bnp": gr.Textbox(bnp, label="BNP (pg/mL)"),
        "n_paths": gr.Slider(10, 500, value=100, step=10, label="Paths per treatment"),
    }


def build(page: Page, domain: str | None) -> Tab:
    with gr.Tab("Progression", id="progression"):
        with gr.Row():
            with gr.Column(scale=2):
                controls = _controls(page)
                measured = gr.Markdown(_measured_or_why(page, controls["progression_model"].value),
                                       elem_id="progression-measured")
                baseline = gr.Image(record_fields(0)[-1], label="Day 0 (baseline)", height=200, interactive=False)
                button = gr.Button("Predict the courses", variant="primary", elem_id="progression-button")
            with gr.Column(scale=3):
                shown = gr.Markdown(elem_id="progression-summary")
                figure = gr.Plot(label="Courses", elem_id="progression-plot")
                gallery = gr.Gallery(label=TRUE_IMAGES, columns=5, height=420, object_fit="contain")
                files = gr.File(label="Courses (JSON)", file_count="multiple", interactive=False)

    @errors_as_messages
    def on_predict(request: gr.Request, progress=gr.Progress(), **values):
        return run_progression(page, ProgressionRequest(**values), start_job(page, request, progress, "paths"))

    def on_model_choice(name):
        return _measured_or_why(page, name)

    @errors_as_messages
    def on_patient(patient):
        return record_fields(patient)

    button.click(on_predict, None, [shown, figure, gallery, files], inputs_kwargs=controls, api_name="progression",
                 concurrency_id=MODEL_JOBS)
    controls["patient"].change(on_patient, controls["patient"], [controls[k] for k in ("age", "sex", "heart_failure",
                                                                                       "bnp")] + [baseline],
                               api_name="progression_patient")
    controls["progression_model"].change(on_model_choice, controls["progression_model"], measured, api_name=False)
    return Tab()


def _measured_or_why(page: Page, name: str | None) -> str:
    try:
        return measured_line(page, name)
    except ValueError as error:
        return f"⚠ {error}"
