"""Attributes of a phantom, and the varied captions the text-to-image model is trained on."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..prompts import ATTRIBUTES, SUPPORT_DEVICE_KINDS, augmented_caption

#: Attributes the oracle reads and the prompts control, per domain.
ORACLE_ATTRIBUTES = {
    "cxr": ("pleural_effusion", "cardiomegaly", "support_devices", "pacemaker", "ett", "cvc", "ngt", "female"),
    "skin": ("melanoma", "ruler", "hair", "gel_bubbles", "ink", "vignette"),
}


def phantom_attributes(domain: str, factors: Mapping[str, Any]) -> dict[str, bool]:
    """Binary attributes of a phantom's factors (the oracle's targets)."""
    if domain == "cxr":
        devices = set(factors["devices"])
        return {"pleural_effusion": factors["effusion"] != "none", "cardiomegaly": bool(factors["cardiomegaly"]),
                "support_devices": bool(factors["support_devices"]), "pacemaker": "pacemaker" in devices,
                "ett": "ett" in devices, "cvc": "cvc" in devices, "ngt": "ngt" in devices,
                "female": factors["sex"] == "F"}
    return {"melanoma": bool(factors["melanoma"]), "ruler": bool(factors["ruler"]), "hair": bool(factors["hair"]),
            "gel_bubbles": bool(factors["gel_bubbles"]), "ink": bool(factors["ink"]),
            "vignette": factors["vignette"] > 0}


def training_caption(domain: str, factors: Mapping[str, Any], rng: np.random.Generator) -> str:
    """A caption that names every present attribute, in varied words and order, sometimes with negatives.

    CXR captions name the sex in 70% of cases ("of a female patient"), so that sex is promptable.
    Skin captions always name the lesion (melanoma or benign nevus).
    """
    attributes = phantom_attributes(domain, factors)
    present = {k: v for k, v in attributes.items() if k in ATTRIBUTES[domain]}
    if domain == "cxr":
        # Device captions name the devices, the generic phrase, or both, a third of the time each. The
        # generic phrase must also stand alone: when it only ever came beside the device names, the
        # names carried the drawing and "showing support devices" alone drew none (0 of 64 samples).
        if any(present[d] for d in SUPPORT_DEVICE_KINDS):
            wording = rng.random()
            if wording < 1 / 3:
                present.pop("support_devices")
            elif wording < 2 / 3:
                for device in SUPPORT_DEVICE_KINDS:
                    present.pop(device)   # unnamed, not negated: they are there
        if not present.get("support_devices", True):
            for device in SUPPORT_DEVICE_KINDS:
                present.pop(device)
        text = augmented_caption("cxr", present, rng, negatives=0.35)
        if rng.random() < 0.7:
            sex = "female" if factors["sex"] == "F" else "male"
            text = text.replace("Chest X-ray", f"Chest X-ray of a {sex} patient", 1)
        return text
    present["nevus"] = not present["melanoma"]
    present.pop("melanoma")
    lesion = "nevus" if present["nevus"] else "melanoma"
    rest = {k: v for k, v in present.items() if k != "nevus"}
    text = augmented_caption("skin", rest, rng, negatives=0.35)
    phrase = "a benign nevus" if lesion == "nevus" else "a melanoma"
    if text.startswith("Dermoscopy image showing "):
        return text.replace("Dermoscopy image showing ", f"Dermoscopy image of {phrase} with ", 1)
    return text.replace("Dermoscopy image", f"Dermoscopy image of {phrase}", 1)


def prompt_corpus(domain: str, n: int = 4000, seed: int = 0) -> list[str]:
    """Captions of ``n`` phantoms plus every synonym: the text the tokenizer vocabulary is built from."""
    from ..phantoms import get_domain

    graph = get_domain(domain).build_graph()
    rng = np.random.default_rng(seed)
    corpus = [training_caption(domain, graph.sample(seed + i).factors, rng) for i in range(n)]
    for _, (phrase, synonyms) in ATTRIBUTES[domain].items():
        corpus.append(phrase)
        corpus.extend(synonyms)
    corpus += ["Normal chest X-ray with no significant findings", "Chest X-ray of a 63-year-old female patient",
               "without absent negative for free of removed", "left right bilateral small large"]
    return corpus
