"""Stress tab: would the classifier survive another scanner? Each chosen classifier on the same images, unshifted
and at graded acquisition shifts (``medviz.engines.stress``): accuracy curves with intervals, the reliability
diagram, the images at each level, and the figures as CSV + JSON."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import gradio as gr
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ... import domains
from ...display import for_display
from ...engines.guard import flagger
from ...engines.stress import (NONE, StressConfig, StressResult, classifier_scorer, diffusion_scorer, image_sets,
                               ladine_scorer, level_count, oracle_scorer, phantom_sets, stress_test)
from ...phantoms import DOMAINS
from ..common import MODEL_JOBS, Job, Page, errors_as_messages, read_uploads, start_job, warned
from . import Tab

SOURCES = ("phantoms", "uploads")
ORACLE = "oracle"                      # the model's own attribute readout (the bundled ResNet), in the classifier box
DIFFUSION = "diffusion-classifier"     # the model itself (Explain's operating point): up to N x prompts passes an image


def target_choices(domain: str | None) -> tuple[list[tuple[str, str]], str | None]:
    """((UI words, identifier) of the attributes the oracle reads, the default: the domain's primary task's)."""
    known = domains.find(domain)
    if known is None:
        return [], None
    return [(a.shown, a.name) for a in known.attributes if a.read_by_oracle], known.primary_target


def shift_choices(domain: str | None) -> list[tuple[str, str]]:
    known = domains.find(domain)
    return [(f"{s.phrase} ({s.unit})", s.name) for s in known.shifts] if known else []


@dataclass(frozen=True)
class StressRequest:
    """The Stress tab's controls."""

    classifiers: tuple[str, ...] = (ORACLE,)
    target: str = ""
    shifts: tuple[str, ...] = ()
    source: str = "phantoms"
    n_phantoms: int = 40
    uploads: tuple[str, ...] = ()
    domain_check: bool = True

    def config(self, size: int) -> StressConfig:
        return StressConfig(target=self.target, shifts=tuple(self.shifts), n=int(self.n_phantoms), bootstrap=200,
                            size=max(128, size))            # phantoms render at 128 px or more


def level_sets(model, request: StressRequest, config: StressConfig) -> tuple:
    """(the level sets, one note per image left out): phantoms, or the uploads that carry the target's label."""
    if request.source == "phantoms":
        if model.domain not in DOMAINS:
            raise ValueError("phantoms exist for the bundled domains only: upload labelled images for this model")
        return phantom_sets(model.domain, config), []
    if not request.uploads:
        raise ValueError("upload the images to stress-test, with a CSV of their labels in the CheXpert or ISIC layout")
    images, notes = read_uploads(request.uploads, model.domain, model.image_size)
    labelled = [im for im in images if request.target in im.labels]
    if len(labelled) < 2:
        raise ValueError(f"a stress test needs at least 2 images labelled for {request.target}: upload a CSV in the "
                         "CheXpert or ISIC layout beside the images" + (f" ({notes[-1]})" if notes else ""))
    notes += [f"No {request.target} label, left out: {im.name}" for im in images if request.target not in im.labels]
    pixels, labels = [im.pixels for im in labelled], np.array([im.labels[request.target] for im in labelled])
    return image_sets(pixels, labels, model.domain, config), notes


def curves_figure(result: StressResult, shifts: list) -> go.Figure:
    """Accuracy against level, one panel per shift, one line per classifier with its 95% bootstrap interval."""
    names = list(dict.fromkeys(r.classifier for r in result.rows))
    columns = min(4, len(shifts)) or 1
    figure = make_subplots(rows=-(-len(shifts) // columns) or 1, cols=columns,
                           subplot_titles=[s.phrase for s in shifts], horizontal_spacing=0.06)
    for k, shift in enumerate(shifts):
        for i, name in enumerate(names):
            points = [result.row(name, NONE, 0.0)] + [result.row(name, shift.name, v) for v in shift.levels]
            ticks = ["none", *(f"{v:g}" for v in shift.levels)]
            errors = {"type": "data", "symmetric": False,
                      "array": [p.accuracy_interval[1] - p.accuracy for p in points],
                      "arrayminus": [p.accuracy - p.accuracy_interval[0] for p in points]}
            figure.add_trace(go.Scatter(x=ticks, y=[p.accuracy for p in points], name=name, legendgroup=name,
                                        showlegend=k == 0, error_y=errors, mode="lines+markers",
                                        line={"color": _colour(i)}), row=k // columns + 1, col=k % columns + 1)
        figure.update_xaxes(title={"text": shift.unit, "font": {"size": 10}}, row=k // columns + 1,
                            col=k % columns + 1)
    figure.update_yaxes(range=[0, 1.05])
    figure.update_annotations(font_size=11)
    figure.update_layout(title="Accuracy under each shift (95% intervals)", height=280 * (-(-len(shifts) // columns)),
                         margin={"l": 10, "r": 10, "t": 60, "b": 40}, legend={"orientation": "h"})
    return figure


def _colour(i: int) -> str:
    return ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")[i % 6]


def reliability_figure(result: StressResult) -> go.Figure:
    """Each classifier's accuracy against its confidence over the shifted levels; the diagonal is calibrated."""
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0.5, 1], y=[0.5, 1], mode="lines", name="calibrated", line={"dash": "dot"}))
    for i, (name, points) in enumerate(result.reliability.items()):
        figure.add_trace(go.Scatter(x=[p["confidence"] for p in points], y=[p["accuracy"] for p in points],
                                    text=[f"n {p['n']}" for p in points], mode="lines+markers", name=name,
                                    line={"color": _colour(i)}))
    figure.update_layout(title="Reliability over the shifted images", xaxis={"title": "confidence", "range": [0.5, 1]},
                         yaxis={"title": "accuracy", "range": [0, 1.02]}, height=320,
                         margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure


def summary(result: StressResult, notes: list[str]) -> str:
    """Markdown: a row per shift (its mean accuracy over its levels) and a column per classifier, then each one's
    calibration and selective accuracy over the shifted levels, and the domain check's flag rate per shift."""
    names = list(dict.fromkeys(r.classifier for r in result.rows))
    shifts = list(dict.fromkeys(r.shift for r in result.rows))
    checked = any(r.flagged is not None for r in result.rows)

    def mean(name, shift, field):
        return float(np.mean([getattr(r, field) for r in result.rows if r.classifier == name and r.shift == shift]))

    lines = [f"### {result.parameters['target']}: {result.rows[0].n} images per level, {result.seconds:.0f} s", "",
             "| accuracy | " + " | ".join(names) + (" | domain check flags |" if checked else " |"),
             "| --- " * (len(names) + 1 + checked) + "|"]
    for shift in shifts:
        flagged = f" {mean(names[0], shift, 'flagged'):.0%} |" if checked else ""
        lines.append(f"| {'no shift' if shift == NONE else shift} | "
                     + " | ".join(f"{mean(n, shift, 'accuracy'):.0%}" for n in names) + " |" + flagged)
    shifted = {n: [r for r in result.rows if r.classifier == n and r.shift != NONE] for n in names}
    lines.append("| ECE, shifted | " + " | ".join(f"{np.mean([r.ece for r in shifted[n]]):.3f}" for n in names)
                 + " |" + (" |" if checked else ""))
    lines.append("| accuracy of the 80% most certain, shifted | "
                 + " | ".join(f"{np.mean([r.selective_accuracy for r in shifted[n]]):.0%}" for n in names)
                 + " |" + (" |" if checked else ""))
    lines.append("| wrong with no warning (not unsure, not flagged), shifted | "
                 + " | ".join(f"{sum(r.silent_errors for r in shifted[n])} of {sum(r.errors for r in shifted[n])}"
                              for n in names) + " |" + (" |" if checked else ""))
    lines += ["", *notes, "", "*A research stress test on synthetic or transformed images, not a clinical validation.*"]
    return warned(result.warnings, "\n".join(lines))


def _rows_csv(result: StressResult) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(result.records()[0]))
    writer.writeheader()
    writer.writerows(result.records())
    return buffer.getvalue()


def run_stress(model, request: StressRequest, job: Job, scorers: list) -> tuple:
    """The stress test and what the widgets show: summary, curves, reliability, the images per level, the files."""
    config = request.config(model.image_size)
    config.validate(model.domain)
    sets, notes = level_sets(model, request, config)
    flags = flagger(model) if request.domain_check else None
    result = stress_test(sets, scorers, config, flags, job.progress, job.should_stop,
                         total=level_count(model.domain, config))
    csv_path, json_path = job.file("stress", ".csv"), job.file("stress", ".json")
    csv_path.write_text(_rows_csv(result))
    json_path.write_text(json.dumps({"rows": result.records(), "reliability": result.reliability,
                                     "parameters": result.parameters, "warnings": result.warnings}, indent=2))
    gallery = [(for_display(images[0]), f"{shift} {level:g}" if shift != NONE else "no shift")
               for (shift, level), images in result.examples.items() if images]
    return (summary(result, notes), curves_figure(result, config.chosen(model.domain)), reliability_figure(result),
            gallery, [str(csv_path), str(json_path)])


def scorers_of(page: Page, model, request: StressRequest) -> list:
    """The chosen classifiers: the model's oracle, bundled classifiers and folders under the models folder."""
    if not request.classifiers:
        raise ValueError("choose at least one classifier to stress-test")
    out = []
    for name in request.classifiers:
        if name == ORACLE:
            if model.oracle is None:
                raise ValueError("this model has no oracle: choose a classifier")
            out.append(oracle_scorer(model.oracle, request.target, ORACLE))
        elif name == DIFFUSION:
            out.append(diffusion_scorer(model, _task_of(model.domain, request.target)))
        elif (found := page.registry.ladine(name)) is not None:
            if found.config.labels[1] != request.target:
                raise ValueError(f"{name} is a LaDiNE for {found.config.labels[1]}, not {request.target}")
            out.append(ladine_scorer(found))
        else:
            out.append(classifier_scorer(page.registry.classifier(name, request.target)))
    return out


def _task_of(domain: str | None, target: str) -> str:
    """The diffusion-classifier preset that tells ``target`` apart (the primary task's first)."""
    known = domains.find(domain)
    tasks = [known.primary_task, *known.presets] if known else []
    task = next((t for t in tasks if t and known.presets[t].attribute == target), None)
    if task is None:
        raise ValueError(f"the diffusion classifier has no preset for {target}; choose another classifier")
    return task


def _classifier_choices(page: Page, domain: str | None) -> list[tuple[str, str]]:
    return [("oracle (the model's attribute readout)", ORACLE),
            ("diffusion classifier (Explain; slow: up to hundreds of UNet passes an image)", DIFFUSION),
            *((name, name) for name in page.registry.classifier_choices(domain)),
            *((f"{name} (LaDiNE)", name) for name in page.registry.ladine_choices(domain))]


def _controls(page: Page, domain: str | None) -> dict:
    targets, target = target_choices(domain)
    controls = {
        "classifiers": gr.Dropdown(_classifier_choices(page, domain), value=[ORACLE],
                                   multiselect=True, allow_custom_value=True, elem_id="stress-classifiers",
                                   label="Classifiers (the oracle, bundled ones, folders in the models folder)"),
        "target": gr.Dropdown(targets, value=target, label="What they answer"),
        "shifts": gr.CheckboxGroup(shift_choices(domain), value=[v for _, v in shift_choices(domain)],
                                   label="Shifts (each at four graded levels)"),
        "source": gr.Radio(list(SOURCES), value=SOURCES[0], label="Images"),
        "n_phantoms": gr.Slider(10, 200, value=40, step=1, label="Phantoms per level", elem_id="stress-phantoms"),
        "uploads": gr.File(file_count="multiple", type="filepath", label="…or upload images + a CSV of labels "
                           "(CheXpert or ISIC layout); read into memory, then deleted from the server"),
        "domain_check": gr.Checkbox(True, label="Domain check's flag rate per level (4 UNet passes per image)"),
    }
    return controls


def build(page: Page, domain: str | None) -> Tab:
    with gr.Tab("Stress test", id="stress"):
        with gr.Row():
            with gr.Column(scale=2):
                controls = _controls(page, domain)
                button = gr.Button("Stress-test", variant="primary", elem_id="stress-button")
            with gr.Column(scale=3):
                shown = gr.Markdown(elem_id="stress-summary")
                curves = gr.Plot(label="Accuracy per shift")
                reliability = gr.Plot(label="Reliability")
                gallery = gr.Gallery(label="The first image at each level", columns=6, height=300, object_fit="contain")
                files = gr.File(label="Figures (CSV per level, JSON)", file_count="multiple", interactive=False)

    @errors_as_messages
    def on_stress(model_name, request: gr.Request, progress=gr.Progress(), **values):
        values.update(uploads=tuple(values.get("uploads") or ()), classifiers=tuple(values.get("classifiers") or ()),
                      shifts=tuple(values.get("shifts") or ()))
        stress_request = StressRequest(**values)
        model = page.registry.get(model_name)
        return run_stress(model, stress_request, start_job(page, request, progress, "level sets"),
                          scorers_of(page, model, stress_request))

    button.click(on_stress, [page.model_name], [shown, curves, reliability, gallery, files], inputs_kwargs=controls,
                 api_name="stress", concurrency_id=MODEL_JOBS)

    def on_model(model) -> list:
        targets, target = target_choices(model.domain)
        choices = shift_choices(model.domain)
        return [gr.Dropdown(choices=_classifier_choices(page, model.domain), value=[ORACLE]),
                gr.Dropdown(choices=targets, value=target),
                gr.CheckboxGroup(choices=choices, value=[v for _, v in choices])]

    return Tab(outputs=[controls["classifiers"], controls["target"], controls["shifts"]], on_model=on_model)
