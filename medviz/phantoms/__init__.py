"""Procedural phantoms with known causal factors: chest X-ray (``cxr``) and dermoscopy (``skin``).

Each domain module exposes ``DOMAIN``, ``build_graph(**strengths) -> CausalGraph``,
``render(factors, seed, size) -> Rendering``, ``labels(factors) -> dict`` (the dataset's columns),
``summary(factors) -> str`` and ``is_clean(factors)``; their attributes and interventions are the
vocabulary's (``medviz.domains``).

    >>> from medviz.phantoms import get_domain
    >>> cxr = get_domain("cxr")
    >>> graph = cxr.build_graph(effusion_device_strength=0.5)
    >>> sample = graph.sample(seed=7)
    >>> counterfactual = graph.intervene(sample, effusion="bilateral")
    >>> image = cxr.render(counterfactual.factors, counterfactual.seed, 256).image
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from . import cxr, skin
from .render import Rendering, changed_mask, mask_between, shrink_mask
from .scm import CausalGraph, Sample, Variable

DOMAINS: dict[str, ModuleType] = {cxr.DOMAIN: cxr, skin.DOMAIN: skin}


def get_domain(name: str) -> ModuleType:
    """The phantom module of a domain name ("cxr" or "skin")."""
    try:
        return DOMAINS[name]
    except KeyError:
        raise ValueError(f"unknown phantom domain {name!r}; choose one of {sorted(DOMAINS)}") from None


def intervention_mask(before: Sample, after: Sample, size: int) -> np.ndarray:
    """Bool (size, size) mask of the pixels that ``before -> after`` may change (see ``changed_mask``)."""
    return changed_mask(get_domain(before.domain).render, before, after, size)


__all__ = ["CausalGraph", "DOMAINS", "Rendering", "Sample", "Variable", "changed_mask", "get_domain", "mask_between",
           "intervention_mask", "shrink_mask", "cxr", "skin"]
