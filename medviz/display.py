"""Pictures for people: model-resolution images enlarged for the screen, and maps blended over images.

Used by the app's tabs and by the benches' figures alike; files always keep the original pixels.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from PIL import Image

from .io import as_rgb, to_uint8

#: Images smaller than this (px, longer side) are enlarged for display by an integer factor with
#: nearest-neighbour sampling: every model pixel shows as a k x k block, nothing is interpolated.
DISPLAY_SIZE = 384


def for_display(pixels: np.ndarray, size: int = DISPLAY_SIZE) -> np.ndarray:
    """uint8 image enlarged k-fold (nearest) so that its longer side reaches about ``size``; files keep the original."""
    image = pixels if pixels.dtype == np.uint8 else to_uint8(np.clip(pixels, 0, 1).astype(np.float32))
    factor = max(1, size // max(image.shape[:2]))
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def overlay(pixels: np.ndarray, heat: np.ndarray, opacity: float, colormap: str = "RdBu_r",
            symmetric: bool = True) -> np.ndarray:
    """uint8 RGB: ``heat`` (any size, resized) blended over ``pixels`` (contract) with ``opacity`` in [0, 1].

    ``symmetric``: a signed map scaled by its largest magnitude (0 at the colormap's middle); else min-max.
    """
    base = as_rgb(np.asarray(pixels, dtype=np.float32))
    h, w = base.shape[:2]
    if heat.shape != (h, w):
        heat = np.asarray(Image.fromarray(heat.astype(np.float32)).resize((w, h), Image.BILINEAR))
    if symmetric:
        scale = float(np.abs(heat).max()) or 1.0
        normalised = 0.5 + 0.5 * heat / scale
    else:
        low, high = float(heat.min()), float(heat.max())
        normalised = (heat - low) / ((high - low) or 1.0)
    colours = matplotlib.colormaps[colormap](np.clip(normalised, 0, 1))[..., :3].astype(np.float32)
    opacity = float(np.clip(opacity, 0, 1))
    return to_uint8(np.clip((1 - opacity) * base + opacity * colours, 0, 1).astype(np.float32))
