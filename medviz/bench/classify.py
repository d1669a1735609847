"""Diffusion-classifier bench on held-out phantoms: accuracy, selective prediction, explanation, cost.

Per task (cxr pleural effusion, skin melanoma), on ``n`` held-out phantoms:
* accuracy of the diffusion classifier under the model card's decision rule ("accuracy"), and under both
  rules apart (the vote at the card's calibrated threshold, plain majority where the card has none; the
  mean-error rule over the trials run) beside the discriminative CNN baseline: the bundled
  oracle, a ``transformers`` ResNet trained on the same phantoms;
* selective prediction: accuracy on the 50% most certain cases (by |z| of the paired error difference);
* explanation: ROC AUC of the explanation map against the true changed region, i.e. the pixels that the
  SCM intervention on the class factor (effusion on/off, melanoma on/off) changes; the signed evidence
  map is scored the same way, beside it;
* cost, per image on the first ``n_cost`` images: N = ``reference_trials`` (the papers' N = 501, all trials
  unless ``reference_early_stop``) vs. the engine's setting (its accuracy and UNet passes), and the reference
  loop (classes one at a time, no early stop, same N as the engine) vs. the engine, wall-clock side by side;
  with ``reference_on_errors`` also on every image the engine gets wrong, which bounds N = 501's accuracy
  on all ``n`` from above (it can be right at most where it ran and right, and everywhere it did not run),
  so "the engine is within x points of N = 501" can be shown without N = 501 on every image (with
  ``reference_uncertain`` also on the images the engine is least sure of, where N = 501 is likeliest to be
  wrong as well, which lowers that bound; with shards, give them every row via ``--resume`` so that they
  rank the same images); and the
  wall-clock comparison again on ``n_wallclock`` images spread evenly over all ``n`` (the engine's time
  depends on how early an image is decided, so the first few images need not be typical).
  These per-image results are added to the image's row (and printed again), so shards and ``--resume``
  cover them too, and a run of the same card at another N takes the N = 501 runs from the first's rows
  (``with_reference_runs``, ``--reference-from``) instead of running them again.

The operating point the card holds is ``python -m medviz.bench calibrate``'s (``medviz.bench.calibrate``).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import domains
from ..engines.common import encode_image, encode_prompts, forward_noise
from ..engines.explain import (DEFAULT_T_RANGE, DEFAULT_TRIALS, ExplainConfig, calibrated_settings, classify,
                               first_class_wins, preset, trial_class_errors, trial_draws, votes_needed)
from ..metrics import roc_auc
from ..models import load_model
from .cards import record_engine_trials
from .cli import add_common, add_model_option, chosen_domains, chosen_model, model_folder, shard, write_json
from .figures import save_explain_figure
from .truth import labelled_phantoms, toggled_region

#: The bench's diffusion-classifier task per domain: a preset of the domain (``medviz.domains``).
TASKS = {name: domains.get(name).primary_task for name in ("cxr", "skin")}
FIRST_SEED_OFFSET = 200_000          # held-out seeds, disjoint from the oracle's and the tuning set's


@dataclass(frozen=True)
class ClassifyBenchConfig:
    domains: tuple[str, ...] = ("cxr", "skin")
    n: int = 400
    # N per image. classify: None takes the model card's N (the one its threshold was fitted at, or one a
    # bench adopted at the same share: ``calibrated_settings``); calibrate: None is the engine's default, 21.
    trials: int | None = None
    early_stop: bool = True
    trials_per_batch: int = 16  # the engine's default (its early stop does not depend on it)
    n_cost: int = 24            # the first n_cost images get the N = reference_trials run and the reference loop
    n_wallclock: int = 0        # images spread over the set, engine vs reference loop timed side by side
    reference_trials: int = 501
    reference_on_errors: bool = False   # the N = reference_trials run also on every image the engine gets wrong
    reference_uncertain: int = 0        # ... and on this many of the images the engine is least sure of (smallest |z|)
    # Stop N = reference_trials once its vote is decided: exact for the vote, and the mean-error rule is then
    # taken over the trials run (at least half of N); False runs all N trials, as the papers' loop does.
    reference_early_stop: bool = False
    calibrated: bool = True     # the model card's operating point for the task (plain majority where none)
    seed: int = 0
    shard: tuple[int, int] = (0, 1)   # (k, m): classify only images i with i % m == k (one process per core)


def _add_reference_runs(model, images: np.ndarray, by_index: dict[int, dict], configs: tuple, config, on_row) -> None:
    """Add N = ``config.reference_trials`` runs (``configs``: the engine's and the reference's ExplainConfig) to the
    rows that need one: the first ``n_cost`` images (also beside the reference loop), the least certain, and with
    ``reference_on_errors`` every image the engine gets wrong; only this shard's images."""
    engine, reference = configs
    rule = engine.decision
    k, m = config.shard
    # Least certain first: where N = 501 may be wrong too (which tightens the bound); ranked over the rows at hand.
    uncertain = set(sorted(by_index, key=lambda i: (by_index[i]["z"], i))[: config.reference_uncertain])
    for i in sorted(by_index):
        wanted = (i < config.n_cost or i in uncertain
                  or (config.reference_on_errors and by_index[i][rule] != by_index[i]["truth"]))
        # The first n_cost images also need the reference loop beside the engine (a reference run taken
        # from another run's rows comes without it: ``with_reference_runs``).
        needed = not _has_reference(by_index[i], reference) or (i < config.n_cost and "beside_loop" not in by_index[i])
        if i % m == k and wanted and needed:
            pixels = images[i].astype(np.float32) / 255.0
            by_index[i] = {**by_index[i], **_reference_fields(model, pixels, engine, reference)}
            if on_row:
                on_row(i, by_index[i])


def _figure_cases(model, images: np.ndarray, rows: list[dict], truth: np.ndarray, engine) -> list[dict]:
    """The first 3 correct and the first 3 wrong images under the engine's rule, classified again for their maps
    (same seed, same result), with their captions."""
    rule, labels = engine.decision, engine.class_labels()
    cases = []
    for wanted in (True, False):                                     # 3 correct and 3 wrong cases
        for i in [i for i, r in enumerate(rows) if (r[rule] == r["truth"]) == wanted][:3]:
            pixels = images[i].astype(np.float32) / 255.0
            result = classify(model, pixels, engine)
            cases.append({"image": pixels, "explanation": result.explanation_map, "evidence": result.evidence_map,
                          "uncertainty": result.uncertainty_map,
                          "correct": wanted,
                          # The first class's share of the trials run: under a vote threshold the winner's own
                          # share can be below 50%.
                          "caption": f"truth: {labels[0] if truth[i] else labels[1]}\n"
                                     f"{'vote' if rule == 'vote' else 'mean error'}: {result.label} "
                                     f"({labels[0]} {result.vote_fractions[0]:.0%}\nof {result.trials_run} trials) "
                                     f"|z| {abs(result.z_score):.1f} {'✓' if wanted else '✗ wrong'}"})
    return cases


def run_task(domain: str, config: ClassifyBenchConfig, model=None, progress=None, on_row=None,
             done_rows: dict[int, dict] | None = None) -> dict:
    """One task on ``config.n`` held-out phantoms.

    ``on_row(i, row)`` is called after every image, so a long CPU run prints its rows as they finish;
    ``done_rows`` (image index -> row, e.g. parsed back from such a printout by ``read_rows``) are taken
    as they are and not recomputed, so a stopped run resumes where it stopped. The figure's cases (the
    first 3 correct and the first 3 wrong images) are classified again for their maps: same seed, same result.

    With ``config.shard = (k, m)``, m > 1, only images i with i % m == k are classified (rows through
    ``on_row``) and the result is ``{"shard": (k, m), "rows": {i: row}}``, no summary: m such runs, one
    per core, print rows that one run with all their logs as ``done_rows`` then summarises.
    """
    task = TASKS[domain]
    attribute = domains.get(domain).presets[task].attribute
    model = model or load_model(f"{domain}-phantom", device="cpu")
    labels, prompts = preset(domain, task)
    size = model.image_size
    first_seed, images, truth = labelled_phantoms(domain, config.n, size, FIRST_SEED_OFFSET, attribute)
    settings = calibrated_settings(model, task) if config.calibrated else {"trials": DEFAULT_TRIALS}
    settings["trials"] = config.trials or settings["trials"]
    engine = ExplainConfig(prompts=prompts, labels=labels, early_stop=config.early_stop,
                           trials_per_batch=config.trials_per_batch, seed=config.seed, domain_check=False,
                           **settings)

    def row(i: int, image: np.ndarray, label: bool) -> dict:
        result = classify(model, image.astype(np.float32) / 255.0, engine)
        mask = toggled_region(domain, first_seed + i, attribute, size)
        scorable = 0 < mask.sum() < mask.size
        auc = roc_auc(mask.ravel(), result.explanation_map.ravel()) if scorable else float("nan")
        evidence_auc = roc_auc(mask.ravel(), result.evidence_map.ravel()) if scorable else float("nan")
        # "vote" and "mean_error" are the two rules' answers (is it the first class?), whichever the card picks.
        return {"truth": bool(label), "vote": result.predicted_vote == 0,
                "mean_error": result.predicted_mean_error == 0,
                "z": abs(result.z_score), "entropy": result.vote_entropy, "trials": result.trials_run,
                "passes": result.unet_passes, "seconds": result.seconds, "explanation_auc": auc,
                "evidence_auc": evidence_auc, "vote_fraction_positive": float(result.vote_fractions[0])}

    by_index = _rows(images, truth, row, config.shard, done_rows, on_row, progress)
    rule = engine.decision                     # "vote" or "mean_error": also the row's key for that rule's answer
    reference = replace(engine, trials=config.reference_trials, early_stop=config.reference_early_stop,
                        trials_per_batch=32)
    _add_reference_runs(model, images, by_index, (engine, reference), config, on_row)
    if config.shard[1] > 1:
        return {"shard": config.shard, "rows": by_index}
    rows = [by_index[i] for i in range(len(images))]
    cases = _figure_cases(model, images, rows, truth, engine)
    cnn = model.oracle.readout(images)[:, model.oracle.attributes.index(attribute)] > 0.5
    correct = np.array([r[rule] == r["truth"] for r in rows])
    certainty = np.array([r["z"] for r in rows])
    top = np.argsort(-certainty, kind="stable")[: max(1, len(rows) // 2)]
    cost = _cost(rows, rule, reference, config) if any("reference" in r for r in rows) else None
    wallclock = _wallclock(model, images, engine, config.n_wallclock) if config.n_wallclock else None
    return {
        "domain": domain, "task": task, "n": config.n, "labels": list(labels), "trials": engine.trials,
        "early_stop": config.early_stop,
        "vote_threshold": engine.vote_threshold, "t_range": list(engine.t_range), "weighting": engine.weighting,
        "decision": engine.decision,
        "accuracy": float(correct.mean()),                           # under the card's rule: one of the next two
        "accuracy_vote": float(np.mean([r["vote"] == r["truth"] for r in rows])),
        "accuracy_mean_error": float(np.mean([r["mean_error"] == r["truth"] for r in rows])),
        "accuracy_cnn": float((cnn == truth).mean()),
        "accuracy_most_certain_half": float(correct[top].mean()),
        # Threshold-free: how well the positive class's vote share ranks the cases.
        "vote_auc": roc_auc(truth, np.array([r["vote_fraction_positive"] for r in rows])),
        "explanation_auc_mean": float(np.nanmean([r["explanation_auc"] for r in rows])),
        "explanation_auc_median": float(np.nanmedian([r["explanation_auc"] for r in rows])),
        # The signed error-difference map (the engine's evidence map), scored the same way.
        "evidence_auc_mean": float(np.nanmean([r.get("evidence_auc", np.nan) for r in rows])),
        "mean_trials": float(np.mean([r["trials"] for r in rows])),
        "mean_passes": float(np.mean([r["passes"] for r in rows])),
        "mean_seconds": float(np.mean([r["seconds"] for r in rows])),
        "cost": cost, "wallclock": wallclock, "cases": cases,
    }




def _rows(images, truth, row, shard: tuple[int, int], done_rows, on_row, progress) -> dict[int, dict]:
    """``row(i, image, label)`` for every image of the shard (i % m == k) that ``done_rows`` lacks.

    Rows from ``done_rows`` (an earlier run's printout) are kept as they are, after checking that they
    belong to these phantoms.
    """
    k, m = shard
    if not 0 <= k < m:
        raise ValueError(f"bad shard {k}/{m}: need 0 <= k < m")
    by_index: dict[int, dict] = {}
    for i, (image, label) in enumerate(zip(images, truth)):
        if done_rows and i in done_rows:
            if done_rows[i]["truth"] != bool(label):
                raise ValueError(f"the resumed row {i} says truth={done_rows[i]['truth']}, the phantom says "
                                 f"{bool(label)}: that log is from another run")
            by_index[i] = done_rows[i]
        elif i % m == k:
            by_index[i] = row(i, image, bool(label))
            if on_row:
                on_row(i, by_index[i])
        if progress:
            progress(i + 1, len(images))
    if m == 1 and len(by_index) < len(images):
        raise ValueError("rows are missing")
    return by_index


def read_rows(path: str, domain: str) -> dict[int, dict]:
    """Rows that ``python -m medviz.bench classify`` printed (``<domain> <i>: <json>``) for ``--resume``."""
    pattern = re.compile(rf"^{re.escape(domain)} (\d+): (\{{.*\}})$")
    with open(path, encoding="utf-8") as lines:
        matches = [pattern.match(line.strip()) for line in lines]
    return {int(m.group(1)): json.loads(m.group(2)) for m in matches if m}


def with_reference_runs(rows: dict[int, dict], earlier: dict[int, dict]) -> dict[int, dict]:
    """``rows`` with the N = ``reference_trials`` runs of ``earlier`` rows added where a row has none.

    Only the "reference" part is taken: it is the run at N = 501 with the card's prompts, window,
    weighting, threshold and seed, so it does not depend on the engine's N. The "beside_loop" part (the
    reference loop at the engine's N) does, so it is left behind; ``run_task`` redoes it where it needs it
    (the first ``n_cost`` images). The earlier rows must come from the same card apart from its N (the
    caller's word; a truth that differs says they come from other phantoms and raises).
    """
    merged = dict(rows)
    for i, old in earlier.items():
        if "reference" not in old or i not in merged or "reference" in merged[i]:
            continue
        if old["truth"] != merged[i]["truth"]:
            raise ValueError(f"row {i} of the reference log says truth={old['truth']}, this run's says "
                             f"{merged[i]['truth']}: that log is from other phantoms")
        merged[i] = {**merged[i], "reference": old["reference"]}
    return merged


def _engine_beside_reference_loop(model, pixels: np.ndarray, engine):
    """One image through the engine, then through the reference loop at the same N and draws (no early stop).

    Returns (the engine's ``ExplainResult``, (loop winner, loop UNet passes, loop seconds)).
    """
    return classify(model, pixels, engine), classify_reference(model, pixels, replace(engine, early_stop=False))


def _reference_fields(model, pixels: np.ndarray, engine, reference) -> dict:
    """One image's cost runs: N = ``reference.trials``, then the engine beside the reference loop (same N, draws).

    Both rules' answers of the N run are kept ("vote" is exact with or without its early stop; "mean_error"
    is over ``trials_run``).
    """
    full = classify(model, pixels, reference)
    mine, (winner, passes, seconds) = _engine_beside_reference_loop(model, pixels, engine)
    return {"reference": {"trials": reference.trials, "early_stop": reference.early_stop, "trials_run": full.trials_run,
                          "vote": full.predicted_vote == 0, "mean_error": full.predicted_mean_error == 0,
                          # The first class's votes: the papers' plain majority of N, beside the card's threshold.
                          "votes_first_class": int(round(full.vote_fractions[0] * full.trials_run)),
                          "passes": full.unet_passes, "seconds": full.seconds},
            "beside_loop": {"engine": mine.predicted == 0, "engine_passes": mine.unet_passes,
                            "engine_seconds": mine.seconds, "loop_vote": winner == 0, "loop_passes": passes,
                            "loop_seconds": seconds}}


def _has_reference(row: dict, reference) -> bool:
    """Whether ``row`` already holds a run that answers ``reference`` (a run of all N answers an early-stopped one)."""
    done = row.get("reference")
    return (bool(done) and done["trials"] == reference.trials and (not done["early_stop"] or reference.early_stop)
            and "votes_first_class" in done)                              # older rows lack the vote count: redone


def _cost(rows: list[dict], rule: str, reference, config: ClassifyBenchConfig) -> dict:
    """N = ``reference.trials`` against the engine, from the rows that hold a reference run.

    ``rule`` is the card's decision rule, the one both are scored by. The exact comparison is on the first
    ``n_cost`` images. Over all rows, N's accuracy lies between its right answers where it ran (counting
    every other image wrong) and that plus every image it did not run (counting them right); when it ran on
    every image the engine got wrong, the upper end bounds how far the engine can be behind it.
    """
    first = [r for r in rows[: config.n_cost] if "reference" in r]
    ran = [r for r in rows if "reference" in r]
    engine_right = np.array([r[rule] == r["truth"] for r in rows])
    out = {"n": len(first), "reference_trials": reference.trials, "rule": rule,
           "reference_early_stop": bool(ran) and any(r["reference"]["early_stop"] for r in ran),
           # The papers' loop runs every trial of every class: N x prompts passes per image.
           "passes_reference_trials": float(reference.trials * sum(len(group) for group in reference.prompt_sets)),
           "passes_engine": float(np.mean([r["passes"] for r in rows])),            # over all n images
           "n_ran": len(ran), "n_all": len(rows)}
    out["passes_saving"] = out["passes_reference_trials"] / out["passes_engine"]
    if first:
        out.update({
            "accuracy_reference_trials": float(np.mean([r["reference"][rule] == r["truth"] for r in first])),
            "accuracy_reference_vote": float(np.mean([r["reference"]["vote"] == r["truth"] for r in first])),
            "accuracy_engine": float(np.mean([r[rule] == r["truth"] for r in first])),
            "accuracy_reference_loop": float(np.mean([r["beside_loop"]["loop_vote"] == r["truth"] for r in first])),
            "passes_reference_loop": float(np.mean([r["beside_loop"]["loop_passes"] for r in first])),
            "seconds_engine": float(np.sum([r["beside_loop"]["engine_seconds"] for r in first])),
            "seconds_reference_loop": float(np.sum([r["beside_loop"]["loop_seconds"] for r in first])),
            "mean_trials_run_reference": float(np.mean([r["reference"]["trials_run"] for r in first])),
        })
        out["speedup_vs_reference_loop"] = out["seconds_reference_loop"] / out["seconds_engine"]
    def at_most(right_where_ran: int) -> float:
        """N's accuracy on all rows if it is right on every row it did not run."""
        return (right_where_ran + len(rows) - len(ran)) / len(rows)

    right = sum(r["reference"][rule] == r["truth"] for r in ran)
    if ran and all("votes_first_class" in r["reference"] for r in ran) and not out["reference_early_stop"]:
        # The papers' rule, the plain majority of N (an early-stopped run may have stopped at another threshold).
        majority = sum((r["reference"]["votes_first_class"] > reference.trials // 2) == r["truth"] for r in ran)
        out["accuracy_reference_majority_all_at_most"] = at_most(majority)
    out.update({"accuracy_engine_all": float(engine_right.mean()),
                "accuracy_reference_all_at_least": right / len(rows),
                "accuracy_reference_all_at_most": at_most(right),
                # With every engine error run, N = 501 is assumed right only where the engine is right.
                "ran_every_engine_error": all("reference" in r for r, ok in zip(rows, engine_right) if not ok)})
    out["points_behind_at_most"] = 100 * (out["accuracy_reference_all_at_most"] - out["accuracy_engine_all"])
    # The same bound with both scored by the other rule (each run keeps both rules' answers): whichever rule a
    # card picks, how far it can be behind N under the rule it did not pick is read off the same rows.
    other = "mean_error" if rule == "vote" else "vote"
    engine_other = float(np.mean([r[other] == r["truth"] for r in rows]))
    reference_other = at_most(sum(r["reference"][other] == r["truth"] for r in ran))
    out["other_rule"] = {"rule": other, "accuracy_engine_all": engine_other,
                         "accuracy_reference_all_at_most": reference_other,
                         "points_behind_at_most": 100 * (reference_other - engine_other)}
    return out


def _wallclock(model, images, engine, count: int) -> dict:
    """Engine vs reference loop (same N, same draws), timed side by side on ``count`` evenly spread images."""
    picked = np.unique(np.linspace(0, len(images) - 1, min(count, len(images))).round().astype(int))
    engine_seconds, loop_seconds, trials, agree = [], [], [], []
    for i in picked:
        pixels = images[i].astype(np.float32) / 255.0
        mine, (winner, _, seconds) = _engine_beside_reference_loop(model, pixels, engine)
        engine_seconds.append(mine.seconds)
        loop_seconds.append(seconds)
        trials.append(mine.trials_run)
        agree.append(winner == mine.predicted_vote)     # an exact early stop never changes the vote
    return {"n": len(picked), "images": picked.tolist(), "seconds_engine": float(np.sum(engine_seconds)),
            "seconds_reference_loop": float(np.sum(loop_seconds)), "mean_trials_engine": float(np.mean(trials)),
            "decisions_agree": float(np.mean(agree)),
            "speedup_vs_reference_loop": float(np.sum(loop_seconds) / np.sum(engine_seconds))}


def print_table(results: list[dict]) -> None:
    print("\nclassify bench (diffusion classifier; accuracy of an attribute readout task on held-out phantoms)")
    print(
        f"{'task':<18}{'n':>5}{'N':>5}{'thr':>6}{'rule':>11}{'accuracy':>10}{'vote acc':>10}{'mean-err':>10}{'CNN':>8}"
        f"{'top-50%':>9}{'vote AUC':>10}{'expl AUC':>10}{'evid AUC':>10}{'trials':>8}{'s/img':>7}"
    )
    for r in results:
        print(
            f"{r['task']:<18}{r['n']:>5}{r['trials']:>5}{r.get('vote_threshold', 0.5):>6.3f}{r['decision']:>11}"
            f"{r['accuracy']:>10.1%}{r['accuracy_vote']:>10.1%}{r['accuracy_mean_error']:>10.1%}"
            f"{r['accuracy_cnn']:>8.1%}{r['accuracy_most_certain_half']:>9.1%}{r['vote_auc']:>10.3f}{r['explanation_auc_mean']:>10.3f}"
            f"{r['evidence_auc_mean']:>10.3f}{r['mean_trials']:>8.1f}{r['mean_seconds']:>7.2f}"
        )
    for r in results:
        c = r["cost"]
        if c is None:
            print(f"{r['task']} cost: not run (--n-cost 0)")
            continue
        n_big = f"N={c['reference_trials']}"
        stop = " (stopped once its vote was decided)" if c["reference_early_stop"] else ""
        if "accuracy_reference_trials" in c:
            print(
                f"{r['task']} cost on the first {c['n']} images: {n_big}{stop} acc "
                f"{c['accuracy_reference_trials']:.1%} ({c['rule']}; vote {c['accuracy_reference_vote']:.1%}) with "
                f"{c['passes_reference_trials']:.0f} passes/img; "
                f"engine acc {c['accuracy_engine']:.1%}; reference loop {c['seconds_reference_loop']:.1f} s vs engine "
                f"{c['seconds_engine']:.1f} s ({c['speedup_vs_reference_loop']:.2f}x)"
            )
        print(
            f"{r['task']} on all {c['n_all']} images: engine acc {c['accuracy_engine_all']:.2%} with "
            f"{c['passes_engine']:.1f} passes/img ({c['passes_saving']:.1f}x fewer than {n_big}'s "
            f"{c['passes_reference_trials']:.0f}); {n_big} ran on {c['n_ran']}"
            + (", every image the engine got wrong among them" if c["ran_every_engine_error"] else "")
            + f": its acc on all {c['n_all']} is {c['accuracy_reference_all_at_least']:.2%}-"
            f"{c['accuracy_reference_all_at_most']:.2%} ({c['rule']}), so the engine is at most "
            f"{c['points_behind_at_most']:.2f} points behind it"
            + (
                f"; by the papers' plain majority of {c['reference_trials']} at most "
                f"{c['accuracy_reference_majority_all_at_most']:.2%}"
                if "accuracy_reference_majority_all_at_most" in c
                else ""
            )
        )
        o = c.get("other_rule")
        if o:
            print(
                f"{r['task']} both scored by the other rule ({o['rule']}): engine acc {o['accuracy_engine_all']:.2%}, "
                f"{n_big}'s at most {o['accuracy_reference_all_at_most']:.2%}, so the engine is at most "
                f"{o['points_behind_at_most']:.2f} points behind it"
            )
    for r in results:
        w = r.get("wallclock")
        if w:
            print(f"{r['task']} wall-clock on {w['n']} images spread over all {r['n']}: reference loop "
                  f"{w['seconds_reference_loop']:.1f} s vs engine {w['seconds_engine']:.1f} s "
                  f"({w['speedup_vs_reference_loop']:.2f}x; engine {w['mean_trials_engine']:.1f} trials of "
                  f"{r['trials']} on average; same decision in {w['decisions_agree']:.0%})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=400, help="held-out phantoms per task")
    parser.add_argument("--trials", type=int, default=None,
                        help="trials N per image (odd; default: the model card's N, at the card's share of the votes)")
    parser.add_argument("--trials-per-batch", type=int, default=16, help="most trials per round (the engine's default)")
    parser.add_argument("--n-cost", type=int, default=24, help="images for the N=501 / reference-loop cost runs")
    parser.add_argument("--n-wallclock", type=int, default=0,
                        help="also time the engine against the reference loop on this many images spread evenly over "
                             "the set (the first --n-cost ones need not be typical)")
    parser.add_argument("--reference-trials", type=int, default=501, help="N of the cost comparison")
    parser.add_argument("--reference-on-errors", action="store_true",
                        help="run N=501 also on every image the engine gets wrong (bounds N=501's accuracy from above)")
    parser.add_argument("--reference-uncertain", type=int, default=0, metavar="K",
                        help="run N=501 also on the K images the engine is least sure of (smallest |z|)")
    parser.add_argument("--reference-from", default=None, nargs="+", metavar="LOG",
                        help="logs of a run with the same card apart from its N: their N=501 runs are taken for images "
                             "this run's rows lack one for, not rerun")
    parser.add_argument("--reference-early-stop", action="store_true",
                        help="stop N=501 once its vote is decided (exact for the vote; about half the cost)")
    parser.add_argument("--resume", default=None, nargs="+", metavar="LOG",
                        help="logs of earlier runs (or of --shard runs): their printed rows are kept, not recomputed")
    parser.add_argument("--shard", type=shard, default=(0, 1), metavar="K/M",
                        help="only images i with i %% M == K, rows only (run M of these, one per core, then once more "
                             "with all their logs as --resume for the summary)")
    parser.add_argument("--figure-dir", default=None, metavar="DIR", help="write explain_<domain>.png here")
    add_model_option(parser)
    parser.add_argument("--write-card", action="store_true",
                        help="make this run's --trials the engine's N for the task (at the card's share of the votes), "
                             "this run's figures kept beside the fit as the reason")
    add_common(parser)


def main(args: argparse.Namespace, command: str) -> int:
    config = ClassifyBenchConfig(n=args.n, trials=args.trials, n_cost=args.n_cost, n_wallclock=args.n_wallclock,
                                 trials_per_batch=args.trials_per_batch, reference_trials=args.reference_trials,
                                 reference_on_errors=args.reference_on_errors,
                                 reference_uncertain=args.reference_uncertain,
                                 reference_early_stop=args.reference_early_stop, shard=args.shard)
    results = []
    for domain in chosen_domains(args):
        done = {i: row for log in args.resume or () for i, row in read_rows(log, domain).items()}
        if args.reference_from:
            done = with_reference_runs(
                done, {i: row for log in args.reference_from for i, row in read_rows(log, domain).items()}
            )
        def on_row(i, row, domain=domain):
            print(f"{domain} {i}: {json.dumps(row)}", flush=True)

        result = run_task(domain, config, model=chosen_model(args, domain), done_rows=done, on_row=on_row)
        if "shard" in result:
            print(f"{domain} shard {args.shard[0]}/{args.shard[1]} done: {len(result['rows'])} rows; summarise with "
                  "--resume and every shard's log", flush=True)
            continue
        print(f"done: {json.dumps({k: v for k, v in result.items() if k != 'cases'})}", flush=True)
        if args.figure_dir:
            save_explain_figure(result["cases"], str(Path(args.figure_dir) / f"explain_{domain}.png"),
                                title=f"{args.model or domain + '-phantom'} diffusion classifier: {result['task']} "
                                      f"(N={result['trials']}"
                                      + operating_point(result) + ")")
        results.append({k: v for k, v in result.items() if k != "cases"})
        if args.write_card:
            record_engine_trials(model_folder(args, domain), result, command)
            print(f"written to the {model_folder(args, domain).name} model card: the engine runs N={result['trials']} "
                  f"for {result['task']}")
    if not results:  # shard runs: rows only
        return 0
    print_table(results)
    return write_json(args.json, results)


def operating_point(result: dict) -> str:
    """', first class needs k of N votes, t lo-hi' for a figure title (and the decision rule when it is the
    mean-error rule); empty for the plain majority."""
    text = ""
    if result["vote_threshold"] != 0.5:
        text += (f", {result['labels'][0]} needs {votes_needed(result['trials'], result['vote_threshold'])} of "
                 f"{result['trials']} votes")
    if result.get("decision") == "mean_error":     # the vote above then sets only when the trials stop
        text = ", mean-error rule; trials stop once the vote is decided" + (f" ({text[2:]})" if text else "")
    if tuple(result["t_range"]) != DEFAULT_T_RANGE:
        text += f", t {result['t_range'][0]}–{result['t_range'][1]}"
    return text


def classify_reference(model, image: np.ndarray, config: ExplainConfig) -> tuple[int, int, float]:
    """The reference loop of the papers' code: classes one at a time, one trial per UNet call, all N trials, for the
    cost comparison (the engine batches trials and classes and stops early).

    Same timesteps and noise as ``classify``. Returns (vote winner, UNet passes, seconds).
    """
    import torch

    config.validate()
    pipe = model.pipe
    tic = time.perf_counter()
    device, dtype = pipe._execution_device, pipe.unet.dtype
    latent = encode_image(pipe, image, model.image_size).to(dtype)
    timesteps, all_noise = trial_draws(config, latent.shape[1:])
    embeddings = [encode_prompts(pipe, [p]).to(dtype) for group in config.prompt_sets for p in group]  # once
    votes = np.zeros(len(config.prompt_sets), np.int64)
    passes = 0
    for t_value, noise in zip(timesteps, all_noise.to(device=device, dtype=dtype)):   # the engine's draws
        t = torch.as_tensor([t_value], device=device)
        noisy = forward_noise(pipe.scheduler.alphas_cumprod, latent, noise[None], t)
        predictions = []
        for embeds in embeddings:                                                    # one prompt per UNet call
            with torch.no_grad():
                predictions.append(pipe.unet(noisy, t, encoder_hidden_states=embeds).sample.float().cpu())
            passes += 1
        trial_errors, _, _ = trial_class_errors(torch.stack(predictions, 1), noise[None].float().cpu(),
                                                config.prompt_sets, config.weighting)
        votes[int(trial_errors[0].argmin())] += 1
    winner = (
        (0 if first_class_wins(votes, config.trials, config.vote_threshold) else 1)
        if len(votes) == 2
        else int(np.argmax(votes))
    )
    return winner, passes, time.perf_counter() - tic
