"""Audit tab: does a classifier read the disease, or the device or ruler beside it? Its counterfactual reliance
(``medviz.engines.audit``), the subgroup table, the pairs whose score moved most, and the report as CSV + JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass

import gradio as gr
import numpy as np
import plotly.graph_objects as go

from ... import domains
from ...display import for_display
from ...engines.audit import (AuditConfig, AuditImage, AuditResult, make_counterfactuals, phantom_images, report,
                              report_rows, score_audit)
from ...engines.counterfactual import editable
from ...phantoms import DOMAINS
from ..common import MODEL_JOBS, Job, Page, errors_as_messages, number, read_uploads, start_job, warned
from . import Tab

SOURCES = ("phantoms", "uploads")
NO_COMPARISON = "none"
#: Word in a bundled classifier's name that marks the shortcut fixed (``bench debias``): the default to compare with.
FIXED = ("-cfaug", "-groupdro")
AUDIT_FIRST_SEED = 40_000_000          # the tab's phantoms: apart from every training and bench set


def pair_choices(domain: str | None) -> tuple[list[tuple[str, str]], str | None, str | None]:
    """((UI words, identifier) of the editable attributes, default spurious, default target): the domain's planted
    link where it has one."""
    known = domains.find(domain)
    names = [(known.attribute(name).shown, name) for name in editable(domain)] if known else []
    link = known.planted_link if known else None
    return names, (link[2] if link else None), (link[1] if link else None)


@dataclass(frozen=True)
class AuditRequest:
    """The Audit tab's controls."""

    classifier: str = ""
    label: str = ""
    spurious: str = ""
    target: str = ""
    source: str = "phantoms"
    n_phantoms: int = 20
    link_strength: float = 0.0
    uploads: tuple[str, ...] = ()
    compare: str = NO_COMPARISON

    def config(self) -> AuditConfig:
        return AuditConfig(spurious=self.spurious, target=self.target)


def audit_images(model, request: AuditRequest) -> tuple[list[AuditImage], list[str]]:
    """(images, notes) of the request: phantoms with their truth, or the uploaded images (a CSV among them in the
    CheXpert or ISIC layout, naming the uploaded files, gives their labels). Uploads leave the server at once."""
    if request.source == "phantoms":
        if model.domain not in DOMAINS:
            raise ValueError("phantoms exist for the bundled domains only: upload images for this model")
        return phantom_images(model.domain, int(request.n_phantoms), AUDIT_FIRST_SEED, float(request.link_strength),
                              attributes=(request.spurious, request.target), size=model.image_size), []
    if not request.uploads:
        raise ValueError("upload the images to audit (PNG, JPEG, TIFF or DICOM; a CSV beside them adds labels)")
    return read_uploads(request.uploads, model.domain, model.image_size)


def subgroup_figure(result: AuditResult) -> go.Figure:
    """Heatmap of accuracy per (target, spurious) group, with n and the mean score in each cell."""
    figure = go.Figure()
    if not result.subgroups:
        figure.add_annotation(text="No labels: no subgroup table (phantoms, or uploads with a CSV, have them)",
                              showarrow=False)
        return figure
    cell = {(r["target"], r["spurious"]): r for r in result.subgroups}
    rows, columns = [False, True], [False, True]
    z = [[cell.get((t, s), {}).get("accuracy") for s in columns] for t in rows]
    text = [[(f"acc {cell[(t, s)]['accuracy']:.2f}<br>n {cell[(t, s)]['n']}<br>score {cell[(t, s)]['mean_score']:.2f}"
              if (t, s) in cell else "none") for s in columns] for t in rows]
    figure.add_trace(go.Heatmap(z=z, text=text, texttemplate="%{text}", zmin=0, zmax=1, colorscale="RdYlGn",
                                x=[f"no {result.spurious}", result.spurious], y=[f"no {result.target}", result.target],
                                colorbar={"title": "accuracy"}))
    figure.update_layout(title=f"Accuracy per group (worst {number(result.worst_group_accuracy or float('nan'))})",
                         xaxis={"title": result.spurious}, yaxis={"title": result.target},
                         height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure


def compare_choices(choices: list[str]) -> tuple[list[str], str]:
    """(choices of the "compare with" box, its default): the first bundled classifier whose name marks the shortcut
    fixed (``FIXED``), else none."""
    fixed = next((name for marker in FIXED for name in choices if name.endswith(marker)), NO_COMPARISON)
    return [NO_COMPARISON, *choices], fixed


def reliance_figure(result: AuditResult, other: AuditResult | None = None) -> go.Figure:
    """Bars: the mean score change when the spurious attribute or the target is switched, with 95% intervals,
    beside the SCM's truth where there is one; with ``other``, its bars beside (the same counterfactuals)."""
    figure = go.Figure()
    names = [result.spurious, result.target]
    for audited in (result, other) if other is not None else (result,):
        estimates = [audited.reliance, audited.target_effect]
        who = f"{audited.classifier}: " if other is not None else ""
        figure.add_trace(go.Bar(name=f"{who}estimated (our counterfactuals)", x=names, y=[e.mean for e in estimates],
                                error_y={"type": "data", "symmetric": False,
                                         "array": [e.high - e.mean for e in estimates],
                                         "arrayminus": [e.mean - e.low for e in estimates]}))
        if audited.truth is not None:
            figure.add_trace(go.Bar(name=f"{who}true (the phantoms' causal model)", x=names,
                                    y=[audited.truth["reliance"]["mean"], audited.truth["target_effect"]["mean"]]))
    figure.add_hline(y=result.parameters["flag_at"], line_dash="dot", annotation_text="flag")
    figure.update_layout(title="Score change, one attribute switched", barmode="group", legend={"orientation": "h"},
                         yaxis={"title": f"change in P({result.label})", "range": [-0.2, 1.05]}, height=340,
                         margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure


def comparison(result: AuditResult, other: AuditResult) -> str:
    """Markdown table: both classifiers on the same images and counterfactuals."""
    lines = [
        "Both classifiers on the same counterfactuals:",
        "",
        f"| classifier | reliance on {result.spurious} | its SCM truth | SCLS (ours) | worst group | mean accuracy |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for audited in (result, other):
        true = number(audited.truth["reliance"]["mean"]) if audited.truth else "-"
        lines.append(
            f"| {audited.classifier}{' ⚠️' if audited.flagged else ''} | {audited.reliance.mean:+.3f} | {true} | "
            f"{number(audited.scls.mean)} | {number(audited.worst_group_accuracy or float('nan'))} | "
            f"{number(audited.mean_accuracy or float('nan'))} |"
        )
    return "\n".join(lines)


def summary(result: AuditResult, notes: list[str], other: AuditResult | None = None) -> str:
    """Markdown: the verdict, the figures with their intervals, the truth, the cost and what was left out."""
    r, t, s = result.reliance, result.target_effect, result.scls
    left_out = {k: v for k, v in result.excluded.items() if v}
    verdict = (
        f"### ⚠️ Shortcut: {result.classifier} leans on **{result.spurious}**"
        if result.flagged
        else f"### No shortcut on {result.spurious} found"
    )
    lines = [
        f"{verdict}",
        f"Switching only **{result.spurious}** moves P({result.label}) by **{r.mean:+.3f}** "
        f"(95% CI {r.low:+.3f} to {r.high:+.3f}, {r.n} images); switching only **{result.target}** by "
        f"**{t.mean:+.3f}** ({t.low:+.3f} to {t.high:+.3f}). SCLS (our definition: the spurious attribute's share of "
        f"the score's counterfactual sensitivity) **{number(s.mean)}**. Flagged at a reliance of "
        f"{result.parameters['flag_at']}.",
    ]
    if result.truth is not None:
        lines.append(
            f"Truth from the phantoms' causal model: reliance **{result.truth['reliance']['mean']:+.3f}**, "
            f"target effect {result.truth['target_effect']['mean']:+.3f}, SCLS {number(result.truth['scls']['mean'])}."
        )
    if result.worst_group_accuracy is not None:
        lines.append(f"Accuracy: mean {result.mean_accuracy:.3f}, worst group {result.worst_group_accuracy:.3f}.")
    lines.append(f"{result.unet_passes} UNet passes ({result.unet_passes_per_image:.0f} per image), "
                 f"{result.seconds:.0f} s." + (" Left out: " + ", ".join(f"{k}: {v}" for k, v in left_out.items()) + "."
                                               if left_out else ""))
    if other is not None:
        lines.append("\n" + comparison(result, other) + "\n")
    lines += notes
    lines.append("*A research audit on synthetic or edited images, not a clinical validation.*")
    return warned(result.warnings, "  \n".join(lines))


def run_audit(model, request: AuditRequest, job: Job, classifier, other=None) -> tuple:
    """The audit and what the widgets show: summary, two figures, the gallery and the report files. ``other``: a
    second classifier scored on the same counterfactuals (no more edits), shown beside the first."""
    config = request.config()
    config.validate(model.domain)
    images, notes = audit_images(model, request)
    if not images:
        raise ValueError("no readable image to audit" + (f": {notes[-1]}" if notes else ""))
    made = make_counterfactuals(model, images, config, job.progress, job.should_stop)
    result = score_audit(classifier, made, config)
    compared = score_audit(other, made, config) if other is not None else None
    csv_path, json_path = job.file("audit", ".csv"), job.file("audit", ".json")
    csv_path.write_text(report_rows(result, *([compared] if compared else [])))
    record = {**report(result), **({"compared_with": report(compared)} if compared else {})}
    json_path.write_text(json.dumps(record, indent=2, default=str))
    gallery = [(for_display(np.concatenate([before, np.ones((len(before), 2, 3), np.float32), after], axis=1)), caption)
               for before, after, caption in result.gallery]                  # a white line between the two
    return (summary(result, notes, compared), reliance_figure(result, compared), subgroup_figure(result), gallery,
            [str(csv_path), str(json_path)])


def _controls(page: Page, domain: str | None) -> dict:
    names, spurious, target = pair_choices(domain)
    choices = page.registry.classifier_choices(domain)
    compare, fixed = compare_choices(choices)
    controls = {
        "classifier": gr.Dropdown(
            choices,
            value=choices[0] if choices else None,
            allow_custom_value=True,
            label="Classifier (bundled, or a folder under the models folder)",
            elem_id="audit-classifier",
        ),
        "compare": gr.Dropdown(
            compare,
            value=fixed,
            label="Compare with (the same counterfactuals, no more edits): e.g. the shortcut's fix",
            elem_id="audit-compare",
        ),
        "label": gr.Textbox("", label="Label to audit (default: the classifier's target)"),
    }
    with gr.Row():
        controls["spurious"] = gr.Dropdown(names, value=spurious, label="Spurious attribute (device, ruler)")
        controls["target"] = gr.Dropdown(names, value=target, label="Target (the disease)")
    controls["source"] = gr.Radio(list(SOURCES), value=SOURCES[0], label="Images")
    with gr.Row():
        controls["n_phantoms"] = gr.Slider(4, 200, value=24, step=1, label="Phantoms", elem_id="audit-phantoms")
        controls["link_strength"] = gr.Slider(0, 0.9, value=0.0, step=0.1, label="Their planted link (0: none)")
    controls["uploads"] = gr.File(file_count="multiple", type="filepath", label="…or upload images (+ a CSV of labels "
                                  "in the CheXpert or ISIC layout); read into memory, then deleted from the server")
    return controls


def build(page: Page, domain: str | None) -> Tab:
    with gr.Tab("Audit", id="audit"):
        with gr.Row():
            with gr.Column(scale=2):
                controls = _controls(page, domain)
                button = gr.Button("Audit the classifier", variant="primary", elem_id="audit-button")
            with gr.Column(scale=3):
                shown = gr.Markdown(elem_id="audit-summary")
                with gr.Row():
                    reliance = gr.Plot(label="Reliance")
                    groups = gr.Plot(label="Subgroups")
                gallery = gr.Gallery(
                    label="Pairs whose score moved most (input | counterfactual)",
                    columns=2,
                    height=380,
                    object_fit="contain",
                )
                files = gr.File(label="Report (CSV per image, JSON summary)", file_count="multiple", interactive=False)

    @errors_as_messages
    def on_audit(model_name, request: gr.Request, progress=gr.Progress(), **values):
        values["uploads"] = tuple(values.get("uploads") or ())
        audit_request = AuditRequest(**values)
        classifier = page.registry.classifier(audit_request.classifier, audit_request.label)
        other = (page.registry.classifier(audit_request.compare, audit_request.label)
                 if audit_request.compare not in ("", NO_COMPARISON) else None)
        return run_audit(page.registry.get(model_name), audit_request, start_job(page, request, progress, "edits"),
                         classifier, other)

    button.click(on_audit, [page.model_name], [shown, reliance, groups, gallery, files], inputs_kwargs=controls,
                 api_name="audit", concurrency_id=MODEL_JOBS)

    def on_model(model) -> list:
        names, spurious, target = pair_choices(model.domain)
        choices = page.registry.classifier_choices(model.domain)
        compare, fixed = compare_choices(choices)
        return [gr.Dropdown(choices=choices, value=choices[0] if choices else None),
                gr.Dropdown(choices=compare, value=fixed),
                gr.Dropdown(choices=names, value=spurious), gr.Dropdown(choices=names, value=target)]

    return Tab(outputs=[controls["classifier"], controls["compare"], controls["spurious"], controls["target"]],
               on_model=on_model)
