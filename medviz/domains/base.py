"""The registry's types: ``Attribute``, ``ClassifierPreset``, ``Domain``, and the registry itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Attribute:
    """One binary attribute of a domain's images.

    Args:
        name: the key used everywhere ("pleural_effusion"): readouts, sliders, edits, configs.
        phrase: the caption words when present ("pleural effusion").
        synonyms: words a prompt may use for it (the phrase among them when prompts are parsed for it).
        absent: how its absence reads where it is named either way (a caption head: "male", "benign
            nevus"); None: "no <phrase>" after the findings.
        absent_synonyms: words a prompt may use for its absence ("nevus", "benign").
        head: where a head attribute sits in a caption, a template filled with the phrase or ``absent``
            (" of a {} patient"); None: it is listed after the domain's lead word.
        always_named: a head attribute every caption names (absent unless set).
        caption_share: how often the training captions name a head attribute (the rest leave it unsaid).
        label: the UI's word for it (default: the phrase).
        factor: a separate factor of the phantom SCM (sliders, leakage, preservation).
        editable: the Edit tab may add or remove it.
        read_by_oracle: the oracle reads it (its label).
        kind_of: the attribute this one is a kind of (a pacemaker is a support device): naming it implies that.
        add, remove: phantom factor changes that switch it on / off (true counterfactuals, caption pairs).
        add_variants: when ``add`` leaves every kind of it absent, caption pair i completes it with
            ``add_variants[i % len]`` (which devices "support devices" stands for).
        companions: attributes named beside it when a prompt asks for it alone (the generic phrase alone
            is weakly learnt).
    """

    name: str
    phrase: str
    synonyms: tuple[str, ...] = ()
    absent: str | None = None
    absent_synonyms: tuple[str, ...] = ()
    head: str | None = None
    always_named: bool = False
    caption_share: float = 1.0
    label: str | None = None
    factor: bool = False
    editable: bool = False
    read_by_oracle: bool = True
    kind_of: str | None = None
    add: Mapping[str, Any] | None = None
    remove: Mapping[str, Any] | None = None
    add_variants: tuple[Mapping[str, Any], ...] = ()
    companions: tuple[str, ...] = ()

    @property
    def shown(self) -> str:
        """The UI's word for it."""
        return self.label or self.phrase

    @property
    def absent_phrase(self) -> str:
        """How its absence reads: 'male', 'benign nevus', 'no hair'."""
        return self.absent if self.absent is not None else f"no {self.phrase}"

    @property
    def absent_name(self) -> str:
        """The identifier of its absence: 'male', 'benign_nevus', 'no_hair'."""
        return self.absent.replace(" ", "_") if self.absent is not None else f"no_{self.name}"


@dataclass(frozen=True)
class Shift:
    """One kind of acquisition shift, graded from mild to severe (the stress test also measures no shift).

    Args:
        name: its identifier ("rotation"); ``transform``'s too (``medviz.shifts.TRANSFORMS``).
        phrase: on screen ("rotation").
        unit: what a level means ("degrees", "x exposure").
        levels: the graded levels, beyond the training range where the phantoms have one.
        factor: the phantom SCM's acquisition factor set to the level (do(factor = level), the anatomy and every
            other factor kept); None: phantoms are shifted by the image transform, as a user's images always are.
    """

    name: str
    phrase: str
    unit: str
    levels: tuple[float, ...]
    factor: str | None = None


@dataclass(frozen=True)
class ClassifierPreset:
    """Two classes told apart by one attribute, each optionally scored in several contexts.

    ``contexts``: states of other attributes named on both sides (confounders), one prompt per class each;
    ``companions``: attributes named beside the attribute in the first class's prompt.
    """

    labels: tuple[str, str]
    attribute: str
    contexts: tuple[Mapping[str, bool], ...] = ({},)
    companions: tuple[str, ...] = ()
    shown: str = ""                    # the UI's words (default: the attribute's phrase)


@dataclass(frozen=True)
class Domain:
    """A domain's vocabulary and defaults.

    Args:
        name: registry key ("cxr").
        title: what its images are, for people ("chest X-ray").
        subject: the caption's first words ("Chest X-ray").
        lead: the word between the subject (and head) and the listed attributes (" showing ").
        attributes: every attribute, in caption and readout order.
        neutral: the state a trajectory starts from ({"female": True}).
        interventions: named phantom interventions beyond each attribute's add / remove.
        sheet: the interventions a contact sheet shows ("toggle <attribute>": add or remove, whichever changes).
        presets: diffusion-classifier presets by identifier ("pleural_effusion"; UI words: ``preset_shown``).
        edit_defaults: the edit engine's per-domain values (``EditDefaults`` fields).
        normal_phrases: prompt words that mean "no finding"; they negate ``normal_negates``.
        attributes_of: a phantom's factors -> {attribute: present}; None for a domain without phantoms.
        planted_link: (graph parameter, cause attribute, effect attribute) of the phantoms' spurious link.
        shifts: the stress test's acquisition shifts, graded (``Shift``).
    """

    name: str
    title: str
    subject: str
    lead: str
    attributes: tuple[Attribute, ...]
    neutral: Mapping[str, bool] = field(default_factory=dict)
    interventions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sheet: tuple[str, ...] = ()
    presets: Mapping[str, ClassifierPreset] = field(default_factory=dict)
    edit_defaults: Mapping[str, float] = field(default_factory=dict)
    normal_phrases: tuple[str, ...] = ()
    normal_negates: tuple[str, ...] = ()
    attributes_of: Callable[[Mapping[str, Any]], dict[str, bool]] | None = None
    planted_link: tuple[str, str, str] | None = None
    dataset_layout: str = ""           # the public dataset a user's labelled CSV follows: "chexpert" or "isic"
    primary_task: str = ""             # the diffusion classifier's benched preset (its identifier)
    mirrored: bool = False             # an image flipped left-right is as likely (dermoscopy; not a chest X-ray)
    fidelity: tuple[str, ...] = ()     # the attributes the models bench asks for and against, in prompts
    shifts: tuple[Shift, ...] = ()     # the stress test's acquisition shifts
    thin_lines: str = "dark"           # its thin structures' polarity: dark (hair, ink) or bright (metal catheters)
    line_structures: tuple[str, ...] = ()   # attributes drawn as thin lines: the models bench measures their shapes

    def shift(self, name: str) -> Shift:
        for shift in self.shifts:
            if shift.name == name:
                return shift
        raise ValueError(f"{self.name} has no shift {name!r}; choose one of {', '.join(s.name for s in self.shifts)}")

    def attribute(self, name: str) -> Attribute:
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute
        raise ValueError(f"{self.name} has no attribute {name!r}; it has {', '.join(self.names)}")

    def __contains__(self, name: object) -> bool:
        return name in self.names

    @property
    def primary_target(self) -> str | None:
        """The attribute the primary task tells apart ("pleural_effusion"); None without a primary task."""
        return self.presets[self.primary_task].attribute if self.primary_task else None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes)

    @property
    def factors(self) -> tuple[Attribute, ...]:
        return tuple(a for a in self.attributes if a.factor)

    @property
    def editable(self) -> tuple[Attribute, ...]:
        return tuple(a for a in self.attributes if a.editable)

    @property
    def oracle_labels(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes if a.read_by_oracle)

    @property
    def heads(self) -> tuple[Attribute, ...]:
        return tuple(a for a in self.attributes if a.head is not None)

    @property
    def listed(self) -> tuple[Attribute, ...]:
        """The attributes a caption lists after its lead word."""
        return tuple(a for a in self.attributes if a.head is None)

    def preset_shown(self, key: str) -> str:
        """The UI's words for a preset (its identifier is the key of ``presets``)."""
        return self.presets[key].shown or self.attribute(self.presets[key].attribute).phrase

    def preset_key(self, task: str) -> str | None:
        """A preset's identifier, given it or its UI words ('pleural effusion'); None for neither."""
        if task in self.presets:
            return task
        return next((key for key in self.presets if self.preset_shown(key) == task), None)

    def kinds(self, name: str) -> tuple[str, ...]:
        """The attributes that are kinds of ``name`` (its device kinds)."""
        return tuple(a.name for a in self.attributes if a.kind_of == name)

    def named_interventions(self) -> dict[str, Mapping[str, Any]]:
        """Every named phantom intervention: each attribute's add and remove, then the domain's own."""
        named: dict[str, Mapping[str, Any]] = {}
        for a in self.attributes:
            on, off = ("make " + a.phrase, "make " + a.absent) if a.absent else ("add " + a.shown, "remove " + a.shown)
            if a.add is not None:
                named[on] = a.add
            if a.remove is not None:
                named[off] = a.remove
        return {**named, **self.interventions}

    def intervention(self, name: str, factors: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        """The factor changes of a named intervention; "toggle <attribute>" adds or removes it, whichever
        changes ``factors``."""
        if name.startswith("toggle "):
            attribute = self.attribute(name[len("toggle "):])
            known = factors is not None and self.attributes_of
            present = self.attributes_of(factors)[attribute.name] if known else False
            return attribute.remove if present else attribute.add
        named = self.named_interventions()
        if name not in named:
            raise ValueError(f"unknown intervention {name!r} for {self.name}; choose one of {', '.join(named)}")
        return named[name]


_REGISTRY: dict[str, Domain] = {}


def register(domain: Domain) -> Domain:
    """Add (or replace) a domain; every module that lists domains picks it up."""
    _REGISTRY[domain.name] = domain
    return domain


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


@contextmanager
def registered(domain: Domain) -> Iterator[Domain]:
    """``domain`` registered for the duration of a ``with`` block (tests, experiments)."""
    earlier = _REGISTRY.get(domain.name)
    register(domain)
    try:
        yield domain
    finally:
        unregister(domain.name)
        if earlier is not None:
            register(earlier)


def get(name: str | None) -> Domain:
    """The registered domain ``name``; ValueError naming the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown domain {name!r}; choose one of {sorted(_REGISTRY)}") from None


def find(name: str | None) -> Domain | None:
    """The registered domain ``name``, or None (a model of unknown domain)."""
    return _REGISTRY.get(name)


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)

