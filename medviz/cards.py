"""Model cards: what a bundled model's ``medviz.json`` records of the benches, and its README, in one place.

The benches' ``--write-card`` store their figures here (``record_*``); the README's measured sections
and the app's Model tab are rendered from those records by the same functions (``measured_sections``).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from . import RESEARCH_ONLY_NOTICE, domains
from .engines.explain import DEFAULT_T_RANGE, votes_needed


def measured_sections(card: dict) -> str:
    """Markdown of every bench record a card holds (prompts, diffusion classifier, edits); '' for none."""
    lines = (_models_bench_section(card.get("models_bench") or {}) + _calibration_section(card.get("explain_calibration") or {})
             + _edit_bench_section(card.get("edit_bench") or {}) + _domain_check_section(card.get("domain_check") or {}))
    return "\n".join(lines)


def write_model_card(model_dir: str | Path, limits: list[str] | None = None) -> Path:
    """README.md for a bundled pipeline from its medviz.json (``limits``: the card's own limits, listed first)."""
    model_dir = Path(model_dir)
    facts = json.loads((model_dir / "medviz.json").read_text())
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
    lines += ["", f"Samples seen: {json.dumps(facts.get('samples_seen'))}.", "",
              "To reproduce from scratch on any machine: `python -m medviz.train recipe --domain "
              f"{domain} --out runs/{domain} --model-dir assets/models/{domain}-phantom --oracle-dir "
              f"assets/models/{domain}-oracle` (see `python -m medviz.train recipe --help` for the step and time "
              "budgets used above).", ""]
    lines += _models_bench_section(facts.get("models_bench") or {})
    lines += _calibration_section(facts.get("explain_calibration") or {})
    lines += _edit_bench_section(facts.get("edit_bench") or {})
    lines += ["## Limits", *[f"- {limit}" for limit in (limits or [])],
              "- Synthetic phantoms only: no real anatomy, pathology or device appearance was ever seen.",
              "- The oracle is an attribute readout trained on the same phantoms, not a diagnosis.", ""]
    path = model_dir / "README.md"
    path.write_text("\n".join(lines))
    return path


#: The model card section that ``record_models_bench`` rewrites.
MODELS_BENCH_HEADING = "## Measured quality (`python -m medviz.bench models`)"


def _models_bench_section(bench: dict) -> list[str]:
    """The model card's prompt fidelity, diversity, FD and VAE round trip (medviz.json ``models_bench``, the
    record ``medviz.bench.models.card_record`` makes of a run; none: no lines)."""
    if not bench:
        return []
    bars = bench["bars"]

    def marked(value: float, bar: str, text: str) -> str:
        return text if value >= bars[bar] else f"**{text}**"

    lines = [MODELS_BENCH_HEADING, "",
             "Oracle agrees: the row's attribute reads as the prompt asks. Fits all: every attribute the prompt "
             "fixes as the training captions read it (they name everything present, so an unnamed finding or "
             f"artifact is absent). Diversity: mean pairwise oracle-feature distance of the {bench['n']} samples over "
             "that of the held-out phantoms that fit the prompt (n of them), and over that of the phantoms that "
             f"match only the row's attribute (they also span what the prompt excludes). Bars: oracle agrees >= "
             f"{bars['agreement']:.0%}, diversity >= {bars['diversity_ratio']:.2f}; bold: below its bar. The Generate tab "
             "shows the rows of the attributes a prompt names, before it runs.", "",
             "| attribute | prompt | oracle agrees | fits all | diversity vs fitting phantoms (n) | "
             "diversity vs row-attribute match |", "|---|---|---|---|---|---|"]
    for row in bench["rows"]:
        agreement = marked(row["agreement"], "agreement", f"{row['agreement']:.1%}")
        diversity = marked(row["diversity_ratio"], "diversity_ratio", f"{row['diversity_ratio']:.2f}")
        lines.append(f"| {row['attribute']} | {row['prompt']} | {agreement} | {row['fits_all']:.1%} | {diversity} "
                     f"({row['n_matching']}) | {row['diversity_ratio_named_only']:.2f} |")
    settings = bench["settings"]
    negative = f"negative prompt {settings['negative_prompt']!r}" if settings["negative_prompt"] else "no negative prompt"
    trip = bench["vae_round_trip"]
    lines += ["", f"Samples: {bench['n']} per prompt, {settings['steps']} {settings['scheduler']} steps, guidance "
                  f"{settings['guidance_scale']}, {negative}, seed {bench['seed']}. Fréchet distance in oracle features: "
                  f"generated vs held-out phantoms {bench['fd_generated_vs_held_out']:.1f}; Gaussian-blurred held-out "
                  f"vs held-out {bench['fd_blurred_held_out_vs_held_out']:.1f}; held-out half vs half "
                  f"{bench['fd_held_out_half_vs_half']:.1f} ({bench['n_reference']} held-out phantoms).", "",
              f"VAE round trip (encode -> decode) of {bench['n_reference']} held-out phantoms: PSNR "
              f"{trip['psnr_db']:.1f} dB; the oracle still finds each attribute in (recall):", "",
              "| attribute | phantoms with it | recall after the round trip | specificity |", "|---|---|---|---|",
              *[f"| {name} | {a['n_positive']} | {a['recall']:.1%} | {a['specificity']:.1%} |"
                for name, a in trip["attributes"].items()],
              "", f"Reproduce: `{bench['command']}` ({bench['date']}).", ""]
    return lines


def record_models_bench(model_dir: str | Path, record: dict) -> Path:
    """Store a models-bench card record (``medviz.bench.models.card_record``) in medviz.json ``models_bench``
    and regenerate the card's section. Returns the medviz.json path."""
    model_dir = Path(model_dir)
    facts = json.loads((model_dir / "medviz.json").read_text())
    facts["models_bench"] = record
    return _write_facts(model_dir, facts, MODELS_BENCH_HEADING, _models_bench_section(record))


#: The model card section that ``record_calibration`` rewrites.
CALIBRATION_HEADING = "## Diffusion-classifier operating point (`python -m medviz.bench calibrate`)"

#: The keys of a ``calibrate`` result that a model card keeps (``explain_calibration`` in medviz.json).
CALIBRATION_KEYS = ("votes_needed", "trials", "vote_threshold", "t_range", "weighting", "n", "positives", "trials_run",
                    "trials_t_range", "window_searched", "first_seed", "seed", "accuracy_calibrated",
                    "accuracy_majority", "decision", "accuracy_mean_error", "accuracy_mean_error_all_trials",
                    "mean_trials_run")


def _calibration_section(calibration: dict) -> list[str]:
    """The model card's lines on the diffusion classifier's fitted operating points (none: no lines)."""
    lines: list[str] = []
    if not calibration:
        return lines
    lines += [CALIBRATION_HEADING, ""]
    for task, c in calibration.items():
        lo, hi = c.get("t_range", DEFAULT_T_RANGE)
        window = ("trials drawn from the whole schedule" if (lo, hi) == DEFAULT_T_RANGE else
                  f"trials drawn from timesteps {lo}–{hi} only")
        fitted = (f"fitted on {c['n']} labelled tuning phantoms (seeds {c['first_seed']:,}+, never the benches')")
        if c.get("window_searched", True):
            found = (f"{fitted}: accuracy there {c['accuracy_calibrated']:.1%} against {c['accuracy_majority']:.1%} "
                     "for the plain majority over the whole schedule under the same weighting.")
        else:
            earlier = c.get("window_fit", {})
            found = ((f"the window comes from a whole-schedule fit (N = {earlier['trials_run']}: "
                      f"{earlier['accuracy_calibrated']:.1%} against {earlier['accuracy_majority']:.1%} for the "
                      "majority); " if earlier else "") +
                     f"the threshold was then {fitted} with exactly the engine's draws (N = "
                     f"{c.get('trials_run', c['trials'])}, seed {c['seed']}): accuracy there "
                     f"{c['accuracy_calibrated']:.1%} against {c['accuracy_majority']:.1%} for the plain majority "
                     "of the same draws. Every image shares the seed's draws and a class's vote share depends on "
                     "them, so another seed may need another threshold.")
        if c.get("decision") == "mean_error":
            found += (f" Decision rule: the mean-error rule over the trials the engine runs (they stop once that "
                      f"vote is decided, {c['mean_trials_run']:.1f} of {c['trials']} on average there), chosen "
                      f"there for its accuracy, {c['accuracy_mean_error']:.1%} against {c['accuracy_calibrated']:.1%} "
                      "for the vote.")
        elif "accuracy_mean_error" in c:
            found += (f" Decision rule: the vote ({c['accuracy_calibrated']:.1%} there against "
                      f"{c['accuracy_mean_error']:.1%} for the mean-error rule over the same trials).")
        adopted = c.get("engine_trials_bench")
        if adopted:
            cost = (f", at most {adopted['points_behind_at_most']:.2f} points behind N = {adopted['reference_trials']} "
                    f"with {adopted['passes_saving']:.1f}x fewer UNet passes" if "points_behind_at_most" in adopted else "")
            engine_n = (f" The engine runs N = {c['trials']} at that share of the votes, not the fit's N = "
                        f"{c['trials_run']}: the" if c["trials"] != c["trials_run"] else " At that N the")
            found += (f"{engine_n} classify bench on {adopted['n']} held-out phantoms gave {adopted['accuracy']:.2%} "
                      f"({adopted['mean_trials']:.1f} trials on average){cost} (`{adopted['command']}`).")
        lines.append(
            f"- **{task}**: the first class needs {c['votes_needed']} of {c['trials']} votes (`vote_threshold` "
            f"{c['vote_threshold']}), {window}, {c.get('weighting', 'disagreement')} error weighting; {found} "
            f"The Explain tab (its default operating point, with N = {c['trials']} as the default trials) and the "
            "classify bench apply it to this preset only (at another N the tab applies the same share of the "
            "votes); any other checkpoint or prompt set, or another weighting picked explicitly, keeps the plain "
            "majority over the whole schedule.")
    lines.append("")
    return lines


def record_calibration(model_dir: str | Path, result: dict, command: str) -> Path:
    """Store a ``calibrate`` result as the model's operating point for its task and rewrite that card section.

    The task's entry in medviz.json ``explain_calibration`` is replaced by the result's ``CALIBRATION_KEYS``
    and ``command``; an earlier whole-schedule fit of the window (``window_fit``) is kept when the new fit was
    given its window. README.md's section (``CALIBRATION_HEADING`` up to the next heading) is regenerated
    from medviz.json; the rest of the card is left as it is. Returns the medviz.json path.
    """
    model_dir = Path(model_dir)
    path = model_dir / "medviz.json"
    facts = json.loads(path.read_text())
    entries = facts.setdefault("explain_calibration", {})
    earlier = entries.get(result["task"], {})
    entry = {key: result[key] for key in CALIBRATION_KEYS if key in result} | {"command": command}
    if not result.get("window_searched", True) and "window_fit" in earlier:
        entry["window_fit"] = earlier["window_fit"]
    entries[result["task"]] = entry
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
    facts = json.loads((model_dir / "medviz.json").read_text())
    entry = facts.get("explain_calibration", {}).get(result["task"])
    if not entry:
        raise ValueError(f"{model_dir} has no fitted operating point for {result['task']!r}: run calibrate first")
    for key in ("vote_threshold", "t_range", "weighting", "decision"):
        if result[key] != entry.get(key, result[key]):
            raise ValueError(f"the bench ran at {key}={result[key]!r}, the card's fit is {entry[key]!r}: not its "
                             "operating point")
    entry.setdefault("trials_run", entry["trials"])                # the N the share was fitted at
    cost = result.get("cost") or {}
    entry.update({"trials": int(result["trials"]), "votes_needed": votes_needed(result["trials"], entry["vote_threshold"]),
                  "engine_trials_bench": {
                      "n": result["n"], "accuracy": result["accuracy"], "mean_trials": result["mean_trials"],
                      "mean_passes": result["mean_passes"], "command": command,
                      "date": datetime.date.today().isoformat(),
                      **{key: cost[key] for key in ("points_behind_at_most", "reference_trials", "passes_saving")
                         if key in cost}}})
    return _write_calibration(model_dir, facts)


def _write_calibration(model_dir: Path, facts: dict) -> Path:
    """Write medviz.json and regenerate the model card's calibration section from it."""
    return _write_facts(model_dir, facts, CALIBRATION_HEADING, _calibration_section(facts["explain_calibration"]))


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


#: The model card section that ``record_edit_bench`` rewrites.
EDIT_BENCH_HEADING = "## Counterfactual edits as measured (`python -m medviz.bench counterfactual`)"


def _percent(share: float, met: bool) -> str:
    return f"{share:.0%}" if met else f"**{share:.0%}** (below the bar)"


def _edit_bench_section(records: dict) -> list[str]:
    """The model card's table of benched edits (medviz.json ``edit_bench``; none: no lines)."""
    if not records:
        return []
    first = next(iter(records.values()))
    bars = first["bars"]
    lines = [EDIT_BENCH_HEADING, "",
             "Held-out phantoms with known true counterfactuals (the phantom SCM's do(edit), same exogenous noise). "
             "Effective: the oracle (an attribute readout, not a diagnosis) reads the change asked for; kept: every "
             "other attribute keeps its label; faithful: closer (L1) to the true counterfactual than the input is; "
             f"near the truth: the same with every pixel farther than {first['near_truth_px']} px (at 128 px) from "
             f"the true change put back to the input. Bars: effective >= {bars['effectiveness']:.0%}, kept >= "
             f"{bars['preservation_all']:.0%}, faithful >= {bars['faithfulness']:.0%}. The Edit tab shows an "
             "edit's row above its Edit button, before it runs.", "",
             "| edit | phantoms | effective | kept all | faithful | near the truth | mask IoU | UNet passes | "
             "settings | date |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for edit, r in records.items():
        s = r["settings"]
        settings = (f"strength {s['strength']}, guidance {s['guidance_scale']}, {s['mask_mode']} mask (threshold "
                    f"{s['mask_threshold']}, {s['mask_draws']} draws), change threshold {s['change_threshold']}, "
                    f"{s['steps']} steps")
        lines.append(f"| {edit} | {r['n']} | {_percent(r['effectiveness'], r['meets']['effectiveness'])} | "
                     f"{_percent(r['preservation_all'], r['meets']['preservation_all'])} | "
                     f"{_percent(r['faithfulness'], r['meets']['faithfulness'])} | {r['faithfulness_near_truth']:.0%} | "
                     f"{r['mask_iou_mean']:.2f} | {r['mean_passes']:.0f} | {settings} | {r['date']} |")
    commands = sorted({r["command"] for r in records.values()})
    lines += ["", "Reproduce: " + "; ".join(f"`{c}`" for c in commands) + ".", ""]
    return lines


def record_edit_bench(model_dir: str | Path, records: dict) -> Path:
    """Store counterfactual-bench records (``medviz.bench.counterfactual.card_record``, by edit name) in
    medviz.json ``edit_bench`` (replacing those edits' earlier records, keeping the others) and regenerate the
    card's section. Returns the medviz.json path."""
    model_dir = Path(model_dir)
    facts = json.loads((model_dir / "medviz.json").read_text())
    entries = facts.setdefault("edit_bench", {})
    entries.update(records)
    return _write_facts(model_dir, facts, EDIT_BENCH_HEADING, _edit_bench_section(entries))


DOMAIN_CHECK_HEADING = "## Domain check as measured (`python -m medviz.bench guard`)"


def _domain_check_section(record: dict) -> list[str]:
    """The model card's lines on its domain check (medviz.json ``domain_check``; none: no lines)."""
    if not record:
        return []
    m = record.get("measured", {})
    lines = [DOMAIN_CHECK_HEADING, "",
             f"Edit and Explain flag an image whose score (the norm of its standardised VAE round-trip and one-step "
             f"denoising errors at t = {', '.join(map(str, record['timesteps']))}) exceeds **{record['threshold']:.2f}** "
             f"({len(record['timesteps'])} UNet passes per check; docs/guard.md)."]
    if "detection_far" in m:
        lines += ["", f"- false alarms: {m['false_alarms_held_out']:.2%} of {m['n_held_out']} held-out phantoms, "
                      f"{m['false_alarms_edges']:.2%} of {m['n_edges']} at the corners of the training acquisition ranges",
                  f"- far images flagged: {m['detection_far']:.2%} of {m['n_far']} (AUROC {m['auroc']:.4f}): "
                  + ", ".join(f"{group} {share}" for group, share in m.get("far_by_group", {}).items()),
                  f"- cost: {m['unet_passes_per_check']} UNet passes, {m['cost_vs_edit']:.1%} of a default edit's "
                  f"{m['edit_unet_passes']}; {m['check_seconds'] * 1e3:.0f} ms on this CPU"]
    lines += ["", f"Measured {record.get('date', '')} with `{record.get('command', '')}`."]
    return lines


def record_domain_check(model_dir: str | Path, record: dict) -> Path:
    """Store a ``bench guard`` calibration and its figures in medviz.json ``domain_check`` and regenerate the
    card's section. Returns the medviz.json path."""
    model_dir = Path(model_dir)
    path = model_dir / "medviz.json"
    facts = json.loads(path.read_text()) if path.is_file() else {}
    facts["domain_check"] = record
    return _write_facts(model_dir, facts, DOMAIN_CHECK_HEADING, _domain_check_section(record))


def write_classifier_card(folder: str | Path) -> Path:
    """README.md of a classifier to audit from its ``medviz_classifier.json``: what it was trained on, its accuracy
    per group on the balanced test set and, once ``bench audit --write-card`` ran, its audit. Returns the path."""
    folder = Path(folder)
    card = json.loads((folder / "medviz_classifier.json").read_text())
    config, test = card["config"], card["balanced_test"]
    method = "ERM" if card["method"] == "erm" else "Group DRO (Sagawa et al. 2020)"
    lines = [f"# {folder.name}: a classifier to audit", "", f"> {RESEARCH_ONLY_NOTICE.capitalize()}. Trained on "
             "synthetic phantoms with a planted shortcut, on purpose: it is the audit's test object, not a model to use.",
             "", f"- task: P({card['target']}) from a {config['image_size']} px {config['domain']} phantom "
             f"(transformers ResNet, `AutoModelForImageClassification`)",
             f"- training: {method} on {config['n_images']} phantoms whose link {card['target']} -> {card['spurious']} "
             f"has risk difference {card['strength']}; {config['steps']} steps, weight decay {card.get('weight_decay')}",
             *([f"- plus {card['augment_rows']} counterfactual training rows, made by `{card['augment_source']}` "
                f"(its default plan: {'; '.join(card.get('augment_plan', []))})"] if card.get("augment_source") else []),
             f"- command: `{card['command']}`", "", "## Balanced test set (no link)", "",
             "| group | accuracy | n |", "| --- | --- | --- |"]
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
