"""Phantoms tab: a phantom of the causal model and its true counterfactual under a named intervention."""

from __future__ import annotations

import re

import gradio as gr
import numpy as np

from ... import domains
from ...io import as_rgb, to_uint8
from ...phantoms import DOMAINS, get_domain, mask_between
from . import Tab

NONE = "none"


def intervention_names(domain: str) -> list[str]:
    """'none' and the domain's named interventions (each attribute's add / remove, then its own)."""
    return [NONE, *domains.get(domain).named_interventions()]


def intervention_choices(domain: str) -> list[tuple[str, str]]:
    """The intervention box, (name, identifier): ("add ETT, CVC, NGT", "add_ett_cvc_ngt")."""
    return [(name, re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")) for name in intervention_names(domain)]


def phantom_preview(domain: str, seed: int, intervention: str, size: int = 256) -> tuple[np.ndarray, np.ndarray, str]:
    """A phantom, its true counterfactual under ``intervention`` with the changed region tinted red, and labels.

    Returns (factual uint8 image, counterfactual uint8 RGB with overlay, markdown description).
    """
    module = get_domain(domain)
    named = {key: name for name, key in intervention_choices(domain)}
    if intervention not in named:
        raise ValueError(f"unknown intervention {intervention!r} for {domain}; choose one of {', '.join(named)}")
    changes = {NONE: {}, **domains.get(domain).named_interventions()}[named[intervention]]
    graph = module.build_graph()
    sample = graph.sample(int(seed))
    counterfactual = graph.intervene(sample, **changes) if changes else sample
    factual_render = module.render(sample.factors, sample.seed, size)
    counterfactual_render = module.render(counterfactual.factors, counterfactual.seed, size)
    after = as_rgb(counterfactual_render.image).copy()
    if changes:
        mask = mask_between(factual_render, counterfactual_render)
        after[mask] = 0.6 * after[mask] + 0.4 * np.array([1.0, 0.15, 0.15], np.float32)
    text = (f"**Factual** (seed {sample.seed}): {module.summary(sample.factors)}\n\n"
            f"**Counterfactual**: {module.summary(counterfactual.factors)}").replace("\n", "  \n")
    return to_uint8(factual_render.image), to_uint8(after), text


def build(page, domain: str | None) -> Tab:
    with gr.Tab("Phantoms", id="phantoms"):
        gr.Markdown("Procedural phantoms with known causal factors, and their *true* counterfactuals "
                    "(the region an intervention changed is tinted red).")
        first = domain if domain in DOMAINS else next(iter(DOMAINS))
        with gr.Row():
            which = gr.Radio(list(DOMAINS), value=first, label="Domain")
            seed = gr.Number(value=0, precision=0, label="Seed")
            intervention = gr.Dropdown(intervention_choices(first), value=NONE, label="Intervention",
                                       allow_custom_value=True)  # checked by the handler, per domain
            button = gr.Button("Render", variant="primary")
        with gr.Row():
            factual = gr.Image(label="Factual", format="png", interactive=False)
            counterfactual = gr.Image(label="True counterfactual", format="png", interactive=False)
        description = gr.Markdown()

    def on_preview(domain, seed, intervention):
        try:
            return phantom_preview(domain, int(seed), intervention)
        except ValueError as error:
            raise gr.Error(str(error)) from None

    def on_domain(domain):
        return gr.Dropdown(choices=intervention_choices(domain), value=NONE)

    inputs, outputs = [which, seed, intervention], [factual, counterfactual, description]
    which.change(on_domain, which, intervention, api_name=False)
    button.click(on_preview, inputs, outputs, api_name="phantom")
    return Tab(on_load=lambda demo: demo.load(on_preview, inputs, outputs, api_name=False))
