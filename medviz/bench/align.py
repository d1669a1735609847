"""Reward against UNet passes: alignment runs side by side, from their records (``medviz.train align``).

``python -m medviz.bench align --runs runs/align/skin-draft runs/align/skin-ddpo [--figure PNG]`` reads each
run's ``medviz_train.json`` and tables, per run, the reward (a moving mean over ``--window`` steps) reached at
a common UNet-pass budget (the smallest any run spent), and the passes each run spent to first reach
``--level``. The rewards are the training oracle's; what the samples show is read by the models bench with
an independent oracle (``--oracle``), never from these curves.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .cli import add_common, write_json


def load_run(folder: str | Path) -> dict:
    """A run's record (config, method, history of {step, reward, loss, unet_passes, seconds})."""
    path = Path(folder) / "medviz_train.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: give the --out folder of a `python -m medviz.train align` run")
    record = json.loads(path.read_text())
    if not record.get("history"):
        raise ValueError(f"{path} holds no training step")
    return {"name": Path(folder).name, **record}


def smoothed(history: list[dict], window: int) -> tuple[np.ndarray, np.ndarray]:
    """(UNet passes, moving mean of the reward over the last ``window`` steps) after every step."""
    rewards = np.array([h["reward"] for h in history], dtype=float)
    passes = np.array([h["unet_passes"] for h in history], dtype=float)
    cumulative = np.concatenate([[0.0], np.cumsum(rewards)])
    index = np.arange(1, len(rewards) + 1)
    start = np.maximum(index - window, 0)
    return passes, (cumulative[index] - cumulative[start]) / (index - start)


def compare(runs: list[dict], window: int = 10, level: float = 0.95) -> dict:
    """Per run: smoothed reward at the common pass budget, and passes to first reach ``level``."""
    budget = min(run["history"][-1]["unet_passes"] for run in runs)
    rows = []
    for run in runs:
        passes, reward = smoothed(run["history"], window)
        at_budget = reward[np.searchsorted(passes, budget, side="right") - 1]
        reached = np.flatnonzero(reward >= level)
        rows.append({"run": run["name"], "method": run["method"], "steps": len(passes),
                     "unet_passes": int(passes[-1]), "reward_first": float(reward[0]),
                     "reward_at_budget": float(at_budget), "reward_last": float(reward[-1]),
                     "passes_to_level": int(passes[reached[0]]) if len(reached) else None,
                     "seconds": run["history"][-1]["seconds"]})
    return {"budget_passes": int(budget), "window": window, "level": level, "rows": rows}


def print_comparison(result: dict) -> None:
    print(f"reward (training oracle, mean of {result['window']} steps) at the common budget of "
          f"{result['budget_passes']:,} UNet passes; passes to reach {result['level']}")
    print(f"{'run':<24} {'method':<9} {'steps':>6} {'passes':>9} {'first':>6} {'@budget':>8} {'last':>6} "
          f"{'to level':>9} {'seconds':>8}")
    for r in result["rows"]:
        reached = f"{r['passes_to_level']:,}" if r["passes_to_level"] is not None else "never"
        print(f"{r['run']:<24} {r['method']:<9} {r['steps']:>6} {r['unet_passes']:>9,} {r['reward_first']:>6.3f} "
              f"{r['reward_at_budget']:>8.3f} {r['reward_last']:>6.3f} {reached:>9} {r['seconds']:>8.0f}")


def save_figure(runs: list[dict], window: int, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6, 3.6))
    for run in runs:
        passes, reward = smoothed(run["history"], window)
        ax.plot(passes, reward, label=f"{run['name']} ({run['method']})")
    ax.set_xlabel("UNet passes (forward, per image, x2 for guidance)")
    ax.set_ylabel(f"reward, mean of {window} steps")
    ax.set_title("training oracle's reward (judge with an independent oracle)", fontsize=9)
    ax.legend(fontsize=8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", nargs="+", required=True, metavar="DIR", help="align runs' --out folders")
    parser.add_argument("--window", type=int, default=10, help="steps in the reward's moving mean")
    parser.add_argument("--level", type=float, default=0.95, help="report the passes to first reach this reward")
    parser.add_argument("--figure", default=None, metavar="PNG", help="also plot reward against UNet passes")
    add_common(parser, domains=False)


def main(args: argparse.Namespace, command: str) -> int:
    try:
        runs = [load_run(folder) for folder in args.runs]
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(str(error)) from None
    result = compare(runs, args.window, args.level)
    print_comparison(result)
    if args.figure:
        result["figure"] = save_figure(runs, args.window, args.figure)
    result["command"] = command
    return write_json(args.json, result)
