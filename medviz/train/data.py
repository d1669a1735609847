"""Phantom images for training, rendered in parallel into memory (uint8, N x H x W x 3)."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..io import as_rgb, to_model_batch, to_uint8
from ..phantoms import get_domain, shrink_mask


def _pixels(rendering, size: int) -> np.ndarray:
    """A rendering (drawn at ``max(size, 128)``) as uint8 ``size`` x ``size`` x 3 pixels."""
    pixels = to_uint8(as_rgb(rendering.image))
    if size < 128:      # test-sized models: the renderer's smallest size, box-filtered down
        pixels = np.asarray(Image.fromarray(pixels).resize((size, size), Image.BOX))
    return pixels


def render_sample(domain: str, sample, size: int) -> np.ndarray:
    """One SCM sample (an intervened one too) as ``render_phantoms`` draws it: uint8 ``size`` x ``size`` x 3."""
    return _pixels(get_domain(domain).render(sample.factors, sample.seed, max(size, 128)), size)


def _render_chunk(args: tuple) -> tuple[np.ndarray, list[dict[str, Any]], np.ndarray | None]:
    domain, first, count, size, structures, graph_parameters = args
    module = get_domain(domain)
    graph = module.build_graph(**graph_parameters)
    images = np.empty((count, size, size, 3), np.uint8)
    masks = np.zeros((count, size, size), np.uint8) if structures else None
    factors = []
    for i in range(count):
        sample = graph.sample(first + i)
        rendering = module.render(sample.factors, sample.seed, max(size, 128))
        images[i] = _pixels(rendering, size)
        for bit, name in enumerate(structures):
            masks[i] |= shrink_mask(rendering.supports[name], size).astype(np.uint8) << bit
        factors.append(dict(sample.factors))
    return images, factors, masks


def render_phantoms(domain: str, n: int, size: int, first_seed: int = 0, workers: int | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    fine_structure_masks: bool | tuple[str, ...] = False, graph_parameters: dict | None = None):
    """Render phantoms ``first_seed .. first_seed + n - 1`` at ``size`` px (``graph_parameters``: the SCM's, e.g.
    the planted link's strength; default: the domain's own).

    Returns (uint8 images N x H x W x 3, factors), and with ``fine_structure_masks`` also a uint8 N x H x W
    array of bits: bit i is set where the renderer drew the domain's ``FINE_STRUCTURES[i]`` (hair, ruler
    ticks, catheters: what the SCM knows and an image-based weight can only guess); nonzero: any of them.
    ``fine_structure_masks`` may name other render supports to mask instead (skin's "bubble_rims": the rims
    without their fill).
    """
    structures = (tuple(fine_structure_masks) if isinstance(fine_structure_masks, (tuple, list))
                  else get_domain(domain).FINE_STRUCTURES)
    if fine_structure_masks:                                # checked once, before any worker renders
        check_structures(domain, structures)
    workers = workers or max(1, (os.cpu_count() or 1))
    chunk = max(1, min(500, n // (workers * 4) or 1))
    jobs = [
        (domain, first_seed + start, min(chunk, n - start), size, structures if fine_structure_masks else (),
         dict(graph_parameters or {}))
        for start in range(0, n, chunk)
    ]
    images, factors, masks = [], [], []
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        for block, facts, fine in (pool.map if pool else map)(_render_chunk, jobs):
            images.append(block)
            masks.append(fine)
            factors += facts
            if progress:
                progress(len(factors), n)
    finally:
        if pool:
            pool.shutdown()
    if fine_structure_masks:
        return np.concatenate(images), factors, np.concatenate(masks)
    return np.concatenate(images), factors


def check_structures(domain: str, structures: tuple[str, ...]) -> None:
    """One sentence for structures that no render of the domain supports, or more than the masks' 8 bits."""
    if len(structures) > 8:
        raise ValueError(f"{domain}: {len(structures)} fine structures do not fit the masks' 8 bits")
    module = get_domain(domain)
    if set(structures) <= set(module.FINE_STRUCTURES):
        return                                    # the domain's own: no render needed to know them
    sample = module.build_graph().sample(0)
    known = module.render(sample.factors, sample.seed, 128).supports
    unknown = [name for name in structures if name not in known]
    if unknown:
        raise ValueError(f"{domain} renders no structure {', '.join(map(repr, unknown))}; its supports are "
                         f"{', '.join(known)}")


def render_training_set(domain: str, n: int, size: int, workers: int | None, with_masks: bool,
                        structures: tuple[str, ...] = (), graph_parameters: dict | None = None):
    """Training phantoms (seeds 0 .. n - 1): (images, factors, fine-structure masks or None when not asked).

    The masks cost N x H x W bytes (30,000 at 128 px: 0.5 GB), so they are rendered only for a loss that uses them.
    ``graph_parameters``: the SCM's (``render_phantoms``).
    """
    if with_masks:
        return render_phantoms(domain, n, size, 0, workers, fine_structure_masks=structures or True,
                               graph_parameters=graph_parameters)
    return (*render_phantoms(domain, n, size, 0, workers, graph_parameters=graph_parameters), None)


def encode_latents(vae, images: np.ndarray, device, batch: int = 128):
    """VAE posterior means and stds of uint8 images, scaled by ``vae.config.scaling_factor``."""
    import torch

    means, stds = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            posterior = vae.encode(to_model_batch(images[start:start + batch], device).to(vae.dtype)).latent_dist
            means.append(posterior.mean.float())
            stds.append(posterior.std.float())
    factor = vae.config.scaling_factor
    return torch.cat(means) * factor, torch.cat(stds) * factor


def cached_latents(path: str | os.PathLike, vae, images: np.ndarray, device, write: bool = True) -> tuple:
    """``encode_latents``, kept in ``path`` for the run's resumption (10,000 at 128 px take ~15 min on one core).

    Used again only for the same images and VAE weights (their SHA-1 digests); written atomically, when ``write``
    (the main process of a launched run).
    """
    import torch

    key = {**_digests(vae, images), "scaling_factor": float(vae.config.scaling_factor)}
    if os.path.isfile(path):
        kept = torch.load(path, map_location="cpu", weights_only=True)
        if kept["key"] == key:
            return kept["means"].to(device), kept["stds"].to(device)
    means, stds = encode_latents(vae, images, device)
    if write:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        partial = f"{path}.{os.getpid()}.partial"
        torch.save({"key": key, "means": means.cpu(), "stds": stds.cpu()}, partial)
        os.replace(partial, path)
    return means, stds


def _digests(vae, images: np.ndarray) -> dict:
    """SHA-1 digests of ``images`` and of ``vae``'s weights: what a cache of their encodings is keyed by."""
    import hashlib

    weights = hashlib.sha1()
    for name, tensor in sorted(vae.state_dict().items()):
        weights.update(name.encode() + tensor.detach().float().cpu().numpy().tobytes())
    return {"images": hashlib.sha1(np.ascontiguousarray(images)).hexdigest(), "vae": weights.hexdigest()}


def cached_round_trip(folder: str | os.PathLike, vae, images: np.ndarray, chunk: int = 512,
                      progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``round_trip``, kept in ``folder`` a ``chunk`` of images at a time, so that a run cut short (a judge's 5,000
    round trips take ~50 min on one core) goes on from its last whole chunk. Chunks are used again only for the
    same images and VAE weights (their digests); written atomically."""
    import json

    folder = Path(folder)
    key = _digests(vae, images)
    key_file = folder / "key.json"
    if not key_file.is_file() or json.loads(key_file.read_text()) != key:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("part-*.npz"):       # another VAE's or other images' round trips
            stale.unlink()
        key_file.write_text(json.dumps(key))
    decoded, psnr = [], []
    for start in range(0, len(images), chunk):
        part = folder / f"part-{start:07d}.npz"
        if not part.is_file():
            done = (lambda k, n, start=start: progress(start + k, len(images))) if progress else None
            pixels, values = round_trip(vae, images[start:start + chunk], progress=done)
            partial = folder / f"{part.name}.{os.getpid()}.partial.npz"
            np.savez(partial, decoded=pixels, psnr=values)
            os.replace(partial, part)
        elif progress:
            progress(min(start + chunk, len(images)), len(images))
        with np.load(part) as kept:
            decoded.append(kept["decoded"])
            psnr.append(kept["psnr"])
    return np.concatenate(decoded), np.concatenate(psnr)


def round_trip(vae, images: np.ndarray, batch: int = 64,
               progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, H, W, 3) encoded (posterior mean) and decoded by ``vae``: the decoded uint8 images and each
    one's PSNR in dB, measured in the model's [-1, 1] space before rounding. ``progress(done, N)`` after each batch."""
    import torch

    decoded, psnr = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = to_model_batch(images[start:start + batch], "cpu").to(vae.dtype)
            y = vae.decode(vae.encode(x).latent_dist.mean).sample.float().clamp(-1, 1)
            psnr.append(10 * torch.log10(4.0 / (y - x.float()).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-10)))
            decoded.append(((y + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy())
            if progress:
                progress(min(start + batch, len(images)), len(images))
    return np.concatenate(decoded), torch.cat(psnr).numpy()
