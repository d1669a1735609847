"""Audit: does a classifier read the disease, or the device or ruler that comes with it?

For every image the Edit engine (``counterfactual``) makes two counterfactuals: one that switches only the
spurious attribute (removes it where the image has it, adds it where not) and one that switches only the target.
The classifier's score change under each is its counterfactual reliance on that attribute, the probe PRISM (arXiv
2503.00196) and DeCoDEx (arXiv 2405.09288) use to expose shortcuts. On phantoms the SCM gives each image's *true*
counterfactuals, so the same figures come twice: estimated (our edits) and true (the ground truth that judges
them). Steps:

1. domain check of each image (``medviz.guard``); flagged images are left out and counted;
2. the two edits per image (seed ``config.seed + index``), each with its effect check; an edit that did not switch
   its attribute (the oracle's readout) is left out of the figures and counted;
3. the classifier's score of every input and counterfactual; per image the change "on - off" (score with the
   attribute minus score without it), in probability points of the audited label (0..1);
4. summary figures with percentile-bootstrap 95% intervals over images, the subgroup table where labels exist,
   SCLS, and the truth.

Stage 2 alone (``score_audit``) rescoring stage 1's counterfactuals (``make_counterfactuals``) audits any number
of classifiers for the price of one set of edits (the bench does).
"""

from __future__ import annotations

import csv
import io
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .. import domains
from ..classifiers import AuditedClassifier
from ..phantoms import get_domain
from ..phantoms.effects import link_parameters, true_pair
from .common import Progress, ShouldStop, StepControl, model_rgb
from .counterfactual import EditConfig, counterfactual, measured_edit
from .guard import check_domain

UNITS = "probability points of the audited label's score (0..1): mean of score(with) - score(without)"
#: A classifier is flagged when its estimated reliance reaches this: halfway between the true reliance we call a
#: shortcut (>= 0.1, a tenth of the score's range) and the half of it (0.05) that must stay unflagged.
FLAG_AT = 0.075
SHORTCUT = 0.1
#: An edit whose counterfactual-bench faithfulness on this model (its card: how often it looks like the true
#: counterfactual) is below this is left out of the figures: CXR "add support devices" draws several device kinds at
#: once (faithful in 1%) and doubles the reliance it suggests (docs/audit.md). Unmeasured edits are kept.
FAITHFUL_ENOUGH = 0.5


@dataclass(frozen=True)
class AuditImage:
    """One image to audit. ``pixels``: the I/O contract (float32 [0, 1], gray or RGB, any size); ``labels``:
    attribute -> present, where known (phantoms, a dataset's CSV); ``truth``: attribute -> (do(on), do(off))
    renderings of the SCM, phantoms only."""

    name: str
    pixels: np.ndarray
    labels: Mapping[str, bool] = field(default_factory=dict)
    truth: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None


@dataclass(frozen=True)
class AuditConfig:
    """An audit request.

    Args:
        spurious, target: attribute names of the model's domain (``domains``), both editable.
        edit: the counterfactuals' settings (the Edit engine's; its seed is replaced per image).
        seed: image i's edits use seed ``seed + i``; the bootstrap uses ``seed``.
        domain_check: leave out images the domain check flags.
        bootstrap: resamples of the images for the 95% intervals.
        flag_at: estimated reliance (``UNITS``) at which the classifier is flagged.
        gallery: how many pairs whose score moved most to return.
        skip_unfaithful: do not run the edits the figures would leave out (``FAITHFUL_ENOUGH``): about 40% of a CXR
            audit's UNet passes.
    """

    spurious: str
    target: str
    edit: EditConfig = EditConfig(domain_check=False)
    seed: int = 0
    domain_check: bool = True
    bootstrap: int = 1000
    flag_at: float = FLAG_AT
    gallery: int = 8
    skip_unfaithful: bool = True

    def validate(self, domain: str | None) -> None:
        known = domains.find(domain)
        if known is None:
            raise ValueError("an audit needs a model of a known domain (cxr or skin): its edits add and remove "
                             "named attributes")
        editable = [a.name for a in known.editable]
        for role, name in (("spurious", self.spurious), ("target", self.target)):
            if name not in editable:
                raise ValueError(f"{role} attribute {name!r} cannot be edited on a {domain} model; choose one of "
                                 f"{', '.join(editable)}")
        if self.spurious == self.target:
            raise ValueError("the spurious and the target attribute must differ")
        if self.bootstrap < 10:
            raise ValueError(f"bootstrap must be >= 10 resamples, got {self.bootstrap}")


@dataclass(frozen=True)
class Switch:
    """One counterfactual of one image: ``action`` "add"/"remove" of ``attribute``; ``image`` at the model's size
    (RGB float32); ``passed``: the effect check said it switched (None: no oracle to check)."""

    attribute: str
    action: str
    image: np.ndarray
    passed: bool | None
    verdict: str
    unet_passes: int
    ran: bool = True                   # False: not run, the model card measured this edit unfaithful


@dataclass(frozen=True)
class ImageCounterfactuals:
    """An image as the model saw it (RGB float32 at its size), its two counterfactuals and its truth."""

    name: str
    input: np.ndarray
    labels: Mapping[str, bool]
    switches: Mapping[str, Switch]
    truth: Mapping[str, tuple[np.ndarray, np.ndarray]] | None


@dataclass(frozen=True)
class Counterfactuals:
    """Stage 1: the counterfactuals of every image kept; ``excluded``: (name, reason) of those left out."""

    images: list[ImageCounterfactuals]
    excluded: list[tuple[str, str]]
    spurious: str
    target: str
    unet_passes: int
    seconds: float
    parameters: dict
    faithfulness: Mapping[str, float | None] = field(default_factory=dict)   # "add ruler" -> the card's figure


def edit_faithfulness(card: dict, attributes: Sequence[str], edit: EditConfig) -> dict[str, float | None]:
    """{"add X" / "remove X": the counterfactual bench's faithfulness of that edit on this model, or None}."""
    return {f"{action} {name}": (measured_edit(card, replace(edit, **{action: (name,)})) or {}).get("faithfulness")
            for name in attributes for action in ("add", "remove")}


def unfaithful(faithfulness: Mapping[str, float | None], action: str, attribute: str) -> bool:
    value = faithfulness.get(f"{action} {attribute}")
    return value is not None and value < FAITHFUL_ENOUGH


def switched(switch: Switch) -> bool:
    """The edit ran and switched its attribute (or there was no oracle to say it did not)."""
    return switch.ran and switch.passed is not False


def used(switch: Switch, faithfulness: Mapping[str, float | None]) -> bool:
    """The figures use this edit: it switched, and the model card does not call it unfaithful."""
    return switched(switch) and not unfaithful(faithfulness, switch.action, switch.attribute)


@dataclass(frozen=True)
class Estimate:
    """A mean over images with its percentile-bootstrap 95% interval; n: images it rests on (NaN when none)."""

    mean: float
    low: float
    high: float
    n: int

    def record(self) -> dict:
        return {"mean": _round(self.mean), "low": _round(self.low), "high": _round(self.high), "n": self.n}


@dataclass(frozen=True)
class AuditResult:
    """One classifier's audit. Reliance and target effect in ``UNITS``; SCLS in [0, 1] (``scls``)."""

    classifier: str
    label: str
    spurious: str
    target: str
    reliance: Estimate                 # spurious switched: mean of score(with) - score(without)
    target_effect: Estimate            # target switched: the same
    scls: Estimate
    flagged: bool
    subgroups: list[dict]              # per (target, spurious): n, accuracy, mean score; [] without labels
    worst_group_accuracy: float | None
    mean_accuracy: float | None
    truth: dict | None                 # the same figures from the SCM's true counterfactuals (phantoms)
    pairs: list[dict]                  # per image and switch: scores before / after, change (on - off), passed
    gallery: list[tuple[np.ndarray, np.ndarray, str]]   # (input, counterfactual, caption), largest |change| first
    excluded: dict                     # reason -> count: domain check, edits that did not switch
    unet_passes: int
    unet_passes_per_image: float
    seconds: float
    parameters: dict
    warnings: tuple[str, ...] = ()
    reliance_every_switch: float = float("nan")   # the reliance with unfaithful edits kept (for comparison)


def _round(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)


def make_counterfactuals(model, images: Sequence[AuditImage], config: AuditConfig, progress: Progress = None,
                         should_stop: ShouldStop = None) -> Counterfactuals:
    """Stage 1 (steps 1-2): domain check and the two edits of every image. ``progress(done, total)`` counts
    edits; ``should_stop`` is polled inside every edit (stopping raises ``Interrupted``)."""
    config.validate(model.domain)
    if not images:
        raise ValueError("no images to audit")
    tic = time.perf_counter()
    control = StepControl(total=2 * len(images), progress=progress, should_stop=should_stop)
    kept, excluded, passes = [], [], 0
    faithfulness = edit_faithfulness(model.card, (config.spurious, config.target), config.edit)
    for index, item in enumerate(images):
        control.check()
        if config.domain_check:
            checked = check_domain(model, item.pixels)
            passes += checked.unet_passes
            if checked.in_domain is False:
                excluded.append((item.name, f"outside the model's domain ({checked.reason})"))
                control.step(2)
                continue
        switches = {}
        for attribute in (config.spurious, config.target):
            present = item.labels.get(attribute)
            switches[attribute] = _switch(model, item.pixels, attribute, present, replace(
                config.edit, seed=config.seed + index, domain_check=False), should_stop,
                faithfulness if config.skip_unfaithful else {})
            passes += switches[attribute].unet_passes
            control.step()
        kept.append(ImageCounterfactuals(item.name, model_rgb(item.pixels, model.image_size), dict(item.labels),
                                         switches, item.truth))
    parameters = {"spurious": config.spurious, "target": config.target, "seed": config.seed,
                  "domain_check": config.domain_check, "model": model.name, "edit": asdict(config.edit),
                  "images": len(images)}
    return Counterfactuals(
        kept, excluded, config.spurious, config.target, passes, time.perf_counter() - tic, parameters, faithfulness
    )


def _switch(model, pixels: np.ndarray, attribute: str, present: bool | None, edit: EditConfig,
            should_stop: ShouldStop, skip: Mapping[str, float | None]) -> Switch:
    """Remove ``attribute`` where the image has it, else add it. Without a label, the oracle's readout decides.
    An edit ``skip`` marks unfaithful is not run (its image is the input, its check None)."""
    if present is None:
        readout = model.oracle.readout_dicts([model_rgb(pixels, model.image_size)])[0] if model.oracle else {}
        present = readout.get(attribute, 0.0) >= 0.5
    action = "remove" if present else "add"
    if unfaithful(skip, action, attribute):
        return Switch(
            attribute,
            action,
            model_rgb(pixels, model.image_size),
            None,
            f"not run: '{action} {attribute}' is unfaithful on this model",
            0,
            ran=False,
        )
    result = counterfactual(
        model,
        pixels,
        replace(edit, add=() if present else (attribute,), remove=(attribute,) if present else ()),
        should_stop=should_stop,
    )
    rgb = (
        result.counterfactual if result.counterfactual.ndim == 3 else np.repeat(result.counterfactual[..., None], 3, -1)
    )
    passed = result.effect.passed if result.effect is not None else None
    verdict = result.effect.verdict if result.effect is not None else "no oracle to check the edit"
    return Switch(attribute, action, rgb.astype(np.float32), passed, verdict, result.unet_passes)


def score_audit(classifier: AuditedClassifier, made: Counterfactuals, config: AuditConfig) -> AuditResult:
    """Stage 2 (steps 3-4): score the inputs and counterfactuals with ``classifier`` and summarise."""
    tic = time.perf_counter()
    images = made.images
    if not images:
        raise ValueError(f"no image left to audit: {len(made.excluded)} left out ({_reasons(made.excluded)})")
    before = classifier.score([item.input for item in images])
    changes, every, pairs, excluded = {}, {}, [], {"outside the model's domain": len(made.excluded)}
    for attribute in (made.spurious, made.target):
        after = classifier.score([item.switches[attribute].image for item in images])
        sign = np.array([1.0 if item.switches[attribute].action == "add" else -1.0 for item in images])
        ran = np.array([item.switches[attribute].ran for item in images])
        passed = np.array([switched(item.switches[attribute]) for item in images])
        usable = np.array([used(item.switches[attribute], made.faithfulness) for item in images])
        every[attribute] = np.where(passed, sign * (after - before), np.nan)
        changes[attribute] = np.where(usable, every[attribute], np.nan)
        excluded[f"{attribute} edit did not switch it"] = int((ran & ~passed).sum())
        excluded[f"{attribute} edit unfaithful on this model"] = int((~usable & ~(ran & ~passed)).sum())   # the rest
        for item, b, a, s, ok in zip(images, before, after, sign, usable):
            switch = item.switches[attribute]
            pairs.append({"image": item.name, "attribute": attribute, "action": switch.action, "passed": switch.passed,
                          "used": bool(ok),
                          "score_before": round(float(b), 4), "score_after": round(float(a), 4),
                          "change_on_minus_off": round(float(s * (a - b)), 4), "effect_check": switch.verdict})
    rng = np.random.default_rng(config.seed)
    reliance, target_effect, scls = _estimates(changes[made.spurious], changes[made.target], config.bootstrap, rng)
    every_switch = float(np.nanmean(every[made.spurious])) if np.isfinite(every[made.spurious]).any() else float("nan")
    subgroups, worst, mean_accuracy = _subgroups(images, before, made.target, made.spurious)
    truth = _truth(classifier, images, made, config, changes[made.spurious])
    warnings = _warnings(made, excluded, reliance, [p for p in pairs if p["attribute"] == made.spurious])
    return AuditResult(
        classifier=classifier.name, label=classifier.label, spurious=made.spurious, target=made.target,
        reliance=reliance, target_effect=target_effect, scls=scls,
        flagged=bool(not math.isnan(reliance.mean) and reliance.mean >= config.flag_at),
        subgroups=subgroups, worst_group_accuracy=worst, mean_accuracy=mean_accuracy, truth=truth, pairs=pairs,
        gallery=_gallery(images, pairs, config.gallery), excluded=excluded, unet_passes=made.unet_passes,
        unet_passes_per_image=made.unet_passes / max(1, len(images) + len(made.excluded)),
        seconds=made.seconds + time.perf_counter() - tic,
        parameters={**made.parameters, "classifier": classifier.name, "label": classifier.label,
                    "bootstrap": config.bootstrap, "flag_at": config.flag_at, "units": UNITS},
        warnings=tuple(warnings), reliance_every_switch=every_switch)


def audit(model, classifier: AuditedClassifier, images: Sequence[AuditImage], config: AuditConfig,
          progress: Progress = None, should_stop: ShouldStop = None) -> AuditResult:
    """Audit ``classifier`` on ``images`` with ``model``'s counterfactuals: both stages."""
    return score_audit(classifier, make_counterfactuals(model, images, config, progress, should_stop), config)


def scls_of(spurious_changes: np.ndarray, target_changes: np.ndarray) -> float:
    """SCLS, our definition (arXiv 2308.10984's formula could not be found; its abstract scores how much a
    classifier latches onto a spurious correlation exposed by counterfactuals): the share of the classifier's
    counterfactual sensitivity that goes to the spurious attribute, mean|d_s| / (mean|d_s| + mean|d_t|), in [0, 1].
    0: the spurious attribute never moves the score; 0.5: it moves it as much as the disease does."""
    s, t = np.nanmean(np.abs(spurious_changes)), np.nanmean(np.abs(target_changes))
    return float(s / (s + t)) if s + t > 0 else float("nan")


def _estimates(spurious: np.ndarray, target: np.ndarray, resamples: int, rng) -> tuple[Estimate, Estimate, Estimate]:
    """(reliance, target effect, SCLS) with percentile-bootstrap 95% intervals; NaN entries (edits that did not
    switch) are left out of each mean."""
    draws = rng.integers(0, len(spurious), (resamples, len(spurious)))

    def interval(statistic, kept: int) -> Estimate:
        if not kept:
            return Estimate(float("nan"), float("nan"), float("nan"), 0)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)          # a resample may draw no switched edit
            boot = np.array([statistic(d) for d in draws])
            low, high = np.nanpercentile(boot, [2.5, 97.5])
        return Estimate(float(statistic(slice(None))), float(low), float(high), kept)

    s_ok, t_ok = np.isfinite(spurious), np.isfinite(target)
    return (interval(lambda d: np.nanmean(spurious[d]), int(s_ok.sum())),
            interval(lambda d: np.nanmean(target[d]), int(t_ok.sum())),
            interval(lambda d: scls_of(spurious[d], target[d]), int((s_ok & t_ok).sum())))


def _subgroups(images, scores: np.ndarray, target: str, spurious: str):
    """Per (target, spurious) group: n, accuracy (score >= 0.5 reads the target present) and mean score."""
    known = [i for i, item in enumerate(images) if target in item.labels and spurious in item.labels]
    if not known:
        return [], None, None
    rows = []
    for has_target in (False, True):
        for has_spurious in (False, True):
            index = [
                i
                for i in known
                if images[i].labels[target] == has_target and images[i].labels[spurious] == has_spurious
            ]
            if not index:
                continue
            predicted = scores[index] >= 0.5
            rows.append({"target": has_target, "spurious": has_spurious, "n": len(index),
                         "accuracy": round(float((predicted == has_target).mean()), 4),
                         "mean_score": round(float(scores[index].mean()), 4)})
    correct = (scores[known] >= 0.5) == np.array([images[i].labels[target] for i in known])
    return rows, min(r["accuracy"] for r in rows), round(float(correct.mean()), 4)


def _truth(classifier, images, made: Counterfactuals, config: AuditConfig, estimated: np.ndarray) -> dict | None:
    """The figures from the SCM's true counterfactuals, on every image kept and on those whose spurious edit
    switched (the estimate's own images)."""
    if not images or any(item.truth is None for item in images):
        return None
    effects = {}
    for attribute in (made.spurious, made.target):
        on = classifier.score([item.truth[attribute][0] for item in images])
        off = classifier.score([item.truth[attribute][1] for item in images])
        effects[attribute] = on - off
    rng = np.random.default_rng(config.seed)
    reliance, target_effect, scls = _estimates(effects[made.spurious], effects[made.target], config.bootstrap, rng)
    same = np.where(np.isfinite(estimated), effects[made.spurious], np.nan)
    return {"reliance": reliance.record(), "target_effect": target_effect.record(), "scls": scls.record(),
            "reliance_same_images": _round(float(np.nanmean(same))) if np.isfinite(same).any() else None,
            "per_image": {attribute: [round(float(v), 4) for v in values] for attribute, values in effects.items()}}


def _gallery(images, pairs: list[dict], count: int) -> list[tuple[np.ndarray, np.ndarray, str]]:
    by_name = {item.name: item for item in images}
    ranked = sorted((p for p in pairs if p["used"]), key=lambda p: -abs(p["change_on_minus_off"]))
    return [(by_name[p["image"]].input, by_name[p["image"]].switches[p["attribute"]].image,
             f"{p['image']}: {p['action']} {p['attribute']}: {p['score_before']:.2f} -> {p['score_after']:.2f}")
            for p in ranked[:count]]


def _reasons(excluded: list[tuple[str, str]]) -> str:
    return "; ".join(f"{name}: {reason}" for name, reason in excluded[:3]) + (" ..." if len(excluded) > 3 else "")


def _warnings(made: Counterfactuals, excluded: dict, reliance: Estimate, spurious_pairs: list[dict]) -> list[str]:
    out = []
    for action in ("add", "remove"):
        left = sum(1 for p in spurious_pairs if p["action"] == action and p["passed"] is not False and not p["used"])
        if left:
            value = made.faithfulness[f"{action} {made.spurious}"]
            out.append(
                f"On this model the '{action} {made.spurious}' edit rarely looks like the true counterfactual "
                f"(counterfactual bench: faithful in {value:.0%}): its {left} edits are left out of the reliance."
            )
    total = len(made.images) + len(made.excluded)
    if made.excluded:
        out.append(f"{len(made.excluded)} of {total} images were left out: outside the model's domain.")
    failed = excluded.get(f"{made.spurious} edit did not switch it", 0)
    if failed:
        out.append(f"In {failed} of {len(made.images)} images the {made.spurious} edit did not switch it (the oracle's "
                   "readout); they are left out of the reliance.")
    if reliance.n < 10:
        out.append(f"The reliance rests on {reliance.n} images: too few for a firm figure.")
    return out


def phantom_images(domain: str, n: int, first_seed: int, strength: float = 0.0, spurious_rate: float | None = None,
                   attributes: Sequence[str] = (), size: int = 128) -> list[AuditImage]:
    """``n`` phantoms (seeds ``first_seed`` ...) drawn with the planted link at ``strength`` in [0, 1) (0: none) and
    P(spurious | no target) = ``spurious_rate``, default (1 - strength) / 2: then P(spurious | target) is
    (1 + strength) / 2, and without a link half the images carry the spurious attribute. With their labels and
    the true counterfactuals of ``attributes``."""
    if not 0 <= strength < 1:
        raise ValueError(f"the link strength must lie in [0, 1), got {strength}")
    rate = (1 - strength) / 2 if spurious_rate is None else spurious_rate
    module = get_domain(domain)
    graph = module.build_graph(**link_parameters(domain, strength, rate))
    attributes_of = domains.get(domain).attributes_of
    out = []
    for seed in range(first_seed, first_seed + n):
        sample = graph.sample(seed)
        truth = {}
        for attribute in attributes:
            on, off, has = true_pair(domain, graph, sample, attribute, size)
            truth[attribute] = (on, off)
        image = module.render(sample.factors, sample.seed, max(size, 128)).image
        labels = {k: bool(v) for k, v in attributes_of(sample.factors).items()}
        out.append(AuditImage(f"phantom {seed}", image, labels, truth or None))
    return out


def folder_images(records, limit: int | None = None, max_side: int = 512) -> tuple[list[AuditImage], list[str]]:
    """Audit images of a dataset's records (``medviz.data.load_chexpert`` / ``load_isic``): labels renamed to the
    vocabulary's keys ("Pleural Effusion" -> pleural_effusion), uncertain and blank labels left unknown. Returns
    (images, one line per unreadable file)."""
    images, unreadable = [], []
    for record in list(records)[:limit]:
        try:
            pixels = record.load(max_side=max_side).pixels
        except Exception as error:                  # a bad file is reported and skipped, never fatal
            unreadable.append(f"{record.path.name}: {' '.join(str(error).split())[:160]}")
            continue
        labels = {k: bool(v == 1.0) for k, v in record.attribute_labels().items() if not math.isnan(v)}
        images.append(AuditImage(record.path.name, pixels, labels))
    return images, unreadable


def report_rows(*results: AuditResult) -> str:
    """The per-image pairs of one or more audits (of the same counterfactuals) as CSV text, one column naming the
    classifier."""
    buffer = io.StringIO()
    pairs = [{"classifier": result.classifier, **pair} for result in results for pair in result.pairs]
    writer = csv.DictWriter(buffer, fieldnames=list(pairs[0]) if pairs else ["classifier", "image"])
    writer.writeheader()
    writer.writerows(pairs)
    return buffer.getvalue()


def report(result: AuditResult) -> dict:
    """The audit as a JSON-ready dict (no images)."""
    return {"classifier": result.classifier, "label": result.label, "spurious": result.spurious,
            "target": result.target, "units": UNITS, "reliance": result.reliance.record(),
            "reliance_every_switch": _round(result.reliance_every_switch),
            "target_effect": result.target_effect.record(), "scls": result.scls.record(), "flagged": result.flagged,
            "flag_at": result.parameters["flag_at"], "subgroups": result.subgroups,
            "worst_group_accuracy": result.worst_group_accuracy, "mean_accuracy": result.mean_accuracy,
            "truth": None if result.truth is None else {k: v for k, v in result.truth.items() if k != "per_image"},
            "excluded": result.excluded, "unet_passes": result.unet_passes,
            "unet_passes_per_image": round(result.unet_passes_per_image, 1), "seconds": round(result.seconds, 1),
            "warnings": list(result.warnings), "parameters": result.parameters}
