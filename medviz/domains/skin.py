"""Dermoscopy: melanoma against benign nevus, and the acquisition artifacts (``medviz.phantoms.skin``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Attribute, ClassifierPreset, Domain, Shift, register


def _artifact(name: str, phrase: str, synonyms: tuple[str, ...], label: str | None = None, on: Any = True,
              off: Any = False) -> Attribute:
    return Attribute(
        name, phrase, synonyms, label=label, factor=True, editable=True, add={name: on}, remove={name: off}
    )


ATTRIBUTES = (
    # Every caption names the lesion in its head: "Dermoscopy image of a melanoma" / "of a benign nevus".
    Attribute("melanoma", "melanoma", ("melanoma", "malignant melanoma", "malignant lesion", "malignant"),
              absent="benign nevus",
              absent_synonyms=("benign nevus", "nevus", "naevus", "mole", "benign lesion", "benign"),
              head=" of a {}", always_named=True, label="Lesion", factor=True, editable=True,
              add={"melanoma": True}, remove={"melanoma": False}),
    _artifact("ruler", "ruler markings", ("ruler markings", "ruler marks", "ruler", "scale bar", "measuring scale"),
              label="ruler"),
    _artifact("hair", "hair", ("hair", "hairs", "hairy")),
    _artifact("gel_bubbles", "gel bubbles", ("gel bubbles", "air bubbles", "bubbles", "bubble")),
    _artifact("ink", "ink markings", ("ink markings", "ink marking", "ink", "surgical marker", "pen marks"),
              label="ink"),
    _artifact("vignette", "dark corners", ("dark corners", "dark corner", "vignette", "vignetting"), on=0.8, off=0.0),
)


def attributes_of(factors: Mapping[str, Any]) -> dict[str, bool]:
    """A phantom's attributes (the oracle's targets) from its SCM factors."""
    return {"melanoma": bool(factors["melanoma"]), "ruler": bool(factors["ruler"]), "hair": bool(factors["hair"]),
            "gel_bubbles": bool(factors["gel_bubbles"]), "ink": bool(factors["ink"]),
            "vignette": factors["vignette"] > 0}


ARTIFACTS = ("ruler", "hair", "gel_bubbles", "ink", "vignette")

DOMAIN = register(Domain(
    name="skin", title="dermoscopy", subject="Dermoscopy image", lead=" with ", attributes=ATTRIBUTES,
    sheet=("make melanoma", "add hair", "add ruler", "add ink", "add gel bubbles"),
    presets={
        # Every artifact is a context on both sides: otherwise the melanoma prompt "explains" them
        # (docs/explain.md).
        "melanoma": ClassifierPreset(("melanoma", "benign"), "melanoma",
                                     ({},) + tuple({artifact: True} for artifact in ARTIFACTS)),
        "melanoma_one_prompt": ClassifierPreset(("melanoma", "benign"), "melanoma",
                                                shown="melanoma (one prompt per class)"),
    },
    # Chosen on edit-tuning phantoms (docs/counterfactual.md): a later start flipped more melanoma edits.
    edit_defaults={"strength": 0.9, "mask_draws": 8},
    attributes_of=attributes_of,
    planted_link=("melanoma_ruler_strength", "melanoma", "ruler"),
    dataset_layout="isic",
    primary_task="melanoma",
    mirrored=True,                     # dermoscopy has no left or right
    # Every skin attribute (issue 52 asks each one and its absence); the bundled card's rows, measured before
    # bubbles and vignette were asked, hold the first four.
    fidelity=("melanoma", "ruler", "hair", "gel_bubbles", "ink", "vignette"),
    line_structures=("ruler", "hair", "ink"),
    # Illumination beyond the phantoms' 0.88-1.12 (the SCM caps it at 0.7); no rotation: a dermoscopy image has no
    # up, and the phantoms are drawn at every angle.
    shifts=(
        Shift("illumination", "dim light", "x light", (0.84, 0.80, 0.75, 0.70), factor="illumination"),
        Shift("noise", "sensor noise", "noise standard deviation", (0.02, 0.04, 0.06, 0.10)),
        Shift("contrast", "contrast gamma", "gamma", (1.2, 1.35, 1.5, 1.7)),
        Shift("resolution", "resolution loss", "x down-sampling", (1.5, 2.0, 3.0, 4.0)),
        Shift("zoom", "crop and zoom", "x zoom", (1.1, 1.2, 1.3, 1.4)),
        Shift("translation", "translation", "x the side", (0.04, 0.08, 0.12, 0.16)),
        Shift("jpeg", "JPEG compression", "JPEG quality", (50.0, 30.0, 20.0, 10.0)),
    ),
))
