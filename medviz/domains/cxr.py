"""Chest X-ray: CheXpert's findings and support devices, as the phantoms draw them (``medviz.phantoms.cxr``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Attribute, ClassifierPreset, Domain, Shift, register

#: The phantom SCM's device kinds, in the order its mechanism draws them.
DEVICE_KINDS = ("pacemaker", "ett", "cvc", "ngt")
#: The phantom trial's arms (``medviz.phantoms.trial``, issue 55): identifier -> phrase. A chest drain treats an
#: effusion: the clinical reason support devices go with effusion.
TREATMENTS = {"none": "no treatment", "diuretic": "diuretic", "drain": "chest drain"}
#: Which devices "support devices" stands for in the i-th caption pair of a slider direction (cycled).
DEVICE_SETS = (("ett",), ("cvc",), ("pacemaker",), ("ngt",), ("ett", "cvc"), ("ett", "ngt"), ("cvc", "pacemaker"),
               ("ett", "cvc", "ngt"))


def _device(name: str, phrase: str, synonyms: tuple[str, ...]) -> Attribute:
    return Attribute(name, phrase, synonyms, editable=True, kind_of="support_devices",
                     add={"support_devices": True, "devices": (name,)})


ATTRIBUTES = (
    Attribute("pleural_effusion", "pleural effusion",
              ("pleural effusion", "pleural effusions", "effusion", "effusions", "pleural fluid",
               "blunted costophrenic angle", "blunting"),
              factor=True, editable=True, add={"effusion": "bilateral", "effusion_severity": 0.6},
              remove={"effusion": "none"}),
    Attribute("cardiomegaly", "cardiomegaly",
              ("cardiomegaly", "enlarged heart", "cardiac enlargement", "large heart", "enlarged cardiac silhouette"),
              factor=True, editable=True, add={"cardiomegaly": True}, remove={"cardiomegaly": False}),
    Attribute("support_devices", "support devices",
              ("support devices", "support device", "devices", "device", "lines and tubes", "tubes and lines"),
              factor=True, editable=True, add={"support_devices": True},
              remove={"support_devices": False, "devices": ()},
              add_variants=tuple({"devices": kinds} for kinds in DEVICE_SETS),
              # The bundled model learnt the generic phrase alone weakly: a prompt asking for devices names two.
              companions=("ett", "cvc")),
    _device("pacemaker", "pacemaker", ("pacemaker", "pacer", "cardiac device", "icd")),
    _device("ett", "endotracheal tube", ("endotracheal tube", "et tube", "ett", "intubated", "breathing tube")),
    _device("cvc", "central venous line", ("central venous line", "central venous catheter", "central line", "cvc",
                                           "picc", "venous catheter")),
    _device("ngt", "nasogastric tube", ("nasogastric tube", "ng tube", "ngt", "feeding tube", "enteric tube")),
    # Named in the caption head, "of a female patient", in 70% of training captions (so that sex is promptable).
    Attribute("female", "female", absent="male", head=" of a {} patient", caption_share=0.7, label="Sex",
              factor=True, add={"sex": "F"}, remove={"sex": "M"}),
)


def attributes_of(factors: Mapping[str, Any]) -> dict[str, bool]:
    """A phantom's attributes (the oracle's targets) from its SCM factors."""
    devices = set(factors["devices"])
    return {"pleural_effusion": factors["effusion"] != "none", "cardiomegaly": bool(factors["cardiomegaly"]),
            "support_devices": bool(factors["support_devices"]), **{kind: kind in devices for kind in DEVICE_KINDS},
            "female": factors["sex"] == "F"}


# Effusion's contexts name cardiomegaly and not devices: the bundled model draws effusion in 50-62% of
# "<device>, no pleural effusion" samples (docs/explain.md).
_EFFUSION = ("effusion", "no effusion")

DOMAIN = register(Domain(
    name="cxr", title="chest X-ray", subject="Chest X-ray", lead=" showing ", attributes=ATTRIBUTES,
    neutral={"female": True},
    interventions={"add ETT, CVC, NGT": {"support_devices": True, "devices": ("ett", "cvc", "ngt")}},
    sheet=("add pleural effusion", "add cardiomegaly", "add pacemaker", "add ETT, CVC, NGT", "toggle female"),
    presets={
        "pleural_effusion": ClassifierPreset(_EFFUSION, "pleural_effusion", ({}, {"cardiomegaly": True})),
        "pleural_effusion_one_prompt": ClassifierPreset(_EFFUSION, "pleural_effusion",
                                                        shown="pleural effusion (one prompt per class)"),
        "support_devices": ClassifierPreset(("devices", "no devices"), "support_devices", companions=("ett", "cvc")),
        "cardiomegaly": ClassifierPreset(("cardiomegaly", "no cardiomegaly"), "cardiomegaly"),
    },
    # Chosen on edit-tuning phantoms (docs/counterfactual.md): guidance 3 kept the other findings, a tighter
    # mask for additions, and the composite only where the edit changed the decode.
    edit_defaults={"guidance_scale": 3.0, "add_mask_threshold": 0.6, "change_threshold": 0.04},
    normal_phrases=("no significant findings", "no acute findings", "no acute cardiopulmonary", "no finding",
                    "normal chest", "unremarkable"),
    normal_negates=("pleural_effusion", "cardiomegaly"),
    attributes_of=attributes_of,
    planted_link=("effusion_device_strength", "pleural_effusion", "support_devices"),
    dataset_layout="chexpert",
    primary_task="pleural_effusion",
    fidelity=("pleural_effusion", "cardiomegaly", "support_devices", "female"),
    thin_lines="bright",
    line_structures=("support_devices",),
    # Beyond the phantoms' training ranges (phantoms.cxr.ACQUISITION_RANGES): exposure 0.82-1.18, gamma 0.8-1.2,
    # noise 0.006-0.02, rotation +-4 degrees; the SCM's checks cap them at 1.3, 1.3, 0.06 and 10.
    shifts=(
        Shift("exposure", "over-exposure", "x exposure", (1.21, 1.24, 1.27, 1.30), factor="exposure"),
        Shift("contrast", "contrast gamma", "gamma", (1.22, 1.25, 1.28, 1.30), factor="contrast"),
        Shift("noise", "quantum noise", "noise standard deviation", (0.03, 0.04, 0.05, 0.06), factor="noise_level"),
        Shift("rotation", "rotation", "degrees", (5.0, 7.0, 9.0, 10.0), factor="rotation"),
        Shift("resolution", "resolution loss", "x down-sampling", (1.5, 2.0, 3.0, 4.0)),
        Shift("zoom", "crop and zoom", "x zoom", (1.1, 1.2, 1.3, 1.4)),
        Shift("translation", "translation", "x the side", (0.04, 0.08, 0.12, 0.16)),
        Shift("jpeg", "JPEG compression", "JPEG quality", (50.0, 30.0, 20.0, 10.0)),
    ),
))
