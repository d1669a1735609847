"""True effects of an attribute on any score, from the SCM: each phantom beside its counterfactual with the
attribute switched on and off (same exogenous noise and render seed), the ground truth an audit is judged by.
Also the planted link's parameters, so that classifiers, audits and benches draw phantoms the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import domains
from . import get_domain
from .scm import Sample

#: P(spurious | no target) of every classifier's phantoms, whatever the strength: low enough for a link of 0.9
#: (P(spurious | target) = 0.95), and one value so that classifiers at different strengths differ in the link alone.
SPURIOUS_BASE_RATE = 0.05
BASE_RATE_PARAMETERS = {"cxr": "device_base_rate", "skin": "ruler_base_rate"}     # the SCMs' names for it


def link_parameters(domain: str, strength: float, base_rate: float = SPURIOUS_BASE_RATE) -> dict:
    """The SCM parameters of the domain's planted link: its strength (a risk difference, P(spurious | target) -
    P(spurious | no target)) and P(spurious | no target)."""
    return {domains.get(domain).planted_link[0]: float(strength), BASE_RATE_PARAMETERS[domain]: float(base_rate)}


def link_groups(domain: str, factors: list, target: str, spurious: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,) int: the target present, group (N,) int: 2 * target + spurious) of N phantoms' factors."""
    attributes = [domains.get(domain).attributes_of(f) for f in factors]
    labels = np.array([int(a[target]) for a in attributes])
    return labels, 2 * labels + np.array([int(a[spurious]) for a in attributes])


def switch(domain: str, sample: Sample, attribute: str, on: bool) -> dict[str, Any]:
    """Factor changes that switch ``attribute`` on or off in ``sample``: the domain's ``add`` / ``remove``,
    with an added effusion clearly visible (severity at least 0.5, or the phantom's own if larger: not a
    blunted angle)."""
    a = domains.get(domain).attribute(attribute)
    changes = dict(a.add if on else a.remove)
    if "effusion_severity" in changes:
        changes["effusion_severity"] = max(0.5, float(sample.factors["effusion_severity"]))
    return changes


def held_factors(domain: str, sample: Sample, attributes) -> dict[str, Any]:
    """The factors that make ``attributes`` what they are in ``sample`` (those their add / remove set), at their
    values: passed to ``intervene`` beside a switch, they hold those attributes fixed (a controlled direct effect)
    where the SCM would otherwise recompute them as descendants (effusion -> devices, melanoma -> ruler)."""
    names = {name for attribute in attributes for changes in (domains.get(domain).attribute(attribute).add,
                                                              domains.get(domain).attribute(attribute).remove)
             for name in (changes or {})}
    return {name: sample.factors[name] for name in sorted(names)}


def switched(domain: str, graph, sample: Sample, attribute: str, on: bool, hold=()) -> Sample:
    """``sample`` with ``attribute`` switched on / off and the ``hold`` attributes kept as they are: the true
    counterfactual of an edit that changes one attribute only."""
    return graph.intervene(sample, **held_factors(domain, sample, hold), **switch(domain, sample, attribute, on))


def true_switch(domain: str, graph, sample: Sample, attribute: str, on: bool, hold=(), size: int = 128) -> np.ndarray:
    """The rendering of ``switched`` (float32, the I/O contract, at ``max(size, 128)`` px)."""
    changed = switched(domain, graph, sample, attribute, on, hold)
    return get_domain(domain).render(changed.factors, changed.seed, max(size, 128)).image


def true_pair(domain: str, graph, sample: Sample, attribute: str, size: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(do(attribute on) rendering, do(attribute off) rendering, whether the phantom had it): one of the two
    renderings is the phantom itself. Float32 images in the I/O contract at ``max(size, 128)`` px."""
    module = get_domain(domain)
    has = bool(domains.get(domain).attributes_of(sample.factors)[attribute])
    other = graph.intervene(sample, **switch(domain, sample, attribute, not has))
    with_it, without = (sample, other) if has else (other, sample)
    side = max(size, 128)
    return (
        module.render(with_it.factors, with_it.seed, side).image,
        module.render(without.factors, without.seed, side).image,
        has,
    )


def true_effects(domain: str, attribute: str, score: Callable[[list], np.ndarray], seeds: range, size: int,
                 graph_parameters: dict | None = None) -> dict[str, np.ndarray]:
    """For each phantom seed: ``score`` of its do(attribute on) and do(attribute off) renderings and whether it
    had the attribute. ``effect`` = on - off: the attribute's true causal effect on the score, per image, in
    the score's own units.

    Returns {"on": (N,), "off": (N,), "effect": (N,), "present": (N,) bool}.
    """
    graph = get_domain(domain).build_graph(**(graph_parameters or {}))
    pairs = [true_pair(domain, graph, graph.sample(seed), attribute, size) for seed in seeds]
    on = np.asarray(score([p[0] for p in pairs]), np.float64)
    off = np.asarray(score([p[1] for p in pairs]), np.float64)
    return {"on": on, "off": off, "effect": on - off, "present": np.array([p[2] for p in pairs])}
