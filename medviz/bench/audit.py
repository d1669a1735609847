"""Audit bench: does the audit engine's counterfactual reliance tell the truth? Classifiers at planted link
strengths 0, 0.3, 0.6 and 0.9 (ERM, several seeds) and Group DRO at 0.9, each audited on the same held-out phantoms
drawn without the link; per classifier: worst-group and mean accuracy on a balanced test set, reliance estimated
by the engine (our edits) and true (the SCM's counterfactuals), SCLS, flagged or not; then the Spearman correlation
between estimated and true reliance across the classifiers.

    python -m medviz.bench audit --domain cxr --threads 1 --json assets/bench/audit_cxr.json [--write-card]

Classifiers are trained into ``--classifiers-dir`` (``{domain}-{method}-{strength}-s{seed}``) unless already
there; the counterfactuals (classifier-independent) are computed once and kept in ``--cache``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pickle
from pathlib import Path

import numpy as np

from .. import domains
from ..classifiers import CARD, CLASSIFIERS_DIR, load_classifier
from ..engines.audit import (SHORTCUT, UNITS, AuditConfig, Counterfactuals, edit_faithfulness, make_counterfactuals,
                             phantom_images, report, score_audit, used)
from ..models import load_model, read_model_card, resolve
from ..progress import printed_progress
from ..train.classifier import ClassifierConfig, train_classifier
from ..train.oracle import HELD_OUT_FIRST_SEED
from .cards import write_classifier_card
from .cli import add_common, add_model_option, check_one_domain, run_per_domain

AUDIT_OFFSET = 960_000          # the audit phantoms: HELD_OUT_FIRST_SEED + this (apart from the test sets')
#: The bundled classifiers (``assets/models``) and the bench run whose audit goes into their cards.
BUNDLED = {"cxr": {"cxr-effusion-erm": ("erm", 0.9, 0), "cxr-effusion-groupdro": ("groupdro", 0.9, 0)},
           "skin": {"skin-melanoma-erm": ("erm", 0.9, 0), "skin-melanoma-groupdro": ("groupdro", 0.9, 0)}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--n-images", type=int, default=200, help="held-out phantoms audited (default 200)")
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.0, 0.3, 0.6, 0.9])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per classifier setting (default 3)")
    parser.add_argument("--classifiers-dir", default="runs/audit_classifiers")
    parser.add_argument("--cache", default="runs/audit_counterfactuals", help="folder of the counterfactual caches")
    parser.add_argument("--figure-dir", default=None, help="write audit_<domain>.png here (assets/examples)")
    add_model_option(parser)
    parser.add_argument("--write-card", action="store_true",
                        help="store the bundled classifiers' audits in their cards (medviz_classifier.json)")


def classifier_runs(domain: str, strengths, seeds: int) -> list[tuple[str, float, int]]:
    """(method, strength, seed) of every classifier the bench audits."""
    runs = [("erm", s, seed) for s in strengths for seed in range(seeds)]
    return runs + [("groupdro", max(strengths), seed) for seed in range(seeds)]


def trained(folder: Path, domain: str, method: str, strength: float, seed: int, command: str) -> Path:
    """The classifier's folder, trained with the trainer's defaults unless already there."""
    out = folder / f"{domain}-{method}-{strength}-s{seed}"
    if not (out / CARD).is_file():
        _, target, spurious = domains.get(domain).planted_link
        train_classifier(ClassifierConfig(domain=domain, out=str(out), target=target, spurious=spurious,
                                          strength=strength, method=method, seed=seed, workers=1), command=command)
    return out


def counterfactuals(domain: str, n: int, cache: Path, model_dir: str | None = None):
    """Stage 1 of the audit on ``n`` link-free phantoms (P(spurious) = 0.5, so half are removals), cached; the
    edits of ``model_dir`` (a candidate pipeline; default: the bundled one), cached under its weights' digest."""
    _, target, spurious = domains.get(domain).planted_link
    config = AuditConfig(spurious=spurious, target=target)
    path = cache / (f"{domain}-{n}.pkl" if model_dir is None else f"{domain}-{weights_digest(model_dir)}-{n}.pkl")
    name = model_dir or f"{domain}-phantom"
    if path.is_file():            # the card's faithfulness figures are read afresh: the cache holds the edits only
        made = pickle.loads(path.read_bytes())
        faithfulness = edit_faithfulness(read_model_card(name), (spurious, target), config.edit)
        return config, Counterfactuals(**{**vars(made), "faithfulness": faithfulness})
    model = load_model(name)
    if model.domain != domain:
        raise SystemExit(f"--model {model_dir} is a {model.domain} pipeline, not {domain}")
    images = phantom_images(domain, n, HELD_OUT_FIRST_SEED + AUDIT_OFFSET, attributes=(spurious, target),
                            size=model.image_size)
    made = make_counterfactuals(model, images, config, progress=printed_progress("  edits", every=20))
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(made))
    return config, made


def weights_digest(model_dir: str) -> str:
    """12 hex digits of the SHA-1 of a pipeline's UNet and VAE weights: a candidate folder rewritten in place (a
    training snapshot) is another model, and its cached edits are not reused."""
    import hashlib

    digest = hashlib.sha1()
    for part in ("unet", "vae"):
        for weights in sorted((resolve(model_dir) / part).glob("*.safetensors")):
            with open(weights, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 24), b""):
                    digest.update(block)
    return digest.hexdigest()[:12]


def spearman(x, y) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def run_domain(domain: str, args: argparse.Namespace, command: str) -> dict:
    folder = Path(args.classifiers_dir)
    rows = [(m, s, seed, trained(folder, domain, m, s, seed, command)) for m, s, seed in
            classifier_runs(domain, args.strengths, args.seeds)]
    config, made = counterfactuals(domain, args.n_images, Path(args.cache), args.model)
    classifiers = []
    loaded = {path: load_classifier(path) for _, _, _, path in rows}
    for method, strength, seed, path in rows:
        card = loaded[path].card
        record = report(score_audit(loaded[path], made, config))
        classifiers.append(
            {
                "name": path.name,
                "method": method,
                "strength": strength,
                "seed": seed,
                "worst_group_accuracy": card["balanced_test"]["worst_group_accuracy"],
                "mean_accuracy": card["balanced_test"]["mean_accuracy"],
                "reliance": record["reliance"],
                "true_reliance": record["truth"]["reliance"],
                "true_reliance_same_images": record["truth"]["reliance_same_images"],
                "reliance_every_switch": record["reliance_every_switch"],
                "error": round(record["reliance"]["mean"] - record["truth"]["reliance"]["mean"], 4),
                "target_effect": record["target_effect"]["mean"],
                "true_target_effect": record["truth"]["target_effect"]["mean"],
                "scls": record["scls"],
                "true_scls": record["truth"]["scls"]["mean"],
                "flagged": record["flagged"],
                "audit": record,
            }
        )
    estimated = [c["reliance"]["mean"] for c in classifiers]
    true = [c["true_reliance"]["mean"] for c in classifiers]
    shortcut = [c for c in classifiers if c["true_reliance"]["mean"] >= SHORTCUT]
    clear = [c for c in classifiers if c["true_reliance"]["mean"] < SHORTCUT / 2]
    erm_worst = {s: float(np.mean([c["worst_group_accuracy"] for c in classifiers
                                   if c["method"] == "erm" and c["strength"] == s])) for s in args.strengths}
    dro = [c["worst_group_accuracy"] for c in classifiers if c["method"] == "groupdro"]
    n_images = len(made.images) + len(made.excluded)
    if args.figure_dir:
        strongest = next(path for m, s, seed, path in rows if m == "erm" and s == max(args.strengths) and seed == 0)
        write_figure(made, loaded[strongest], classifiers, Path(args.figure_dir) / f"audit_{domain}.png")
    return {
        "domain": domain, "units": UNITS, "n_images": n_images, "excluded": classifiers[0]["audit"]["excluded"],
        "edit_faithfulness": dict(made.faithfulness), "flag_rule": f"estimated reliance >= {config.flag_at}",
        "spearman": round(spearman(estimated, true), 4),
        "max_abs_error": round(max(abs(c["error"]) for c in classifiers), 4),
        "flag_at": config.flag_at, "shortcut_threshold": SHORTCUT,
        "flagged_with_shortcut": f"{sum(c['flagged'] for c in shortcut)} / {len(shortcut)}",
        "flagged_below_half": f"{sum(c['flagged'] for c in clear)} / {len(clear)}",
        "erm_worst_by_strength": erm_worst, "groupdro_worst": float(np.mean(dro)),
        "groupdro_gain_points": round(100 * (float(np.mean(dro)) - erm_worst[max(args.strengths)]), 1),
        "unet_passes_per_image": round(made.unet_passes / n_images, 1),
        "counterfactual_seconds_per_image": round(made.seconds / n_images, 2),
        "classifiers": classifiers}


def write_figure(made, classifier, classifiers: list[dict], path: Path, examples: int = 4) -> None:
    """Left: images whose spurious edit switched, beside our counterfactual and the SCM's true one, with the
    strongest-link ERM classifier's score on each. Right: estimated against true reliance of every classifier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spurious = made.spurious
    usable = [item for item in made.images if used(item.switches[spurious], made.faithfulness)]
    chosen = usable[:examples] or made.images[:examples]
    figure = plt.figure(figsize=(12, 2.4 * len(chosen)))
    grid = figure.add_gridspec(len(chosen), 4, width_ratios=[1, 1, 1, 2.2])
    for row, item in enumerate(chosen):
        switch = item.switches[spurious]
        on, off = item.truth[spurious]
        true = off if switch.action == "remove" else on
        scores = classifier.score([item.input, switch.image, true])
        for column, (image, title) in enumerate(
            (
                (item.input, "input"),
                (switch.image, f"ours: {switch.action} {spurious}" + ("" if switch.passed else " (did not switch)")),
                (true, "true counterfactual"),
            )
        ):
            axis = figure.add_subplot(grid[row, column])
            axis.imshow(np.clip(image, 0, 1), cmap="gray")
            axis.set_title(f"{title}\nP({classifier.label}) {scores[column]:.2f}", fontsize=8)
            axis.axis("off")
    axis = figure.add_subplot(grid[:, 3])
    true = np.array([c["true_reliance"]["mean"] for c in classifiers])
    estimated = np.array([c["reliance"]["mean"] for c in classifiers])
    low, high = min(true.min(), estimated.min()) - 0.05, max(true.max(), estimated.max()) + 0.05
    axis.fill_between([low, high], [low - 0.1, high - 0.1], [low + 0.1, high + 0.1], color="0.9", label="within 0.1")
    axis.plot([low, high], [low, high], "k--", lw=0.8)
    for method, marker in (("erm", "o"), ("groupdro", "s")):
        mine = [c for c in classifiers if c["method"] == method]
        axis.errorbar([c["true_reliance"]["mean"] for c in mine], [c["reliance"]["mean"] for c in mine],
                      yerr=[[c["reliance"]["mean"] - c["reliance"]["low"] for c in mine],
                            [c["reliance"]["high"] - c["reliance"]["mean"] for c in mine]],
                      fmt=marker, capsize=2, label="ERM" if method == "erm" else "Group DRO")
        for c in mine:
            axis.annotate(f"{c['strength']:g}", (c["true_reliance"]["mean"], c["reliance"]["mean"]), fontsize=7,
                          xytext=(4, -8), textcoords="offset points")
    axis.set_xlabel(f"true reliance on {spurious} (SCM)")
    axis.set_ylabel("estimated reliance (our counterfactuals)")
    axis.set_title(
        f"{len(classifiers)} classifiers (labels: link strength); Spearman {spearman(estimated, true):.2f}", fontsize=9
    )
    axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_cards(domain: str, result: dict, command: str) -> None:
    """Each bundled classifier's card gets the audit of the bench classifier it was copied from."""
    by_run = {(c["method"], c["strength"], c["seed"]): c for c in result["classifiers"]}
    for name, run in BUNDLED[domain].items():
        card_path = CLASSIFIERS_DIR / name / CARD
        if not card_path.is_file() or run not in by_run:
            continue
        card = json.loads(card_path.read_text())
        entry = by_run[run]
        card["audit"] = {
            "date": datetime.date.today().isoformat(),
            "command": command,
            "units": UNITS,
            "n_images": result["n_images"],
            "reliance": entry["reliance"],
            "true_reliance": entry["true_reliance"],
            "scls": entry["scls"],
            "true_scls": entry["true_scls"],
            "target_effect": entry["target_effect"],
            "flagged": entry["flagged"],
            "bench_spearman": result["spearman"],
        }
        card_path.write_text(json.dumps(card, indent=2))
        write_classifier_card(card_path.parent)


def print_table(result: dict) -> None:
    print(f"\n{result['domain']}: {result['n_images']} link-free phantoms; reliance in {result['units']}")
    print(f"{'classifier':28} {'worst':>6} {'mean':>6} {'estimate [95% CI]':>24} {'true':>7} {'err':>7} "
          f"{'SCLS':>6} {'true':>6} flag")
    for c in result["classifiers"]:
        r = c["reliance"]
        print(f"{c['name']:28} {c['worst_group_accuracy']:6.3f} {c['mean_accuracy']:6.3f} "
              f"{r['mean']:+7.3f} [{r['low']:+.3f}, {r['high']:+.3f}] {c['true_reliance']['mean']:+7.3f} "
              f"{c['error']:+7.3f} {c['scls']['mean']:6.3f} {c['true_scls']:6.3f} {'yes' if c['flagged'] else 'no'}")
    print(f"left out: {result['excluded']}")
    print(
        f"spearman {result['spearman']}  max |error| {result['max_abs_error']}  flagged with true >= "
        f"{result['shortcut_threshold']}: {result['flagged_with_shortcut']}  below half: {result['flagged_below_half']}"
    )
    print(
        f"ERM worst group by strength {result['erm_worst_by_strength']}  Group DRO {result['groupdro_worst']:.3f} "
        f"({result['groupdro_gain_points']:+.1f} points)  UNet passes / image {result['unet_passes_per_image']}  "
        f"counterfactuals {result['counterfactual_seconds_per_image']} s / image"
    )


def main(args: argparse.Namespace, command: str) -> int:
    if args.model and args.write_card:
        raise SystemExit("--write-card stores the bundled model's audits in the bundled classifiers' cards: drop "
                         "--model (a candidate is audited, not carded)")
    check_one_domain(args)
    return run_per_domain(args, command, run_domain, print_table, write_cards)
