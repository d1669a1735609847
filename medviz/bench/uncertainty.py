"""Uncertainty bench: where a LaDiNE folder's doubt comes from, and whether any ranking of its outputs sets its errors
under shift aside.

Per level set of the robustness bench's held-out phantoms: LaDiNE's accuracy and errors; each member's guide
accuracy (its mapping head alone, before the label diffusion); the share of LaDiNE's errors on which the members'
guides disagree (an ensemble can only doubt where its members differ); and, for each ranking of its own outputs,
the selective accuracy at the coverage (80%) minus its full accuracy, beside the ceiling (every error set aside
first). Issue 53's selective bar is +5 points averaged over the shifted levels.

    python -m medviz.bench uncertainty --domain cxr --ladine DIR --n 200 --threads 1 --json out.json
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from .. import domains
from .. import ladine
from ..engines.stress import NONE, StressConfig, phantom_sets
from ..metrics import selective_accuracy
from .cli import add_common, run_per_domain

def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--ladine", required=True, metavar="DIR", help="the LaDiNE folder (python -m medviz.train "
                                                                       "ladine) whose uncertainty is taken apart")
    parser.add_argument("--n", type=int, default=200, help="held-out phantoms per level (default 200)")
    parser.add_argument("--shifts", nargs="+", default=None, help="shift identifiers (default: all of the domain's)")


def rankings(predictions: list[ladine.LaDiNEPrediction], guides: np.ndarray) -> dict[str, np.ndarray]:
    """Each ranking's uncertainty per image, (N,), larger = less sure. ``guides``: (members, N, C) from
    ``LaDiNE.guides``; class 1 is the target."""
    positive = np.array([p.probabilities[1] for p in predictions])
    guide_margin = np.abs(guides[..., 1] - 0.5)                       # (members, N)
    out = {"p_value": np.array([p.p_value for p in predictions]),     # LaDiNE's own (paired t-test)
           "margin": -np.abs(positive - 0.5),
           "interval_width": np.array([p.interval_width for p in predictions]),
           "guide_min_margin": -guide_margin.min(0),
           "guide_spread": guides[..., 1].std(0)}
    out.update({f"guide_{m + 1}_margin": -guide_margin[m] for m in range(len(guides))})
    return out


def ceiling(correct: np.ndarray, coverage: float) -> float:
    """Selective accuracy at ``coverage`` if every error were ranked least sure: min(right, kept) / kept."""
    kept = max(1, math.ceil(coverage * len(correct)))
    return min(int(correct.sum()), kept) / kept


def level_row(classifier: ladine.LaDiNE, level_set, coverage: float) -> dict:
    """One level set's figures (see the module's docstring)."""
    predictions, guides = classifier.predict(level_set.images), classifier.guides(level_set.images)
    truth = np.asarray(level_set.labels).astype(bool)
    correct = np.array([p.predicted == 1 for p in predictions]) == truth
    accuracy = float(correct.mean())
    member_votes = guides.argmax(-1) == 1                            # (members, N)
    split = member_votes.min(0) != member_votes.max(0)
    return {"shift": level_set.shift, "level": level_set.level, "n": len(truth), "accuracy": accuracy,
            "errors": int((~correct).sum()),
            "member_accuracy": [float((votes == truth).mean()) for votes in member_votes],
            "errors_members_split": float(split[~correct].mean()) if (~correct).any() else None,
            "gain": {name: selective_accuracy(correct, u, coverage) - accuracy
                     for name, u in rankings(predictions, guides).items()},
            "ceiling_gain": ceiling(correct, coverage) - accuracy}


def run_domain(domain: str, args: argparse.Namespace, command: str) -> dict:
    config = StressConfig(target=domains.get(domain).primary_target or "", shifts=tuple(args.shifts or ()),
                          n=args.n, bootstrap=0)
    config.validate(domain)
    classifier = ladine.load(args.ladine)
    if classifier.config.labels[-1] != config.target:
        raise SystemExit(f"{args.ladine} answers {classifier.config.labels[-1]!r}, not {domain}'s {config.target!r}")
    rows = []
    for level_set in phantom_sets(domain, config):
        rows.append(level_row(classifier, level_set, config.coverage))
        print(f"[uncertainty {domain}] {level_set.shift} {level_set.level:g}: accuracy {rows[-1]['accuracy']:.3f}",
              flush=True)
    shifted = [r for r in rows if r["shift"] != NONE]
    names = list(rows[0]["gain"])
    mean = {name: float(np.mean([r["gain"][name] for r in shifted])) for name in names}
    split = [r["errors_members_split"] for r in shifted if r["errors_members_split"] is not None]
    return {"domain": domain, "command": command, "ladine": str(args.ladine), "coverage": config.coverage,
            "n": config.n, "first_seed": config.first_seed, "rows": rows,
            "shifted": {"levels": len(shifted), "accuracy": float(np.mean([r["accuracy"] for r in shifted])),
                        "mean_gain": mean, "best": max(mean, key=mean.get),
                        "ceiling_gain": float(np.mean([r["ceiling_gain"] for r in shifted])),
                        "errors_members_split": float(np.mean(split)) if split else None}}


def print_table(result: dict) -> None:
    names = list(result["rows"][0]["gain"])
    print(f"\n{result['domain']}: {result['ladine']}, selective accuracy at {result['coverage']:.0%} coverage minus "
          "accuracy, points, by ranking")
    print("| shift | level | accuracy | errors | members split on errors | " + " | ".join(names) + " | ceiling |")
    print("|" + " --- |" * (len(names) + 6))
    for r in result["rows"]:
        split = "-" if r["errors_members_split"] is None else f"{r['errors_members_split']:.0%}"
        print(f"| {r['shift']} | {r['level']:g} | {r['accuracy']:.1%} | {r['errors']} | {split} | "
              + " | ".join(f"{100 * r['gain'][n]:+.1f}" for n in names) + f" | {100 * r['ceiling_gain']:+.1f} |")
    s = result["shifted"]
    print(f"\nshifted levels ({s['levels']}): accuracy {s['accuracy']:.1%}; mean gain "
          + ", ".join(f"{n} {100 * g:+.1f}" for n, g in s["mean_gain"].items())
          + f"; ceiling {100 * s['ceiling_gain']:+.1f}; best ranking {s['best']}")


def main(args: argparse.Namespace, command: str) -> int:
    if args.domain == "all":
        raise SystemExit("name the LaDiNE folder's domain with --domain cxr or --domain skin")
    return run_per_domain(args, command, run_domain, print_table)
