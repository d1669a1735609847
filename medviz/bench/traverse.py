"""Traversal bench: are anatomy, disease and device factorised along the sliders? (bundled CXR model)

For each slider target, ``seeds`` trajectories (half in a female, half in a male context prompt), from
the context (alpha = 0) to alpha = ``alpha_max``; the oracle (an attribute readout) scores each frame.
Reports median Spearman, leakage and CFRT per target (arXiv 2503.23623 reports CFRT 0.863 devices,
0.730 effusion on real data); then the prompt-switch trajectory's UNet passes with the shared prefix vs.
running each switch point separately; and writes frame strips of each trajectory kind.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engines.traverse import TraverseConfig, traverse
from ..models import load_model
from .cli import add_common, write_json
from .figures import save_strip

SLIDER_TARGETS = ("pleural_effusion", "support_devices", "cardiomegaly")
CONTEXTS = ("Chest X-ray of a female patient", "Chest X-ray of a male patient")


@dataclass(frozen=True)
class TraverseBenchConfig:
    model: str = "cxr-phantom"
    seeds: int = 32
    frames: int = 7
    steps: int = 20
    alpha_max: float = 1.5
    start_step: int = 0
    conditional: bool = True
    switch_seeds: int = 4
    first_seed: int = 0


def run(config: TraverseBenchConfig, model=None, strips_dir: str | None = None) -> dict:
    model = model or load_model(config.model, device="cpu")
    seeds = list(range(config.first_seed, config.first_seed + config.seeds))
    halves = (tuple(seeds[0::2]), tuple(seeds[1::2]))
    sliders = {}
    for target in SLIDER_TARGETS:
        metrics, seconds, passes = [], 0.0, 0
        for context, group in zip(CONTEXTS, halves):
            result = traverse(model, TraverseConfig(kind="slider", target=target, prompt=context, seeds=group,
                                                    frames=config.frames, steps=config.steps,
                                                    alpha_range=(0.0, config.alpha_max), start_step=config.start_step,
                                                    conditional=config.conditional))
            metrics += result.metrics
            seconds += result.seconds
            passes += result.unet_passes
        sliders[target] = {
            "median_spearman": float(np.median([m.monotonicity for m in metrics])),
            "cfrt": float(np.mean([m.cfrt_success for m in metrics])),
            "median_leakage": float(np.median([m.leakage for m in metrics])),
            "p90_leakage": float(np.quantile([m.leakage for m in metrics], 0.9)),
            "median_target_change": float(np.median([m.target_change for m in metrics])),
            "trajectories": len(metrics), "seconds": seconds, "unet_passes": passes}
    switch = traverse(model, TraverseConfig(kind="prompt_switch", target="pleural_effusion",
                                            seeds=tuple(seeds[:config.switch_seeds]), frames=config.frames,
                                            steps=config.steps))
    out = {"config": config.__dict__, "sliders": sliders,
           "prompt_switch": {"switch_points": switch.control_points - 1, "unet_passes": switch.unet_passes,
                             "unet_passes_each_separately": switch.unet_passes_unshared,
                             "ratio": switch.unet_passes / switch.unet_passes_unshared,
                             "seeds": config.switch_seeds, "steps": config.steps, "summary": switch.summary()}}
    if strips_dir:
        out["strips"] = write_strips(model, strips_dir, config)
    return out


def write_strips(model, folder: str, config: TraverseBenchConfig, seeds: tuple[int, ...] = (3, 8)) -> list[str]:
    """One PNG per trajectory kind: rows are seeds, columns frames, with the target's readout under each."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    paths = []
    requests = {f"traverse_slider_{t}": TraverseConfig(kind="slider", target=t, seeds=seeds, frames=config.frames,
                                                       steps=config.steps, alpha_range=(0.0, config.alpha_max))
                for t in SLIDER_TARGETS}
    requests["traverse_prompt_switch_pleural_effusion"] = TraverseConfig(
        kind="prompt_switch", target="pleural_effusion", seeds=seeds, frames=config.frames, steps=config.steps
    )
    requests["traverse_interpolate"] = TraverseConfig(
        kind="interpolate",
        target="pleural_effusion",
        prompt="Chest X-ray of a female patient showing pleural effusion",
        seeds=seeds,
        frames=config.frames,
        steps=config.steps,
    )
    for name, request in requests.items():
        result = traverse(model, request)
        path = str(Path(folder) / f"{name}.png")
        save_strip(result, path, title=f"{name.replace('_', ' ')} — prompt: {result.parameters['prompt']!r}")
        paths.append(path)
    return paths


def print_table(result: dict) -> None:
    c = result["config"]
    print(
        f"\ntraverse bench: {c['model']}, {c['seeds']} seeds per slider (half female, half male context), "
        f"{c['frames']} frames, alpha 0..{c['alpha_max']}, {c['steps']} DDIM steps, start step {c['start_step']}, "
        f"conditional {c['conditional']}"
    )
    print(
        f"{'slider':<18}{'median Spearman':>16}{'CFRT':>7}{'median leak':>13}{'p90 leak':>10}{'target Δ':>10}{'s':>7}"
    )
    for target, row in result["sliders"].items():
        print(f"{target:<18}{row['median_spearman']:>16.3f}{row['cfrt']:>7.3f}{row['median_leakage']:>13.4f}"
              f"{row['p90_leakage']:>10.4f}{row['median_target_change']:>10.3f}{row['seconds']:>7.0f}")
    s = result["prompt_switch"]
    print(f"prompt switch, {s['switch_points']} switch points, {s['seeds']} seeds, {s['steps']} steps: "
          f"{s['unet_passes']} UNet passes shared vs {s['unet_passes_each_separately']} each separately "
          f"= {s['ratio']:.1%}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="cxr-phantom", help="bundled name or local path (a CXR model)")
    parser.add_argument("--seeds", type=int, default=32, help="trajectories per slider")
    parser.add_argument("--frames", type=int, default=7, help="frames per trajectory")
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps")
    parser.add_argument("--start-step", type=int, default=0, help="the slider shift starts at this step")
    parser.add_argument("--strips", default=None, metavar="DIR", help="also write frame strips (PNG) here")
    add_common(parser, domains=False)


def main(args: argparse.Namespace, command: str) -> int:
    result = run(TraverseBenchConfig(model=args.model, seeds=args.seeds, frames=args.frames, steps=args.steps,
                                     start_step=args.start_step), strips_dir=args.strips)
    print_table(result)
    return write_json(args.json, result)
