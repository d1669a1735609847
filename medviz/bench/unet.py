"""One UNet pass of a candidate pipeline beside the bundled one's, side by side in one run.

Each model gets a guided batch as the Generate tab runs it: ``2 x batch`` latents of its own shape (conditional and
unconditional halves), its own text states of one prompt and of "", one timestep. The passes alternate (candidate,
bundled, candidate, ...) so that machine noise hits both alike; the table gives the best and median seconds per pass
and the candidate / bundled ratio of each. The UNet is what every sampler, edit and classifier step costs; the VAE
and text encoder run once per image.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from .. import domains
from ..engines.common import encode_prompts, initial_noise, predict_noise
from ..models import load_model
from .cli import add_common, write_json


@dataclass(frozen=True)
class UNetBenchConfig:
    domain: str
    model: str                       # the candidate pipeline folder
    baseline: str | None = None      # default: the domain's bundled model
    batch_size: int = 4              # images; each pass is 2 x batch_size with guidance
    repeats: int = 7
    timestep: int = 500


def _pass(model, config: UNetBenchConfig):
    """A callable that runs one guided UNet pass of ``model`` (its inputs made once, outside the timing)."""
    import torch

    pipe = model.pipe
    unet = pipe.unet
    prompt = domains.get(config.domain).subject
    embeddings = encode_prompts(pipe, [prompt] * config.batch_size + [""] * config.batch_size).to(unet.dtype)
    side = unet.config.sample_size
    noisy = initial_noise(list(range(2 * config.batch_size)), (unet.config.in_channels, side, side), unet.dtype,
                          unet.device)
    timesteps = torch.full((2 * config.batch_size,), config.timestep, device=unet.device)
    return lambda: predict_noise(unet, noisy, timesteps, embeddings)


def run(config: UNetBenchConfig, candidate=None, baseline=None) -> dict:
    """Seconds per guided UNet pass of each model: best and median of ``repeats``, and their ratios (``candidate``,
    ``baseline``: models already loaded instead of the config's folders)."""
    names = {"candidate": config.model, "bundled": config.baseline or f"{config.domain}-phantom"}
    models = {"candidate": candidate or load_model(names["candidate"], device="cpu"),
              "bundled": baseline or load_model(names["bundled"], device="cpu")}
    for name, model in models.items():
        if model.domain != config.domain:
            raise ValueError(f"{names[name]} is a {model.domain} model, not {config.domain}")
    calls = {name: _pass(model, config) for name, model in models.items()}
    for call in calls.values():
        call()                                       # warm-up (allocations)
    times = {name: [] for name in calls}
    for _ in range(config.repeats):
        for name, call in calls.items():
            tic = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - tic)
    rows = {}
    for name, values in times.items():
        unet = models[name].pipe.unet
        rows[name] = {"model": names[name], "best_s": min(values), "median_s": float(np.median(values)),
                      "parameters": sum(p.numel() for p in unet.parameters()),
                      "latent": [unet.config.in_channels, unet.config.sample_size, unet.config.sample_size]}
    return {"config": config.__dict__, "rows": rows,
            "ratio_best": rows["candidate"]["best_s"] / rows["bundled"]["best_s"],
            "ratio_median": rows["candidate"]["median_s"] / rows["bundled"]["median_s"]}


def print_table(result: dict) -> None:
    c = result["config"]
    print(f"\nUNet pass, {c['domain']}: guided batch of {c['batch_size']} (2 x {c['batch_size']} latents), "
          f"timestep {c['timestep']}, {c['repeats']} alternating repeats on the CPU")
    print(f"{'':<10} {'model':<40} {'latent':>12} {'parameters':>11} {'best s':>8} {'median s':>9}")
    for name, row in result["rows"].items():
        latent = "x".join(map(str, row["latent"]))
        print(f"{name:<10} {row['model'][-40:]:<40} {latent:>12} {row['parameters']:>11,} {row['best_s']:>8.3f} "
              f"{row['median_s']:>9.3f}")
    print(f"candidate / bundled: median {result['ratio_median']:.3f}, best {result['ratio_best']:.3f}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="the candidate pipeline folder")
    parser.add_argument("--baseline", default=None, metavar="DIR",
                        help="the pipeline it is measured against (default: the domain's bundled model)")
    parser.add_argument("--batch", type=int, default=4, help="images per guided pass")
    parser.add_argument("--repeats", type=int, default=7, help="alternating passes of each")
    add_common(parser)


def main(args: argparse.Namespace, command: str) -> int:
    if args.domain == "all":
        raise SystemExit("--model is one domain's pipeline: name its --domain")
    result = run(UNetBenchConfig(domain=args.domain, model=args.model, baseline=args.baseline,
                                 batch_size=args.batch, repeats=args.repeats))
    result["command"] = command
    print_table(result)
    return write_json(args.json, result)
