"""A small structural causal model (SCM) shared by the phantom domains.

Each factor is a named variable with parents and a mechanism ``value = f(parents, u)`` where ``u`` is
the variable's own exogenous noise (uniform draws fixed by the sample's seed). Because ``u`` is kept in
the sample, ``intervene`` gives the *true* counterfactual (Pearl's abduction-action-prediction: the
noise is already known, the intervened factors are set, and every descendant is recomputed from its
mechanism with the same noise). Binary mechanisms threshold ``u`` (``u < p``), so a counterfactual
flips a child only when its probability moved across that sample's own ``u`` (monotone coupling).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any

import numpy as np

Mechanism = Callable[[Mapping[str, Any], np.ndarray], Any]

_STANDARD_NORMAL = NormalDist()


def stable_rng(*keys: int | str) -> np.random.Generator:
    """A generator seeded by ``keys`` alone, independent of Python's hash seed and of call order."""
    words = [k if isinstance(k, int) else zlib.crc32(k.encode()) for k in keys]
    return np.random.default_rng([w & 0xFFFFFFFF for w in words])


def normal_quantile(u: float, mean: float = 0.0, std: float = 1.0, lo: float = -math.inf,
                    hi: float = math.inf) -> float:
    """Inverse normal CDF of a uniform draw, clipped to ``[lo, hi]``."""
    u = min(max(float(u), 1e-9), 1 - 1e-9)
    return float(min(max(mean + std * _STANDARD_NORMAL.inv_cdf(u), lo), hi))


def categorical(u: float, choices: tuple, probs: tuple[float, ...]) -> Any:
    """Inverse CDF of a categorical distribution: the first choice whose cumulative mass exceeds u."""
    cumulative = np.cumsum(probs)
    index = int(np.searchsorted(cumulative / cumulative[-1], u, side="right"))
    return choices[min(index, len(choices) - 1)]


@dataclass(frozen=True)
class Variable:
    """One factor of the graph.

    Args:
        name: factor name, used as keyword in ``intervene``.
        parents: names of the factors the mechanism reads.
        mechanism: ``f(values_of_parents, u) -> value``; ``u`` has ``n_noise`` uniform draws in [0, 1).
        kind: ``"binary"``, ``"categorical"``, ``"continuous"`` or ``"set"``; documents the value type.
        description: what the factor means in the picture.
        n_noise: how many exogenous uniforms the mechanism consumes.
        validate: optional check of an intervened value; raises ``ValueError`` with a clear message.
    """

    name: str
    parents: tuple[str, ...]
    mechanism: Mechanism
    kind: str
    description: str
    n_noise: int = 1
    validate: Callable[[Any], None] | None = None


@dataclass(frozen=True)
class Sample:
    """One draw of the SCM: factor values, the exogenous noise that produced them, and a render seed.

    ``seed`` drives both the exogenous noise of the factors and the render noise (textures, device
    paths, sensor noise), so ``render(sample.factors, sample.seed)`` reproduces the picture bit for bit.
    ``interventions`` lists the factors set by ``do(...)`` on the way to this sample.
    """

    domain: str
    seed: int
    factors: Mapping[str, Any]
    noise: Mapping[str, tuple[float, ...]] = field(repr=False)
    interventions: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> Any:
        return self.factors[name]


class CausalGraph:
    """An ordered set of variables forming a DAG; samples and computes counterfactuals."""

    def __init__(self, domain: str, variables: list[Variable], parameters: Mapping[str, float]):
        self.domain = domain
        self.parameters = dict(parameters)
        self.variables: dict[str, Variable] = {}
        for variable in variables:
            missing = [p for p in variable.parents if p not in self.variables]
            if missing:
                raise ValueError(f"{variable.name}: parents {missing} must be declared before it")
            self.variables[variable.name] = variable

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.variables)

    def children(self, name: str) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables.values() if name in v.parents)

    def descendants(self, name: str) -> set[str]:
        found: set[str] = set()
        frontier = [name]
        while frontier:
            for child in self.children(frontier.pop()):
                if child not in found:
                    found.add(child)
                    frontier.append(child)
        return found

    def edges(self) -> list[tuple[str, str]]:
        return [(p, v.name) for v in self.variables.values() for p in v.parents]

    def _noise(self, seed: int) -> dict[str, tuple[float, ...]]:
        return {
            name: tuple(float(x) for x in stable_rng(seed, "exogenous", name).random(v.n_noise))
            for name, v in self.variables.items()
        }

    def _solve(self, noise: Mapping[str, tuple[float, ...]], fixed: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, variable in self.variables.items():
            if name in fixed:
                values[name] = fixed[name]
            else:
                parents = {p: values[p] for p in variable.parents}
                values[name] = variable.mechanism(parents, np.asarray(noise[name]))
        return values

    def sample(self, seed: int) -> Sample:
        """Draw the factors of one phantom; the same seed always gives the same sample."""
        seed = int(seed)
        noise = self._noise(seed)
        return Sample(self.domain, seed, self._solve(noise, {}), noise)

    def intervene(self, sample: Sample, **changes: Any) -> Sample:
        """The true counterfactual of ``sample`` under ``do(**changes)``.

        Same exogenous noise and render seed; the changed factors are set; every descendant that was
        not itself set is recomputed from its mechanism. Factors set by earlier interventions on this
        sample stay set.
        """
        unknown = sorted(set(changes) - set(self.variables))
        if unknown:
            raise ValueError(f"unknown factor(s) {unknown} for domain {self.domain!r}; "
                             f"known: {', '.join(self.variables)}")
        for name, value in changes.items():
            check = self.variables[name].validate
            if check is not None:
                check(value)
        fixed = {name: sample.factors[name] for name in sample.interventions}
        fixed.update(changes)
        values = self._solve(sample.noise, fixed)
        kept = tuple(dict.fromkeys([*sample.interventions, *changes]))
        return replace(sample, factors=values, interventions=kept)


def check_choice(name: str, choices: tuple) -> Callable[[Any], None]:
    def validate(value: Any) -> None:
        if value not in choices:
            raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return validate


def check_range(name: str, lo: float, hi: float) -> Callable[[Any], None]:
    def validate(value: Any) -> None:
        if not isinstance(value, (int, float, np.floating, np.integer)) or not lo <= float(value) <= hi:
            raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")
    return validate


def check_bool(name: str) -> Callable[[Any], None]:
    def validate(value: Any) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {value!r}")
    return validate


def risk_difference_probability(base: float, strength: float, exposed: bool, name: str) -> float:
    """P(child | parent) for a planted binary link whose strength is a risk difference.

    ``strength = P(child | parent) - P(child | not parent)``; it must keep both probabilities in [0, 1].
    """
    if not (0.0 <= base <= 1.0 and 0.0 <= base + strength <= 1.0):
        raise ValueError(f"{name}: base {base} and strength {strength} must keep probabilities in [0, 1]")
    return base + strength if exposed else base
