"""Acquisition shifts as image transforms, on images in the I/O contract (float32 in [0, 1], (H, W) or (H, W, 3)).

The stress test shifts a user's labelled images with these; phantoms are shifted through their SCM's acquisition
factors where they have one (``Shift.factor``), by these otherwise. Each transform takes a level in the unit its
``domains.Shift`` names and returns an image of the same shape, dtype and range. ``exposure`` and ``contrast``
invert and redo the phantoms' own display mapping (``phantoms.cxr``: ``1 - exp(-A / exposure)``, then a gamma),
so on a radiograph they act as a different exposure would, not as a plain brightness change.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image
from skimage.transform import resize, rotate


def _exposure(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """``level`` x the exposure of a display ``d = 1 - exp(-A)``: ``1 - (1 - d) ** (1 / level)``."""
    return 1.0 - np.power(1.0 - np.clip(image, 0.0, 1.0 - 1e-6), 1.0 / level)


def _contrast(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """A display gamma of ``level`` (the phantoms' contrast factor)."""
    return np.power(np.clip(image, 0.0, 1.0), level)


def _illumination(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """``level`` x the light (the skin phantoms' illumination factor multiplies the rendered colour)."""
    return image * level


def _noise(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Added Gaussian noise of standard deviation ``level`` (LaDiNE's noise shift)."""
    return image + rng.normal(0.0, level, image.shape)


def _resolution(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Down-sampled by ``level`` (anti-aliased), then back up: the detail a low-resolution detector loses."""
    side = image.shape[:2]
    small = resize(image, (max(2, round(side[0] / level)), max(2, round(side[1] / level))) + image.shape[2:],
                   order=1, anti_aliasing=True)
    return resize(small, image.shape, order=1, anti_aliasing=False)


def _zoom(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """The central ``1 / level`` of the field, enlarged back to the full size (a tighter collimation or crop)."""
    h, w = image.shape[:2]
    ch, cw = max(2, round(h / level)), max(2, round(w / level))
    top, left = (h - ch) // 2, (w - cw) // 2
    return resize(image[top:top + ch, left:left + cw], image.shape, order=1, anti_aliasing=True)


def _rotation(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Rotated by ``level`` degrees (counter-clockwise) about the centre, edges extended."""
    return rotate(image, level, order=1, mode="edge", preserve_range=True)


def _translation(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Moved right and down by ``level`` x the side, edges extended."""
    h, w = image.shape[:2]
    dy, dx = round(level * h), round(level * w)
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return image[rows][:, cols]


def _jpeg(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Saved as JPEG at quality ``level`` (1-95) and read back (8-bit, 4:2:0 chroma for colour)."""
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=int(level))
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float32) / 255.0


#: Transform of each shift identifier: ``f(image, level, rng) -> image`` (unclipped; ``apply`` clips).
TRANSFORMS: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "exposure": _exposure, "contrast": _contrast, "illumination": _illumination, "noise": _noise,
    "resolution": _resolution, "zoom": _zoom, "rotation": _rotation, "translation": _translation, "jpeg": _jpeg,
}


def apply(image: np.ndarray, name: str, level: float, seed: int = 0) -> np.ndarray:
    """``image`` (I/O contract) shifted by ``name`` at ``level``; the same seed draws the same noise.

    Returns float32 of the input's shape, in [0, 1].
    """
    if name not in TRANSFORMS:
        raise ValueError(f"unknown shift {name!r}; choose one of {', '.join(TRANSFORMS)}")
    image = np.asarray(image, dtype=np.float32)
    shifted = TRANSFORMS[name](image, float(level), np.random.default_rng(seed))
    return np.ascontiguousarray(np.clip(shifted, 0.0, 1.0), dtype=np.float32).reshape(image.shape)
