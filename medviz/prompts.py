"""The one caption grammar, both ways: captions from attributes, and which attributes a prompt asks for.

Every caption reads "<subject><head><lead><listed attributes>, no <negated>" in the domain's words
(``medviz.domains``): "Chest X-ray of a female patient showing pleural effusion, no support devices",
"Dermoscopy image of a melanoma with ruler markings". Real-data captions follow PRISM (arXiv
2503.00196): "Chest X-ray showing {findings}" from the CheXpert findings labelled exactly 1, or "Normal
chest X-ray with no significant findings"; and the demographic template of arXiv 2503.23618.

``parse_prompt`` reads a prompt back into {attribute: True/False} for the attributes it mentions,
with negation scope ("no effusion or cardiomegaly", "pacemaker but no effusion", "without ruler").
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import domains
from .domains import Domain

#: The 14 CheXpert observations, in the dataset's column order.
CHEXPERT_FINDINGS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)

PRISM_NORMAL = "Normal chest X-ray with no significant findings"

_NEGATIONS = ("no", "without", "absent", "absence of", "negative for", "free of", "not", "removed",
              "remove", "minus", "lacking", "lack of", "resolved")
_SCOPE_BREAKS = ("but", "with", "and with", "showing", "shows", "has", "having", "plus", "however", "yet")


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


def skin_caption(labels: Mapping[str, Any]) -> str:
    """ "Dermoscopy image of a melanoma with ruler markings, hair" from ISIC-style labels."""
    diagnosis = str(labels.get("diagnosis", "")).lower()
    malignant = int(float(labels.get("target", 0) or 0)) == 1 or "melanoma" in diagnosis
    skin = domains.get("skin")
    return describe("skin", {"melanoma": malignant, **{a.name: _truthy(labels.get(a.name)) for a in skin.listed}})


def _truthy(value: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("1", "1.0", "true", "yes")
    return bool(value)


def _caption(domain: Domain, head: str, positives: list[str], negatives: list[str]) -> str:
    """The grammar itself: subject, head, the lead word and the listed phrases, then "no ..." for negatives."""
    text = domain.subject + head + (domain.lead + _join(positives) if positives else "")
    return text + (((", " if positives else " with ") + "no " + " or ".join(negatives)) if negatives else "")


def _head(domain: Domain, present: Mapping[str, bool]) -> str:
    """' of a female patient', ' of a benign nevus': the head attributes named in ``present`` (or always named)."""
    text = ""
    for attribute in domain.heads:
        value = present.get(attribute.name)
        if value is None and attribute.always_named:
            value = False
        if value is not None:
            text += attribute.head.format(attribute.phrase if value else attribute.absent)
    return text


def describe(domain: str, present: Mapping[str, bool], negated: Sequence[str] = ()) -> str:
    """A canonical caption in the training captions' grammar, e.g. for the edit engine's prompts.

    ``present`` maps attributes to True/False; True ones are listed in the domain's order with their
    canonical phrase; head attributes (CXR's sex, skin's lesion) go in the head when given (the lesion
    always). ``negated`` attributes are named after "no" (the training captions' explicit negatives).

        >>> describe("cxr", {"female": True, "pleural_effusion": True}, negated=["support_devices"])
        'Chest X-ray of a female patient showing pleural effusion, no support devices'
        >>> describe("skin", {"melanoma": False, "ruler": True})
        'Dermoscopy image of a benign nevus with ruler markings'
    """
    d = domains.get(domain)
    positives = [a.phrase for a in d.listed if present.get(a.name)]
    negatives = [a.phrase for a in d.attributes if a.name in negated]
    return _caption(d, _head(d, present), positives, negatives)


def class_prompts(domain: str, attribute: str, context: Mapping[str, bool] = {},
                  companions: Sequence[str] = ()) -> tuple[str, str]:
    """(with, without) ``attribute`` in ``context``: a head attribute's absence is its other word ("male",
    "benign nevus"), a listed one's is "no <phrase>"; ``companions`` are named beside it.

        >>> class_prompts("cxr", "pleural_effusion", {"cardiomegaly": True})
        ('Chest X-ray showing pleural effusion, cardiomegaly', 'Chest X-ray showing cardiomegaly, no pleural effusion')
    """
    head = domains.get(domain).attribute(attribute).head is not None
    with_it = describe(domain, {**context, attribute: True, **{c: True for c in companions}})
    without = describe(domain, {**context, attribute: False}) if head else describe(domain, context, [attribute])
    return with_it, without


def neutral_prompt(domain: str | None) -> str:
    """The prompt a trajectory starts from: the domain's neutral state ('' for an unknown domain)."""
    d = domains.find(domain)
    return describe(d.name, d.neutral) if d else ""


def start_prompt(domain: str | None, target: str) -> str:
    """The neutral prompt with ``target`` off (a sex slider starts from the other sex)."""
    d = domains.find(domain)
    if d is None or target not in d:
        return neutral_prompt(domain)
    return describe(d.name, {**d.neutral, target: False})


def attribute_prompt(domain: str, target: str) -> str:
    """The neutral prompt with ``target`` (and its companions) on: where a prompt switch goes."""
    d = domains.get(domain)
    return describe(domain, {**d.neutral, target: True, **{c: True for c in d.attribute(target).companions}})


def augmented_caption(domain: str, present: Mapping[str, bool], rng: np.random.Generator,
                      negatives: float = 0.3) -> str:
    """A caption with random attribute order, synonyms and explicit negatives ("no pleural effusion").

    Used for training so that free-text prompts work; ``present`` maps listed attributes to True/False.
    """
    d = domains.get(domain)
    table = {a.name: a for a in d.listed}
    positives = [k for k, v in present.items() if v and k in table]
    absent = [k for k, v in present.items() if not v and k in table]
    rng.shuffle(positives)

    def phrase(key: str) -> str:
        synonyms = table[key].synonyms
        return synonyms[int(rng.integers(len(synonyms)))] if rng.random() < 0.3 else table[key].phrase

    words = [phrase(k) for k in positives]
    negated = [k for k in absent if rng.random() < negatives]
    return _caption(d, "", words, [table[k].phrase for k in negated])


def training_caption(domain: str, factors: Mapping[str, Any], rng: np.random.Generator) -> str:
    """A phantom's training caption: every present attribute named, in varied words and order, sometimes
    with negatives; head attributes as often as their ``caption_share`` (CXR's sex in 70%, skin's lesion always).

    An attribute with kinds (support devices) is named by its kinds, by its own phrase, or both, a third of
    the time each: the phrase must also stand alone, or "showing support devices" alone draws nothing (0 of
    64 samples when it only came beside the device names).
    """
    d = domains.get(domain)
    attributes = d.attributes_of(factors)
    present = {k: v for k, v in attributes.items() if k in {a.name for a in d.listed}}
    for attribute in d.listed:
        kinds = d.kinds(attribute.name)
        if not kinds:
            continue
        if any(present[k] for k in kinds):
            wording = rng.random()
            if wording < 1 / 3:
                present.pop(attribute.name)
            elif wording < 2 / 3:
                for kind in kinds:
                    present.pop(kind)            # unnamed, not negated: they are there
        if not present.get(attribute.name, True):
            for kind in kinds:
                present.pop(kind)
    text = augmented_caption(domain, present, rng, negatives=0.35)
    head = {a.name: attributes[a.name] for a in d.heads
            if a.always_named or a.caption_share >= 1 or rng.random() < a.caption_share}
    return d.subject + _head(d, head) + text[len(d.subject):]


def named_heads(text: str, domain: str) -> dict[str, bool]:
    """Head attributes a prompt names by their own words ("female" / "male"; a head with synonyms is
    ``parse_prompt``'s): the first of the two words found decides.

        >>> named_heads("Chest X-ray of a male patient", "cxr"), named_heads("Chest X-ray, effusion", "cxr")
        ({'female': False}, {})
    """
    found = {}
    for attribute in domains.get(domain).heads:
        if attribute.synonyms:
            continue
        match = re.search(rf"\b({re.escape(attribute.phrase)}|{re.escape(attribute.absent)})\b", text.lower())
        if match is not None:
            found[attribute.name] = match.group(1) == attribute.phrase
    return found


def prompt_attributes(text: str, domain: str) -> dict[str, bool]:
    """Every attribute a prompt names: ``parse_prompt``'s, then its head words (``named_heads``)."""
    return {**parse_prompt(text, domain), **named_heads(text, domain)}


def caption_conditional(domain: str, prompt: str) -> dict[str, bool]:
    """The attributes a prompt fixes under the training captions' convention, {name: value}.

    Training captions name every attribute a phantom has, a head attribute as often as its
    ``caption_share`` and a kind (a device) by name, by its parent's phrase or both. So: a named
    attribute is present, a negated or unnamed listed one is absent, a head attribute is fixed when named
    (or when every caption names it), and a kind only when named or when its parent is absent.

        >>> caption_conditional("cxr", "Chest X-ray of a female patient")
        {'pleural_effusion': False, 'cardiomegaly': False, 'support_devices': False, 'pacemaker': False, \
'ett': False, 'cvc': False, 'ngt': False, 'female': True}
    """
    d = domains.get(domain)
    said = prompt_attributes(prompt, domain)
    fixed: dict[str, bool] = {}
    for a in d.attributes:
        if a.kind_of is not None:
            if a.name in said or not fixed.get(a.kind_of, said.get(a.kind_of, False)):
                fixed[a.name] = said.get(a.name, False)
        elif a.head is None or a.always_named or a.caption_share >= 1:
            fixed[a.name] = said.get(a.name, False)
        elif a.name in said:
            fixed[a.name] = said[a.name]
    return fixed


def parse_prompt(text: str, domain: str = "cxr") -> dict[str, bool]:
    """Attributes a prompt mentions, True when asked for and False when negated.

    Negation cues ("no", "without", "absent", "negative for", "free of", ...) apply to every attribute
    after them until a clause break ("but", "with", ";", "."). A named kind implies its parent (a
    pacemaker, support devices); the domain's "normal" words set its findings False; a word for an
    attribute's absence ("benign nevus") sets it False unless the attribute itself is named.

        >>> parse_prompt("chest X-ray with pacemaker but no pleural effusion or cardiomegaly")
        {'pacemaker': True, 'support_devices': True, 'pleural_effusion': False, 'cardiomegaly': False}
    """
    d = domains.get(domain)
    lowered = " " + re.sub(r"[^a-z0-9\-\s,;.]", " ", text.lower()) + " "
    # Longest synonyms first so "pleural effusion" wins over "effusion"; absence words as keys of their own.
    keyed = [item for a in d.attributes for item in
             [(syn, (a.name, True)) for syn in a.synonyms] + [(syn, (a.name, False)) for syn in a.absent_synonyms]]
    patterns = sorted(keyed, key=lambda p: -len(p[0]))
    mentions: list[tuple[int, int, tuple[str, bool]]] = []
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
    absences: dict[str, bool] = {}  # attribute -> whether its absence word was asked for
    for start, _, (name, itself) in mentions:
        negated = False
        for _, cue_end in cues:
            if cue_end <= start and not any(cue_end <= b < start for b in breaks):
                negated = True
        # Word boundaries keep a cue inside a synonym ("no" in "nodule") out; the first mention of a key wins.
        value = not negated
        if not itself:
            absences.setdefault(name, value)
            continue
        result.setdefault(name, value)
        parent = d.attribute(name).kind_of
        if parent is not None and value:
            result.setdefault(parent, True)
    if any(p in lowered for p in d.normal_phrases):
        for name in d.normal_negates:
            result.setdefault(name, False)
    for name, asked in absences.items():
        result.setdefault(name, not asked)
    return result
