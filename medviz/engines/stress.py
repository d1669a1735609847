"""Stress test: would a classifier survive another scanner?

Every classifier answers one binary question (the ``target`` attribute) on the same images, unshifted and at
graded levels of each acquisition shift of the domain (``domains.Shift``). Phantoms are shifted through their
SCM's acquisition factors where they have one (do(factor = level): the anatomy, the findings and every other
factor kept, so the labels stay true) and by the image transform otherwise; a user's labelled images always by
the transforms (``medviz.shifts``). The shifts are those LaDiNE (arXiv 2310.15952) is tested on (noise, low
resolution, brightness and contrast, crop) and those our acquisition factors allow (exposure, rotation).
Steps:

1. the image sets: the unshifted set, then each shift at each level (``phantom_sets`` or ``image_sets``);
2. each classifier's P(target) and its own uncertainty per image (``Scorer``);
3. per classifier, shift and level: accuracy at its operating point, AUROC, ECE (10 bins) and NLL, each with a
   percentile-bootstrap 95% interval over images; selective accuracy at ``coverage`` by its own uncertainty;
   of the images it got wrong, how many it called unsure itself and how many the domain check flagged;
4. the domain check's flag rate per level (one flag per image, shared by every classifier);
5. the reliability diagram of each classifier over the shifted levels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import NamedTuple

import numpy as np

from .. import domains, shifts
from ..metrics import (binary_entropy, bootstrap_interval, expected_calibration_error, negative_log_likelihood,
                       reliability_bins, roc_auc, selective_accuracy)
from ..phantoms import get_domain
from .common import Interrupted, Progress, ShouldStop
from .explain import ExplainConfig, calibrated_settings, classify, preset

#: Held-out phantoms of the stress test: seeds no model, oracle, bench or Audit-tab set (40_000_000 on) is drawn from.
STRESS_FIRST_SEED = 50_000_000
NONE = "none"                 # the unshifted set's shift name (level 0)


@dataclass(frozen=True)
class StressConfig:
    """A stress test.

    Args:
        target: the attribute every classifier answers (an identifier of the domain: "pleural_effusion").
        shifts: shift identifiers of the domain (``domains.Shift``); empty: all of them.
        n: images per level (phantoms: seeds ``first_seed`` ..; a user's set: all of it).
        first_seed: the first phantom's seed.
        seed: the transforms' noise and the bootstrap.
        bootstrap: resamples for the 95% intervals (0: none).
        coverage: the share of images kept, most certain first, for the selective accuracy.
        size: phantoms' side in px.
        examples: images kept per level to show.
    """

    target: str
    shifts: tuple[str, ...] = ()
    n: int = 200
    first_seed: int = STRESS_FIRST_SEED
    seed: int = 0
    bootstrap: int = 1000
    coverage: float = 0.8
    size: int = 128
    examples: int = 4

    def validate(self, domain: str | None) -> None:
        known = domains.find(domain)
        if known is None:
            raise ValueError("a stress test needs a domain (cxr or skin): its shifts and labels are the domain's")
        if self.target not in known.names:
            raise ValueError(f"target {self.target!r} is not an attribute of {domain}; choose one of "
                             f"{', '.join(known.names)}")
        for name in self.shifts:
            known.shift(name)                      # raises, naming the domain's shifts
        if self.n < 2:
            raise ValueError(f"n must be at least 2 images per level, got {self.n}")
        if not 0 < self.coverage <= 1:
            raise ValueError(f"coverage must be in (0, 1], got {self.coverage}")
        if self.bootstrap and self.bootstrap < 10:
            raise ValueError(f"bootstrap must be 0 or at least 10 resamples, got {self.bootstrap}")

    def chosen(self, domain: str) -> tuple[domains.Shift, ...]:
        known = domains.get(domain)
        return tuple(known.shift(name) for name in self.shifts) if self.shifts else known.shifts


class Answer(NamedTuple):
    """A classifier's answer on N images: P(target) and its own uncertainty, both (N,) in [0, 1] (the entropy of
    that probability unless the method gives one); ``decided``, bool (N,), where the method decides otherwise
    than P(target) at its operating point (LaDiNE's vote); ``unsure``, bool (N,), where the method itself says it
    is unsure (LaDiNE's t-test, the diffusion classifier's certainty), None where it has no such verdict."""

    probability: np.ndarray
    uncertainty: np.ndarray
    decided: np.ndarray | None = None
    unsure: np.ndarray | None = None


@dataclass(frozen=True)
class Scorer:
    """A classifier under test: ``predict(images) -> Answer`` (or the tuple of its fields, the first two at
    least), and the operating point at which P(target) is read as positive."""

    name: str
    predict: Callable[[Sequence[np.ndarray]], Answer | tuple]
    threshold: float = 0.5
    uncertainty: str = "entropy of its probability"


def probability_scorer(name: str, probability: Callable[[Sequence[np.ndarray]], np.ndarray],
                       threshold: float = 0.5) -> Scorer:
    """A scorer of a classifier that gives only P(target) (a CNN): its uncertainty is that probability's entropy."""

    def predict(images):
        p = np.asarray(probability(images), dtype=np.float64).ravel()
        return p, binary_entropy(p)

    return Scorer(name, predict, threshold)


def oracle_scorer(oracle, target: str, name: str | None = None) -> Scorer:
    """The bundled ResNet oracle (``medviz.oracle.Oracle``) reading ``target``, at 0.5."""
    if target not in oracle.attributes:
        raise ValueError(f"the oracle does not read {target!r}; it reads {', '.join(oracle.attributes)}")
    index = oracle.attributes.index(target)
    return probability_scorer(name or "oracle", lambda images: oracle.readout(images)[:, index])


def classifier_scorer(classifier, threshold: float | None = None) -> Scorer:
    """A classifier folder (``medviz.classifiers.AuditedClassifier``) at its card's operating point (else 0.5)."""
    point = threshold if threshold is not None else float(classifier.card.get("threshold", 0.5))
    return probability_scorer(classifier.name, classifier.score, point)


def diffusion_scorer(model, task: str | None = None, trials: int | None = None) -> Scorer:
    """The model as a diffusion classifier (the Explain tab) on a preset ``task`` (default: the domain's primary
    task) at its model card's operating point: P(target) is the first class's vote share, positive at the card's
    vote threshold; its uncertainty is the vote entropy. ``trials``: another N (tests; the card's N otherwise).
    Each image costs up to N x prompts UNet passes (early stop ends most sooner)."""
    known = domains.find(model.domain)
    task = task or (known.primary_task if known else "")
    found = preset(model.domain, task)
    if found is None:
        raise ValueError(f"no diffusion-classifier preset {task!r} for this model's domain ({model.domain})")
    labels, prompts = found
    config = ExplainConfig(prompts=prompts, labels=labels, domain_check=False, **calibrated_settings(model, task))
    config = replace(config, trials=trials) if trials else config

    def predict(images):
        results = [classify(model, image, config) for image in images]
        return Answer(np.array([r.vote_fractions[0] for r in results]),
                      np.array([min(1.0, r.vote_entropy) for r in results]),
                      unsure=np.array([r.certainty != "high" for r in results]))

    return Scorer("diffusion-classifier", predict, config.vote_threshold, "entropy of its votes")


def ladine_scorer(classifier) -> Scorer:
    """A LaDiNE folder (``medviz.ladine.LaDiNE``): P(target) its mean probability over members x samples, its
    decision the majority vote, its uncertainty the paired t-test's p-value (LaDiNE: uncertain at >= 0.05)."""

    def predict(images):
        predictions = classifier.predict(images)
        return Answer(np.array([p.probabilities[1] for p in predictions]), np.array([p.p_value for p in predictions]),
                      np.array([p.predicted == 1 for p in predictions]), np.array([p.uncertain for p in predictions]))

    return Scorer(classifier.name, predict, 0.5, "p-value of its paired t-test (LaDiNE)")


@dataclass
class LevelSet:
    """The images of one shift at one level and their true labels (bool (N,))."""

    shift: str
    level: float
    images: list[np.ndarray]
    labels: np.ndarray


def phantom_sets(domain: str, config: StressConfig,
                 only: Collection[tuple[str, float]] | None = None) -> Iterator[LevelSet]:
    """The held-out phantoms unshifted, then at each level of each chosen shift (labels from their factors);
    ``only``: just these (shift, level) sets, ("none", 0.0) for the unshifted one, the others never rendered."""
    module, known = get_domain(domain), domains.get(domain)
    graph = module.build_graph()
    samples = [graph.sample(seed) for seed in range(config.first_seed, config.first_seed + config.n)]
    labels = np.array([known.attributes_of(s.factors)[config.target] for s in samples])
    unshifted = [module.render(s.factors, s.seed, config.size).image for s in samples]
    if only is None or (NONE, 0.0) in only:
        yield LevelSet(NONE, 0.0, unshifted, labels)
    for shift in config.chosen(domain):
        for level in shift.levels:
            if only is not None and (shift.name, float(level)) not in only:
                continue
            if shift.factor:
                changed = [graph.intervene(s, **{shift.factor: level}) for s in samples]
                images = [module.render(s.factors, s.seed, config.size).image for s in changed]
                truth = np.array([known.attributes_of(s.factors)[config.target] for s in changed])
            else:
                images = [shifts.apply(im, shift.name, level, config.seed + i) for i, im in enumerate(unshifted)]
                truth = labels
            yield LevelSet(shift.name, level, images, truth)


def image_sets(images: Sequence[np.ndarray], labels: np.ndarray, domain: str,
               config: StressConfig) -> Iterator[LevelSet]:
    """A user's labelled images (I/O contract) unshifted, then through each chosen shift's transform."""
    images, labels = list(images), np.asarray(labels).astype(bool)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    yield LevelSet(NONE, 0.0, images, labels)
    for shift in config.chosen(domain):
        for level in shift.levels:
            yield LevelSet(shift.name, level, [shifts.apply(im, shift.name, level, config.seed + i)
                                               for i, im in enumerate(images)], labels)


@dataclass
class StressRow:
    """One classifier on one shift level; ``*_interval``: percentile-bootstrap 95% intervals (NaN: none)."""

    classifier: str
    shift: str
    level: float
    n: int
    positives: int
    accuracy: float
    accuracy_interval: tuple[float, float]
    auroc: float
    auroc_interval: tuple[float, float]
    ece: float
    ece_interval: tuple[float, float]
    nll: float
    nll_interval: tuple[float, float]
    selective_accuracy: float
    flagged: float | None = None       # the domain check's flag rate on this level's images (None: no check)
    unsure: float | None = None        # the share the method itself calls unsure (None: it has no such verdict)
    errors: int = 0                    # images it got wrong
    errors_unsure: int | None = None   # of them, those it called unsure
    errors_flagged: int | None = None  # of them, those the domain check flagged
    silent_errors: int = 0             # of them, those neither it nor the domain check warned of


@dataclass
class StressResult:
    """Rows per classifier, shift and level; each classifier's reliability points over the shifted levels;
    ``examples[(shift, level)]``: a few of the level's images (the same phantoms at every level)."""

    rows: list[StressRow]
    reliability: dict[str, list[dict]]
    examples: dict[tuple[str, float], list[np.ndarray]]
    parameters: dict
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def row(self, classifier: str, shift: str, level: float) -> StressRow:
        return next(r for r in self.rows if (r.classifier, r.shift, r.level) == (classifier, shift, level))

    def records(self) -> list[dict]:
        """The rows as plain dicts (CSV, JSON)."""
        return [asdict(r) for r in self.rows]


def _row(scorer: Scorer, level_set: LevelSet, answer: Answer, flags: np.ndarray | None,
         config: StressConfig) -> StressRow:
    labels = level_set.labels
    p, uncertainty = np.asarray(answer.probability, np.float64), np.asarray(answer.uncertainty, np.float64)
    decided = np.asarray(answer.decided, bool) if answer.decided is not None else p >= scorer.threshold
    correct = decided == labels
    unsure = None if answer.unsure is None else np.asarray(answer.unsure, bool)
    warned = np.zeros_like(correct)                       # by the method's own doubt or by the domain check
    for warning in (unsure, flags):
        if warning is not None:
            warned |= warning

    def interval(statistic, *arrays):
        if not config.bootstrap:
            return float("nan"), float("nan")
        return bootstrap_interval(statistic, arrays, config.bootstrap, config.seed)

    return StressRow(
        scorer.name, level_set.shift, level_set.level, len(labels), int(labels.sum()),
        accuracy=float(correct.mean()), accuracy_interval=interval(lambda c: float(c.mean()), correct),
        auroc=roc_auc(labels, p), auroc_interval=interval(roc_auc, labels, p),
        ece=expected_calibration_error(labels, p), ece_interval=interval(expected_calibration_error, labels, p),
        nll=negative_log_likelihood(labels, p), nll_interval=interval(negative_log_likelihood, labels, p),
        selective_accuracy=selective_accuracy(correct, uncertainty, config.coverage),
        flagged=None if flags is None else float(flags.mean()),
        unsure=None if unsure is None else float(unsure.mean()), errors=int((~correct).sum()),
        errors_unsure=None if unsure is None else int((unsure & ~correct).sum()),
        errors_flagged=None if flags is None else int((flags & ~correct).sum()),
        silent_errors=int((~correct & ~warned).sum()))


def level_count(domain: str, config: StressConfig) -> int:
    """How many level sets ``phantom_sets`` and ``image_sets`` yield: the unshifted one and every level."""
    return 1 + sum(len(shift.levels) for shift in config.chosen(domain))


def stress_test(sets: Iterable[LevelSet], scorers: Sequence[Scorer], config: StressConfig,
                flags: Callable[[list[np.ndarray]], np.ndarray] | None = None, progress: Progress = None,
                should_stop: ShouldStop = None, total: int = 0) -> StressResult:
    """Score every classifier on every level set (``phantom_sets`` / ``image_sets``, drawn one at a time).

    Args:
        flags: the domain check, bool (N,) per image (True: flagged out of domain); None: no check.
        progress: ``progress(done, total)`` in level sets (``total``: ``level_count``).
        should_stop: polled before each level set; True raises ``Interrupted``.
    """
    if not scorers:
        raise ValueError("choose at least one classifier to stress-test")
    started, rows, examples = time.perf_counter(), [], {}
    pooled: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {s.name: [] for s in scorers}
    for done, level_set in enumerate(sets):
        # 1. the next image set (rendered or transformed lazily by the generator)
        if should_stop is not None and should_stop():
            raise Interrupted(f"stopped by the user after {done} level sets")
        examples[(level_set.shift, level_set.level)] = level_set.images[:config.examples]
        # 4. the domain check, once per image
        flagged = None if flags is None else np.asarray(flags(level_set.images), bool)
        for scorer in scorers:
            # 2. the classifier's probabilities and uncertainty; 3. the level's figures
            answer = Answer(*scorer.predict(level_set.images))
            rows.append(_row(scorer, level_set, answer, flagged, config))
            if level_set.shift != NONE:
                pooled[scorer.name].append((level_set.labels, np.asarray(answer.probability)))
        if progress is not None:
            progress(done + 1, total or done + 1)
    # 5. reliability over every shifted level
    reliability = {name: reliability_bins(np.concatenate([lab for lab, _ in got]), np.concatenate([p for _, p in got]))
                   for name, got in pooled.items() if got}
    parameters = {"target": config.target, "n": config.n, "first_seed": config.first_seed, "seed": config.seed,
                  "bootstrap": config.bootstrap, "coverage": config.coverage, "size": config.size,
                  "classifiers": {s.name: {"threshold": s.threshold, "uncertainty": s.uncertainty} for s in scorers}}
    return StressResult(rows, reliability, examples, parameters, _warnings(rows), time.perf_counter() - started)


def _warnings(rows: list[StressRow]) -> list[str]:
    """A line per classifier whose accuracy falls to chance or below at some shifted level."""
    out = []
    for name in dict.fromkeys(r.classifier for r in rows):
        shifted = [r for r in rows if r.classifier == name and r.shift != NONE]
        if not shifted:
            continue
        worst = min(shifted, key=lambda r: r.accuracy)
        base_rate = max(worst.positives, worst.n - worst.positives) / worst.n
        if worst.accuracy <= base_rate:
            out.append(f"{name}: accuracy {worst.accuracy:.0%} at {worst.shift} {worst.level:g}, no better than "
                       f"answering the majority class ({base_rate:.0%}).")
    return out
