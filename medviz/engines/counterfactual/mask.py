"""Where an edit may change pixels: the automatic (DiffEdit) or painted mask, and the pixel settings that scale with
the image side."""

from __future__ import annotations

import numpy as np

from .config import EditConfig


def masks(config: EditConfig, score, painted, latent_size: int, size: int, device):
    """(latent mask tensor or None, pixel mask bool (all True without a mask), score map or None)."""
    import torch
    import torch.nn.functional as F

    if config.mask_mode == "none":
        return None, np.ones((size, size), bool), None
    if config.mask_mode == "auto":
        from scipy.ndimage import binary_dilation, gaussian_filter

        # DiffEdit as diffusers (clamp at 3x the mean, rescale to [0, 1], threshold), after smoothing the
        # map over one latent cell and then dilating the mask by one cell: ten draws leave a speckled
        # map, and thin structures (lines, tubes) otherwise keep a residue just outside the mask.
        # In latent cells: one at the bundled models' 32-cell latents, as many more as a latent is larger (SD 1.5: 2).
        cells = latent_cells(latent_size)
        smooth = gaussian_filter(score.float().cpu().numpy(), sigma=float(cells))
        scaled = np.clip(smooth / (3.0 * max(float(smooth.mean()), 1e-12)), 0.0, 1.0)   # identical prompts: all 0
        latent_np = binary_dilation(scaled > config.mask_threshold, iterations=cells)
        latent = torch.from_numpy(latent_np.astype(np.float32))
        pixel = F.interpolate(latent[None, None], size=(size, size), mode="nearest")[0, 0].numpy() > 0.5
        mask_score = (
            F.interpolate(
                torch.from_numpy(scaled.astype(np.float32))[None, None],
                size=(size, size),
                mode="bilinear",
                align_corners=False,
            )[0, 0]
            .numpy()
            .astype(np.float32)
        )
    else:
        from PIL import Image

        user = np.asarray(painted, dtype=np.float32)
        user = user if user.ndim == 2 else user.max(-1)
        pixel = (
            np.asarray(Image.fromarray((user > 0.5).astype(np.uint8) * 255).resize((size, size), Image.NEAREST)) > 127
        )
        # A latent cell is edited when any of its pixels is painted.
        latent = F.adaptive_max_pool2d(torch.from_numpy(pixel.astype(np.float32))[None, None], latent_size)[0, 0]
        mask_score = None
    return latent.to(device)[None, None], pixel, mask_score


def latent_cells(latent_size: int) -> int:
    """The automatic mask's smoothing and dilation, in latent cells: one per 32 cells of latent side (at least one),
    so that in pixels they scale with the image as every other pixel setting does (``pixel_settings``)."""
    return max(1, round(latent_size / 32))


def seam_ramps(size: int) -> tuple[float, float]:
    """The composite's seam, px: (inside a mask of latent cells, inside the pixels the edit changed): 4 and 2 at
    128 px."""
    return size / 32, size / 64


def change_reach(size: int) -> tuple[float, int]:
    """The change threshold's smoothing sigma and dilation, px: 1 and 1 at 128 px."""
    scale = size / 128
    return scale, max(1, round(scale))


def pixel_settings(size: int, latent_size: int) -> dict[str, float]:
    """Every edit setting measured in pixels, at an image side of ``size`` px with ``latent_size`` latent cells, as
    the engine uses them: each is a fixed share of the image side (the bundled models' value at 128 px, scaled)."""
    (mask_ramp, changed_ramp), (sigma, reach) = seam_ramps(size), change_reach(size)
    return {"mask_dilation_px": latent_cells(latent_size) * size / latent_size, "seam_ramp_mask_px": mask_ramp,
            "seam_ramp_changed_px": changed_ramp, "change_smoothing_sigma_px": sigma, "change_dilation_px": reach}
