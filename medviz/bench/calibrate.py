"""The diffusion classifier's operating point for a preset, fitted on tuning phantoms, for the model card.

The timestep window, vote threshold and decision rule are fitted on labelled tuning phantoms (seeds
10,901,000+, never the benches') and stored in the model card (``--write-card``).

Every tuning phantom runs all N trials (no early stop); each trial's timestep, winner and error difference
are kept, and ``fit_operating_point`` picks the window and the threshold (and the rule) with the best
tuning accuracy; docs/explain.md tells why each exists.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import numpy as np

from .. import domains
from ..engines.explain import DEFAULT_T_RANGE, DEFAULT_TRIALS, ExplainConfig, classify, preset, trials_run_until_decided
from ..models import load_model
from .cards import record_calibration
from .classify import TASKS, ClassifyBenchConfig, _rows, read_rows
from .cli import add_common, add_model_option, chosen_domains, chosen_model, model_folder, shard, write_json
from .truth import labelled_phantoms

TUNING_SEED_OFFSET = 901_000         # the tuning phantoms (seeds 10,901,000+): calibration, never the bench


def calibrate(domain: str, config: ClassifyBenchConfig, model=None, on_row=None, done_rows=None,
              weighting: str = "disagreement", engine_trials: int = 21, t_range: tuple[int, int] | None = None) -> dict:
    """Fit the task's operating point (timestep window and two-class vote threshold) on tuning phantoms.

    Every one of ``config.n`` labelled tuning phantoms (seeds 10,901,000+, never the bench's) runs all
    N = ``config.trials`` trials (21 when None), stratified over the whole schedule (no early stop); each
    trial's timestep, winner and error difference (first class minus second) are kept (rows via ``on_row``;
    ``done_rows`` and ``config.shard`` as in
    ``run_task``).
    ``fit_operating_point`` then picks the window and threshold. Why a window: the trials' timesteps do
    not carry the same evidence. On the skin model with uniform weighting, trials at t < 300 voted benign
    for most melanomas (20-37% of them right on 47 tuning phantoms, against 85% at t = 400-700), so they
    outvoted the informative trials.

    With ``t_range`` the window is given, not searched: the trials stratify over it and N is the engine's
    (``engine_trials`` is then ``config.trials``), so with the engine's seed every tuning phantom sees exactly
    the (t, noise) draws the engine will use, and only the threshold is fitted. Why: every image shares
    the seed's draws, and the vote share a class gets depends on that draw set (on the skin model, benign
    lesions drew melanoma votes at a per-trial rate of 0.19 on the whole-schedule fit's draws and ~0.30 on
    the engine's), so a threshold fitted on other draws need not transfer.
    """
    task = TASKS[domain]
    model = model or load_model(f"{domain}-phantom", device="cpu")
    labels, prompts = preset(domain, task)
    first_seed, images, truth = labelled_phantoms(domain, config.n, model.image_size, TUNING_SEED_OFFSET,
                                                  domains.get(domain).presets[task].attribute)
    schedule = tuple(t_range) if t_range else DEFAULT_T_RANGE
    trials = config.trials or DEFAULT_TRIALS
    engine_trials = trials if t_range else engine_trials
    engine = ExplainConfig(prompts=prompts, labels=labels, trials=trials, early_stop=False, t_range=schedule,
                           trials_per_batch=config.trials_per_batch, weighting=weighting, seed=config.seed,
                           domain_check=False)

    def row(i: int, image: np.ndarray, label: bool) -> dict:
        result = classify(model, image.astype(np.float32) / 255.0, engine)
        won = result.errors.argmin(1) == 0                                  # trials the first class won
        # err(first class) - err(second), per trial in the engine's order: the mean-error rule and the
        # engine's early stop can then be replayed on these rows (``fit_operating_point``).
        difference = result.errors[:, 0] - result.errors[:, 1]
        return {"truth": label, "votes_first_class": int(won.sum()), "timesteps": result.timesteps.tolist(),
                "first_class_won": won.astype(int).tolist(),
                "error_difference": [float(f"{d:.6g}") for d in difference]}

    by_index = _rows(images, truth, row, config.shard, done_rows, on_row, None)
    if config.shard[1] > 1:
        return {"shard": config.shard, "rows": by_index}
    rows = [by_index[i] for i in range(len(images))]
    # Rows printed before the error differences were kept lack them: the vote is fitted alone then.
    differences = (np.array([r["error_difference"] for r in rows], float)
                   if all("error_difference" in r for r in rows) else None)
    fit = fit_operating_point(truth, np.array([r["timesteps"] for r in rows]),
                              np.array([r["first_class_won"] for r in rows], bool), engine_trials, schedule,
                              windows=[schedule] if t_range else None, error_difference=differences)
    return {"domain": domain, "task": task, "n": len(truth), "positives": int(truth.sum()),
            "trials_run": trials, "trials_t_range": list(schedule), "window_searched": not t_range,
            "first_seed": first_seed, "seed": config.seed, "weighting": weighting, **fit}


@dataclass(frozen=True)
class WindowGrid:
    """The timestep windows a fit searches: edges on multiples of ``step`` inside the schedule (or its ends), at
    least ``min_width`` wide."""

    step: int = 100
    min_width: int = 300


def fit_operating_point(truth: np.ndarray, timesteps: np.ndarray, first_won: np.ndarray, engine_trials: int,
                        schedule: tuple[int, int], grid: WindowGrid = WindowGrid(),
                        windows: list[tuple[int, int]] | None = None,
                        error_difference: np.ndarray | None = None) -> dict:
    """The timestep window and vote threshold with the best accuracy on labelled images.

    Args:
        truth: (n,) bool, the first class is the true one.
        timesteps: (n, N) each trial's timestep, stratified over ``schedule``.
        first_won: (n, N) bool, the first class won the trial.
        engine_trials: the N at which the threshold is stated (``votes_needed``) and later applied.
        schedule: (t_min, t_max) of the trials; the windows searched are ``grid``'s inside it.
        windows: the candidate windows, instead of that grid (``[schedule]``: fit only the threshold).
        error_difference: (n, N) err(first class) - err(second) per trial, in the engine's draw order. Where
            the trials are exactly the engine's (``windows == [schedule]`` and N == ``engine_trials``), the
            mean-error rule is scored as the engine applies it: over the trials it runs before its early stop
            at the fitted threshold (``trials_run_until_decided``), and ``decision`` names the rule with the
            better accuracy ("vote" on a tie, the papers' rule). Otherwise ``decision`` is "vote".
    An image's vote share in a window is the share of its trials inside that window that the first class
    won; it is called first class when share * engine_trials >= k - 0.5, i.e. with k of ``engine_trials``
    votes once the engine draws all its trials from that window. Ties go to k nearest the majority, then
    to the wider window. ``accuracy_majority`` is the plain majority over all the trials (over ``schedule``).
    """
    lo, hi = schedule
    if windows is None:
        edges = [lo, *range((lo // grid.step + 1) * grid.step, hi, grid.step), hi]
        windows = [(a, b) for a in edges for b in edges if b - a >= grid.min_width]
    majority = engine_trials // 2 + 1
    by_window, best = {}, None
    for a, b in windows:
        inside = (timesteps >= a) & (timesteps <= b)
        share = (first_won & inside).sum(1) / np.maximum(inside.sum(1), 1)
        for k in range(1, engine_trials + 1):
            accuracy = float(((share * engine_trials >= k - 0.5) == truth).mean())
            key = (accuracy, -abs(k - majority), b - a)
            by_window[f"{a}-{b}"] = max(by_window.get(f"{a}-{b}", 0.0), accuracy)
            if best is None or key > best[0]:
                best = (key, (a, b), k)
    (accuracy, _, _), (a, b), k = best
    whole = first_won.sum(1) / first_won.shape[1]
    threshold = round((k - 0.5) / engine_trials, 4)
    fit = {"t_range": [int(a), int(b)], "votes_needed": k, "trials": engine_trials, "vote_threshold": threshold,
           "accuracy_calibrated": accuracy,
           "accuracy_majority": float(((whole * engine_trials >= majority - 0.5) == truth).mean()),
           "accuracy_by_window": by_window, "decision": "vote"}
    if error_difference is not None and windows == [(lo, hi)] and first_won.shape[1] == engine_trials:
        stops = np.array([trials_run_until_decided(won, engine_trials, threshold) for won in first_won])
        first_by_mean = np.array([d[:stop].mean() < 0 for d, stop in zip(error_difference, stops)])
        mean_error = float((first_by_mean == truth).mean())
        fit.update({"accuracy_mean_error": mean_error, "mean_trials_run": float(stops.mean()),
                    "accuracy_mean_error_all_trials": float(((error_difference.mean(1) < 0) == truth).mean()),
                    "decision": "mean_error" if mean_error > accuracy else "vote"})
    return fit


def print_calibration(result: dict) -> None:
    windows = sorted(result["accuracy_by_window"].items(), key=lambda item: -item[1])[:6]
    lo, hi = result.get("trials_t_range", DEFAULT_T_RANGE)
    searched = result.get("window_searched", True)
    print(
        f"\n{result['task']} operating point on {result['n']} tuning phantoms (seeds {result['first_seed']:,}+, "
        f"{result['positives']} positive), N = {result['trials_run']} trials over t {lo}-{hi} (seed {result['seed']}), "
        f"{result['weighting']} weighting" + ("; best accuracy per timestep window:" if searched else ", window given")
    )
    if searched:
        print("  " + "  ".join(f"t {w}: {a:.1%}" for w, a in windows))
    print(f"chosen: t {result['t_range'][0]}-{result['t_range'][1]}, {result['votes_needed']} of {result['trials']} "
          f"votes (vote_threshold {result['vote_threshold']}): {result['accuracy_calibrated']:.1%} vs "
          f"{result['accuracy_majority']:.1%} for the majority over t {lo}-{hi}")
    if "accuracy_mean_error" in result:
        print(f"mean-error rule over the trials the engine runs ({result['mean_trials_run']:.1f} of {result['trials']} "
              f"on average, early stop at that threshold): {result['accuracy_mean_error']:.1%} "
              f"({result['accuracy_mean_error_all_trials']:.1%} over all {result['trials']}); decision rule: "
              f"{result['decision']}")




def calibration_command(result: dict, model: str | None = None) -> str:
    """The command that reproduces a ``calibrate`` result (its shards and their --resume give the same rows)."""
    command = (f"python -m medviz.bench calibrate --domain {result['domain']} --n {result['n']} --trials "
               f"{result['trials_run']} --weighting {result['weighting']}")
    if model:
        command += f" --model {model}"
    if not result.get("window_searched", True):
        command += " --t-range {} {}".format(*result["trials_t_range"])
    return command + " --threads 1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=120, help="tuning phantoms per task")
    parser.add_argument("--trials", type=int, default=None, help=f"trials N per image (odd; default {DEFAULT_TRIALS})")
    parser.add_argument("--trials-per-batch", type=int, default=16, help="most trials per round (the engine's default)")
    parser.add_argument("--weighting", default="disagreement", choices=["disagreement", "uniform"],
                        help="the error weighting to fit the operating point for")
    parser.add_argument("--t-range", type=int, nargs=2, default=None, metavar=("LO", "HI"),
                        help="draw the trials from this timestep window only and fit only the threshold (with "
                             "--trials = the engine's N: exactly the engine's draws)")
    parser.add_argument("--resume", default=None, nargs="+", metavar="LOG",
                        help="logs of earlier runs (or of --shard runs): their printed rows are kept, not recomputed")
    parser.add_argument("--shard", type=shard, default=(0, 1), metavar="K/M",
                        help="only images i with i %% M == K, rows only (then once more with every log as --resume)")
    add_model_option(parser)
    parser.add_argument("--write-card", action="store_true",
                        help="store the fit as the bundled model's operating point for the task (medviz.json) and "
                             "rewrite that section of its model card (README.md)")
    add_common(parser)


def main(args: argparse.Namespace, command: str) -> int:
    results = []
    for domain in chosen_domains(args):
        config = ClassifyBenchConfig(n=args.n, trials=args.trials, trials_per_batch=args.trials_per_batch,
                                     shard=args.shard)
        done = {i: row for log in args.resume or () for i, row in read_rows(log, domain).items()}
        result = calibrate(
            domain,
            config,
            model=chosen_model(args, domain),
            done_rows=done,
            weighting=args.weighting,
            t_range=args.t_range,
            on_row=lambda i, row, domain=domain: print(f"{domain} {i}: {json.dumps(row)}", flush=True),
        )
        if "shard" in result:
            print(f"{domain} shard {args.shard[0]}/{args.shard[1]} done: {len(result['rows'])} rows", flush=True)
            continue
        print_calibration(result)
        if args.write_card:
            record_calibration(model_folder(args, domain), result, calibration_command(result, args.model))
            print(f"written to the {model_folder(args, domain).name} model card (medviz.json and README.md)")
        results.append(result)
    return write_json(args.json, results) if results else 0
