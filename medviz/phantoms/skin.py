"""Procedural dermoscopy phantom with known causal factors.

A 20 mm field of view under contact (immersion) dermoscopy: skin of a Fitzpatrick type with mottling
and furrows; a pigmented lesion whose ABCD features (asymmetry, border, colour variegation, diameter)
separate a benign nevus from a melanoma, with a pigment network that is regular in nevi and atypical
in melanoma; and the artifacts that confound real dermoscopy datasets (hair, ruler marks, gel
bubbles, surgical ink, the dark corners of the dermatoscope's round aperture).

Pigment follows Beer-Lambert: ``skin * exp(-melanin * absorption)`` with absorption highest in blue,
so more melanin looks browner and darker; dermal melanin (blue-grey), vessels (red) and regression
(white) are blended in as colour zones.

Causal graph (default, ``build_graph``)::

    skin_type -> melanoma -> diameter_mm, asymmetry, border_irregularity, color_variegation
    melanoma -> ruler   (planted spurious link: suspicious lesions get measured; settable strength)
    hair -> hair_density;  gel_bubbles, ink, vignette, illumination: exogenous
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .render import (Rendering, Stroke, bezier, component_rng, correlated_noise, grid, grid_value_noise, smoothstep,
                     value_noise)
from .scm import (CausalGraph, Variable, categorical, check_bool, check_choice, check_range,
                  normal_quantile, risk_difference_probability)

DOMAIN = "skin"
FIELD_OF_VIEW_MM = 20.0
#: Render supports of the thin artifacts an autoencoder tends to average away (VAE training weights them).
FINE_STRUCTURES = ("hair", "ruler", "ink", "bubbles")
SKIN_TYPES = (1, 2, 3, 4, 5, 6)
# Reflectance of unpigmented-lesion skin per Fitzpatrick type (sRGB-ish, 0..1).
SKIN_RGB = {1: (0.95, 0.82, 0.74), 2: (0.91, 0.74, 0.62), 3: (0.83, 0.64, 0.5),
            4: (0.69, 0.49, 0.35), 5: (0.5, 0.34, 0.24), 6: (0.33, 0.22, 0.16)}
MELANIN_ABSORPTION = np.array([0.55, 0.95, 1.45], np.float32)
# Enriched like a referral set (ISIC 2019 has ~18% melanoma): near-balanced classes to train and measure
# on, still more frequent on fair skin.
MELANOMA_RATE = {1: 0.5, 2: 0.46, 3: 0.4, 4: 0.34, 5: 0.3, 6: 0.26}


#: The acquisition factors' ranges in the phantoms the models were trained on (the mechanisms' bounds; a vignette
#: is absent or in this range); interventions may go further. The domain check is measured at these edges.
ACQUISITION_RANGES = {"illumination": (0.88, 1.12), "vignette": (0.3, 1.0)}


def _uniform(u: float, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(u)


def _acquired(name: str, mean: float, std: float):
    """The mechanism of an acquisition factor: normal around ``mean``, truncated to its training range."""
    return lambda p, u: normal_quantile(u[0], mean, std, *ACQUISITION_RANGES[name])


def build_graph(melanoma_ruler_strength: float = 0.5, ruler_base_rate: float = 0.1) -> CausalGraph:
    """The dermoscopy SCM.

    Args:
        melanoma_ruler_strength: planted spurious link as a risk difference
            ``P(ruler | melanoma) - P(ruler | nevus)``, in [-ruler_base_rate, 1 - ruler_base_rate].
        ruler_base_rate: ``P(ruler | nevus)``.
    """
    risk_difference_probability(ruler_base_rate, melanoma_ruler_strength, True, "melanoma_ruler_strength")

    def by_class(nevus: tuple[float, float, float, float], melanoma: tuple[float, float, float, float]):
        def mechanism(parents, u):
            mean, std, lo, hi = melanoma if parents["melanoma"] else nevus
            return round(normal_quantile(u[0], mean, std, lo, hi), 4)
        return mechanism

    variables = [
        Variable("skin_type", (), lambda p, u: categorical(u[0], SKIN_TYPES, (0.12, 0.25, 0.25, 0.18, 0.12, 0.08)),
                 "categorical", "Fitzpatrick skin type I-VI", validate=check_choice("skin_type", SKIN_TYPES)),
        Variable("melanoma", ("skin_type",), lambda p, u: bool(u[0] < MELANOMA_RATE[p["skin_type"]]), "binary",
                 "melanoma (True) or benign nevus (False)", validate=check_bool("melanoma")),
        Variable("diameter_mm", ("melanoma",), by_class((4.5, 1.0, 2.5, 6.5), (9.0, 2.0, 6.0, 13.0)), "continuous",
                 "lesion diameter in millimetres", validate=check_range("diameter_mm", 1.5, 15.0)),
        Variable("asymmetry", ("melanoma",), by_class((0.06, 0.04, 0.0, 0.18), (0.55, 0.15, 0.3, 0.9)), "continuous",
                 "shape asymmetry, 0 (round) to 1", validate=check_range("asymmetry", 0.0, 1.0)),
        Variable("border_irregularity", ("melanoma",), by_class((0.08, 0.05, 0.0, 0.2), (0.65, 0.15, 0.4, 1.0)),
                 "continuous", "notched, irregular border, 0 to 1", validate=check_range("border_irregularity", 0, 1)),
        Variable("color_variegation", ("melanoma",), by_class((0.08, 0.06, 0.0, 0.25), (0.7, 0.15, 0.45, 1.0)),
                 "continuous", "number and spread of colours (blue-grey, red, white, black), 0 to 1",
                 validate=check_range("color_variegation", 0.0, 1.0)),
        Variable("ruler", ("melanoma",),
                 lambda p, u: bool(u[0] < risk_difference_probability(
                     ruler_base_rate, melanoma_ruler_strength, p["melanoma"], "ruler")),
                 "binary", "millimetre ruler along an edge", validate=check_bool("ruler")),
        Variable("hair", (), lambda p, u: bool(u[0] < 0.4), "binary", "hair over the field",
                 validate=check_bool("hair")),
        Variable("hair_density", ("hair",), lambda p, u: int(6 + 22 * u[0]) if p["hair"] else 0, "continuous",
                 "number of hair shafts", validate=check_range("hair_density", 0, 40)),
        Variable("gel_bubbles", (), lambda p, u: bool(u[0] < 0.25), "binary", "air bubbles in the immersion gel",
                 validate=check_bool("gel_bubbles")),
        Variable("ink", (), lambda p, u: bool(u[0] < 0.15), "binary", "surgical-marker ink around the lesion",
                 validate=check_bool("ink")),
        Variable("vignette", (),
                 lambda p, u: 0.0 if u[0] >= 0.4 else round(_uniform(u[1], *ACQUISITION_RANGES["vignette"]), 4),
                 "continuous", "dark corners of the round aperture, 0 (none) to 1", n_noise=2,
                 validate=check_range("vignette", 0.0, 1.0)),
        Variable("illumination", (), _acquired("illumination", 1.0, 0.05), "continuous",
                 "light level of the dermatoscope", validate=check_range("illumination", 0.7, 1.3)),
    ]
    return CausalGraph(DOMAIN, variables, {"melanoma_ruler_strength": melanoma_ruler_strength,
                                           "ruler_base_rate": ruler_base_rate})


def labels(factors: Mapping[str, Any]) -> dict[str, Any]:
    """ISIC-style labels of a factor set (diagnosis, target) plus the artifact flags."""
    return {
        "diagnosis": "melanoma" if factors["melanoma"] else "nevus",
        "benign_malignant": "malignant" if factors["melanoma"] else "benign",
        "target": int(factors["melanoma"]),
        "ruler": int(factors["ruler"]),
        "hair": int(factors["hair"]),
        "gel_bubbles": int(factors["gel_bubbles"]),
        "ink": int(factors["ink"]),
        "vignette": int(factors["vignette"] > 0),
        "skin_type": int(factors["skin_type"]),
    }


def summary(factors: Mapping[str, Any]) -> str:
    """Two short lines on the factors that matter to a reader (lesion, size, skin type; artifacts)."""
    lesion = "MELANOMA" if factors["melanoma"] else "nevus"
    artifacts = [a for a in ("ruler", "hair", "gel_bubbles", "ink") if factors[a]]
    if factors["vignette"] > 0:
        artifacts.append("vignette")
    return f"{lesion} {factors['diameter_mm']:.1f} mm, type {factors['skin_type']}\n" + (
        ", ".join(artifacts) or "no artifacts"
    )


def is_clean(factors: Mapping[str, Any]) -> bool:
    """A benign lesion without artifacts on lighter skin: a patient every "add" intervention visibly changes."""
    return (
        not any(factors[a] for a in ("melanoma", "ruler", "hair", "gel_bubbles", "ink")) and factors["skin_type"] <= 4
    )


def _skin(x: np.ndarray, y: np.ndarray, skin_type: int, seed: int) -> np.ndarray:
    """Skin reflectance with low-frequency mottling, erythema and the criss-cross of skin furrows."""
    rng = component_rng(seed, "skin")
    base = np.array(SKIN_RGB[skin_type], np.float32)
    xs, ys = x[0], y[:, 0]
    mottle = grid_value_noise(rng, (6, 6), (xs + 1) * 2.5, (ys + 1) * 2.5) * 0.6
    mottle += grid_value_noise(rng, (12, 12), (xs + 1) * 6, (ys + 1) * 6) * 0.4
    redness = grid_value_noise(rng, (5, 5), (xs + 1) * 2, (ys + 1) * 2)
    furrows = _furrows(x.shape[0])
    # Each patient sees the same tileable furrow texture shifted and turned (one of 8 symmetries).
    shift = rng.integers(0, x.shape[0], 2)
    furrows = np.roll(furrows, tuple(int(v) for v in shift), axis=(0, 1))
    turn = int(rng.integers(8))
    furrows = np.rot90(furrows, turn % 4)
    if turn >= 4:
        furrows = furrows[:, ::-1]
    shade = 1.0 + 0.045 * mottle - 0.05 * furrows
    rgb = shade[..., None] * base
    # Erythema: less green and blue where the red field is positive.
    rgb[..., 1:] *= (1.0 - 0.05 * np.maximum(redness, 0.0))[..., None]
    return rgb


@functools.lru_cache(maxsize=8)
def _radius(size: int) -> np.ndarray:
    """Distance of each pixel from the image centre (normalised units), computed once per size."""
    x, y = grid(size)
    radius = np.sqrt(x * x + y * y)
    radius.setflags(write=False)
    return radius


@functools.lru_cache(maxsize=8)
def _furrows(size: int) -> np.ndarray:
    """A tileable criss-cross of skin furrows (two families of noise ridges), computed once per size."""
    rng = component_rng(0, "furrows")
    x, y = grid(size)
    family_a = value_noise(rng, (12, 48), (x + 1) * 6, (y + 1) * 24)
    family_b = value_noise(rng, (48, 12), (x + 1) * 24, (y + 1) * 6)
    texture = smoothstep(0.12, 0.0, np.minimum(np.abs(family_a), np.abs(family_b)))
    texture.setflags(write=False)
    return texture


def _lesion(
    x: np.ndarray, y: np.ndarray, factors: Mapping[str, Any], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lesion transmission (multiplies skin), colour-zone overlay and its alpha; all zero-effect outside."""
    rng = component_rng(seed, "lesion")
    cx, cy = rng.uniform(-0.08, 0.08, 2).tolist()   # Python floats keep the arrays float32
    radius = factors["diameter_mm"] / FIELD_OF_VIEW_MM
    asym, border, varieg = factors["asymmetry"], factors["border_irregularity"], factors["color_variegation"]
    phases = rng.uniform(0, 2 * np.pi, 16).tolist()
    amps = rng.uniform(0.5, 1.0, 16).tolist()
    dx, dy = x - cx, y - cy
    rho = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dy, dx)
    # Asymmetry: low harmonics of the outline; irregular border: notches from higher harmonics.
    # The outline depends on the angle alone, so it is tabulated once and looked up per pixel.
    table_angles = np.linspace(-np.pi, np.pi, 1025, dtype=np.float32)
    outline = 1.0 + asym * (0.28 * np.cos(table_angles - phases[0]) + 0.18 * np.cos(2 * table_angles - phases[1]))
    for k in range(3, 13):
        outline = outline + border * 0.11 * amps[k] / k ** 0.6 * np.cos(k * table_angles + phases[k])
    index = np.rint((theta + np.float32(np.pi)) * np.float32(1024 / (2 * np.pi))).astype(np.intp)
    q = rho / (radius * outline.astype(np.float32)[index])
    edge = 0.1 + 0.08 * (1.0 - border)
    # Everything below is computed on the lesion's own pixels only (a fraction of the window).
    sel = q < 1.0 + edge / 2
    q = q[sel]
    inside = smoothstep(1.0 + edge / 2, 1.0 - edge / 2, q)
    # Melanin: denser centrally in nevi; patchy, eccentric in melanoma.
    xs, ys = x[0] + 1, y[:, 0] + 1          # the window is axis-aligned: separable noise fields
    patch = grid_value_noise(rng, (7, 7), xs * 3.0, ys * 3.0)[sel]
    density = (0.75 + 0.35 * (1.0 - q * q) + varieg * 0.45 * patch) * (0.9 + 0.08 * factors["skin_type"])
    # Pigment network: a honeycomb of darker lines, regular in nevi, thick and broken in melanoma.
    # Two families of noise contours cross into a mesh of holes about 0.3-0.5 mm wide.
    net_a = grid_value_noise(rng, (64, 64), xs * 30, ys * 30)[sel]
    net_b = grid_value_noise(rng, (64, 64), xs * 30, ys * 30)[sel]
    broken = grid_value_noise(rng, (10, 10), xs * 5, ys * 5)[sel]
    width = 0.2 + 0.3 * varieg * np.clip(broken + 0.5, 0, 1.5)
    lines = 1.0 - smoothstep(0.0, 1.0, np.minimum(np.abs(net_a), np.abs(net_b)) / width)
    lines *= 1.0 - varieg * smoothstep(0.2, 0.6, broken)          # atypical network breaks up
    density = density + (0.45 + 0.35 * varieg) * lines * smoothstep(1.0, 0.55, q)
    transmission = np.ones((*x.shape, 3), np.float32)
    transmission[sel] = np.exp(-np.maximum(density * inside, 0.0)[:, None] * MELANIN_ABSORPTION)
    # Colour zones of a variegated lesion: blue-grey veil, red vessels, white regression, black blotch.
    # Each zone is a two-octave noise field in turned coordinates, so the blotches come out rounded
    # and irregular rather than boxy.
    zones = np.zeros((*x.shape, 3), np.float32)
    alpha = np.zeros(x.shape, np.float32)
    if varieg > 0.3:
        px, py = x[sel] + 1, y[sel] + 1
        zone_rgb = np.zeros((q.size, 3), np.float32)
        zone_alpha = np.zeros(q.size, np.float32)
        core = smoothstep(1.0, 0.7, q) * inside * np.float32((varieg - 0.3) / 0.7)
        for colour, scale, threshold in (((0.38, 0.44, 0.55), 2.2, 0.55), ((0.72, 0.3, 0.32), 3.0, 0.75),
                                         ((0.88, 0.86, 0.84), 2.6, 0.8), ((0.08, 0.06, 0.06), 4.0, 0.6)):
            turn = float(rng.uniform(0, np.pi))
            c, s_ = math.cos(turn), math.sin(turn)
            u, v = (c * px - s_ * py) * scale, (s_ * px + c * py) * scale
            field = 0.8 * value_noise(rng, (12, 12), u, v) + 0.45 * value_noise(rng, (24, 24), 2.3 * u, 2.3 * v)
            weight = smoothstep(threshold, threshold + 0.35, field) * core
            zone_rgb = zone_rgb * (1 - weight[:, None]) + np.asarray(colour, np.float32) * weight[:, None]
            zone_alpha = zone_alpha + weight * (1 - zone_alpha)
        zones[sel] = zone_rgb
        alpha[sel] = np.minimum(zone_alpha * 0.85, 1.0)
    return transmission, zones, alpha


def _hair(size: int, count: int, seed: int) -> np.ndarray:
    rng = component_rng(seed, "hair")
    strokes = Stroke(size)
    starts = rng.uniform(-1.2, 1.2, size=(40, 2))
    angles = rng.uniform(0, np.pi, 40)
    lengths = rng.uniform(0.6, 1.8, 40)
    bends = rng.normal(0, 0.15, size=(40, 2))
    widths = rng.uniform(0.007, 0.014, 40)
    for i in range(count):
        direction = np.array([math.cos(angles[i]), math.sin(angles[i])])
        end = starts[i] + lengths[i] * direction
        ctrl = np.stack([starts[i], (starts[i] + end) / 2 + bends[i], end])
        strokes.polyline(bezier(ctrl, 24), widths[i])
    return strokes.coverage()


def _bubbles(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = component_rng(seed, "bubbles")
    rims, fills = Stroke(size), Stroke(size)
    for _ in range(int(rng.integers(2, 7))):
        centre = tuple(rng.uniform(-0.85, 0.85, 2))
        radius = float(rng.uniform(0.03, 0.13))
        fills.disc(centre, radius, 255)
        rims.disc(centre, radius, 255, outline_only=0.008)
    return rims.coverage(), fills.coverage()


def _ink(size: int, seed: int) -> np.ndarray:
    """Violet surgical-marker dots and arcs on a ring well outside typical lesions."""
    rng = component_rng(seed, "ink")
    stroke = Stroke(size)
    ring = rng.uniform(0.72, 0.86)
    start = rng.uniform(0, 2 * np.pi)
    for k in range(int(rng.integers(3, 7))):
        a0 = start + k * 2 * np.pi / 6 + rng.uniform(-0.2, 0.2)
        arc = np.linspace(a0, a0 + rng.uniform(0.05, 0.5), 12)
        r = ring + rng.uniform(-0.04, 0.04)
        stroke.polyline(np.stack([r * np.cos(arc), r * np.sin(arc)], axis=1), rng.uniform(0.025, 0.045))
    return stroke.coverage()


@functools.lru_cache(maxsize=16)
def _ruler(size: int, edge: str) -> tuple[np.ndarray, np.ndarray]:
    """A translucent millimetre scale along one edge: (band coverage, tick coverage)."""
    band, ticks = Stroke(size), Stroke(size)
    mm = 2.0 / FIELD_OF_VIEW_MM
    band.polygon(np.array([[-1.05, 0.74], [1.05, 0.74], [1.05, 1.05], [-1.05, 1.05]]))
    for i, x in enumerate(np.arange(-1.0, 1.0 + 1e-6, mm)):
        length = 0.14 if i % 10 == 0 else (0.1 if i % 5 == 0 else 0.06)
        ticks.polyline(np.array([[x, 0.76], [x, 0.76 + length]]), 0.008)
    out = band.coverage(), ticks.coverage()
    if edge == "left":     # the same scale turned to run down the left edge
        out = tuple(np.rot90(a, -1).copy() for a in out)
    for a in out:
        a.setflags(write=False)
    return out


def _paint_lesion(rgb: np.ndarray, x: np.ndarray, y: np.ndarray, factors: Mapping[str, Any], seed: int) -> np.ndarray:
    """Paint the lesion into ``rgb`` (in place, in the window that can hold it); returns its support, bool (H, W)."""
    # The outline bulges to at most ~1.95 radii (asymmetry + notches + soft edge); centre within 0.08.
    reach = factors["diameter_mm"] / FIELD_OF_VIEW_MM * 1.95 + 0.1
    rows = np.flatnonzero(np.abs(y[:, 0]) < reach)
    cols = np.flatnonzero(np.abs(x[0]) < reach)
    win = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    transmission, zones, zone_alpha = _lesion(x[win], y[win], factors, seed)
    patch = rgb[win] * transmission
    patch = patch * (1 - zone_alpha[..., None]) + zones * zone_alpha[..., None]
    rgb[win] = patch
    support = np.zeros(rgb.shape[:2], bool)
    support[win] = np.any(transmission != 1.0, axis=-1) | (zone_alpha > 0)
    return support


def render(factors: Mapping[str, Any], seed: int, size: int = 256) -> Rendering:
    """Render a dermoscopy phantom.

    Args:
        factors: a full factor set (``build_graph().sample(seed).factors`` or a counterfactual).
        seed: the render seed; same inputs give identical pixels.
        size: output side in pixels, 128 to 512.

    Returns:
        ``Rendering`` whose image is float32 (size, size, 3) RGB in [0, 1].
    """
    if not 128 <= size <= 512:
        raise ValueError(f"size must be between 128 and 512 pixels, got {size}")
    x, y = grid(size)
    supports: dict[str, np.ndarray] = {}
    keys: dict[str, tuple] = {}
    everything = np.ones((size, size), bool)
    nothing = np.zeros((size, size), bool)

    rgb = _skin(x, y, factors["skin_type"], seed)
    supports["skin"], keys["skin"] = everything, (factors["skin_type"],)

    lesion_keys = ("skin_type", "diameter_mm", "asymmetry", "border_irregularity", "color_variegation")
    supports["lesion"], keys["lesion"] = _paint_lesion(rgb, x, y, factors, seed), tuple(factors[k] for k in lesion_keys)

    def blend(name: str, coverage: np.ndarray, colour: tuple[float, float, float], opacity: float, key: tuple):
        """Alpha-composite a colour over ``rgb`` where ``coverage`` > 0 (in place, only there)."""
        support = coverage > 0
        supports[name], keys[name] = support, key
        if not support.any():
            return
        rows, cols = np.flatnonzero(support.any(1)), np.flatnonzero(support.any(0))
        win = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        alpha = (coverage[win] * opacity)[..., None]
        rgb[win] = rgb[win] * (1 - alpha) + np.asarray(colour, np.float32) * alpha

    ink = _ink(size, seed) if factors["ink"] else np.zeros((size, size), np.float32)
    blend("ink", ink, (0.42, 0.2, 0.55), 0.75, (factors["ink"],))
    hair = _hair(size, factors["hair_density"], seed) if factors["hair"] else np.zeros((size, size), np.float32)
    blend("hair", hair, (0.1, 0.07, 0.05), 0.92, (factors["hair"], factors["hair_density"]))
    if factors["gel_bubbles"]:
        rims, fills = _bubbles(size, seed)
    else:
        rims = fills = np.zeros((size, size), np.float32)
    rgb = rgb * (1 + 0.06 * fills[..., None])
    blend("bubbles", rims, (0.97, 0.97, 0.97), 0.7, (factors["gel_bubbles"],))
    supports["bubbles"] = supports["bubbles"] | (fills > 0)
    # The rims alone, what a VAE loses (docs/results/gen2.md); no key: changed-pixel masks use "bubbles" (with fill).
    supports["bubble_rims"] = rims > 0
    edge = "bottom" if component_rng(seed, "ruler").random() < 0.6 else "left"
    if factors["ruler"]:
        band, ticks = _ruler(size, edge)
    else:
        band = ticks = np.zeros((size, size), np.float32)
    blend("ruler_band", band, (0.93, 0.91, 0.8), 0.55, (factors["ruler"],))
    blend("ruler", ticks, (0.05, 0.05, 0.05), 0.9, (factors["ruler"],))

    if factors["vignette"] > 0:
        r = _radius(size)
        aperture = 1.42 - 0.42 * factors["vignette"]
        light = smoothstep(aperture + 0.12, aperture - 0.08, r)
        rgb = rgb * light[..., None]
        supports["vignette"] = light < 1
    else:
        supports["vignette"] = nothing
    keys["vignette"] = (factors["vignette"],)

    noise = correlated_noise(component_rng(seed, "sensor"), size)
    rgb *= np.float32(factors["illumination"])
    rgb += 0.012 * noise[..., None]
    np.clip(rgb, 0.0, 1.0, out=rgb)
    supports["acquisition"], keys["acquisition"] = everything, (factors["illumination"],)
    return Rendering(rgb, supports, keys)
