"""A randomised trial in the CXR phantom world: patients, three arms, effusion courses in continuous time (issue 55).

Each patient is a CXR phantom (the SCM's age, sex, cardiomegaly: ``phantoms.cxr``) enrolled with an effusion, plus
what a clinic records: heart failure and BNP (pg/mL). What the records do not say is the effusion's **cause**:
*cardiac* (a transudate, which a diuretic clears) or *other* (an exudate, which it does not). The cause follows
heart failure and BNP, not exactly, so responders are a planted subgroup a model can find only in part.

The effusion size s(t) in [0, 1] over ``HORIZON_DAYS`` follows, per arm (days; dW a Brownian motion):

    ds = [ACCUMULATION (ceiling - s) - clearance(arm, cause) s] dt + VOLATILITY sqrt(s (1 - s)) dW

- none: clearance 0; the effusion creeps up towards ``ceiling`` (baseline + 0.15, at most 0.95);
- diuretic: clearance ``DIURETIC_CLEARANCE[cause]`` per day (cardiac ~0.15: halves in ~4 days; other ~0.01);
- drain: right after the baseline image (day 0) the drain removes ``DRAIN_REMOVES`` of the fluid, then the
  effusion re-accumulates (an exudate faster); the drain is in place for ``DRAIN_DAYS`` days, and drawn in the
  images meanwhile (``factors_at``: a tube up the pleural space on the effusion's side).

Every arm of a patient uses the **same** Brownian path: each patient has a true course under every treatment, so a
predicted counterfactual course is scored against the truth. The process is defined by its Euler-Maruyama steps
on a ``GRID_DAYS`` grid (the world is this discretisation, so there is no solver error in the truth); a value
between grid points is linearly interpolated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..domains.cxr import TREATMENTS
from .cxr import build_graph
from .scm import stable_rng

ARMS = tuple(TREATMENTS)
HORIZON_DAYS = 28.0
GRID_DAYS = 0.05
ACCUMULATION = 0.05                                   # per day, towards the ceiling
VOLATILITY = 0.08                                     # per sqrt(day), scaled by sqrt(s (1 - s))
DIURETIC_CLEARANCE = {"cardiac": 0.15, "other": 0.01}
DRAIN_REMOVES = 0.85
DRAIN_DAYS = 5.0
REACCUMULATION = {"cardiac": 1.0, "other": 2.0}       # x ACCUMULATION after a drain
MEASUREMENT_NOISE = 0.02                              # standard deviation of a recorded size
TRIAL_FIRST_SEED = 80_000_000                         # apart from every training, bench and tab set


@dataclass(frozen=True)
class Patient:
    """One enrolled patient. ``factors``: the CXR SCM's baseline factors (an effusion present); ``cause`` is hidden
    from every model (``tabular`` leaves it out); ``arm`` is the randomised treatment; ``visits`` in days."""

    seed: int
    factors: dict
    heart_failure: bool
    bnp: float
    cause: str
    baseline_size: float
    arm: str
    visits: tuple[float, ...]

    @property
    def responder(self) -> bool:
        """In the planted subgroup that a diuretic clears (a cardiac effusion)."""
        return self.cause == "cardiac"


def enrol(seed: int, arm: str | None = None) -> Patient:
    """The patient of ``seed``; ``arm`` overrides the randomisation (a what-if for one patient)."""
    rng = stable_rng(seed, "trial-patient")
    factors = dict(build_graph().sample(seed).factors)
    u = rng.uniform(size=8)
    heart_failure = bool(u[0] < (0.75 if factors["cardiomegaly"] else 0.12))
    log_bnp = math.log(80.0) + 2.0 * heart_failure + 0.01 * (factors["age"] - 60) + 0.5 * float(rng.normal())
    bnp = float(min(max(math.exp(log_bnp), 5.0), 5000.0))
    p_cardiac = 1 / (1 + math.exp(-(-1.0 + 2.5 * heart_failure + 1.2 * (math.log(bnp) - math.log(200.0)))))
    cause = "cardiac" if u[1] < p_cardiac else "other"
    baseline = round(0.25 + 0.6 * float(u[2]), 4)
    side = factors["effusion"] if factors["effusion"] != "none" else ("right", "left", "bilateral")[int(u[3] * 3)]
    factors.update(effusion=side, effusion_severity=baseline)
    n_visits = 3 + int(u[4] * 4)                                                   # 3-6 follow-up visits
    visits = (0.0, *sorted(round(float(v), 2) for v in rng.uniform(1.0, HORIZON_DAYS, n_visits)))
    chosen = arm if arm is not None else ARMS[int(u[5] * len(ARMS))]
    if chosen not in ARMS:
        raise ValueError(f"unknown treatment {chosen!r}; choose one of {', '.join(ARMS)}")
    return Patient(seed, factors, heart_failure, round(bnp, 1), cause, baseline, chosen, visits)


def tabular(patient: Patient) -> dict[str, float]:
    """What the clinic records (the models' tabular input): age, sex (1 = female), heart failure, log10 BNP."""
    return tabular_fields(patient.factors["age"], patient.factors["sex"] == "F", patient.heart_failure, patient.bnp)


def tabular_fields(age: float, female: bool, heart_failure: bool, bnp: float) -> dict[str, float]:
    """The models' tabular fields of a record (``bnp`` in pg/mL): a phantom's (``tabular``) or one typed in."""
    return {"age": float(age), "female": float(female), "heart_failure": float(heart_failure),
            "log10_bnp": math.log10(bnp)}


def _grid() -> np.ndarray:
    return np.arange(0.0, HORIZON_DAYS + GRID_DAYS / 2, GRID_DAYS)


def true_course(patient: Patient, arm: str) -> np.ndarray:
    """The effusion size on the grid (``_grid()``, days) under ``arm``, on the patient's own Brownian path."""
    if arm not in ARMS:
        raise ValueError(f"unknown treatment {arm!r}; choose one of {', '.join(ARMS)}")
    grid = _grid()
    increments = stable_rng(patient.seed, "trial-brownian").normal(0.0, math.sqrt(GRID_DAYS), len(grid) - 1)
    ceiling = min(0.95, patient.baseline_size + 0.15)
    clearance = DIURETIC_CLEARANCE[patient.cause] if arm == "diuretic" else 0.0
    accumulation = ACCUMULATION * (REACCUMULATION[patient.cause] if arm == "drain" else 1.0)
    s = np.empty(len(grid))
    s[0] = patient.baseline_size                       # day 0: the baseline image, before any treatment
    for i, dw in enumerate(increments):                # Euler-Maruyama steps: the world's definition
        start = s[i] * (1 - DRAIN_REMOVES) if arm == "drain" and i == 0 else s[i]     # drained right after
        drift = accumulation * (ceiling - start) - clearance * start
        s[i + 1] = min(max(start + drift * GRID_DAYS + VOLATILITY * math.sqrt(start * (1 - start)) * dw, 0.0), 1.0)
    return s


def sizes_at(patient: Patient, arm: str, days) -> np.ndarray:
    """The true effusion size at ``days`` (any times in [0, HORIZON_DAYS]) under ``arm``."""
    return np.interp(np.asarray(days, float), _grid(), true_course(patient, arm))


def factors_at(patient: Patient, arm: str, day: float) -> dict:
    """The CXR factors of the patient's image on ``day`` under ``arm`` (``phantoms.cxr.render`` draws them): the
    drain, in place from right after the day-0 image to ``DRAIN_DAYS``, as ``chest_drain`` (its side)."""
    size = float(sizes_at(patient, arm, [day])[0])
    drained = arm == "drain" and 0.0 < day <= DRAIN_DAYS
    return {**patient.factors, "effusion_severity": round(size, 4),
            "effusion": patient.factors["effusion"] if size >= 0.02 else "none",
            **({"chest_drain": patient.factors["effusion"]} if drained else {})}


def trial(n: int, first_seed: int = TRIAL_FIRST_SEED) -> list[Patient]:
    """``n`` randomised patients, seeds ``first_seed .. first_seed + n - 1``."""
    return [enrol(first_seed + i) for i in range(n)]


def observations(patients: list[Patient]) -> list[dict]:
    """The trial's records: one row per visit of each patient under the arm given (sizes with measurement noise)."""
    rows = []
    for patient in patients:
        truth = sizes_at(patient, patient.arm, patient.visits)
        noise = stable_rng(patient.seed, "trial-measurement").normal(0.0, MEASUREMENT_NOISE, len(truth))
        for day, size, error in zip(patient.visits, truth, noise):
            rows.append({"patient": patient.seed, "arm": patient.arm, "day": day,
                         "effusion_size": float(np.clip(size + error, 0.0, 1.0)), **tabular(patient)})
    return rows
