"""Captions from labels, and the reverse: which attributes a free-text prompt asks for.

Caption templates follow PRISM (arXiv 2503.00196): "Chest X-ray showing {findings}" built from the
CheXpert findings whose label is exactly 1 (uncertain and blank count as absent), or "Normal chest
X-ray with no significant findings"; and the demographic template of arXiv 2503.23618:
"Chest X-ray of a {age}-year-old {sex} patient with {findings}".

``parse_prompt`` reads a prompt back into {attribute: True/False} for the attributes it mentions,
with negation scope ("no effusion or cardiomegaly", "pacemaker but no effusion", "without ruler").
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

import numpy as np

#: The 14 CheXpert observations, in the dataset's column order.
CHEXPERT_FINDINGS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)

PRISM_NORMAL = "Normal chest X-ray with no significant findings"

#: attribute -> (caption phrase, synonyms recognised in prompts). Keys are the names used across
#: medviz (sliders, edits, oracle); for CXR they map onto CheXpert columns via ``CXR_COLUMNS``.
CXR_ATTRIBUTES: dict[str, tuple[str, tuple[str, ...]]] = {
    "pleural_effusion": ("pleural effusion", ("pleural effusion", "pleural effusions", "effusion", "effusions",
                                              "pleural fluid", "blunted costophrenic angle", "blunting")),
    "cardiomegaly": ("cardiomegaly", ("cardiomegaly", "enlarged heart", "cardiac enlargement", "large heart",
                                      "enlarged cardiac silhouette")),
    "support_devices": ("support devices", ("support devices", "support device", "devices", "device",
                                            "lines and tubes", "tubes and lines")),
    "pacemaker": ("pacemaker", ("pacemaker", "pacer", "cardiac device", "icd")),
    "ett": ("endotracheal tube", ("endotracheal tube", "et tube", "ett", "intubated", "breathing tube")),
    "cvc": ("central venous line", ("central venous line", "central venous catheter", "central line", "cvc",
                                    "picc", "venous catheter")),
    "ngt": ("nasogastric tube", ("nasogastric tube", "ng tube", "ngt", "feeding tube", "enteric tube")),
}
CXR_COLUMNS = {"pleural_effusion": "Pleural Effusion", "cardiomegaly": "Cardiomegaly",
               "support_devices": "Support Devices"}
SUPPORT_DEVICE_KINDS = ("pacemaker", "ett", "cvc", "ngt")

SKIN_ATTRIBUTES: dict[str, tuple[str, tuple[str, ...]]] = {
    "melanoma": ("melanoma", ("melanoma", "malignant melanoma", "malignant lesion", "malignant")),
    "nevus": ("benign nevus", ("benign nevus", "nevus", "naevus", "mole", "benign lesion", "benign")),
    "ruler": ("ruler markings", ("ruler markings", "ruler marks", "ruler", "scale bar", "measuring scale")),
    "hair": ("hair", ("hair", "hairs", "hairy")),
    "gel_bubbles": ("gel bubbles", ("gel bubbles", "air bubbles", "bubbles", "bubble")),
    "ink": ("ink markings", ("ink markings", "ink marking", "ink", "surgical marker", "pen marks")),
    "vignette": ("dark corners", ("dark corners", "dark corner", "vignette", "vignetting")),
}

ATTRIBUTES = {"cxr": CXR_ATTRIBUTES, "skin": SKIN_ATTRIBUTES}

_NEGATIONS = ("no", "without", "absent", "absence of", "negative for", "free of", "not", "removed",
              "remove", "minus", "lacking", "lack of", "resolved")
_SCOPE_BREAKS = ("but", "with", "and with", "showing", "shows", "has", "having", "plus", "however", "yet")
_NORMAL_PHRASES = ("no significant findings", "no acute findings", "no acute cardiopulmonary", "no finding",
                   "normal chest", "unremarkable")


def label_value(value: Any) -> float:
    """A CheXpert cell -> 1.0, 0.0 or NaN (uncertain -1 and blank both become NaN)."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        value = value.strip()
        if value == "":
            return math.nan
        value = float(value)
    value = float(value)
    if math.isnan(value) or value == -1.0:
        return math.nan
    if value in (0.0, 1.0):
        return value
    raise ValueError(f"CheXpert labels are 1, 0, -1 or blank; got {value!r}")


def present_findings(labels: Mapping[str, Any]) -> list[str]:
    """Findings whose label is exactly 1 (PRISM: uncertain counts as absent), in CheXpert order."""
    return [f for f in CHEXPERT_FINDINGS if f != "No Finding" and label_value(labels.get(f)) == 1.0]


def _join(phrases: list[str]) -> str:
    return ", ".join(phrases)


def prism_caption(labels: Mapping[str, Any]) -> str:
    """PRISM's caption: "Chest X-ray showing a, b" or the normal sentence."""
    findings = present_findings(labels)
    if not findings:
        return PRISM_NORMAL
    return "Chest X-ray showing " + _join([f.lower() for f in findings])


def demographic_caption(labels: Mapping[str, Any], age: Any = None, sex: Any = None) -> str:
    """ "Chest X-ray of a 63-year-old female patient with pleural effusion" (or "no significant findings")."""
    findings = [f.lower() for f in present_findings(labels)]
    parts = ["Chest X-ray of a"]
    try:
        age_value = int(round(float(age)))
    except (TypeError, ValueError):
        age_value = None
    if age_value is not None and not math.isnan(float(age)):
        parts.append(f"{age_value}-year-old")
    sex_word = {"f": "female", "female": "female", "m": "male", "male": "male"}.get(str(sex).strip().lower())
    if sex_word:
        parts.append(sex_word)
    parts.append("patient with " + (_join(findings) if findings else "no significant findings"))
    text = " ".join(parts)
    return text.replace(" a 8", " an 8").replace(" a 18-", " an 18-").replace(" a 11-", " an 11-")


def skin_caption(labels: Mapping[str, Any]) -> str:
    """ "Dermoscopy image of a melanoma with ruler markings, hair" from ISIC-style labels."""
    diagnosis = str(labels.get("diagnosis", "")).lower()
    malignant = int(float(labels.get("target", 0) or 0)) == 1 or "melanoma" in diagnosis
    lesion = "melanoma" if malignant else "benign nevus"
    artifacts = [SKIN_ATTRIBUTES[k][0] for k in ("ruler", "hair", "gel_bubbles", "ink", "vignette")
                 if _truthy(labels.get(k))]
    text = f"Dermoscopy image of a {lesion}"
    return text + (" with " + _join(artifacts) if artifacts else "")


def _truthy(value: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("1", "1.0", "true", "yes")
    return bool(value)


def augmented_caption(domain: str, present: Mapping[str, bool], rng: np.random.Generator,
                      negatives: float = 0.3) -> str:
    """A caption with random attribute order, synonyms and explicit negatives ("no pleural effusion").

    Used for training so that free-text prompts work; ``present`` maps attribute -> True/False.
    """
    table = ATTRIBUTES[domain]
    positives = [k for k, v in present.items() if v and k in table]
    absent = [k for k, v in present.items() if not v and k in table]
    rng.shuffle(positives)

    def phrase(key: str) -> str:
        synonyms = table[key][1]
        return synonyms[int(rng.integers(len(synonyms)))] if rng.random() < 0.3 else table[key][0]

    head = "Chest X-ray" if domain == "cxr" else "Dermoscopy image"
    text = head + (" showing " + _join([phrase(k) for k in positives]) if positives else "")
    negated = [k for k in absent if rng.random() < negatives]
    if negated:
        text += (", " if positives else " with ") + "no " + " or ".join(table[k][0] for k in negated)
    return text


def describe(domain: str, present: Mapping[str, bool], negated: Sequence[str] = ()) -> str:
    """A canonical caption in the training captions' grammar, e.g. for the edit engine's prompts.

    ``present`` maps attributes (``ATTRIBUTES[domain]`` keys, plus CXR's ``female`` and skin's
    ``melanoma``) to True/False; only True ones are named, in the table's order, with their canonical
    phrase. ``negated`` attributes are named after "no" (the training captions' explicit negatives).

        >>> describe("cxr", {"female": True, "pleural_effusion": True}, negated=["support_devices"])
        'Chest X-ray of a female patient showing pleural effusion, no support devices'
        >>> describe("skin", {"melanoma": False, "ruler": True})
        'Dermoscopy image of a benign nevus with ruler markings'
    """
    if domain not in ATTRIBUTES:
        raise ValueError(f"unknown domain {domain!r}; choose one of {sorted(ATTRIBUTES)}")
    table = ATTRIBUTES[domain]
    positives = [table[k][0] for k in table if present.get(k) and k not in ("melanoma", "nevus")]
    negatives = " or ".join(table[k][0] for k in table if k in negated)
    if domain == "cxr":
        head, lead = "Chest X-ray", " showing "
        if "female" in present:
            head += f" of a {'female' if present['female'] else 'male'} patient"
    else:
        head, lead = f"Dermoscopy image of {'a melanoma' if present.get('melanoma') else 'a benign nevus'}", " with "
    text = head + (lead + _join(positives) if positives else "")
    return text + (((", " if positives else " with ") + "no " + negatives) if negatives else "")


def named_sex(text: str) -> bool | None:
    """Whether a prompt names the patient female (True), male (False) or neither (None).

        >>> named_sex("Chest X-ray of a male patient"), named_sex("Chest X-ray, effusion")
        (False, None)
    """
    match = re.search(r"\b(female|male)\b", text.lower())
    return None if match is None else match.group(1) == "female"


def parse_prompt(text: str, domain: str = "cxr") -> dict[str, bool]:
    """Attributes a prompt mentions, True when asked for and False when negated.

    Negation cues ("no", "without", "absent", "negative for", "free of", ...) apply to every attribute
    after them until a clause break ("but", "with", ";", "."). For CXR, a named device implies
    ``support_devices``; "normal ... no significant findings" sets every finding False.

        >>> parse_prompt("chest X-ray with pacemaker but no pleural effusion or cardiomegaly")
        {'pacemaker': True, 'support_devices': True, 'pleural_effusion': False, 'cardiomegaly': False}
    """
    if domain not in ATTRIBUTES:
        raise ValueError(f"unknown domain {domain!r}; choose one of {sorted(ATTRIBUTES)}")
    table = ATTRIBUTES[domain]
    lowered = " " + re.sub(r"[^a-z0-9\-\s,;.]", " ", text.lower()) + " "
    # Longest synonyms first so "pleural effusion" wins over "effusion".
    patterns = sorted(((syn, key) for key, (_, syns) in table.items() for syn in syns), key=lambda p: -len(p[0]))
    mentions: list[tuple[int, int, str]] = []
    taken = np.zeros(len(lowered), bool)
    for synonym, key in patterns:
        for match in re.finditer(r"(?<![a-z])" + re.escape(synonym) + r"(?![a-z])", lowered):
            if not taken[match.start():match.end()].any():
                taken[match.start():match.end()] = True
                mentions.append((match.start(), match.end(), key))
    mentions.sort()
    cues = [(m.start(), m.end()) for m in re.finditer(
        r"(?<![a-z])(" + "|".join(re.escape(n) for n in sorted(_NEGATIONS, key=len, reverse=True)) + r")(?![a-z])",
        lowered)]
    breaks = [m.start() for m in re.finditer(
        r"[;.]|(?<![a-z])(" + "|".join(re.escape(b) for b in _SCOPE_BREAKS) + r")(?![a-z])", lowered)]
    result: dict[str, bool] = {}
    for start, end, key in mentions:
        negated = False
        for cue_start, cue_end in cues:
            if cue_end <= start and not any(cue_end <= b < start for b in breaks):
                negated = True
        # A cue inside the mention's own synonym ("no" in "nodule") cannot happen thanks to the
        # word boundaries; a later positive mention overrides an earlier negation only if unset.
        value = not negated
        result.setdefault(key, value)
        if domain == "cxr" and key in SUPPORT_DEVICE_KINDS and value:
            result.setdefault("support_devices", True)
    if domain == "cxr" and any(p in lowered for p in _NORMAL_PHRASES):
        for key in ("pleural_effusion", "cardiomegaly"):
            result.setdefault(key, False)
    if domain == "skin" and "nevus" in result:
        result.setdefault("melanoma", not result["nevus"])
        del result["nevus"]
    return result
