"""Model & About tab: what medviz is, and the loaded model's card: its data, oracle and measured figures."""

from __future__ import annotations

import gradio as gr

from ... import RESEARCH_ONLY_NOTICE
from ...cards import measured_sections
from ...oracle import READOUT_KIND
from . import Tab

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
    """Markdown: what the loaded model is, from its card, and what the benches measured on it (the card's own
    sections, ``medviz.cards.measured_sections``); the oracle labelled as an attribute readout."""
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
    measured = measured_sections(card)
    return "\n".join(lines) + ("\n" + ("\n" + measured).replace("\n## ", "\n#### ") if measured else "")


def build(page, domain: str | None) -> Tab:
    with gr.Tab("Model & About", id="about"):
        about = gr.Markdown(ABOUT)
    return Tab(outputs=[about], on_model=lambda model: [model_about(model)])
