"""Layout and wiring of the medviz app (Gradio 6). Tabs for the engines land with their issues."""

from __future__ import annotations

import gradio as gr

from .. import RESEARCH_ONLY_NOTICE, __version__
from . import handlers

BANNER = (f"**medviz {__version__}** · ⚠️ {RESEARCH_ONLY_NOTICE.capitalize()}. Images here are synthetic or "
          "edited; never use them for clinical decisions.")


def _preview(domain: str, seed: float, intervention: str):
    try:
        return handlers.phantom_preview(domain, int(seed), intervention)
    except ValueError as error:
        raise gr.Error(str(error)) from None


def _interventions(domain: str):
    names = handlers.intervention_names(domain)
    return gr.Dropdown(choices=names, value=names[0])


def build_demo() -> gr.Blocks:
    """The app's Blocks. Every event has an api_name so it is scriptable with gradio_client."""
    with gr.Blocks(title="medviz", analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
        gr.Markdown(BANNER, elem_id="research-banner")
        with gr.Tab("Phantoms"):
            gr.Markdown("Procedural phantoms with known causal factors, and their *true* counterfactuals "
                        "(the region an intervention changed is tinted red).")
            with gr.Row():
                domain = gr.Radio(["cxr", "skin"], value="cxr", label="Domain")
                seed = gr.Number(value=0, precision=0, label="Seed")
                intervention = gr.Dropdown(handlers.intervention_names("cxr"), value="none", label="Intervention",
                                           allow_custom_value=True)  # checked by the handler, per domain
                button = gr.Button("Render", variant="primary")
            with gr.Row():
                factual = gr.Image(label="Factual", format="png", interactive=False)
                counterfactual = gr.Image(label="True counterfactual", format="png", interactive=False)
            description = gr.Markdown()
        with gr.Tab("Model & About"):
            gr.Markdown("Generate, Traverse, Edit and Explain arrive with the bundled models. "
                        "Everything runs offline on this machine.")
        domain.change(_interventions, domain, intervention, api_name=False)
        button.click(_preview, [domain, seed, intervention], [factual, counterfactual, description],
                     api_name="phantom")
        demo.load(_preview, [domain, seed, intervention], [factual, counterfactual, description], api_name=False)
    return demo
