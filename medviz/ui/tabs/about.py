"""Model & About tab: what medviz is, and the loaded model's card: its data, oracle and measured figures."""

from __future__ import annotations

import gradio as gr

from ... import RESEARCH_ONLY_NOTICE
from ...card import measured_sections
from ...engines.guard import CARD_KEY, NO_CHECK
from ...oracle import READOUT_KIND
from ..session import FILE_LIFETIME, SWEEP_EVERY
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

Edit and Explain first check that an image looks like the model's training images; outside them, the
result says so and its readouts and verdicts are labelled not meaningful.

Everything runs offline on this machine; nothing is uploaded anywhere. An upload is read into memory at
the model's working size and the uploaded file, with its name, is deleted from the server at once. Your
results are deleted when you close the page, and every file the server made (results, and the images it
shows you) at the latest {(FILE_LIFETIME + SWEEP_EVERY) // 60} minutes after it was written.
**{RESEARCH_ONLY_NOTICE.capitalize()}.**
"""


def model_about(model) -> str:
    """Markdown: what the loaded model is, from its card, and what the benches measured on it (the card's own
    sections, ``medviz.bench.cards.measured_sections``); the oracle labelled as an attribute readout."""
    card = model.card or {}
    lines = [ABOUT, f"#### Loaded model: `{model.name}`",
             f"- domain: **{model.domain or 'unknown'}** · output {model.image_size} px · device {model.device} "
             f"({model.pipe.unet.dtype})"]
    if card.get("trained_on"):
        lines.append(f"- trained on: {card['trained_on']}")
    if not card.get(CARD_KEY):                # a calibrated model's figures are in its card's section below
        lines.append("- " + NO_CHECK)
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
