"""Score progression models on held-out patients of the phantom trial against their true courses under every arm.

Per model: the trajectory error (mean absolute, per horizon) on the factual arm and on the counterfactual arms;
the 90% bands' coverage of the true factual and counterfactual courses; the PEHE of the diuretic's effect on the
day-14 size; and the confident responders: patients the model gives >= 90% probability that the diuretic lowers
their day-14 size by more than ``RESPONSE_MARGIN``, and the share of them in the planted responding subgroup.

    python -m medviz.bench progression --models runs/progression/hyperfusion [...] [--n 300] [--json PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .. import progression
from ..phantoms import trial as world
from ..train.progression import baseline_tensor
from .cli import add_common, write_json

HELD_OUT_FIRST_SEED = world.TRIAL_FIRST_SEED + 1_000_000     # never enrolled in training (seeds from the first)
HORIZONS = (7.0, 14.0, 21.0, 28.0)
EFFECT_DAY = 14.0
RESPONSE_MARGIN = 0.15       # a response: the diuretic lowers the day-14 size by more than this (on a 0-1 scale)
CONFIDENT = 0.9


def predict(folder, patients, n_paths: int = 100, seed: int = 0) -> tuple[np.ndarray, float]:
    """(sizes (n_paths, N, arms, horizons), seconds per patient for all arms): every arm on the same noise."""
    import torch

    network, config, _ = progression.load(folder)
    images = baseline_tensor(patients, config.image_size)
    tabular = progression.tabular_tensor(config, [world.tabular(p) for p in patients])
    times = [0.0, *HORIZONS]
    start = time.perf_counter()
    with torch.no_grad():
        z0 = progression.encode(network, config, images, tabular)
        arms = [progression.paths(network, config, z0, torch.full((len(patients),), a), times, n_paths, seed).numpy()
                for a in range(len(config.treatments))]
    seconds = (time.perf_counter() - start) / len(patients)
    return np.stack(arms, 2)[..., 1:], seconds


def truth(patients) -> np.ndarray:
    """(N, arms, horizons): every patient's true size under every arm."""
    return np.array([[world.sizes_at(p, arm, HORIZONS) for arm in world.ARMS] for p in patients])


def score(sizes: np.ndarray, true: np.ndarray, patients) -> dict:
    """The figures of one model's ``predict`` against ``truth``."""
    band = progression.summary(sizes)
    factual = np.zeros(true.shape[:2], bool)
    factual[np.arange(len(patients)), [world.ARMS.index(p.arm) for p in patients]] = True
    error = np.abs(band["mean"] - true)                                        # (N, arms, horizons)
    covered = (band["low"] <= true) & (true <= band["high"])
    day = HORIZONS.index(EFFECT_DAY)
    none, diuretic = world.ARMS.index("none"), world.ARMS.index("diuretic")
    effect_paths = sizes[:, :, diuretic, day] - sizes[:, :, none, day]        # paired: one noise path per sample
    true_effect = true[:, diuretic, day] - true[:, none, day]
    p_response = (effect_paths < -RESPONSE_MARGIN).mean(0)
    confident = p_response >= CONFIDENT
    responders = np.array([p.responder for p in patients])
    return {
        "error_factual": dict(zip(HORIZONS, error[factual].mean(0).round(4).tolist())),
        "error_counterfactual": dict(zip(HORIZONS, error[~factual].mean(0).round(4).tolist())),
        "coverage_factual": float(covered[factual].mean()),
        "coverage_counterfactual": float(covered[~factual].mean()),
        "pehe": float(np.sqrt(np.mean((effect_paths.mean(0) - true_effect) ** 2))),
        "confident_responders": int(confident.sum()),
        "confident_responders_in_subgroup": float(responders[confident].mean()) if confident.any() else None,
        "responders": int(responders.sum()),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", required=True, help="progression folders (python -m medviz.train "
                                                                   "progression)")
    parser.add_argument("--n", type=int, default=300, help="held-out patients")
    parser.add_argument("--paths", type=int, default=100, help="paths per patient per arm")
    add_common(parser, domains=False)


def main(args: argparse.Namespace, command: str) -> int:
    patients = world.trial(args.n, HELD_OUT_FIRST_SEED)
    true = truth(patients)
    rows = []
    for folder in args.models:
        sizes, seconds = predict(folder, patients, args.paths)
        row = {"model": Path(folder).name, "seconds_per_patient": round(seconds, 4), **score(sizes, true, patients)}
        rows.append(row)
        print(f"{row['model']:<16} error factual {row['error_factual']} counterfactual {row['error_counterfactual']}"
              f"\n{'':<16} coverage {row['coverage_factual']:.3f} / {row['coverage_counterfactual']:.3f}  PEHE "
              f"{row['pehe']:.4f}  confident responders {row['confident_responders']} "
              f"({row['confident_responders_in_subgroup']} in the subgroup of {row['responders']})  "
              f"{seconds:.3f} s per patient ({args.paths} paths x {len(world.ARMS)} arms)")
    return write_json(args.json, {"command": command, "n": args.n, "paths": args.paths, "horizons": HORIZONS,
                                  "models": rows})
