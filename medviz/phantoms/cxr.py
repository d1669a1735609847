"""Procedural PA chest radiograph phantom with known causal factors.

Radiological convention: the patient's right is on the image's left, so the heart bulges to the
image's right and a "left" effusion sits on the image's right. The picture is formed in attenuation
(air 0, soft tissue ~1.7 through the thick chest, bone and metal higher), summed from anatomical
components, then mapped to display intensity like a processed radiograph: ``1 - exp(-A / exposure)``,
a contrast gamma and correlated quantum noise. Bright = attenuating, as in MONOCHROME2.

Causal graph (default, ``build_graph``)::

    sex -> habitus            age -> bone_density     age -> cardiomegaly -> ctr
    cardiomegaly, age -> effusion -> effusion_severity
    effusion -> support_devices -> devices   (planted CheXpert-style spurious link, settable strength)
    exposure, contrast, noise_level, rotation, shift_x, shift_y, marker: acquisition, exogenous
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image

from ..domains.cxr import DEVICE_KINDS
from .render import Rendering, Stroke, bezier, component_rng, correlated_noise, grid, smoothstep, value_noise
from .scm import (CausalGraph, Variable, categorical, check_bool, check_choice, check_range,
                  normal_quantile, risk_difference_probability)

DOMAIN = "cxr"
EFFUSION_SIDES = ("none", "right", "left", "bilateral")
DEVICES = DEVICE_KINDS
#: Render supports of the thin structures an autoencoder tends to average away (VAE training weights them).
FINE_STRUCTURES = DEVICES
# P(device | support devices present); at least one device is always drawn.
DEVICE_RATES = {"pacemaker": 0.35, "ett": 0.45, "cvc": 0.6, "ngt": 0.4}
GEOMETRY = ("rotation", "shift_x", "shift_y")


#: The acquisition factors' ranges in the phantoms the models were trained on (the mechanisms' truncation bounds);
#: interventions may go further, to the validators' limits. The domain check is measured at these edges.
ACQUISITION_RANGES = {"exposure": (0.82, 1.18), "contrast": (0.8, 1.2), "noise_level": (0.006, 0.02),
                      "rotation": (-4.0, 4.0), "shift_x": (-0.05, 0.05), "shift_y": (-0.05, 0.05)}


def _uniform(u: float, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(u)


def _device_mechanism(single_device_share: float):
    """Which devices, given support devices: each kind at its ``DEVICE_RATES`` (at least one), or with probability
    ``single_device_share`` exactly one kind, each as likely. ``u[4]`` decides both, rescaled, so a share of 0 draws
    what the SCM always drew from the same seed."""
    if not 0.0 <= single_device_share < 1.0:
        raise ValueError(f"single_device_share must be in [0, 1), got {single_device_share}")

    def devices(parents: Mapping[str, Any], u: np.ndarray) -> tuple[str, ...]:
        if not parents["support_devices"]:
            return ()
        if u[4] < single_device_share:
            return (DEVICES[min(int(u[4] / single_device_share * len(DEVICES)), len(DEVICES) - 1)],)
        rest = (u[4] - single_device_share) / (1.0 - single_device_share)
        present = [d for d, ui in zip(DEVICES, u[:4]) if ui < DEVICE_RATES[d]]
        if not present:
            present = [DEVICES[min(int(rest * len(DEVICES)), len(DEVICES) - 1)]]
        return tuple(present)
    return devices


def _check_devices(value: Any) -> None:
    if not isinstance(value, (tuple, list, frozenset, set)) or not set(value) <= set(DEVICES):
        raise ValueError(f"devices must be a tuple drawn from {DEVICES}, got {value!r}")


def _acquired(name: str, mean: float, std: float):
    """The mechanism of an acquisition factor: normal around ``mean``, truncated to its training range."""
    return lambda p, u: normal_quantile(u[0], mean, std, *ACQUISITION_RANGES[name])


def build_graph(effusion_device_strength: float = 0.5, device_base_rate: float = 0.15,
                cardiomegaly_effusion_strength: float = 0.2, single_device_share: float = 0.0) -> CausalGraph:
    """The chest X-ray SCM.

    Args:
        effusion_device_strength: planted spurious link, as a risk difference
            ``P(support devices | effusion) - P(support devices | no effusion)``, in
            [-device_base_rate, 1 - device_base_rate]. 0 removes the link.
        device_base_rate: ``P(support devices | no effusion)``.
        cardiomegaly_effusion_strength: risk difference of effusion given cardiomegaly (a real
            causal path: heart failure causes effusions).
        single_device_share: share of the phantoms with devices given exactly one kind, in [0, 1); 0 is the
            phantoms' own world, where a kind is alone in 6-16% of them (docs/results/gen2.md).
    """
    risk_difference_probability(device_base_rate, effusion_device_strength, True, "effusion_device_strength")
    # Effusion is common here on purpose (about a third of patients): enough positives to train and
    # to measure on, unlike the ~5% of a general population.
    risk_difference_probability(0.28, cardiomegaly_effusion_strength, True, "cardiomegaly_effusion_strength")

    def effusion(parents, u):
        p = 0.28 + (cardiomegaly_effusion_strength if parents["cardiomegaly"] else 0.0)
        p += 0.08 * (parents["age"] - 50.0) / 40.0
        if u[0] >= min(max(p, 0.0), 1.0):
            return "none"
        return categorical(u[1], EFFUSION_SIDES[1:], (0.4, 0.3, 0.3))

    variables = [
        Variable("sex", (), lambda p, u: "F" if u[0] < 0.5 else "M", "categorical",
                 "biological sex; F draws breast shadows", validate=check_choice("sex", ("F", "M"))),
        Variable("age", (), lambda p, u: int(round(18 + 72 * u[0] ** 0.8)), "continuous",
                 "age in years (18-90); lowers bone density, raises cardiomegaly risk",
                 validate=check_range("age", 18, 90)),
        Variable("habitus", ("sex",),
                 lambda p, u: normal_quantile(u[0], 1.0 + (0.03 if p["sex"] == "M" else -0.03), 0.05, 0.88, 1.12),
                 "continuous", "body build: chest width scale (0.88-1.12)",
                 validate=check_range("habitus", 0.88, 1.12)),
        Variable("bone_density", ("age",),
                 lambda p, u: normal_quantile(u[0], 1.05 - 0.0075 * (p["age"] - 18), 0.06, 0.45, 1.15),
                 "continuous", "bone mineral density (0.45-1.15), falls with age",
                 validate=check_range("bone_density", 0.45, 1.15)),
        Variable("cardiomegaly", ("age",), lambda p, u: bool(u[0] < 0.06 + 0.3 * (p["age"] - 18) / 72),
                 "binary", "enlarged heart (cardiothoracic ratio > 0.5)", validate=check_bool("cardiomegaly")),
        Variable("ctr", ("cardiomegaly",),
                 lambda p, u: (normal_quantile(u[0], 0.58, 0.03, 0.53, 0.66) if p["cardiomegaly"]
                               else normal_quantile(u[0], 0.43, 0.025, 0.37, 0.48)),
                 "continuous", "cardiothoracic ratio (heart width / chest width)",
                 validate=check_range("ctr", 0.33, 0.7)),
        Variable("effusion", ("cardiomegaly", "age"), effusion, "categorical",
                 "pleural effusion side: none / right / left / bilateral (patient's side)", n_noise=2,
                 validate=check_choice("effusion", EFFUSION_SIDES)),
        Variable("effusion_severity", ("effusion",),
                 lambda p, u: 0.0 if p["effusion"] == "none" else round(0.15 + 0.85 * float(u[0]), 4),
                 "continuous", "effusion size, 0 (none) to 1 (large); 0.15 only blunts the angle",
                 validate=check_range("effusion_severity", 0.0, 1.0)),
        Variable("support_devices", ("effusion",),
                 lambda p, u: bool(u[0] < risk_difference_probability(
                     device_base_rate, effusion_device_strength, p["effusion"] != "none", "support_devices")),
                 "binary", "any support device present (CheXpert label)", validate=check_bool("support_devices")),
        Variable("devices", ("support_devices",), _device_mechanism(single_device_share), "set",
                 "which devices: pacemaker, ett (endotracheal tube), cvc (central line), ngt (NG tube)",
                 n_noise=5, validate=_check_devices),
        Variable("exposure", (), _acquired("exposure", 1.0, 0.07), "continuous",
                 "exposure: >1 darker (over-exposed), <1 brighter", validate=check_range("exposure", 0.7, 1.3)),
        Variable("contrast", (), _acquired("contrast", 1.0, 0.08), "continuous",
                 "display gamma", validate=check_range("contrast", 0.7, 1.3)),
        Variable("noise_level", (), lambda p, u: _uniform(u[0], *ACQUISITION_RANGES["noise_level"]), "continuous",
                 "quantum noise standard deviation", validate=check_range("noise_level", 0.0, 0.06)),
        Variable("rotation", (), _acquired("rotation", 0.0, 1.5), "continuous",
                 "patient rotation in the image plane, degrees", validate=check_range("rotation", -10, 10)),
        Variable("shift_x", (), _acquired("shift_x", 0.0, 0.02), "continuous",
                 "horizontal positioning offset (image widths / 2)", validate=check_range("shift_x", -0.1, 0.1)),
        Variable("shift_y", (), _acquired("shift_y", 0.0, 0.02), "continuous",
                 "vertical positioning offset", validate=check_range("shift_y", -0.1, 0.1)),
        Variable("marker", (), lambda p, u: "L" if u[0] < 0.8 else "R", "categorical",
                 "laterality marker: L on the image right (patient's left) or R on the image left",
                 validate=check_choice("marker", ("L", "R"))),
    ]
    return CausalGraph(DOMAIN, variables, {
        "effusion_device_strength": effusion_device_strength, "device_base_rate": device_base_rate,
        "cardiomegaly_effusion_strength": cardiomegaly_effusion_strength, "single_device_share": single_device_share})


def labels(factors: Mapping[str, Any]) -> dict[str, Any]:
    """CheXpert-style labels (1/0) and demographics of a factor set."""
    effusion = factors["effusion"] != "none"
    return {
        "Sex": "Female" if factors["sex"] == "F" else "Male",
        "Age": int(factors["age"]),
        "Cardiomegaly": int(factors["cardiomegaly"]),
        "Pleural Effusion": int(effusion),
        "Support Devices": int(factors["support_devices"]),
        "No Finding": int(not (effusion or factors["cardiomegaly"])),
    }


def summary(factors: Mapping[str, Any]) -> str:
    """Three short lines on the factors that matter to a reader (sex and age, findings, devices)."""
    findings = []
    if factors["effusion"] != "none":
        findings.append(f"effusion {factors['effusion'][0].upper()} {factors['effusion_severity']:.1f}")
    if factors["cardiomegaly"]:
        findings.append(f"cardiomegaly (CTR {factors['ctr']:.2f})")
    devices = "+".join(factors["devices"]) or "no devices"
    return f"{factors['sex']} {factors['age']}y\n" + (", ".join(findings) or "no finding") + f"\n{devices}"


def is_clean(factors: Mapping[str, Any]) -> bool:
    """No finding and no device: a patient every "add" intervention visibly changes."""
    return factors["effusion"] == "none" and not factors["cardiomegaly"] and not factors["devices"]


# ----------------------------------------------------------------------------------------------
# Rendering. Every component returns (contribution, support) and is keyed by exactly the inputs
# it reads, so an intervention's changed region follows from the keys (render.changed_mask).
# ----------------------------------------------------------------------------------------------

AIR = 0.78       # attenuation removed by a full lung thickness
SOFT = 1.15      # attenuation of the thickest soft-tissue path through the chest
BONE = 0.30      # attenuation of a rib or clavicle at bone density 1
METAL = 2.4      # attenuation of a device's metal


class _Frame:
    """Patient coordinates of every pixel and the geometry derived from habitus."""

    def __init__(self, size: int, factors: Mapping[str, Any]):
        self.size = size
        X, Y = grid(size)
        theta = math.radians(factors["rotation"])
        c, s = math.cos(theta), math.sin(theta)
        dx, dy = X - factors["shift_x"], Y - factors["shift_y"]
        self.x = (c * dx + s * dy).astype(np.float32)
        self.y = (-s * dx + c * dy).astype(np.float32)
        self.u = np.abs(self.x)
        self.cos, self.sin = c, s
        self.shift = (factors["shift_x"], factors["shift_y"])
        h = factors["habitus"]
        self.habitus = h
        self.lung_center = 0.40 * h
        self.lung_lateral = 0.335 * h       # half-width from lung centre to the lateral wall
        self.lung_medial = 0.27 * h
        self.apex = -0.70 - 0.02 * (h - 1)
        self.cp = {+1: 0.58, -1: 0.52}      # costophrenic angle level; right (-x) dome higher
        self.dome = 0.15
        self._profile = self.profile(self.y)
        self._depth: dict[int, np.ndarray] = {}

    def view(self, window: tuple[slice, slice]) -> _Frame:
        """The same frame restricted to a window of pixels (components work only where they draw)."""
        sub = copy.copy(self)
        sub.x, sub.y, sub.u, sub._profile = self.x[window], self.y[window], self.u[window], self._profile[window]
        sub._depth = {side: depth[window] for side, depth in self._depth.items()}
        return sub

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Patient coordinates (k, 2) -> image coordinates, the inverse of the frame's warp."""
        x, y = points[:, 0], points[:, 1]
        c, s = self.cos, self.sin
        return np.stack([c * x - s * y + self.shift[0], s * x + c * y + self.shift[1]], axis=1)

    def profile(self, y: np.ndarray, height: float = 0.92) -> np.ndarray:
        """0 at the lung apex rising to 1: the rounded apex and nearly vertical lateral walls."""
        t = np.clip((y - self.apex) / height, 0.0, 1.0)
        return np.sqrt(1.0 - (1.0 - t) ** 2.6)

    def lateral_wall(self, y: np.ndarray | None = None) -> np.ndarray:
        """Lateral lung wall |x| at height y (default: every pixel of the frame)."""
        prof = self._profile if y is None else self.profile(y)
        return self.lung_center + self.lung_lateral * prof

    def diaphragm(self, u: np.ndarray, side: int) -> np.ndarray:
        """Height of the diaphragm dome under the lung on ``side`` (+1 image right)."""
        cx = self.lung_center - 0.05
        return self.cp[side] - self.dome * np.clip(1.0 - ((u - cx) / 0.42) ** 2, 0.0, 1.0)

    def lung_depth(self, side: int) -> np.ndarray:
        """Signed distance-like depth inside the lung on ``side`` (positive inside); cached."""
        if side in self._depth:
            return self._depth[side]
        sel = np.sign(self.x) == side
        u, y = self.u, self.y
        prof = self._profile
        lateral = self.lung_center + self.lung_lateral * prof - u
        medial = u - (self.lung_center - self.lung_medial * prof)
        bottom = self.diaphragm(u, side) - y
        depth = np.minimum(np.minimum(lateral, medial), bottom)
        self._depth[side] = np.where(sel, depth, np.float32(-1.0))
        return self._depth[side]


def _body(f: _Frame) -> np.ndarray:
    """Chest wall, neck, shoulders and arms: elliptical soft-tissue cross-sections."""
    x, y = f.x, f.y
    half = 0.88 * f.habitus
    shoulder = smoothstep(-0.98, -0.74, y)                       # neck widens into the shoulders
    width = 0.22 + (half - 0.22) * shoulder
    chest = np.sqrt(np.clip(1.0 - (x / width) ** 2, 0.0, 1.0))
    arm_x = half + 0.10
    arm = np.sqrt(np.clip(1.0 - ((np.abs(x) - arm_x) / 0.085) ** 2, 0.0, 1.0)) * smoothstep(-0.9, -0.7, y)
    return SOFT * chest + 0.55 * SOFT * arm


def _bounds(mask: np.ndarray) -> tuple[slice, slice]:
    """The smallest window holding every nonzero pixel of ``mask`` (work is done only there)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return slice(0, 0), slice(0, 0)
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _lungs(f: _Frame) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Aerated lung (negative attenuation) and each lung's coverage in [0, 1] (keyed by side)."""
    air = np.zeros_like(f.x)
    coverage = {}
    for side in (-1, +1):
        depth = f.lung_depth(side)
        inside = smoothstep(0.0, 0.03, depth)
        # Thicker aerated path centrally, thinner under the chest wall and at the apex.
        thickness = 0.5 + 0.5 * smoothstep(0.0, 0.25, depth)
        apex_cover = 0.7 + 0.3 * smoothstep(-0.72, -0.4, f.y)
        coverage[side] = inside
        air -= AIR * inside * thickness * apex_cover
    return air, coverage


def _vessels(f: _Frame, seed: int, coverage: dict[int, np.ndarray]) -> np.ndarray:
    """Pulmonary vascular markings: branching ridges radiating from each hilum, tapering outward."""
    rng = component_rng(seed, "vessels")
    total = np.zeros_like(f.x)
    for side in (-1, +1):
        window = _bounds(coverage[side])
        x, y = f.x[window], f.y[window]
        hx, hy = side * 0.17 * f.habitus, -0.06
        dx, dy = x - hx, y - hy
        r = np.sqrt(dx * dx + dy * dy) + np.float32(1e-6)
        angle = np.arctan2(dy, dx * side)
        # Noise stretched along the radius: its zero-crossings become branching, radial vessels
        # (value-noise ridges; larger and denser toward the hilum, as the arteries branch and taper).
        radial = np.sqrt(r)
        n1 = value_noise(rng, (16, 48), angle * np.float32(48 / (2 * np.pi)), radial * 4.0)
        n2 = value_noise(rng, (32, 110), angle * np.float32(110 / (2 * np.pi)), radial * 9.0)
        width = 0.10 + 0.22 * np.exp(-r / 0.2)
        big = 1.0 - smoothstep(0.0, 1.0, np.abs(n1) / width)
        small = 1.0 - smoothstep(0.0, 1.0, np.abs(n2) / 0.14)
        taper = np.exp(-r / 0.5)
        hilum = np.exp(-((dx / 0.06) ** 2 + ((dy - 0.02) / 0.1) ** 2))
        total[window] += ((0.26 * big + 0.12 * small) * taper + 0.35 * hilum) * coverage[side][window]
    return total


def _heart(f: _Frame, ctr: float, lung_air: np.ndarray) -> np.ndarray:
    """Cardiac silhouette: a tilted ovoid whose transverse diameter is ctr x the chest width."""
    chest_width = 2 * float(f.lateral_wall(np.array(0.45)))
    width = ctr * chest_width
    right_border = 0.02 - 0.32 * width                        # image-left border, near the spine
    cx = right_border + 0.5 * width
    cy = 0.26 + 0.05 * (ctr - 0.43)
    tilt = math.radians(-22.0)
    dx, dy = f.x - cx, f.y - cy
    xr = math.cos(tilt) * dx - math.sin(tilt) * dy
    yr = math.sin(tilt) * dx + math.cos(tilt) * dy
    ax, ay = 0.5 * width / 0.93, 0.23 + 0.1 * (ctr - 0.43)
    q = np.sqrt((xr / ax) ** 2 + (yr / ay) ** 2)
    shape = smoothstep(1.02, 0.96, q)
    # Where the heart overlies lung it displaces most of the air in that path, so its border is seen
    # against aerated lung and it merges with the mediastinum.
    return -0.85 * shape * lung_air


def _mediastinum(f: _Frame, age: int) -> np.ndarray:
    """Tracheal air column with the carina and main bronchi, and the aortic knob (unfolds with age)."""
    x, y = f.x, f.y
    trachea = smoothstep(0.04, 0.025, np.abs(x + 0.005 * (y + 1))) * smoothstep(-0.25, -0.33, y)
    bronchi = np.zeros_like(x)
    for side in (-1, +1):
        along = (y + 0.28) / 0.2
        centre = side * 0.12 * np.clip(along, 0, 1) ** 0.8
        bronchi += (
            smoothstep(0.03, 0.018, np.abs(x - centre)) * smoothstep(-0.32, -0.26, y) * smoothstep(-0.04, -0.1, y)
        )
    knob_r = 0.055 + 0.025 * (age - 18) / 72
    knob = smoothstep(1.0, 0.8, np.sqrt(((x - 0.09) / knob_r) ** 2 + ((y + 0.38) / (0.8 * knob_r)) ** 2))
    return -0.35 * AIR * np.maximum(trachea, bronchi) + 0.35 * AIR * knob


def _spine(f: _Frame, bone_density: float) -> np.ndarray:
    """Thoracic spine seen through the mediastinum: vertebral bodies, end plates, pedicles."""
    out = np.zeros_like(f.x)
    window = _bounds(f.u < 0.09)
    x, y = f.x[window], f.y[window]
    column = smoothstep(0.085, 0.07, np.abs(x))
    level = (y + 1.0) / 0.105
    phase = level - np.floor(level)
    body = smoothstep(0.0, 0.08, phase) * smoothstep(0.86, 0.78, phase)
    endplate = np.exp(-(((phase - 0.06) / 0.04) ** 2)) + np.exp(-(((phase - 0.8) / 0.04) ** 2))
    pedicle = np.zeros_like(x)
    for side in (-1, +1):
        pedicle += smoothstep(1.0, 0.6, np.hypot((x - side * 0.05) / 0.018, (phase - 0.35) / 0.16))
    spinous = smoothstep(1.0, 0.5, np.hypot(x / 0.014, (phase - 0.55) / 0.2))
    out[window] = BONE * bone_density * column * (0.35 * body + 0.2 * endplate + 0.4 * pedicle + 0.25 * spinous + 0.3)
    return out


def _ribs(f: _Frame, bone_density: float, seed: int) -> np.ndarray:
    """Posterior ribs (arching down laterally), fainter anterior ribs, clavicles, scapulae, humeri."""
    rng = component_rng(seed, "ribs")
    out = np.zeros_like(f.x)
    cage_edge = f.lung_center + f.lung_lateral + 0.1
    window = _bounds((f.y > f.apex - 0.12) & (f.y < 0.78) & (f.u < cage_edge))
    x, y, u = f.x[window], f.y[window], f.u[window] / f.habitus
    wall = f.lateral_wall()[window] / f.habitus + 0.045
    inside = smoothstep(0.05, 0.1, u) * smoothstep(wall + 0.015, wall - 0.03, u)
    wobble = value_noise(rng, (16, 16), u * 5 + np.sign(x) * 7, y * 4)
    # Posterior ribs: level sets of v, each rib about half its period (rib, then intercostal space),
    # the first arching round the apex; they fade medially where they overlap the spine.
    # (Powers are written as products: this is the hot loop of the renderer.)
    v = y - (-0.3 * u + 0.85 * u * u * np.sqrt(np.sqrt(u))) + 0.01 * wobble
    c = np.clip((v + 0.84) / 1.42, 0.0, 1.0)
    t = c * (1.15 - 0.15 * c) * 11.0                                 # ribs spread out caudally
    phase = t - np.floor(t)
    band = smoothstep(0.0, 0.09, phase) * smoothstep(0.52, 0.4, phase)
    edge = 4.0 * phase - 1.0
    tube = 0.5 + 0.5 * edge * edge                                   # cortex brighter than medulla
    posterior = band * tube * smoothstep(0.15, 0.45, t) * smoothstep(10.4, 9.6, t)
    posterior *= 0.55 + 0.45 * smoothstep(0.08, 0.3, u)
    # Anterior ribs run down and medially; cartilage ends them before the sternum.
    va = y + 0.42 * (u - 0.2) - 0.25 * (u - 0.2) ** 2
    ta = (va + 0.62) / 0.155
    pa = ta - np.floor(ta)
    anterior = smoothstep(0.0, 0.12, pa) * smoothstep(0.42, 0.3, pa) * smoothstep(0.24, 0.34, u)
    anterior *= smoothstep(-0.7, -0.6, va) * smoothstep(0.4, 0.25, va)
    out[window] = (0.6 * posterior + 0.22 * anterior) * inside

    # Clavicles: S-curved from the sternoclavicular joint up to the acromion.
    window = _bounds((f.y > -0.95) & (f.y < -0.5) & (f.u < 0.7))
    y, u = f.y[window], f.u[window] / f.habitus
    cl_y = -0.63 - 0.2 * (u - 0.07) + 0.035 * np.sin(np.pi * (u - 0.07) / 0.28)
    half = 0.032 - 0.008 * np.clip((u - 0.07) / 0.55, 0, 1)
    off = np.abs(y - cl_y) / half
    clavicle = smoothstep(1.0, 0.8, off) * (0.7 + 0.3 * off) * smoothstep(0.05, 0.08, u) * smoothstep(0.66, 0.6, u)
    out[window] += 1.1 * clavicle

    # Humeral heads in the upper corners and the scapular plates over the lateral upper lungs.
    window = _bounds((f.y < -0.1) & (f.u > 0.55 * f.habitus))
    y, u = f.y[window], f.u[window] / f.habitus
    humerus = smoothstep(1.0, 0.9, np.hypot((u - 0.98) / 0.13, (y + 0.74) / 0.14))
    scapula = smoothstep(0.0, 0.05, u - (0.6 + 0.25 * (y + 0.75))) * smoothstep(-0.82, -0.76, y)
    scapula *= smoothstep(-0.1, -0.25, y) * smoothstep(0.98, 0.9, u)
    out[window] += 1.2 * humerus + 0.3 * scapula
    return BONE * bone_density * out


def _breasts(f: _Frame, sex: str, seed: int) -> np.ndarray:
    """Breast shadows over the lower zones, densest at the inferior, convex margin."""
    if sex != "F":
        return np.zeros_like(f.x)
    rng = component_rng(seed, "breasts")
    size = 0.34 + 0.08 * rng.random()
    total = np.zeros_like(f.x)
    for side in (-1, +1):
        cx, cy = side * 0.5 * f.habitus, 0.22 + 0.05 * rng.random()
        q = np.hypot((f.x - cx) / (1.25 * size), (f.y - cy) / size)
        # Thickest just above the inferior fold; fades out upward without an edge.
        lower = smoothstep(cy - 0.45 * size, cy + 0.75 * size, f.y)
        total += smoothstep(1.0, 0.9, q) * lower * lower
    inside_body = smoothstep(0.88 * f.habitus, 0.8 * f.habitus, f.u)
    return 0.22 * SOFT * total * inside_body


def _gastric_bubble(f: _Frame, seed: int) -> np.ndarray:
    """Air in the gastric fundus under the left hemidiaphragm, with a flat air-fluid level."""
    rng = component_rng(seed, "stomach")
    cx = 0.36 * f.habitus + 0.04 * rng.random()
    top = float(f.diaphragm(np.array(cx), +1)) + 0.03
    bubble = smoothstep(1.0, 0.85, np.hypot((f.x - cx) / 0.12, (f.y - top - 0.06) / 0.07))
    bubble *= smoothstep(top + 0.11, top + 0.09, f.y)         # fluid level: flat lower edge
    return -0.45 * AIR * bubble


def _effusion(f: _Frame, side_name: str, severity: float, aerated: np.ndarray, vessels: np.ndarray) -> np.ndarray:
    """Pleural fluid layering at the base: fills the costophrenic angle, meniscus rising laterally.

    The fluid replaces aerated lung (cancelling its air and vessel markings) and effaces the
    diaphragm, as a real effusion silhouettes the dome.
    """
    if side_name == "none" or severity <= 0:
        return np.zeros_like(f.x)
    sides = {"right": (-1,), "left": (+1,), "bilateral": (-1, +1)}[side_name]
    fluid = np.zeros_like(f.x)
    for side in sides:
        sel = np.sign(f.x) == side
        depth = f.lung_depth(side)
        region = smoothstep(-0.01, 0.02, depth) * sel
        lateral = np.clip(f.lateral_wall() - f.u, 0.0, None)
        height = 0.07 + 0.6 * severity                     # fluid column above the angle
        meniscus = 0.04 + 0.12 * severity                  # concave-up: highest at the chest wall
        level = f.cp[side] - height + meniscus * np.sqrt(np.clip(lateral / 0.4, 0.0, 1.0))
        fill = smoothstep(level - 0.02, level + 0.1, f.y) * region
        fluid += fill
    fluid = np.minimum(fluid, 1.0)
    return fluid * (-0.97 * aerated - vessels + 0.12 * SOFT)


def _device_strokes(f: _Frame, devices: tuple[str, ...], seed: int) -> dict[str, np.ndarray]:
    """Coverage of each device, drawn in patient coordinates along anatomical paths."""
    out: dict[str, np.ndarray] = {}
    for name in DEVICES:
        rng = component_rng(seed, f"device-{name}")
        jitter = rng.uniform(-1, 1, size=(8, 2)) * 0.02
        if name not in devices:
            out[name] = np.zeros((f.size, f.size), np.float32)
            continue
        tube = Stroke(f.size)
        line = Stroke(f.size)
        if name == "ett":
            tip = -0.42 + jitter[0, 1]
            path = f.to_image(np.array([[0.0 + jitter[1, 0], -1.05], [0.0, -0.75], [0.002, tip]]))
            tube.polyline(path, 0.05, 255)
            line.polyline(path, 0.01, 255)
        elif name == "ngt":
            ctrl = np.array([[0.03, -1.05], [0.02, -0.4], [0.05, 0.2], [0.12, 0.62],
                             [0.42, 0.8], [0.5, 0.62]]) + jitter[:6] * [1, 0.5]
            line.polyline(f.to_image(bezier(ctrl, 80)), 0.012, 255)
        elif name == "cvc":
            ctrl = np.array([[-0.62, -0.62], [-0.3, -0.58], [-0.1, -0.5], [-0.07, -0.3],
                             [-0.065, -0.12 + jitter[2, 1]]]) + jitter[3:8] * [1, 0.4]
            line.polyline(f.to_image(bezier(ctrl, 60)), 0.012, 255)
        elif name == "pacemaker":
            gx, gy = 0.52 + jitter[0, 0], -0.52 + jitter[0, 1]
            corners = f.to_image(np.array([[gx - 0.09, gy - 0.065], [gx + 0.09, gy + 0.065]]))
            line.rounded_rectangle(tuple(corners.ravel()), 0.03, 255)
            for tip, bend in (([0.05, 0.05], 0.0), ([0.16, 0.36], 0.06)):
                ctrl = np.array([[gx - 0.05, gy], [0.2, -0.62], [-0.05, -0.45], [-0.08 + bend, -0.1],
                                 [tip[0] - 0.05, tip[1] - 0.1], tip]) + jitter[2:8] * [0.6, 0.3]
                line.polyline(f.to_image(bezier(ctrl, 80)), 0.011, 255)
                line.disc(tuple(f.to_image(np.array([tip]))[0]), 0.018, 255)
        out[name] = 0.25 * tube.coverage() + line.coverage()
    return out


@functools.lru_cache(maxsize=16)
def _chest_drain(f: _Frame, side_name: str, seed: int) -> np.ndarray:
    """A chest drain (the progression trial's treatment, ``phantoms.trial``): a tube entering the lateral chest wall
    above the costophrenic angle on ``side_name`` and running up the pleural space towards the apex, with the
    radio-opaque stripe of a real drain along it."""
    side = -1 if side_name in ("right", "bilateral") else +1      # bilateral: drained on the right
    jitter = component_rng(seed, "chest-drain").uniform(-1, 1, size=(5, 2)) * 0.02
    wall = f.lung_center + f.lung_lateral + 0.1
    ctrl = np.array([[wall, 0.36], [wall - 0.16, 0.33], [0.62, 0.18], [0.64, -0.18], [0.56, -0.46]]) + jitter
    path = f.to_image(bezier(ctrl * [side, 1], 60))
    tube, stripe = Stroke(f.size), Stroke(f.size)
    tube.polyline(path, 0.035, 255)
    stripe.polyline(path, 0.008, 255)
    return 0.2 * tube.coverage() + 0.8 * stripe.coverage()


@functools.lru_cache(maxsize=16)
def _marker(size: int, marker: str) -> np.ndarray:
    """Lead laterality marker in the upper corner of the side it names (independent of the patient)."""
    stroke = Stroke(size)
    cx = 0.82 if marker == "L" else -0.82
    stroke.rounded_rectangle((cx - 0.07, -0.93, cx + 0.07, -0.77), 0.01, 255)
    box = stroke.coverage()
    letter = Stroke(size)
    letter.text((cx, -0.85), marker, 0.13, 255)
    marker_image = np.clip(box - letter.coverage(), 0.0, 1.0) * 0.9
    marker_image.setflags(write=False)
    return marker_image


def _upsample(layer: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of a half-resolution layer to ``size`` (PIL, float32)."""
    if not layer.any():
        return np.zeros((size, size), np.float32)
    image = Image.fromarray(np.ascontiguousarray(layer, dtype=np.float32), mode="F")
    return np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.float32)


def _windowed(f: _Frame, region: np.ndarray, draw, *args) -> np.ndarray:
    """Run ``draw(view, *args)`` only inside the bounding window of ``region``; zero elsewhere."""
    out = np.zeros_like(f.x)
    window = _bounds(region)
    if window[0].stop > window[0].start:
        out[window] = draw(f.view(window), *args)
    return out


def render(factors: Mapping[str, Any], seed: int, size: int = 256) -> Rendering:
    """Render a chest X-ray phantom.

    Args:
        factors: a full factor set (``build_graph().sample(seed).factors`` or a counterfactual).
        seed: the render seed (textures, device paths, noise); same inputs give identical pixels.
        size: output side in pixels, 128 to 512.

    Returns:
        ``Rendering`` whose image is float32 (size, size) in [0, 1] (bright = attenuating).
    """
    if not 128 <= size <= 512:
        raise ValueError(f"size must be between 128 and 512 pixels, got {size}")
    f = _Frame(size, factors)
    geometry = (factors["rotation"], factors["shift_x"], factors["shift_y"])
    anatomy = geometry + (factors["habitus"],)
    parts: dict[str, tuple[np.ndarray, tuple]] = {}
    body = _body(f)
    parts["body"] = (body, anatomy)
    lung_air, coverage = _lungs(f)
    parts["lungs"] = (lung_air, anatomy)
    vessels = _vessels(f, seed, coverage)
    coverage = coverage[-1] + coverage[+1]
    parts["vessels"] = (vessels, anatomy)
    heart_region = (f.y > -0.3) & (f.y < 0.95) & (f.x > -0.6) & (f.x < 0.98)
    parts["heart"] = (
        _windowed(f, heart_region, _heart, factors["ctr"], lung_air[_bounds(heart_region)]),
        anatomy + (factors["ctr"],),
    )
    parts["mediastinum"] = (
        _windowed(f, (f.u < 0.25) & (f.y < 0.0), _mediastinum, factors["age"]),
        geometry + (factors["age"],),
    )
    parts["spine"] = (_spine(f, factors["bone_density"]), geometry + (factors["bone_density"],))
    # Broad, smooth structures are drawn at half resolution and upsampled bilinearly: it halves the
    # renderer's cost and upsampling keeps exact zeros where the component is absent.
    half = _Frame(size // 2, factors)
    ribs = _upsample(_ribs(half, factors["bone_density"], seed), size)
    parts["ribs"] = (ribs, anatomy + (factors["bone_density"],))
    breasts = _upsample(_windowed(half, half.y > -0.25, _breasts, factors["sex"], seed), size)
    parts["breasts"] = (breasts, anatomy + (factors["sex"],))
    parts["stomach"] = (
        _windowed(f, (f.x > 0.1) & (f.x < 0.7) & (f.y > 0.3) & (f.y < 0.9), _gastric_bubble, seed),
        anatomy,
    )
    # Fluid replaces the air still in the path, i.e. what the heart did not already displace.
    aerated = lung_air + parts["heart"][0]
    parts["effusion"] = (_effusion(f, factors["effusion"], factors["effusion_severity"], aerated, vessels),
                         anatomy + (factors["ctr"], factors["effusion"], factors["effusion_severity"]))
    for name, cover in _device_strokes(f, tuple(factors["devices"]), seed).items():
        parts[name] = (METAL * cover, geometry + (name in factors["devices"],))
    if factors.get("chest_drain"):          # not an SCM factor: only the trial's drained patients carry it
        parts["chest_drain"] = (METAL * _chest_drain(f, factors["chest_drain"], seed), geometry)

    attenuation = np.zeros((size, size), np.float32)
    for contribution, _ in parts.values():
        attenuation += contribution
    display = 1.0 - np.exp(-np.maximum(attenuation, 0.0) / factors["exposure"])
    display = np.power(np.clip(display, 0.0, 1.0), factors["contrast"])
    marker = _marker(size, factors["marker"])
    display = np.maximum(display, marker)
    # Quantum noise: a fixed, slightly correlated field scaled by the signal.
    rng = component_rng(seed, "sensor")
    field = correlated_noise(rng, size)
    display = display + factors["noise_level"] * np.sqrt(display + 0.05) * field
    image = np.clip(display, 0.0, 1.0).astype(np.float32)

    supports = {name: contribution != 0 for name, (contribution, _) in parts.items()}
    keys = {name: key for name, (_, key) in parts.items()}
    supports["marker"] = marker != 0
    keys["marker"] = (factors["marker"],)
    everything = np.ones((size, size), bool)
    supports["acquisition"] = everything
    keys["acquisition"] = (factors["exposure"], factors["contrast"], factors["noise_level"])
    return Rendering(image, supports, keys)
