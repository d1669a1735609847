"""Plain functions behind the UI's events; no gradio here, so they are testable without a browser."""

from __future__ import annotations

import numpy as np

from ..io import as_rgb, to_uint8
from ..phantoms import get_domain, mask_between
from ..phantoms.sheets import describe

INTERVENTION_CHOICES = {
    "cxr": {"none": {}, "add pleural effusion (bilateral)": {"effusion": "bilateral", "effusion_severity": 0.6},
            "remove pleural effusion": {"effusion": "none"}, "add cardiomegaly": {"cardiomegaly": True},
            "remove all support devices": {"support_devices": False},
            "add pacemaker": {"support_devices": True, "devices": ("pacemaker",)}},
    "skin": {"none": {}, "make melanoma": {"melanoma": True}, "make benign nevus": {"melanoma": False},
             "add ruler": {"ruler": True}, "remove ruler": {"ruler": False}, "add hair": {"hair": True},
             "remove hair": {"hair": False}},
}


def phantom_preview(domain: str, seed: int, intervention: str, size: int = 256) -> tuple[np.ndarray, np.ndarray, str]:
    """A phantom, its true counterfactual under ``intervention`` with the changed region tinted red, and labels.

    Returns (factual uint8 image, counterfactual uint8 RGB with overlay, markdown description).
    """
    module = get_domain(domain)
    changes = INTERVENTION_CHOICES[domain].get(intervention)
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
    text = (f"**Factual** (seed {sample.seed}): {describe(domain, sample.factors)}\n\n"
            f"**Counterfactual**: {describe(domain, counterfactual.factors)}").replace("\n", "  \n")
    return to_uint8(factual), to_uint8(after), text


def intervention_names(domain: str) -> list[str]:
    return list(INTERVENTION_CHOICES[domain])

