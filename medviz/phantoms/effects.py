"""True effects of an attribute on any score, from the SCM: each phantom beside its counterfactual with the
attribute switched on and off (same exogenous noise and render seed), the ground truth an audit is judged by."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import domains
from . import get_domain
from .scm import Sample


def switch(domain: str, sample: Sample, attribute: str, on: bool) -> dict[str, Any]:
    """Factor changes that switch ``attribute`` on or off in ``sample``: the domain's ``add`` / ``remove``,
    with an added effusion clearly visible (severity at least 0.5, or the phantom's own if larger: not a
    blunted angle)."""
    a = domains.get(domain).attribute(attribute)
    changes = dict(a.add if on else a.remove)
    if "effusion_severity" in changes:
        changes["effusion_severity"] = max(0.5, float(sample.factors["effusion_severity"]))
    return changes


def true_effects(domain: str, attribute: str, score: Callable[[list], np.ndarray], seeds: range, size: int,
                 graph_parameters: dict | None = None) -> dict[str, np.ndarray]:
    """For each phantom seed: ``score`` of its do(attribute on) and do(attribute off) renderings (one of them is the
    phantom itself) and whether it had the attribute. ``effect`` = on - off: the attribute's true causal effect
    on the score, per image, in the score's own units.

    Returns {"on": (N,), "off": (N,), "effect": (N,), "present": (N,) bool}.
    """
    module = get_domain(domain)
    graph = module.build_graph(**(graph_parameters or {}))
    attributes_of = domains.get(domain).attributes_of
    on_images, off_images, present = [], [], []
    for seed in seeds:
        sample = graph.sample(seed)
        has = bool(attributes_of(sample.factors)[attribute])
        other = graph.intervene(sample, **switch(domain, sample, attribute, not has))
        with_it, without = (sample, other) if has else (other, sample)
        on_images.append(module.render(with_it.factors, with_it.seed, max(size, 128)).image)
        off_images.append(module.render(without.factors, without.seed, max(size, 128)).image)
        present.append(has)
    on, off = np.asarray(score(on_images), np.float64), np.asarray(score(off_images), np.float64)
    return {"on": on, "off": off, "effect": on - off, "present": np.array(present)}
