"""Debias bench: does counterfactual augmentation fix a shortcut? Classifiers trained at a strong planted link (0.9),
by ERM, by Group DRO, and by ERM / Group DRO with extra training rows for the under-represented groups: our
counterfactuals (``medviz.augment``'s default plan on the training phantoms), the SCM's true counterfactuals of the
same rows and edits (the upper bound), or text-to-image samples of those groups (as RL4Med-DDPO augments). Each is
judged on the balanced link-free test set (mean and worst-group accuracy) and audited (reliance, SCLS) on the audit
bench's link-free phantoms, over several seeds.

    python -m medviz.bench debias --domain cxr --threads 1 --json assets/bench/debias_cxr.json [--write-card]

The augmentation sets are made once under ``--work`` (our counterfactuals by ``python -m medviz.augment``, resumable;
run it under ``accelerate launch`` first to share the edits among processes) and reused.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from .. import domains
from ..augment.run import AugmentConfig, augment, phantom_source
from ..classifiers import CARD, CLASSIFIERS_DIR, load_classifier
from ..data import ISIC_ID_COLUMNS, read_rows
from ..engines.audit import UNITS, report, score_audit
from ..engines.generate import GenerateConfig, generate
from ..io import write_png
from ..models import load_model
from ..phantoms import get_domain
from ..phantoms.effects import link_parameters, true_switch
from ..progress import printed_progress
from ..prompts import describe
from ..train.classifier import TRAIN_FIRST_SEED, ClassifierConfig, train_classifier
from .audit import counterfactuals as audit_counterfactuals
from .audit import weights_digest
from .cards import write_classifier_card
from .cli import add_common, add_model_option, check_one_domain, chosen_model, run_per_domain

STRENGTH = 0.9
#: Each arm: (training method, augmentation set or None).
ARMS = {"erm": ("erm", None), "groupdro": ("groupdro", None), "erm+cf": ("erm", "cf"),
        "erm+true_cf": ("erm", "true_cf"), "erm+t2i": ("erm", "t2i"), "groupdro+cf": ("groupdro", "cf")}
#: The bundled classifier this bench makes: the ERM + our counterfactuals of seed 0, beside the ERM one.
BUNDLED = {"cxr": "cxr-effusion-erm-cfaug", "skin": "skin-melanoma-erm-cfaug"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--seeds", type=int, default=3, help="classifier seeds per arm (default 3)")
    parser.add_argument("--work", default="runs/debias", help="augmentation sets and classifiers")
    parser.add_argument("--classifiers-dir", default="runs/audit_classifiers",
                        help="the audit bench's ERM and Group DRO classifiers at 0.9 are reused from here")
    parser.add_argument("--audit-images", type=int, default=200, help="link-free phantoms the audit reads")
    parser.add_argument("--audit-cache", default="runs/audit_counterfactuals")
    parser.add_argument("--figure-dir", default=None, help="write debias_<domain>.png here (assets/examples)")
    add_model_option(parser)
    parser.add_argument("--write-card", action="store_true",
                        help=f"bundle the ERM + counterfactuals classifier (seed 0) as {', '.join(BUNDLED.values())}")
    parser.add_argument("--markdown", metavar="JSON", default=None,
                        help="only print the arms of a written result (assets/bench/debias_<domain>.json) as a "
                        "Markdown table, as docs/results/debias.md shows them")


def our_counterfactuals(domain: str, work: Path, model, model_name: str | None = None) -> Path:
    """``medviz.augment``'s default plan on the classifier's own training phantoms (seed 0's: ``TRAIN_FIRST_SEED``,
    the link at 0.9): what ``python -m medviz.augment --phantoms 1000 --first-seed 30000000 --strength 0.9 --model
    D-phantom --out WORK/cf-D-1000`` makes (a run of it already under way is resumed)."""
    n = ClassifierConfig.n_images
    out = work / f"cf-{domain}-{n}"
    source = phantom_source(out / "source", domain, n, STRENGTH, TRAIN_FIRST_SEED, model.image_size)
    if not (out / "labels.csv").is_file():
        result = augment(
            AugmentConfig(csv=str(source), out=str(out), model=model_name or f"{domain}-phantom"),
            model,
            progress=printed_progress("  counterfactuals", every=50),
        )
        print(f"  {result.kept} kept, skipped {result.skipped}", flush=True)
    return out / "labels.csv"


def _image_column(columns: list[str]) -> str:
    return "Path" if "Path" in columns else next(c for c in ISIC_ID_COLUMNS if c in columns)


def _write_set(folder: Path, columns: list[str], rows: list[dict]) -> Path:
    columns = columns + [c for c in ("cf_edit", "cf_seed") if rows and c in rows[0] and c not in columns]
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return folder / "labels.csv"


def true_counterfactuals(domain: str, cf_csv: Path, work: Path, size: int) -> Path:
    """The SCM's counterfactuals of exactly the rows and edits our counterfactuals kept, in the same layout: the
    edited attribute switched and the other of the pair held (``held_factors``), as the edit intends. A plain
    do(effusion = none) would also recompute the devices effusion causes in the SCM, and land in another group."""
    out = work / f"true-cf-{domain}"
    if (out / "labels.csv").is_file():
        return out / "labels.csv"
    columns, rows = read_rows(cf_csv)
    image_column = _image_column(columns)
    graph = get_domain(domain).build_graph(**link_parameters(domain, STRENGTH))
    _, target, spurious = domains.get(domain).planted_link
    written = []
    for row in rows:
        action, attribute = row["cf_edit"].split(" ", 1)
        other = spurious if attribute == target else target
        image = true_switch(domain, graph, graph.sample(int(row["seed"])), attribute, action == "add", (other,), size)
        name = f"true_{Path(row[image_column]).stem}"
        write_png(out / "images" / f"{name}.png", image,
                  {"phantom_seed": int(row["seed"]), "intervention": row["cf_edit"]})
        written.append({**row, image_column: f"images/{name}.png" if image_column == "Path" else name})
    return _write_set(out, columns, written)


def group_prompt(domain: str, target: str, spurious: str, has_target: bool, has_spurious: bool) -> str:
    """The training captions' wording of a (target, spurious) group, absences named ("no support devices")."""
    vocabulary = domains.get(domain)
    present = {target: has_target, spurious: has_spurious}
    negated = [name for name, on in present.items() if not on and vocabulary.attribute(name).head is None]
    return describe(domain, present, negated)


def text_to_image_samples(domain: str, cf_csv: Path, work: Path, model) -> Path:
    """As many samples of each under-represented group as our counterfactuals added to it, drawn from the group's
    caption at the Generate tab's settings and labelled by the prompt (as RL4Med-DDPO augments)."""
    out = work / f"t2i-{domain}"
    if (out / "labels.csv").is_file():
        return out / "labels.csv"
    columns, rows = read_rows(cf_csv)
    image_column = _image_column(columns)
    _, target, spurious = domains.get(domain).planted_link
    written, seed, agreement = [], 0, {}
    groups: dict[tuple[bool, bool], list[dict]] = {}
    for row in rows:
        labels = _row_labels(domain, row, target, spurious)
        groups.setdefault(labels, []).append(row)
    for (has_target, has_spurious), members in sorted(groups.items()):
        prompt = group_prompt(domain, target, spurious, has_target, has_spurious)
        for start in range(0, len(members), 16):
            batch = members[start:start + 16]
            result = generate(model, GenerateConfig(prompt=prompt, batch_size=len(batch), seed=seed))
            for readout in model.oracle.readout_dicts(result.images):
                agreement.setdefault(prompt, []).append((readout[target] >= 0.5) == has_target and
                                                        (readout[spurious] >= 0.5) == has_spurious)
            for row, image in zip(batch, result.images):
                name = f"t2i_{seed:06d}"
                write_png(out / "images" / f"{name}.png", image, {"prompt": prompt, "seed": seed})
                written.append({**row, image_column: f"images/{name}.png" if image_column == "Path" else name,
                                "cf_edit": f"text-to-image: {prompt}", "cf_seed": seed})
                seed += 1
        print(f"  text-to-image: {len(members)} x '{prompt}'", flush=True)
    (out / "prompt_agreement.json").write_text(json.dumps(
        {prompt: round(float(np.mean(hits)), 4) for prompt, hits in agreement.items()}, indent=2))
    return _write_set(out, columns, written)


def _row_labels(domain: str, row: dict, target: str, spurious: str) -> tuple[bool, bool]:
    if domains.get(domain).dataset_layout == "chexpert":
        cells = {"pleural_effusion": row["Pleural Effusion"], "support_devices": row["Support Devices"]}
        return cells[target] == "1.0", cells[spurious] == "1.0"
    return row["target"] == "1", row[spurious] == "1"


def trained(domain: str, arm: str, seed: int, sets: dict, args, command: str) -> Path:
    """The arm's classifier of ``seed``: the audit bench's where it made the same one, else trained here."""
    method, augmentation = ARMS[arm]
    if augmentation is None:
        reused = Path(args.classifiers_dir) / f"{domain}-{method}-{STRENGTH}-s{seed}"
        if (reused / CARD).is_file():
            return reused
    out = Path(args.work) / "classifiers" / f"{domain}-{arm}-s{seed}"
    if not (out / CARD).is_file():
        _, target, spurious = domains.get(domain).planted_link
        train_classifier(ClassifierConfig(domain=domain, out=str(out), target=target, spurious=spurious,
                                          strength=STRENGTH, method=method, seed=seed, workers=1,
                                          augment=str(sets[augmentation]) if augmentation else ""), command=command)
    return out


def _mean_sd(values: list[float]) -> dict:
    return {
        "mean": round(float(np.mean(values)), 4),
        "sd": round(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, 4),
        "values": [round(float(v), 4) for v in values],
    }


def run_domain(domain: str, args: argparse.Namespace, command: str) -> dict:
    work = Path(args.work)
    model = chosen_model(args, domain) or load_model(f"{domain}-phantom")
    tic = time.perf_counter()
    cf = our_counterfactuals(domain, work, model, args.model)
    sets = {"cf": cf, "true_cf": true_counterfactuals(domain, cf, work, model.image_size),
            "t2i": text_to_image_samples(domain, cf, work, model)}
    print(f"  augmentation sets ready ({time.perf_counter() - tic:.0f} s)", flush=True)
    config, made = audit_counterfactuals(domain, args.audit_images, Path(args.audit_cache), args.model)
    arms = {}
    for arm in ARMS:
        runs = []
        for seed in range(args.seeds):
            path = trained(domain, arm, seed, sets, args, command)
            classifier = load_classifier(path)
            record = report(score_audit(classifier, made, config))
            test = classifier.card["balanced_test"]
            runs.append(
                {
                    "name": path.name,
                    "seed": seed,
                    "worst": test["worst_group_accuracy"],
                    "mean": test["mean_accuracy"],
                    "groups": test["groups"],
                    "augment_rows": classifier.card.get("augment_rows", 0),
                    "reliance": record["reliance"]["mean"],
                    "true_reliance": record["truth"]["reliance"]["mean"],
                    "scls": record["scls"]["mean"],
                    "true_scls": record["truth"]["scls"]["mean"],
                    "audit": {key: record[key] for key in ("reliance", "scls", "target_effect", "flagged")}
                    | {"true_reliance": record["truth"]["reliance"]},
                }
            )
        arms[arm] = {
            "runs": runs,
            **{
                key: _mean_sd([r[key] for r in runs])
                for key in ("worst", "mean", "reliance", "true_reliance", "scls", "true_scls")
            },
            "augment_rows": runs[0]["augment_rows"],
        }
        print(
            f"  {arm:12} worst {arms[arm]['worst']['mean']:.3f} ± {arms[arm]['worst']['sd']:.3f}  mean "
            f"{arms[arm]['mean']['mean']:.3f}  reliance {arms[arm]['reliance']['mean']:+.3f} (true "
            f"{arms[arm]['true_reliance']['mean']:+.3f})  SCLS {arms[arm]['scls']['mean']:.3f}",
            flush=True,
        )
    result = summarise(domain, arms, sets, made)
    if args.figure_dir:
        write_figure(result, sets, Path(args.figure_dir) / f"debias_{domain}.png")
    return result


def summarise(domain: str, arms: dict, sets: dict, made) -> dict:
    erm, ours, bound = (arms[a]["worst"]["mean"] for a in ("erm", "erm+cf", "erm+true_cf"))
    reliance_erm, reliance_cf = arms["erm"]["reliance"]["mean"], arms["erm+cf"]["reliance"]["mean"]
    skipped = list(csv.DictReader((sets["cf"].parent / "skipped.csv").open()))
    kept = len(read_rows(sets["cf"])[1])
    return {
        "domain": domain,
        "strength": STRENGTH,
        "units": UNITS,
        "audit_images": len(made.images) + len(made.excluded),
        "erm_worst": erm,
        "cf_worst": ours,
        "true_cf_worst": bound,
        "groupdro_worst": arms["groupdro"]["worst"]["mean"],
        "t2i_worst": arms["erm+t2i"]["worst"]["mean"],
        "groupdro_cf_worst": arms["groupdro+cf"]["worst"]["mean"],
        "cf_gain_points": round(100 * (ours - erm), 1),
        "cf_below_bound_points": round(100 * (bound - ours), 1),
        "reliance_drop": round(1 - reliance_cf / reliance_erm, 3) if reliance_erm > 0 else None,
        "abs_reliance_drop": round(1 - abs(reliance_cf) / abs(reliance_erm), 3) if reliance_erm else None,
        "true_reliance_drop": round(
            1 - arms["erm+cf"]["true_reliance"]["mean"] / arms["erm"]["true_reliance"]["mean"], 3
        ),
        "t2i_prompt_agreement": json.loads((sets["t2i"].parent / "prompt_agreement.json").read_text()),
        "counterfactuals": {
            "kept": kept,
            "skipped": len(skipped),
            "plan": json.loads((sets["cf"].parent / "plan.json").read_text())["rules"],
        },
        "arms": arms,
    }


def write_figure(result: dict, sets: dict, path: Path, examples: int = 4) -> None:
    """Left: training rows beside our counterfactual, the SCM's true one and a text-to-image sample of the same
    group. Right: worst-group accuracy per arm (mean and each seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns, ours = read_rows(sets["cf"])
    image_column = _image_column(columns)
    _, true_rows = read_rows(sets["true_cf"])
    _, target, spurious = domains.get(result["domain"]).planted_link
    t2i_by_group: dict[tuple[bool, bool], list[dict]] = {}
    for t2i_row in read_rows(sets["t2i"])[1]:
        t2i_by_group.setdefault(_row_labels(result["domain"], t2i_row, target, spurious), []).append(t2i_row)
    picked = list(range(0, len(ours), max(1, len(ours) // examples)))[:examples]
    figure = plt.figure(figsize=(13, 2.6 * len(picked)))
    grid = figure.add_gridspec(len(picked), 5, width_ratios=[1, 1, 1, 1, 2.6])
    source = sets["cf"].parent / "source"
    for row, index in enumerate(picked):
        same_group = t2i_by_group[_row_labels(result["domain"], ours[index], target, spurious)]
        cells = [
            (source / _image_file(ours[index]["cf_source_image"], image_column), "training row"),
            (
                sets["cf"].parent / _image_file(ours[index][image_column], image_column),
                f"ours: {ours[index]['cf_edit']}",
            ),
            (sets["true_cf"].parent / _image_file(true_rows[index][image_column], image_column), "true counterfactual"),
            (
                sets["t2i"].parent / _image_file(same_group[row % len(same_group)][image_column], image_column),
                "text-to-image, same group",
            ),
        ]
        for column, (file, title) in enumerate(cells):
            axis = figure.add_subplot(grid[row, column])
            axis.imshow(Image.open(file), cmap="gray")
            axis.set_title(title, fontsize=8)
            axis.axis("off")
    axis = figure.add_subplot(grid[:, 4])
    arms = list(result["arms"])
    for x, arm in enumerate(arms):
        values = result["arms"][arm]["worst"]["values"]
        axis.bar(x, np.mean(values), color="0.75")
        axis.plot([x] * len(values), values, "k.", ms=6)
    axis.set_xticks(range(len(arms)), arms, rotation=30, fontsize=8)
    axis.set_ylabel("worst-group accuracy, balanced link-free test")
    axis.set_ylim(0, 1)
    axis.set_title(
        f"{result['domain']}, link {result['strength']}: ours {result['cf_gain_points']:+.1f} points over ERM,\n"
        f"{_against_bound(result)} the true-counterfactual bound (dots: seeds)",
        fontsize=9,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _against_bound(result: dict) -> str:
    gap = result["cf_below_bound_points"]
    return f"{abs(gap):.1f} points {'below' if gap >= 0 else 'above'}"


def _image_file(cell: str, image_column: str) -> str:
    """A row's image file relative to its CSV's folder (ISIC ids name ``images/<id>.png``)."""
    return cell if image_column == "Path" else f"images/{cell}.png"


def bundle(domain: str, result: dict, args, command: str) -> Path:
    """Copy the seed-0 ERM + counterfactuals classifier into ``assets/models`` with its card and audit."""
    source = Path(args.work) / "classifiers" / f"{domain}-erm+cf-s0"
    target = CLASSIFIERS_DIR / BUNDLED[domain]
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", CARD):
        shutil.copy(source / name, target / name)
    card = json.loads((target / CARD).read_text())
    run = result["arms"]["erm+cf"]["runs"][0]
    card["augment_source"] = (f"python -m medviz.augment --phantoms {ClassifierConfig.n_images} --first-seed "
                              f"{TRAIN_FIRST_SEED} --strength {STRENGTH} --model {domain}-phantom --out "
                              f"{Path(args.work) / f'cf-{domain}-{ClassifierConfig.n_images}'}")
    card["augment_plan"] = result["counterfactuals"]["plan"]
    card["audit"] = {"date": datetime.date.today().isoformat(), "command": command, "units": UNITS,
                     "n_images": result["audit_images"], **run["audit"], "true_scls": run["true_scls"]}
    (target / CARD).write_text(json.dumps(card, indent=2))
    write_classifier_card(target)
    return target


def print_table(result: dict) -> None:
    print(f"\n{result['domain']}: link {result['strength']}, balanced link-free test; reliance on "
          f"{result['audit_images']} link-free phantoms")
    print(f"{'arm':13} {'rows+':>6} {'worst (mean ± sd)':>18} {'mean acc':>9} {'reliance':>9} {'true':>7} {'SCLS':>6}")
    for arm, a in result["arms"].items():
        print(
            f"{arm:13} {a['augment_rows']:6d} {a['worst']['mean']:9.3f} ± {a['worst']['sd']:.3f} "
            f"{a['mean']['mean']:9.3f} {a['reliance']['mean']:+9.3f} {a['true_reliance']['mean']:+7.3f} "
            f"{a['scls']['mean']:6.3f}"
        )
    print(
        f"ours vs ERM: {result['cf_gain_points']:+.1f} points worst group (bar +10); {_against_bound(result)} the "
        f"true-CF bound (bar: within 5); reliance down {result['reliance_drop']:.0%}, its size "
        f"{result['abs_reliance_drop']:.0%} (bar 50%)"
    )


def markdown_table(result: dict) -> str:
    """The arms of one domain's result as the Markdown table of docs/results/debias.md."""
    lines = ["| arm | rows added | worst group (mean ± sd, 3 seeds) | mean accuracy | reliance, estimated | true "
             "| SCLS |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for arm, a in result["arms"].items():
        lines.append(
            f"| {arm} | {a['augment_rows']} | {a['worst']['mean']:.3f} ± {a['worst']['sd']:.3f} | "
            f"{a['mean']['mean']:.3f} ± {a['mean']['sd']:.3f} | {a['reliance']['mean']:+.3f} ± "
            f"{a['reliance']['sd']:.3f} | {a['true_reliance']['mean']:+.3f} | {a['scls']['mean']:.3f} |")
    return "\n".join(lines)


def main(args: argparse.Namespace, command: str) -> int:
    if args.markdown:
        print(markdown_table(json.loads(Path(args.markdown).read_text())))
        return 0
    if args.model:
        if args.write_card:
            raise SystemExit("--write-card bundles a classifier debiased with the bundled model's edits: drop --model "
                             "(a candidate is measured, not bundled)")
        check_one_domain(args)
        # A candidate's augmentation sets and classifiers live apart from the bundled model's, by its weights.
        args.work = str(Path(args.work) / f"candidate-{weights_digest(args.model)}")
    return run_per_domain(
        args,
        command,
        run_domain,
        print_table,
        lambda domain, result, command: print(f"  bundled {bundle(domain, result, args, command)}"),
    )
