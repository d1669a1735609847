"""Progression: a patient's predicted effusion course under every treatment, from a baseline image and the clinic's
record (``medviz.progression``: the causal neural SDE, or a baseline), and for a phantom patient of the trial
(``phantoms.trial``) the true course under every treatment beside it.

Steps:

1. the record checked (one sentence per bad field) and standardised; the image read to the model's size;
2. ``n_paths`` courses under every arm on the same Brownian paths (a counterfactual is a switched arm);
3. the mean and the 90% band per arm and day; each arm's effect against no treatment on ``EFFECT_DAY`` (paired
   paths) with its 90% interval, and P(the diuretic lowers the day-14 size by more than ``RESPONSE_MARGIN``);
4. for a phantom: its true course under every arm and its true images on the chosen days.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import progression
from ..domains.cxr import TREATMENTS
from ..io import uint8_rgb
from ..phantoms import get_domain
from ..phantoms import trial as world

#: The tab's phantom patients: seeds apart from the trial's training (80M) and bench (81M) patients.
TAB_FIRST_SEED = world.TRIAL_FIRST_SEED + 2_000_000
AGE_RANGE = (18.0, 110.0)           # years: the adults the trial enrols
BNP_RANGE = (1.0, 50_000.0)         # pg/mL


@dataclass(frozen=True)
class Record:
    """What the clinic records. ``bnp`` in pg/mL; ``female`` and ``heart_failure`` yes or no."""

    age: float
    female: bool
    heart_failure: bool
    bnp: float

    @classmethod
    def from_fields(cls, age, female, heart_failure, bnp) -> Record:
        """A record from a form's values (numbers or text); a missing or bad value raises ValueError in one
        sentence naming the field."""
        record = cls(_number("age", age, "years"), bool(female), bool(heart_failure), _number("BNP", bnp, "pg/mL"))
        record.validate()
        return record

    def validate(self) -> None:
        if not AGE_RANGE[0] <= self.age <= AGE_RANGE[1]:
            raise ValueError(f"age must be between {AGE_RANGE[0]:g} and {AGE_RANGE[1]:g} years, got {self.age:g}")
        if not BNP_RANGE[0] <= self.bnp <= BNP_RANGE[1]:
            raise ValueError(f"BNP must be between {BNP_RANGE[0]:g} and {BNP_RANGE[1]:g} pg/mL, got {self.bnp:g}")

    def tabular(self) -> dict[str, float]:
        """The model's fields (``progression.ProgressionConfig.tabular``), as a phantom's record gives them."""
        return world.tabular_fields(self.age, self.female, self.heart_failure, self.bnp)


def _number(name: str, value, unit: str) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{name} is missing: enter it in {unit}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in {unit}, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a number in {unit}, got {value!r}")
    return number


def phantom_patient(number: int) -> world.Patient:
    """The tab's phantom patient ``number`` (0, 1, ...), enrolled as the trial enrols."""
    if int(number) != number or number < 0:
        raise ValueError(f"a phantom patient is a number from 0, got {number!r}")
    return world.enrol(TAB_FIRST_SEED + int(number))


def phantom_record(patient: world.Patient) -> Record:
    return Record(float(patient.factors["age"]), patient.factors["sex"] == "F", patient.heart_failure, patient.bnp)


def phantom_image(patient: world.Patient, arm: str, day: float, size: int = 128) -> np.ndarray:
    """The patient's true image (uint8, size x size x 3) on ``day`` under ``arm`` (day 0: the baseline)."""
    return uint8_rgb(get_domain("cxr").render(world.factors_at(patient, arm, day), patient.seed, 128).image, size)


@dataclass(frozen=True)
class CourseConfig:
    """``n_paths`` courses per arm, every ``step_days`` to the model's horizon; ``shown_days``: the days whose true
    images a phantom shows; ``seed``: the Brownian paths'; ``band_level``: the folder's calibrated level."""

    n_paths: int = 100
    seed: int = 0
    step_days: float = 1.0
    shown_days: tuple[float, ...] = (0.0, 3.0, 7.0, 14.0, 28.0)      # day 3: the drain in place
    band_level: float = 0.9          # the paths' central level of the 90% band (``progression.band_level``)

    def validate(self, horizon_days: float) -> None:
        if not 1 <= self.n_paths <= 2000:
            raise ValueError(f"paths must be between 1 and 2000, got {self.n_paths}")
        if not 0 < self.step_days <= horizon_days:
            raise ValueError(f"the plotting step must be between 0 and {horizon_days:g} days")
        if not 0 < self.band_level < 1:
            raise ValueError(f"the band's level must lie between 0 and 1, got {self.band_level}")
        if any(not 0 <= d <= horizon_days for d in self.shown_days):
            raise ValueError(f"the days shown must lie between 0 and {horizon_days:g}")


@dataclass
class CourseResult:
    """``mean``, ``low``, ``high``: (arms, days) sizes in [0, 1] (the band: 90% of the paths; a deterministic model's
    band is its course); ``effects``: per arm but the first, its effect on ``EFFECT_DAY`` against no treatment,
    (mean, low, high); ``true``: (arms, days) for a phantom, else None; ``images``: (arm, day) -> uint8 image."""

    days: np.ndarray
    arms: tuple[str, ...]
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    effects: dict[str, tuple[float, float, float]]
    p_response: float | None
    true: np.ndarray | None
    true_effects: dict[str, float] | None
    images: dict[tuple[str, float], np.ndarray]
    baseline: np.ndarray
    seconds: float
    parameters: dict
    warnings: tuple[str, ...] = ()
    paths: np.ndarray = field(default=None, repr=False)      # (n_paths, arms, days)

    def records(self) -> list[dict]:
        """One row per arm and day: the prediction and, for a phantom, the truth."""
        return [{"treatment": arm, "day": float(d), "mean": round(float(self.mean[a, t]), 4),
                 "low": round(float(self.low[a, t]), 4), "high": round(float(self.high[a, t]), 4),
                 "true": None if self.true is None else round(float(self.true[a, t]), 4)}
                for a, arm in enumerate(self.arms) for t, d in enumerate(self.days)]


def predict_course(network, shape: progression.ProgressionConfig, image: np.ndarray, record: Record,
                   config: CourseConfig, patient: world.Patient | None = None) -> CourseResult:
    """The courses of one patient: ``image`` (contract floats or uint8, gray or RGB, any size) and ``record``;
    with ``patient`` (a phantom of the trial) the truth beside them."""
    import torch

    config.validate(shape.horizon_days)
    record.validate()
    start = time.perf_counter()
    if tuple(shape.treatments) != tuple(TREATMENTS):
        raise ValueError(f"this model's treatments {shape.treatments} are not the trial's {tuple(TREATMENTS)}")
    pixels = uint8_rgb(image, shape.image_size)                                        # 1. the inputs
    images = torch.tensor(pixels[..., 0]).float()[None, None] / 127.5 - 1
    tabular = progression.tabular_tensor(shape, [record.tabular()])
    days = np.arange(0.0, shape.horizon_days + config.step_days / 2, config.step_days)
    sizes = progression.courses(network, shape, images, tabular, days, config.n_paths, config.seed)[:, 0]  # 2.
    seconds_paths = time.perf_counter() - start
    band = progression.summary(sizes, config.band_level)                               # 3. bands and effects
    effect_at = int(np.argmin(np.abs(days - progression.EFFECT_DAY)))
    arms = tuple(shape.treatments)
    effects = {}
    for a, arm in enumerate(arms[1:], 1):
        paired = sizes[:, a, effect_at] - sizes[:, 0, effect_at]
        effects[arm] = (float(paired.mean()), float(np.quantile(paired, 0.05)), float(np.quantile(paired, 0.95)))
    stochastic = sizes.shape[0] > 1
    diuretic = arms.index("diuretic")
    p_response = (float((sizes[:, diuretic, effect_at] - sizes[:, 0, effect_at] < -progression.RESPONSE_MARGIN)
                        .mean()) if stochastic else None)
    warnings = [] if stochastic else ["This model is a deterministic baseline: one course per treatment, no band."]
    true = true_effects = None
    images_shown = {}
    if patient is not None:                                                            # 4. the truth
        true = np.array([world.sizes_at(patient, arm, days) for arm in arms])
        true_effects = {arm: float(true[a, effect_at] - true[0, effect_at]) for a, arm in enumerate(arms[1:], 1)}
        images_shown = {(arm, d): phantom_image(patient, arm, d) for arm in arms for d in config.shown_days}
        if record != phantom_record(patient):
            warnings.append("The record differs from this phantom's own: the true courses are those of the phantom "
                            "as enrolled, the predictions those of the record entered.")
    parameters = {"config": asdict(config), "record": asdict(record), "model": asdict(shape),
                  "patient": None if patient is None else patient.seed, "seconds_paths": round(seconds_paths, 4)}
    return CourseResult(days, arms, band["mean"], band["low"], band["high"], effects, p_response, true,
                        true_effects, images_shown, pixels, time.perf_counter() - start, parameters, tuple(warnings),
                        sizes)
