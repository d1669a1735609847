"""The model cards' writers: the benches' ``--write-card`` store their figures in a model's ``medviz.json``
(``record_*``, keyed by identifiers) and regenerate its README's measured sections, rendered by the same
functions as the app's About tab (``medviz.card``, the reader)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from .. import RESEARCH_ONLY_NOTICE, domains
from ..card import (CALIBRATION_HEADING, DOMAIN_CHECK_HEADING, EDIT_BENCH_HEADING, MODELS_BENCH_HEADING,
                    calibration_section, domain_check_section, edit_bench_section, edit_id, models_bench_section,
                    normalise, task_id)
from ..engines.explain import votes_needed


def write_model_card(model_dir: str | Path, limits: list[str] | None = None) -> Path:
    """README.md for a bundled pipeline from its medviz.json (``limits``: the card's own limits, listed first)."""
    model_dir = Path(model_dir)
    facts = _read_facts(model_dir)
    domain = facts["domain"]
    arch = facts.get("architecture", {})
    lines = [
        f"# {model_dir.name}: Stable Diffusion architecture trained on procedural {domains.get(domain).title} "
        f"phantoms (medviz.phantoms.{domain})", "",
        f"> **{RESEARCH_ONLY_NOTICE.capitalize()}.** Trained only on synthetic phantoms; it knows nothing about "
        "real patients and must not be used for diagnosis.", "",
        "## What it is",
        f"A stock diffusers `StableDiffusionPipeline` folder (safetensors, float32): `AutoencoderKL` "
        f"(channels {arch.get('vae_channels')}, 4 latent channels, {facts.get('image_size')} px -> "
        f"{facts.get('image_size', 128) // 4} px latents), a `CLIPTextModel` (width {arch.get('text_width')}, "
        f"{arch.get('text_layers')} layers) with a CLIP BPE tokenizer learned from our caption corpus, a "
        f"`UNet2DConditionModel` (channels {arch.get('unet_channels')}) and a DDIM scheduler config. "
        f"Output {facts.get('image_size')} x {facts.get('image_size')} px. Its oracle (attribute readout) is "
        f"`{facts.get('oracle')}`.", "",
        "```python", "from diffusers import StableDiffusionPipeline",
        f'pipe = StableDiffusionPipeline.from_pretrained("assets/models/{model_dir.name}")  # offline',
        "```", "",
        "## Data", f"Phantoms from `medviz.phantoms.{domain}` (seeds 0-29999, default causal graph), captions from "
        "their factors with synonyms, random order and explicit negatives (`medviz.prompts.training_caption`); 10% "
        "empty captions for classifier-free guidance.", "",
        "## Recipe (as run)", f"Trained on: {facts.get('trained_on')}.", "",
    ]
    for name, run in facts.get("training", {}).items():
        lines.append(f"- **{name}**: `{json.dumps(run.get('command') or run.get('config'), default=str)[:600]}`")
        result = run.get("result") or run.get("results")
        if result:
            lines.append(f"  result: `{json.dumps(result, default=str)[:600]}`")
    lines += [
        "",
        f"Samples seen: {json.dumps(facts.get('samples_seen'))}.",
        "",
        "To reproduce from scratch on any machine: `python -m medviz.train recipe --domain "
        f"{domain} --out runs/{domain} --model-dir assets/models/{domain}-phantom --oracle-dir "
        f"assets/models/{domain}-oracle` (see `python -m medviz.train recipe --help` for the step and time "
        "budgets used above).",
        "",
    ]
    lines += models_bench_section(facts.get("models_bench") or {})
    lines += calibration_section(facts.get("explain_calibration") or {}, domain)
    lines += edit_bench_section(facts.get("edit_bench") or {}, domain)
    lines += [
        "## Limits",
        *[f"- {limit}" for limit in (limits or [])],
        "- Synthetic phantoms only: no real anatomy, pathology or device appearance was ever seen.",
        "- The oracle is an attribute readout trained on the same phantoms, not a diagnosis.",
        "",
    ]
    path = model_dir / "README.md"
    path.write_text("\n".join(lines))
    return path


def record_models_bench(model_dir: str | Path, record: dict) -> Path:
    """Store a models-bench card record (``medviz.bench.models.card_record``) in medviz.json ``models_bench``
    and regenerate the card's section. Returns the medviz.json path."""
    model_dir = Path(model_dir)
    facts = _read_facts(model_dir)
    facts["models_bench"] = record
    return _write_facts(model_dir, facts, MODELS_BENCH_HEADING, models_bench_section(record))


#: The keys of a ``calibrate`` result that a model card keeps (``explain_calibration`` in medviz.json).
CALIBRATION_KEYS = (
    "votes_needed",
    "trials",
    "vote_threshold",
    "t_range",
    "weighting",
    "n",
    "positives",
    "trials_run",
    "trials_t_range",
    "window_searched",
    "first_seed",
    "seed",
    "accuracy_calibrated",
    "accuracy_majority",
    "decision",
    "accuracy_mean_error",
    "accuracy_mean_error_all_trials",
    "mean_trials_run",
)


def record_calibration(model_dir: str | Path, result: dict, command: str) -> Path:
    """Store a ``calibrate`` result as the model's operating point for its task and rewrite that card section.

    The task's entry in medviz.json ``explain_calibration`` is replaced by the result's ``CALIBRATION_KEYS``
    and ``command``; an earlier whole-schedule fit of the window (``window_fit``) is kept when the new fit was
    given its window. README.md's section (``CALIBRATION_HEADING`` up to the next heading) is regenerated
    from medviz.json; the rest of the card is left as it is. Returns the medviz.json path.
    """
    model_dir = Path(model_dir)
    facts = _read_facts(model_dir)
    task = task_id(facts.get("domain"), result["task"])
    entries = facts.setdefault("explain_calibration", {})
    earlier = entries.get(task, {})
    entry = {key: result[key] for key in CALIBRATION_KEYS if key in result} | {"command": command}
    if not result.get("window_searched", True) and "window_fit" in earlier:
        entry["window_fit"] = earlier["window_fit"]
    entries[task] = entry
    return _write_calibration(model_dir, facts)


def record_engine_trials(model_dir: str | Path, result: dict, command: str) -> Path:
    """Make a classify bench run's N the engine's N for its task, at the card's fitted share of the votes.

    The fit's threshold is a share of the votes fitted at one N (``trials_run``); ``result`` (a
    ``medviz.bench.classify.run_task`` summary at the card's operating point otherwise) shows how that
    share does at the run's N on held-out phantoms, and is kept beside the fit as ``engine_trials_bench``.
    ``trials`` and ``votes_needed`` then say what the engine runs. A later ``record_calibration`` replaces
    the whole entry. Returns the medviz.json path.
    """
    model_dir = Path(model_dir)
    facts = _read_facts(model_dir)
    entry = facts.get("explain_calibration", {}).get(task_id(facts.get("domain"), result["task"]))
    if not entry:
        raise ValueError(f"{model_dir} has no fitted operating point for {result['task']!r}: run calibrate first")
    for key in ("vote_threshold", "t_range", "weighting", "decision"):
        if result[key] != entry.get(key, result[key]):
            raise ValueError(
                f"the bench ran at {key}={result[key]!r}, the card's fit is {entry[key]!r}: not its operating point"
            )
    entry.setdefault("trials_run", entry["trials"])  # the N the share was fitted at
    cost = result.get("cost") or {}
    entry.update(
        {
            "trials": int(result["trials"]),
            "votes_needed": votes_needed(result["trials"], entry["vote_threshold"]),
            "engine_trials_bench": {
                "n": result["n"],
                "accuracy": result["accuracy"],
                "mean_trials": result["mean_trials"],
                "mean_passes": result["mean_passes"],
                "command": command,
                "date": datetime.date.today().isoformat(),
                **{
                    key: cost[key]
                    for key in ("points_behind_at_most", "reference_trials", "passes_saving")
                    if key in cost
                },
            },
        }
    )
    return _write_calibration(model_dir, facts)


def _write_calibration(model_dir: Path, facts: dict) -> Path:
    """Write medviz.json and regenerate the model card's calibration section from it."""
    section = calibration_section(facts["explain_calibration"], facts.get("domain"))
    return _write_facts(model_dir, facts, CALIBRATION_HEADING, section)


def _read_facts(model_dir: Path) -> dict:
    """The folder's medviz.json with identifier keys (an older card's phrase keys are renamed as it is rewritten)."""
    return normalise(json.loads((model_dir / "medviz.json").read_text()))


def _write_facts(model_dir: Path, facts: dict, heading: str, section: list[str]) -> Path:
    """Write medviz.json, and put ``section`` in place of the model card's section under ``heading`` (up to the
    next heading; a card without one gets it before "## Limits"). Returns the medviz.json path."""
    path = model_dir / "medviz.json"
    path.write_text(json.dumps(facts, indent=2, default=str))
    card = model_dir / "README.md"
    if card.exists():
        text = card.read_text()
        body = "\n".join(section) + "\n"
        if heading in text:
            head, rest = text.split(heading, 1)
            tail = rest[rest.index("\n## "):] if "\n## " in rest else ""
            text = head + body + tail.lstrip("\n")
        else:
            head, limits, tail = text.partition("## Limits")
            text = head + body + limits + tail if limits else text + "\n" + body
        card.write_text(text)
    return path


def record_edit_bench(model_dir: str | Path, records: dict) -> Path:
    """Store counterfactual-bench records (``medviz.bench.counterfactual.card_record``, by edit name) in
    medviz.json ``edit_bench`` (replacing those edits' earlier records, keeping the others) and regenerate the
    card's section. Returns the medviz.json path."""
    model_dir = Path(model_dir)
    facts = _read_facts(model_dir)
    entries = facts.setdefault("edit_bench", {})
    entries.update({edit_id(r["action"], r["attributes"][0]): r for r in records.values()})
    return _write_facts(model_dir, facts, EDIT_BENCH_HEADING, edit_bench_section(entries, facts.get("domain")))


def record_domain_check(model_dir: str | Path, record: dict) -> Path:
    """Store a ``bench guard`` calibration and its figures in medviz.json ``domain_check`` and regenerate the
    card's section. Returns the medviz.json path."""
    model_dir = Path(model_dir)
    path = model_dir / "medviz.json"
    facts = _read_facts(model_dir) if path.is_file() else {}
    facts["domain_check"] = record
    return _write_facts(model_dir, facts, DOMAIN_CHECK_HEADING, domain_check_section(record))


def write_classifier_card(folder: str | Path) -> Path:
    """README.md of a classifier to audit from its ``medviz_classifier.json``: what it was trained on, its accuracy
    per group on the balanced test set and, once ``bench audit --write-card`` ran, its audit. Returns the path."""
    folder = Path(folder)
    card = json.loads((folder / "medviz_classifier.json").read_text())
    config, test = card["config"], card["balanced_test"]
    method = "ERM" if card["method"] == "erm" else "Group DRO (Sagawa et al. 2020)"
    lines = [
        f"# {folder.name}: a classifier to audit",
        "",
        f"> {RESEARCH_ONLY_NOTICE.capitalize()}. Trained on "
        "synthetic phantoms with a planted shortcut, on purpose: it is the audit's test object, not a model to use.",
        "",
        f"- task: P({card['target']}) from a {config['image_size']} px {config['domain']} phantom "
        f"(transformers ResNet, `AutoModelForImageClassification`)",
        f"- training: {method} on {config['n_images']} phantoms whose link {card['target']} -> {card['spurious']} "
        f"has risk difference {card['strength']}; {config['steps']} steps, weight decay {card.get('weight_decay')}",
        *(
            [
                f"- plus {card['augment_rows']} counterfactual training rows, made by `{card['augment_source']}` "
                f"(its default plan: {'; '.join(card.get('augment_plan', []))})"
            ]
            if card.get("augment_source")
            else []
        ),
        f"- command: `{card['command']}`",
        "",
        "## Balanced test set (no link)",
        "",
        "| group | accuracy | n |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {card['groups'][g]} | {test['groups'][g]:.3f} | {test['n'][g]} |" for g in sorted(test["groups"])]
    lines += ["", f"Mean accuracy {test['mean_accuracy']:.3f}, worst group **{test['worst_group_accuracy']:.3f}**."]
    audit = card.get("audit")
    if audit:
        r, t = audit["reliance"], audit["true_reliance"]
        lines += ["", "## Audit (`medviz.engines.audit`)", "",
                  f"On {audit['n_images']} link-free phantoms: reliance on {card['spurious']} (mean of P(with) - "
                  f"P(without)) estimated **{r['mean']:+.3f}** (95% CI {r['low']:+.3f} to {r['high']:+.3f}), true "
                  f"{t['mean']:+.3f}; SCLS (ours) {audit['scls']['mean']:.3f}, true {audit['true_scls']:.3f}; "
                  f"{'flagged' if audit['flagged'] else 'not flagged'}. Measured {audit['date']} with "
                  f"`{audit['command']}`."]
    path = folder / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_progression_card(folder: str | Path) -> Path:
    """README.md of a progression folder from its ``medviz_progression.json``: the model, how it was trained and,
    once ``bench progression --write-card`` ran, its figures beside every setting benched with it."""
    folder = Path(folder)
    card = json.loads((folder / "medviz_progression.json").read_text())
    shape, config = card["progression"], card.get("config")
    lines = [f"# {folder.name}: effusion courses under each treatment", "",
             f"> {RESEARCH_ONLY_NOTICE.capitalize()}. Trained on a phantom trial (`medviz.phantoms.trial`).", "",
             f"- model: {shape['model']} ({shape['fusion']} fusion of a {shape['image_size']} px baseline image and "
             f"the record {', '.join(shape['tabular'])}); treatments {', '.join(shape['treatments'])}; "
             f"{shape['horizon_days']:g} days",
             *([f"- training: {card['patients']} trial patients, {config['steps']} steps of {config['batch_size']}, "
                f"measurement noise {card['measurement_noise']:g}, {card['seconds'] / 60:.1f} min on one CPU core",
                f"- command: `{card['command']}`"] if config else ["- training: not recorded"]),
             *([f"- 90% band: the paths' central {card['band_level']:.0%}, calibrated to hold 90% of 300 validation "
                f"patients' recorded follow-up sizes ({card['band_coverage_validation']:.1%}; "
                "`python -m medviz.train progression-band`)"] if card.get("band_level") == card.get("band_level")
               and card.get("band_level") is not None else [])]
    bench = card.get("bench")
    if bench:
        days = " / ".join(f"{h:g}" for h in bench["horizons"])

        def cell(value):
            return "-" if value is None else (" / ".join(f"{v:.3f}" for v in value) if isinstance(value, list)
                                              else f"{value:.3f}")

        lines += ["", "## Held-out patients (`python -m medviz.bench progression`)", "",
                  f"{bench['n']} patients never enrolled in training, scored against their true courses under every "
                  f"treatment; errors (mean absolute, size 0-1) at days {days}; means over seeds.", "",
                  "| setting | seeds | error, factual | error, counterfactual | 90% band coverage (f / cf) | PEHE |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for s in bench["settings"]:
            coverage = ("-" if s["coverage_factual"] is None else
                        f"{s['coverage_factual']:.1%} / {s['coverage_counterfactual']:.1%}")
            lines.append(f"| {s['setting']}{' (baseline)' if s['baseline'] else ''} | {s['seeds']} | "
                         f"{cell(s['error_factual'])} | {cell(s['error_counterfactual'])} | {coverage} | "
                         f"{cell(s['pehe'])} |")
        found = bench["confident_responders"]
        share = bench["confident_responders_in_subgroup"]
        coverage = ("no band" if bench["coverage_factual"] is None else
                    f"bands cover {bench['coverage_factual']:.1%} / {bench['coverage_counterfactual']:.1%}")
        lines += ["", f"This folder (seed {config['seed'] if config else '?'}): error factual "
                      f"{cell(bench['error_factual'])}, counterfactual {cell(bench['error_counterfactual'])}; "
                      f"{coverage}, PEHE {bench['pehe']:.3f}; "
                      f"{found} patients called responders to the diuretic with ≥ 90% confidence, "
                      f"{'-' if share is None else f'{share:.1%}'} of them in the planted responding subgroup; "
                      f"one patient's 100 paths under every treatment in {bench['seconds_one_patient_alone']:.3f} s. "
                      f"Measured {bench['date']} with `{bench['command']}`."]
    path = folder / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_ladine_card(folder: str | Path, name: str | None = None) -> Path:
    """README.md of a LaDiNE folder from its ``medviz_ladine.json``: the network, how it was trained and, once
    ``bench robust --write-card`` ran, its figures under shift beside the other classifiers benched with it
    (``name``: its name in the bench's rows, the folder's by default)."""
    folder = Path(folder)
    name = name or folder.name
    card = json.loads((folder / "medviz_ladine.json").read_text())
    shape, config = card["ladine"], card.get("config")
    lines = [f"# {folder.name}: LaDiNE (arXiv 2310.15952) for {card.get('target', shape['labels'][-1])}", "",
             f"> {RESEARCH_ONLY_NOTICE.capitalize()}. Trained on phantoms only; a stress-test classifier.", "",
             f"- network: a {shape['layers']}-block ViT ({shape['hidden']} wide, {shape['patch_size']} px patches, "
             f"{shape['image_size']} px input, transformers, trained from scratch) whose blocks {shape['taps']} each "
             f"feed a mapping head: {len(shape['taps'])} members, each with a CARD label denoiser "
             f"(T = {shape['timesteps']}); readout: majority vote over members x 20 samples, paired t-test p-value "
             "as the instance uncertainty (unsure at p >= 0.05)",
             *([f"- training: {config['n_images']} phantoms of {config['domain']}, {config['steps']} encoder steps "
                f"of {config['batch_size']}, {config['denoiser_steps']} denoiser steps of 30; guides right on "
                f"{', '.join(f'{a:.1%}' for a in card['train_guide_accuracy'])} of the training phantoms",
                f"- command: `{card['command']}`"] if config else ["- training: not recorded"])]
    bench = card.get("bench_robust")
    if bench:
        lines += ["", "## Under acquisition shift (`python -m medviz.bench robust`)", "",
                  f"{bench['n']} held-out phantoms per level (seeds {bench['first_seed']:,} on), "
                  f"{bench['levels']} shifted levels ({', '.join(bench['shifts'])}); accuracy at each classifier's "
                  "operating point, ECE with 10 bins, accuracy of the 80% it is surest of, images it got wrong "
                  f"with no warning (neither unsure nor flagged by the domain check). Measured {bench['date']}.", "",
                  "| classifier | unshifted | shifted, mean | ECE shifted | 80% surest, shifted | silent errors |",
                  "| --- | --- | --- | --- | --- | --- |"]
        def share(value):
            return "-" if value != value else f"{value:.1%}"          # NaN: not run unshifted

        for other, row in bench["classifiers"].items():
            me = "**" if other == name else ""
            lines.append(f"| {me}{other}{me} | {share(row['unshifted_accuracy'])} | {share(row['shifted_accuracy'])} "
                         f"| {row['shifted_ece']:.3f} | {share(row['shifted_selective_accuracy'])} | "
                         f"{'-' if row['silent_errors'] is None else row['silent_errors']} of {row['errors']} |")
        if bench.get("diffusion_classifier"):
            d = bench["diffusion_classifier"]
            where = (", ".join(f"{shift} {level:g}" for shift, level in d["levels"]) if d["levels"] != "all"
                     else ", ".join(d["shifts"]) if isinstance(d["shifts"], list) else "every shift")
            lines += ["", f"The diffusion classifier ran on {d['n']} phantoms per level of {where}, "
                      f"{d['seconds_per_image']} s an image."]
        lines += ["", f"Command: `{bench['command']}`"]
    path = folder / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path
