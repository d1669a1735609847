"""Rendering helpers shared by the phantom domains.

A phantom picture is composed of *components*. Each component reads a declared subset of the factors
(``deps``) and writes a contribution that is exactly zero outside its ``support``. All compositing is
pixel-wise, so when an intervention changes some factors only the supports of the components that read
them can change: that union is the intervention's mask (``changed_mask``), computed from geometry, not
from a pixel difference. Coordinates are normalised to [-1, 1] so a phantom looks the same at any size.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from PIL import Image, ImageDraw

from .scm import Sample


@dataclass(frozen=True)
class Rendering:
    """A rendered phantom.

    Attributes:
        image: float32 array in [0, 1], (H, W) for grayscale or (H, W, 3) for RGB (the I/O contract).
        supports: component name -> bool (H, W) array of the pixels that component wrote.
        keys: component name -> the tuple of factor-derived inputs it was drawn from; two renders of
            one seed draw a component identically wherever its key is equal.
    """

    image: np.ndarray
    supports: Mapping[str, np.ndarray]
    keys: Mapping[str, tuple]


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (x right, y down), each (size, size) float32 in (-1, 1)."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    return np.meshgrid(axis, axis)


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step: 0 below edge0, 1 above edge1, exactly, with a C1 ramp between (float32)."""
    # In-place ufuncs: this runs ~50 times per phantom, and temporaries and np.clip's Python wrapper
    # cost more than the arithmetic.
    t = np.subtract(x, np.float32(edge0), dtype=np.float32)
    t *= np.float32(1.0 / (edge1 - edge0))
    np.maximum(t, 0.0, out=t)
    np.minimum(t, 1.0, out=t)
    out = t * t
    t *= -2.0
    t += 3.0
    out *= t
    return out


def value_noise(rng: np.random.Generator, shape: tuple[int, int], u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smooth noise: a random lattice of ``shape`` sampled with Hermite weights at lattice coords (u, v).

    Zero-mean, unit-variance at the lattice points; any (u, v) of one shape, wrapping around.
    """
    rows, cols = shape
    lattice = rng.standard_normal(rows * cols, dtype=np.float32)
    u = np.asarray(u, dtype=np.float32)
    v = np.asarray(v, dtype=np.float32)
    u0 = np.floor(u)
    v0 = np.floor(v)
    fu = u - u0
    fv = v - v0
    # Hermite weights hide the lattice grid that plain bilinear weights show.
    fu = fu * fu * (3 - 2 * fu)
    fv = fv * fv * (3 - 2 * fv)
    # Flat indices wrap over the whole lattice: each lattice point keeps one value, so the field stays
    # continuous while needing a single modulo.
    index = v0.astype(np.int64) * cols + u0.astype(np.int64)
    a = np.take(lattice, index, mode="wrap")
    b = np.take(lattice, index + 1, mode="wrap")
    c = np.take(lattice, index + cols, mode="wrap")
    d = np.take(lattice, index + cols + 1, mode="wrap")
    top = a + (b - a) * fu
    bottom = c + (d - c) * fu
    return top + (bottom - top) * fv


def _hermite_axis(coords: np.ndarray, cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lattice indices (left, right) and Hermite weight of the right one, for coords on a wrapping axis."""
    coords = np.asarray(coords, dtype=np.float32)
    c0 = np.floor(coords)
    f = coords - c0
    left = c0.astype(np.int64) % cells
    return left, (left + 1) % cells, f * f * (3 - 2 * f)


def grid_value_noise(rng: np.random.Generator, shape: tuple[int, int], u_axis: np.ndarray,
                     v_axis: np.ndarray) -> np.ndarray:
    """Value noise on an axis-aligned grid (``u`` per column, ``v`` per row), interpolated separably.

    The same kind of field as ``value_noise`` (a wrapping random lattice with Hermite weights) at a
    fraction of the cost. Rows then columns, with elementwise arithmetic only: a BLAS matmul would be
    shorter but its rounding can depend on memory alignment, and renders must be bit-reproducible.
    """
    rows, cols = shape
    lattice = rng.standard_normal((rows, cols), dtype=np.float32)
    top, bottom, fv = _hermite_axis(v_axis, rows)
    left, right, fu = _hermite_axis(u_axis, cols)
    by_row = lattice[top] * (1 - fv)[:, None] + lattice[bottom] * fv[:, None]        # (H, cols)
    return by_row[:, left] * (1 - fu) + by_row[:, right] * fu


def correlated_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Unit-variance Gaussian noise with a 2x2 correlation, like a detector's quantum mottle."""
    white = rng.standard_normal((size + 1, size + 1), dtype=np.float32)
    return (white[:-1, :-1] + white[1:, :-1] + white[:-1, 1:] + white[1:, 1:]) * np.float32(0.5)


class Stroke:
    """Draws anti-aliased polylines, discs and polygons into a float coverage map in [0, 1].

    Drawn at ``supersample`` x the output size with PIL and box-filtered down, so coverage is exactly
    zero away from what was drawn. Points are given in normalised coordinates.
    """

    def __init__(self, size: int, supersample: int = 2):
        self.size = size
        self.scale = supersample
        self.canvas = Image.new("L", (size * supersample, size * supersample), 0)
        self.draw = ImageDraw.Draw(self.canvas)

    def _px(self, points: np.ndarray) -> list[tuple[float, float]]:
        pixels = (np.asarray(points, dtype=np.float64) + 1.0) / 2.0 * self.size * self.scale
        return [tuple(p) for p in pixels]

    def _width(self, width: float) -> int:
        return max(1, int(round(width / 2.0 * self.size * self.scale)))

    def polyline(self, points: np.ndarray, width: float, value: int = 255) -> None:
        pts = self._px(points)
        w = self._width(width)
        self.draw.line(pts, fill=value, width=w, joint="curve")
        # Round caps: PIL leaves butt ends.
        r = w / 2.0
        for x, y in (pts[0], pts[-1]):
            self.draw.ellipse([x - r, y - r, x + r, y + r], fill=value)

    def disc(self, center: tuple[float, float], radius: float, value: int = 255, outline_only: float = 0.0) -> None:
        (cx, cy), = self._px(np.asarray([center]))
        r = radius / 2.0 * self.size * self.scale
        if outline_only > 0:
            self.draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=value, width=self._width(outline_only))
        else:
            self.draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=value)

    def polygon(self, points: np.ndarray, value: int = 255) -> None:
        self.draw.polygon(self._px(points), fill=value)

    def rounded_rectangle(self, box: tuple[float, float, float, float], radius: float, value: int = 255) -> None:
        (x0, y0), (x1, y1) = self._px(np.asarray([box[:2], box[2:]]))
        self.draw.rounded_rectangle([x0, y0, x1, y1], radius=self._width(radius), fill=value)

    def text(self, anchor_xy: tuple[float, float], text: str, height: float, value: int = 255) -> None:
        from PIL import ImageFont

        font = ImageFont.load_default(size=max(6, int(height / 2.0 * self.size * self.scale)))
        (x, y), = self._px(np.asarray([anchor_xy]))
        self.draw.text((x, y), text, fill=value, font=font, anchor="mm")

    def coverage(self) -> np.ndarray:
        small = self.canvas.reduce(self.scale)
        return np.asarray(small, dtype=np.float32) / 255.0


def bezier(control: np.ndarray, n: int = 48) -> np.ndarray:
    """Points on the Bézier curve with the given (k, 2) control points (de Casteljau)."""
    t = np.linspace(0.0, 1.0, n)[:, None, None]
    points = np.broadcast_to(control, (n, *control.shape)).astype(np.float64)
    while points.shape[1] > 1:
        points = (1 - t) * points[:, :-1] + t * points[:, 1:]
    return points[:, 0]


def changed_mask(render: Callable[..., Rendering], before: Sample, after: Sample, size: int) -> np.ndarray:
    """Bool (size, size) mask of the pixels that going from ``before`` to ``after`` may change.

    Renders both samples; callers that already hold the two renderings use ``mask_between``.
    """
    if before.seed != after.seed:
        raise ValueError("changed_mask compares a sample with its own counterfactual (same seed)")
    return mask_between(render(before.factors, before.seed, size), render(after.factors, after.seed, size))


def mask_between(a: Rendering, b: Rendering) -> np.ndarray:
    """The union of the supports, in both renderings, of every component whose inputs (its key) differ.

    ``a`` and ``b`` must be renders of one seed at one size; pixels outside the mask are bit-identical.
    """
    mask = np.zeros(a.image.shape[:2], dtype=bool)
    for name, key in a.keys.items():
        if b.keys[name] != key:
            mask |= a.supports[name] | b.supports[name]
    return mask


def shrink_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """A bool mask drawn at the renderer's smallest size (128 px) brought down to ``size`` px (test-sized
    models): a small pixel holds the mask if any of the large pixels it covers does (a box filter, > 0)."""
    if mask.shape[0] == size:
        return mask
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.BOX)) > 0


#: component name -> the seed its render noise is drawn from instead of the render seed (``redrawn``).
_REDRAWN: ContextVar[Mapping[str, int]] = ContextVar("redrawn_components", default=MappingProxyType({}))


@contextmanager
def redrawn(components: Mapping[str, int]) -> Iterator[None]:
    """Within the block, draw the named components' render noise from the given seeds, not the render seed.

    Render noise is exogenous noise too (where a device's path wanders, where each hair lies). An edit
    that adds a component cannot see that noise in its input, so the best it can hope for is the true
    counterfactual under a fresh draw of it; renders inside this block are such draws. Everything else
    in the picture keeps the render seed's noise, bit for bit.
    """
    token = _REDRAWN.set(dict(components))
    try:
        yield
    finally:
        _REDRAWN.reset(token)


def component_rng(seed: int, name: str) -> np.random.Generator:
    """The render noise of one component: fixed by the seed, untouched by the factors.

    Philox keyed directly by (seed, name) skips SeedSequence hashing, which cost ~0.1 ms per call here.
    Inside ``redrawn({name: other_seed})`` the component's noise comes from ``other_seed``.
    """
    seed = _REDRAWN.get().get(name, seed)
    key = (int(seed) & 0xFFFFFFFFFFFFFFFF, zlib.crc32(name.encode()))
    return np.random.Generator(np.random.Philox(key=np.array(key, dtype=np.uint64)))

