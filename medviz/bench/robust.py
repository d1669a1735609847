"""Robustness bench: each classifier on held-out phantoms under graded acquisition shifts (the stress-test engine).

Per classifier, shift and level: accuracy at its operating point, AUROC, ECE (10 bins), NLL with 95% bootstrap
intervals, selective accuracy at 80% coverage by its own uncertainty, and the domain check's flag rate.

    python -m medviz.bench robust --domain cxr --threads 1 --json assets/bench/robust_cxr.json \\
        --figure-dir assets/bench

Classifiers: the bundled model's ResNet oracle and the bundled classifiers of the domain (``--classifiers``: names
or folders); LaDiNE folders with ``--ladine``; the diffusion classifier, on fewer phantoms and shifts, with
``--diffusion-n`` and ``--diffusion-shifts`` (or single levels, ``--diffusion-levels rotation:9``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import domains
from .. import ladine
from ..classifiers import bundled_classifiers, classifier_domain, load_classifier
from ..engines.guard import flagger
from ..engines.stress import (NONE, StressConfig, StressResult, classifier_scorer, diffusion_scorer, ladine_scorer,
                              level_count, oracle_scorer, phantom_sets, stress_test)
from ..models import load_model
from .cards import write_ladine_card
from .cli import add_common, run_per_domain


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--n", type=int, default=200, help="held-out phantoms per level (default 200)")
    parser.add_argument("--shifts", nargs="+", default=None, help="shift identifiers (default: all of the domain's)")
    parser.add_argument("--classifiers", nargs="+", default=None,
                        help="bundled classifier names or folders (default: the domain's bundled ones)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--no-domain-check", action="store_true", help="skip the domain check's flag rates")
    parser.add_argument("--figure-dir", default=None, help="write robust_<domain>.png here")
    parser.add_argument("--ladine", nargs="+", default=[], metavar="DIR",
                        help="LaDiNE folders (python -m medviz.train ladine) to stress-test beside the others")
    parser.add_argument("--diffusion-n", type=int, default=0,
                        help="also the diffusion classifier (Explain's operating point) on the first N phantoms per "
                             "level (default 0: left out; its cost is reported beside the others')")
    parser.add_argument("--diffusion-shifts", nargs="+", default=None, help="its shifts (default: --shifts)")
    parser.add_argument("--diffusion-from", default=None, metavar="JSON",
                        help="take the diffusion classifier's rows from an earlier run's JSON (same domain, target, "
                             "seeds and bootstrap) instead of running it again")
    parser.add_argument("--write-card", action="store_true",
                        help="store the figures in each --ladine folder's card (medviz_ladine.json, README.md)")
    parser.add_argument("--diffusion-levels", nargs="+", default=None, metavar="SHIFT:LEVEL",
                        help="only these level sets for it, e.g. rotation:9 (no unshifted set unless none:0 is named)")


def ladine_name(folder: str) -> str:
    """A LaDiNE folder's name in rows, figure and card: the folder's own when it says LaDiNE, else "ladine-<folder>"."""
    name = Path(folder).name
    return name if "ladine" in name.lower() else f"ladine-{name}"


def run_domain(domain: str, args: argparse.Namespace, command: str) -> dict:
    config = StressConfig(target=domains.get(domain).primary_target or "",
                          shifts=tuple(args.shifts or ()), n=args.n, bootstrap=args.bootstrap)
    config.validate(domain)
    model = load_model(f"{domain}-phantom", device="cpu")
    names = args.classifiers or [c for c in bundled_classifiers() if classifier_domain(c) == domain]
    scorers = [oracle_scorer(model.oracle, config.target, "resnet-oracle"),
               *(classifier_scorer(load_classifier(name, config.target)) for name in names),
               *(ladine_scorer(ladine.load(folder, ladine_name(folder))) for folder in args.ladine)]
    flags = None if args.no_domain_check else flagger(model)
    total = level_count(domain, config)
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        print(f"[robust {domain}] {done}/{total} level sets, {time.perf_counter() - started:.0f} s", flush=True)

    result = stress_test(phantom_sets(domain, config), scorers, config, flags, progress, total=total)
    if args.diffusion_n:
        result = _with_diffusion(domain, model, config, args, result, flags, progress)
    out = {"domain": domain, "command": command, "parameters": result.parameters, "rows": result.records(),
           "reliability": result.reliability, "warnings": result.warnings, "seconds": round(result.seconds, 1),
           "shifts": {s.name: {"phrase": s.phrase, "unit": s.unit, "levels": list(s.levels), "factor": s.factor}
                      for s in config.chosen(domain)}}
    if args.diffusion_from:
        reuse_diffusion_rows(out, Path(args.diffusion_from))
    out["verdicts"] = verdicts(out["rows"], [ladine_name(folder) for folder in args.ladine])
    if args.figure_dir:
        out["figure"] = str(figure(domain, out["rows"], out["shifts"], config.n, Path(args.figure_dir)))
    return out


def _silent(row: dict) -> int | None:
    """A row's silent errors; for rows written before they were counted, what the counts settle: none when the
    method's doubt or the domain check caught every error, else unknown (None)."""
    if row.get("silent_errors") is not None:
        return row["silent_errors"]
    caught = max(row.get("errors_unsure") or 0, row.get("errors_flagged") or 0)
    return 0 if caught == row["errors"] else None


def reuse_diffusion_rows(out: dict, path: Path) -> None:
    """Add the diffusion classifier's rows of an earlier run (``path``, this bench's JSON) to ``out``: the same
    phantoms (domain, target, first seed, transform seed) and intervals (bootstrap), so the rows are what a run now
    would give; the earlier command and seconds per image go with them."""
    earlier = json.loads(path.read_text())
    same = ("target", "first_seed", "seed", "bootstrap", "coverage", "size")
    differ = [k for k in same if earlier["parameters"].get(k) != out["parameters"].get(k)]
    if earlier.get("domain") != out["domain"] or differ:
        raise SystemExit(f"{path}: another run ({earlier.get('domain')}; differs in {', '.join(differ) or 'domain'}),"
                         " its diffusion-classifier rows are not comparable")
    rows = [r for r in earlier["rows"] if r["classifier"] == "diffusion-classifier"]
    if not rows:
        raise SystemExit(f"{path}: no diffusion-classifier rows")
    out["rows"] += [{**r, "silent_errors": _silent(r)} for r in rows]
    out["warnings"] += [line for line in earlier.get("warnings", []) if line.startswith("diffusion-classifier:")]
    classifiers = out["parameters"]["classifiers"]
    classifiers["diffusion-classifier"] = earlier["parameters"]["classifiers"]["diffusion-classifier"]
    out["parameters"]["diffusion_classifier"] = {**earlier["parameters"]["diffusion_classifier"],
                                                 "from": str(path), "command": earlier["command"]}
    if "diffusion-classifier" in earlier.get("reliability", {}):
        out["reliability"]["diffusion-classifier"] = earlier["reliability"]["diffusion-classifier"]


def verdicts(rows: list[dict], methods: list[str], oracle: str = "resnet-oracle",
             diffusion: str = "diffusion-classifier") -> dict:
    """Issue 53's bars for each LaDiNE classifier in ``methods``, from the rows: unshifted accuracy within 2 points
    of the oracle's; over the shifted levels, accuracy >= the oracle's and the diffusion classifier's and the lowest
    ECE of the three (the diffusion classifier on the level sets it ran, compared there); selective accuracy at the
    coverage >= full accuracy + 5 points. A figure that was not measured is None."""
    every = summaries(rows)
    ran = {(r["shift"], r["level"]) for r in rows if r["classifier"] == diffusion and r["shift"] != NONE}
    where_it_ran = summaries(rows, ran) if ran else {}
    out = {}
    for name in methods:
        mine, base = every[name], every.get(oracle)
        gap = None if base is None else mine["unshifted_accuracy"] - base["unshifted_accuracy"]
        versus = {oracle: _versus(base, mine)} if base else {}
        if ran:
            versus[diffusion] = {**_versus(where_it_ran[diffusion], where_it_ran[name]), "levels": sorted(ran)}
        gain = mine["shifted_selective_accuracy"] - mine["shifted_accuracy"]
        out[name] = {
            "unshifted_gap_to_oracle": gap, "unshifted_within_2_points": None if gap is None else gap >= -0.02,
            "versus": versus,
            "shifted_accuracy_at_least_each": all(v["mine"]["accuracy"] >= v["accuracy"] for v in versus.values()),
            "shifted_ece_lowest": all(v["mine"]["ece"] <= v["ece"] for v in versus.values()),
            "selective_gain": gain, "selective_gain_at_least_5_points": gain >= 0.05}
    return out


def _versus(other: dict, mine: dict) -> dict:
    """Another classifier's shifted accuracy and ECE beside ours, from two ``summaries`` entries."""
    return {"accuracy": other["shifted_accuracy"], "ece": other["shifted_ece"],
            "mine": {"accuracy": mine["shifted_accuracy"], "ece": mine["shifted_ece"]}}


def level_pairs(names: list[str] | None) -> set[tuple[str, float]] | None:
    """``["rotation:9", "none:0"]`` -> {("rotation", 9.0), ("none", 0.0)}; None stays None (every level)."""
    if not names:
        return None
    pairs = set()
    for name in names:
        shift, _, level = name.partition(":")
        try:
            pairs.add((shift, float(level)))
        except ValueError:
            raise SystemExit(f"--diffusion-levels wants SHIFT:LEVEL (rotation:9), got {name!r}") from None
    return pairs


def _with_diffusion(domain: str, model, config: StressConfig, args, result: StressResult, flags,
                    progress) -> StressResult:
    """``result`` with the diffusion classifier's rows on the first ``--diffusion-n`` phantoms of each level (the
    same seeds; ``--diffusion-levels``: only those level sets), its seconds per image in the parameters."""
    pairs = level_pairs(args.diffusion_levels)
    shifts = {shift for shift, _ in pairs or ()} - {NONE}
    small = replace(config, n=args.diffusion_n, shifts=tuple(shifts or args.diffusion_shifts or config.shifts))
    small.validate(domain)
    known = {(NONE, 0.0)} | {(s.name, float(v)) for s in small.chosen(domain) for v in s.levels}
    if pairs and pairs - known:
        raise SystemExit(f"no such level set: {sorted(pairs - known)}; the levels are {sorted(known)}")
    started = time.perf_counter()
    extra = stress_test(phantom_sets(domain, small, pairs), [diffusion_scorer(model)], small, flags, progress,
                        total=len(pairs) if pairs else level_count(domain, small))
    images = small.n * (len(pairs) if pairs else level_count(domain, small))
    result.rows += extra.rows
    result.reliability.update(extra.reliability)
    result.warnings += extra.warnings
    result.parameters["classifiers"].update(extra.parameters["classifiers"])
    seconds = time.perf_counter() - started
    result.parameters["diffusion_classifier"] = {"n": small.n, "shifts": list(small.shifts) or "all",
                                                 "levels": sorted(pairs) if pairs else "all",
                                                 "seconds_per_image": round(seconds / images, 2)}
    return result


def figure(domain: str, rows: list[dict], shifts: dict, n: int, folder: Path) -> Path:
    """Accuracy against shift level, one panel per shift, one line per classifier with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["classifier"] for r in rows))
    columns = min(4, len(shifts))
    panel_rows = -(-len(shifts) // columns)
    fig, axes = plt.subplots(panel_rows, columns, figsize=(3.2 * columns, 2.7 * panel_rows), squeeze=False)
    for ax, (shift, info) in zip(axes.ravel(), shifts.items()):
        for name in names:
            if not any(r["classifier"] == name and r["shift"] == shift for r in rows):
                continue                                   # the diffusion classifier runs on fewer shifts
            found = {(r["shift"], r["level"]): r for r in rows if r["classifier"] == name}
            keys = [(NONE, 0.0)] + [(shift, level) for level in info["levels"]]
            x = np.array([i for i, key in enumerate(keys) if key in found])   # --diffusion-levels: some only
            points = [found[key] for key in keys if key in found]
            y = [p["accuracy"] for p in points]
            low, high = [p["accuracy_interval"][0] for p in points], [p["accuracy_interval"][1] for p in points]
            line = ax.plot(x, y, marker="o", ms=3, label=name)[0]
            if len(points) > 1:
                ax.fill_between(x, low, high, alpha=0.15)
            else:                                  # one level only (the diffusion classifier's): a bar, not a band
                ax.errorbar(x, y, yerr=[np.subtract(y, low), np.subtract(high, y)], fmt="none",
                            color=line.get_color(), capsize=2, lw=0.8)
        ax.set_xticks(range(len(info["levels"]) + 1), ["none", *(f"{v:g}" for v in info["levels"])], fontsize=7)
        ax.set_title(f"{info['phrase']} ({info['unit']})", fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.axhline(0.5, color="grey", lw=0.5, ls=":")
    for ax in axes.ravel()[len(shifts):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("accuracy")
    shown = {}                                   # every classifier once, a level-only one (the diffusion's) too
    for ax in axes.ravel():
        for handle, label in zip(*ax.get_legend_handles_labels()):
            shown.setdefault(label, handle)
    axes[0, 0].legend(shown.values(), shown.keys(), fontsize=6, loc="lower left")
    fig.suptitle(f"{domain}: accuracy under acquisition shift, {n} held-out phantoms per level",
                 fontsize=9)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"robust_{domain}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def print_table(result: dict) -> None:
    """Per classifier: unshifted accuracy, then each shift's mean accuracy and ECE over its levels."""
    rows = result["rows"]
    print(f"\n{result['domain']}: {result['parameters']['n']} phantoms per level, {result['seconds']} s")
    for name in dict.fromkeys(r["classifier"] for r in rows):
        mine = [r for r in rows if r["classifier"] == name]
        base = next((r for r in mine if r["shift"] == NONE), None)
        cells = []
        for shift in result["shifts"]:
            levels = [r for r in mine if r["shift"] == shift]
            if not levels:
                continue
            flagged = [r["flagged"] for r in levels if r["flagged"] is not None]
            cells.append(f"{shift} {np.mean([r['accuracy'] for r in levels]):.0%}"
                         f" (ECE {np.mean([r['ece'] for r in levels]):.2f}"
                         + (f", flagged {np.mean(flagged):.0%})" if flagged else ")"))
        unshifted = f"none {base['accuracy']:.0%} (ECE {base['ece']:.2f}) | " if base else ""
        print(f"  {name:28s} {unshifted}" + " | ".join(cells))
        wrong = sum(r["errors"] for r in mine if r["shift"] != NONE)
        caught = [f"{what} {sum(r[key] for r in mine if r['shift'] != NONE)}" for key, what in
                  (("errors_unsure", "unsure"), ("errors_flagged", "domain-check flagged"))
                  if any(r[key] is not None for r in mine)]
        if caught:
            print(f"  {'':28s} shifted errors {wrong}, of them: " + ", ".join(caught))
    for line in result["warnings"]:
        print("  warning:", line)
    for name, verdict in result.get("verdicts", {}).items():
        print(f"  {name}: unshifted within 2 points of the oracle {verdict['unshifted_within_2_points']}; shifted "
              f"accuracy >= each {verdict['shifted_accuracy_at_least_each']}, lowest ECE "
              f"{verdict['shifted_ece_lowest']}; 80% surest {verdict['selective_gain']:+.1%} "
              f"(>= +5 points {verdict['selective_gain_at_least_5_points']})")


def summaries(rows: list[dict], keys: Collection[tuple[str, float]] | None = None) -> dict:
    """Per classifier: unshifted accuracy; over the shifted levels (``keys``: only these (shift, level) sets) its
    mean accuracy, ECE and selective accuracy, its errors and silent errors there."""
    out = {}
    for name in dict.fromkeys(r["classifier"] for r in rows):
        mine = [r for r in rows if r["classifier"] == name]
        shifted = [r for r in mine if r["shift"] != NONE and (keys is None or (r["shift"], r["level"]) in keys)]
        base = next((r for r in mine if r["shift"] == NONE), None)
        out[name] = {"unshifted_accuracy": base["accuracy"] if base else float("nan"),
                     "shifted_accuracy": float(np.mean([r["accuracy"] for r in shifted])),
                     "shifted_ece": float(np.mean([r["ece"] for r in shifted])),
                     "shifted_selective_accuracy": float(np.mean([r["selective_accuracy"] for r in shifted])),
                     "errors": sum(r["errors"] for r in shifted),
                     "silent_errors": None if any(r.get("silent_errors") is None for r in shifted)    # older rows
                     else sum(r["silent_errors"] for r in shifted)}
    return out


def write_card(domain: str, result: dict, command: str, folders: list[str]) -> None:
    """Each LaDiNE folder's card gets the bench's summary: its figures beside every classifier benched with it."""
    for folder in folders:
        path = Path(folder) / ladine.CONFIG
        card = json.loads(path.read_text())
        card["bench_robust"] = {"date": datetime.date.today().isoformat(), "command": command, "domain": domain,
                                "n": result["parameters"]["n"], "first_seed": result["parameters"]["first_seed"],
                                "shifts": list(result["shifts"]),
                                "levels": sum(len(s["levels"]) for s in result["shifts"].values()),
                                "classifiers": summaries(result["rows"]),
                                "diffusion_classifier": result["parameters"].get("diffusion_classifier")}
        path.write_text(json.dumps(card, indent=2))
        write_ladine_card(folder, ladine_name(folder))


def main(args: argparse.Namespace, command: str) -> int:
    if args.write_card and not args.ladine:
        raise SystemExit("--write-card stores the figures in LaDiNE folders' cards: name them with --ladine")
    return run_per_domain(args, command, run_domain, print_table,
                          lambda domain, result, command: write_card(domain, result, command, args.ladine))
