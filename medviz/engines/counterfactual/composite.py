"""Putting the decoded edit into the input: only the pixels the edit redrew, with a feathered seam."""

from __future__ import annotations

import numpy as np

from .config import EditConfig
from .mask import change_reach, seam_ramps


def composite(decoded: np.ndarray, rgb: np.ndarray, pixel_mask: np.ndarray | None, reference: np.ndarray | None,
              config: EditConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """Step 6 of ``counterfactual``: put the decoded edit into the input.

    Args:
        decoded: the decoded edited latents, float (H, W, 3) in [0, 1].
        rgb: the input at the model's size, float (H, W, 3) in [0, 1].
        pixel_mask: bool (H, W), True where the edit may change the input; None: no mask, the whole decode.
        reference: the decoded input latent (H, W, 3); needed for ``config.residual`` or a change threshold.
        config: ``change_threshold`` and ``residual`` as resolved for the domain.

    Returns:
        (the result, float32 (H, W, 3) in [0, 1]; the pixels taken from the edit, bool (H, W), or None
        without a mask).
    """
    restrict = bool(config.change_threshold) and pixel_mask is not None
    edited = pixel_mask
    if restrict:                            # the change threshold: only the pixels the edit redrew
        edited = _changed_pixels(decoded, reference, pixel_mask, config.change_threshold)
    if config.residual:                     # only the edit's change, added to the input's own pixels
        decoded = rgb + (decoded - reference)
    if pixel_mask is not None:
        # The seam: 4 px at 128 px inside a mask of latent cells, 2 px inside the pixels the edit changed.
        mask_ramp, changed_ramp = seam_ramps(rgb.shape[0])
        weight = _feather(edited, ramp=changed_ramp if restrict else mask_ramp)[..., None]
        decoded = weight * decoded + (1 - weight) * rgb
    return np.clip(decoded, 0.0, 1.0).astype(np.float32), edited


def _feather(pixel: np.ndarray, ramp: float) -> np.ndarray:
    """Composite weight of a bool mask: 0 outside (those pixels stay exactly the input's), rising
    linearly over the first ``ramp`` pixels inside (at least 1), so the edit meets the input without a seam."""
    from scipy.ndimage import distance_transform_edt

    return np.clip(distance_transform_edt(pixel) / max(1.0, ramp), 0.0, 1.0).astype(np.float32)


def _changed_pixels(edited: np.ndarray, reference: np.ndarray, mask: np.ndarray, threshold: float) -> np.ndarray:
    """The pixels of ``mask`` (bool (H, W)) where the decoded edit (H, W, 3) differs from the decoded input
    latent by more than ``threshold``: the largest channel change, smoothed over ~1 px at 128 px (a
    Gaussian of sigma H/128, so that the decoder's pixel noise does not speckle it), then dilated by as
    much, so that the edge of a removed structure is inside."""
    from scipy.ndimage import binary_dilation, gaussian_filter

    sigma, reach = change_reach(edited.shape[0])
    change = gaussian_filter(np.abs(edited - reference).max(-1), sigma=sigma)
    return binary_dilation(change > threshold, iterations=reach) & mask
