"""The model card (``medviz.json``): one reader for every engine and tab, below the engines.

A bundled model's card holds what the benches measured on it, each bench's record under its own key:
``models_bench`` (prompt rows), ``edit_bench`` (edits, by edit identifier such as ``remove_support_devices``),
``explain_calibration`` (the diffusion classifier's operating point, by task identifier such as
``pleural_effusion``), ``domain_check`` and ``training``. Keys are identifiers; phrases are for display only.
``read_card`` reads a folder's card, renaming the phrase keys older cards used (``"add support devices"``,
``"pleural effusion"``), so a user's folder written before still loads. The typed records (``edit_records``,
``calibration``, ``prompt_rows``, ``domain_calibration``, ``training_runs``) are what the engines read; the
Markdown sections (``measured_sections``) are what the About tab and the card's README show. The writers are
the benches' (``medviz.bench.cards``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import domains

CARD_FILE = "medviz.json"
#: The timesteps the diffusion classifier's trials stratify over unless a card fits a window (the whole schedule).
DEFAULT_T_RANGE = (20, 980)


def read_card(folder: str | Path) -> dict[str, Any]:
    """The card in ``folder`` with identifier keys ({} when the folder has none)."""
    path = Path(folder) / CARD_FILE
    return normalise(json.loads(path.read_text())) if path.is_file() else {}


def normalise(card: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``card`` whose edit and task keys are identifiers (older cards keyed them by phrase)."""
    card = dict(card)
    if card.get("edit_bench"):
        card["edit_bench"] = {edit_id(r["action"], r["attributes"][0]) if _is_edit(r) else key: r
                              for key, r in card["edit_bench"].items()}
    if card.get("explain_calibration"):
        card["explain_calibration"] = {task_id(card.get("domain"), task): entry
                                       for task, entry in card["explain_calibration"].items()}
    return card


def _is_edit(record: Any) -> bool:
    """A well-formed edit record (a user's hand-edited card may hold others: they are kept as they are, unused)."""
    return isinstance(record, dict) and bool(record.get("action")) and bool(record.get("attributes"))


def edit_id(action: str, attribute: str) -> str:
    """'remove' + 'support_devices' -> 'remove_support_devices'."""
    return f"{action}_{attribute}"


def edit_phrase(record_or_id: dict | str, domain: str | None) -> str:
    """'remove_support_devices' -> 'remove support devices' (the domain's phrase for the attribute)."""
    action, attribute = record_or_id.split("_", 1) if isinstance(record_or_id, str) else (
        record_or_id["action"], record_or_id["attributes"][0])
    return f"{action} {attribute_phrase(domain, attribute)}"


def task_id(domain: str | None, task: str) -> str:
    """A task's identifier: an attribute name, given as one or as its phrase ('pleural effusion')."""
    vocabulary = domains.find(domain)
    if vocabulary is not None:
        for attribute in vocabulary.attributes:
            if task in (attribute.name, attribute.phrase):
                return attribute.name
    return task.replace(" ", "_")


def attribute_phrase(domain: str | None, name: str) -> str:
    """The phrase the domain shows for an attribute identifier (the identifier itself when unknown)."""
    vocabulary = domains.find(domain)
    return vocabulary.attribute(name).phrase if vocabulary is not None and name in vocabulary.names else name


@dataclass(frozen=True)
class EditRecord:
    """The counterfactual bench's figures for one edit on this model (``python -m medviz.bench counterfactual``).

    ``figures``: the record as written (n, effectiveness, preservation_all, faithfulness, faithfulness_near_truth,
    mask_iou_mean, mean_passes, bars, meets, near_truth_px, settings, date, command)."""

    edit: str
    action: str
    attributes: tuple[str, ...]
    figures: dict = field(default_factory=dict)

    @property
    def settings(self) -> dict:
        return self.figures["settings"]

    @property
    def meets(self) -> dict:
        return self.figures["meets"]


def edit_records(card: dict) -> dict[str, EditRecord]:
    """{edit identifier: its record} of every benched edit (none: {})."""
    records = ((edit_id(r["action"], r["attributes"][0]), r) for r in (card or {}).get("edit_bench", {}).values()
               if _is_edit(r))
    return {edit: EditRecord(edit, r["action"], tuple(r["attributes"]), r) for edit, r in records}


def edit_record(card: dict, action: str, attribute: str) -> EditRecord | None:
    """The record of the benched edit that makes ``action`` on ``attribute`` (one of its attributes), or None."""
    return next((r for r in edit_records(card).values() if r.action == action and attribute in r.attributes), None)


@dataclass(frozen=True)
class Calibration:
    """The diffusion classifier's operating point for one task (``python -m medviz.bench calibrate``).

    ``trials`` is the N the engine runs; ``trials_run`` the N the vote threshold was fitted at (they differ once
    a classify bench moved N at the same share of the votes: ``engine_trials_bench`` holds its figures)."""

    task: str
    weighting: str
    t_range: tuple[int, int]
    vote_threshold: float
    decision: str
    trials: int
    trials_run: int
    engine_trials_bench: dict | None
    figures: dict = field(default_factory=dict)


def calibration(card: dict, task: str, default_trials: int) -> Calibration | None:
    """The card's operating point for ``task`` (identifier or phrase), or None where it has none."""
    card = card or {}
    task = task_id(card.get("domain"), task)
    entry = card.get("explain_calibration", {}).get(task)
    if not entry:
        return None
    trials = int(entry.get("trials", default_trials))
    return Calibration(task, entry.get("weighting", "disagreement"),
                       tuple(int(t) for t in entry.get("t_range", DEFAULT_T_RANGE)),
                       float(entry.get("vote_threshold", 0.5)), entry.get("decision", "vote"), trials,
                       int(entry.get("trials_run", trials)), entry.get("engine_trials_bench"), entry)


@dataclass(frozen=True)
class PromptBench:
    """The models bench's prompt rows (``python -m medviz.bench models``): each row an attribute asked for
    (``wanted``) or negated, with its agreement, fits_all, diversity_ratio and meets; ``bars`` and ``settings``
    are the run's."""

    rows: tuple[dict, ...]
    bars: dict
    settings: dict
    n: int
    date: str
    figures: dict = field(default_factory=dict)


def prompt_bench(card: dict) -> PromptBench | None:
    record = (card or {}).get("models_bench")
    if not record:
        return None
    return PromptBench(tuple(record["rows"]), record["bars"], record.get("settings", {}), record.get("n", 0),
                       record.get("date", ""), record)


def domain_calibration(card: dict) -> dict | None:
    """The domain check's calibration (centre, spread, threshold, timesteps; ``python -m medviz.bench guard``)."""
    return (card or {}).get("domain_check") or None


@dataclass(frozen=True)
class TrainingRun:
    """One training stage as the card records it: its command (or config) and its result."""

    name: str
    command: str | None
    config: dict | None
    result: dict | None


def training_runs(card: dict) -> list[TrainingRun]:
    return [TrainingRun(name, run.get("command"), run.get("config"), run.get("result") or run.get("results"))
            for name, run in (card or {}).get("training", {}).items()]


def measured_sections(card: dict) -> str:
    """Markdown of every bench record a card holds (prompts, diffusion classifier, edits); '' for none."""
    domain = card.get("domain")
    lines = (
        models_bench_section(card.get("models_bench") or {})
        + calibration_section(card.get("explain_calibration") or {}, domain)
        + edit_bench_section(card.get("edit_bench") or {}, domain)
        + domain_check_section(card.get("domain_check") or {})
    )
    return "\n".join(lines)


#: The model card section that ``record_models_bench`` rewrites.
MODELS_BENCH_HEADING = "## Measured quality (`python -m medviz.bench models`)"


def models_bench_section(bench: dict) -> list[str]:
    """The model card's prompt fidelity, diversity, FD and VAE round trip (medviz.json ``models_bench``, the
    record ``medviz.bench.models.card_record`` makes of a run; none: no lines)."""
    if not bench:
        return []
    bars = bench["bars"]

    def marked(value: float, bar: str, text: str) -> str:
        return text if value >= bars[bar] else f"**{text}**"

    lines = [
        MODELS_BENCH_HEADING,
        "",
        "Oracle agrees: the row's attribute reads as the prompt asks. Fits all: every attribute the prompt "
        "fixes as the training captions read it (they name everything present, so an unnamed finding or "
        f"artifact is absent). Diversity: mean pairwise oracle-feature distance of the {bench['n']} samples over "
        "that of the held-out phantoms that fit the prompt (n of them), and over that of the phantoms that "
        f"match only the row's attribute (they also span what the prompt excludes). Bars: oracle agrees >= "
        f"{bars['agreement']:.0%}, diversity >= {bars['diversity_ratio']:.2f}; bold: below its bar. The Generate tab "
        "shows the rows of the attributes a prompt names, before it runs.",
        "",
        "| attribute | prompt | oracle agrees | fits all | diversity vs fitting phantoms (n) | "
        "diversity vs row-attribute match |",
        "|---|---|---|---|---|---|",
    ]
    for row in bench["rows"]:
        agreement = marked(row["agreement"], "agreement", f"{row['agreement']:.1%}")
        diversity = marked(row["diversity_ratio"], "diversity_ratio", f"{row['diversity_ratio']:.2f}")
        lines.append(f"| {row['attribute']} | {row['prompt']} | {agreement} | {row['fits_all']:.1%} | {diversity} "
                     f"({row['n_matching']}) | {row['diversity_ratio_named_only']:.2f} |")
    settings = bench["settings"]
    negative = (
        f"negative prompt {settings['negative_prompt']!r}" if settings["negative_prompt"] else "no negative prompt"
    )
    trip = bench["vae_round_trip"]
    lines += [
        "",
        f"Samples: {bench['n']} per prompt, {settings['steps']} {settings['scheduler']} steps, guidance "
        f"{settings['guidance_scale']}, {negative}, seed {bench['seed']}. Fréchet distance in oracle features: "
        f"generated vs held-out phantoms {bench['fd_generated_vs_held_out']:.1f}; Gaussian-blurred held-out "
        f"vs held-out {bench['fd_blurred_held_out_vs_held_out']:.1f}; held-out half vs half "
        f"{bench['fd_held_out_half_vs_half']:.1f} ({bench['n_reference']} held-out phantoms).",
        "",
        f"VAE round trip (encode -> decode) of {bench['n_reference']} held-out phantoms: PSNR "
        f"{trip['psnr_db']:.1f} dB; the oracle still finds each attribute in (recall):",
        "",
        "| attribute | phantoms with it | recall after the round trip | specificity |",
        "|---|---|---|---|",
        *[
            f"| {name} | {a['n_positive']} | {a['recall']:.1%} | {a['specificity']:.1%} |"
            for name, a in trip["attributes"].items()
        ],
        "",
        f"Reproduce: `{bench['command']}` ({bench['date']}).",
        "",
    ]
    return lines


#: The model card section that ``record_calibration`` rewrites.
CALIBRATION_HEADING = "## Diffusion-classifier operating point (`python -m medviz.bench calibrate`)"

def calibration_section(entries: dict, domain: str | None) -> list[str]:
    """The model card's lines on the diffusion classifier's fitted operating points (none: no lines)."""
    lines: list[str] = []
    if not entries:
        return lines
    lines += [CALIBRATION_HEADING, ""]
    for task, c in entries.items():
        lo, hi = c.get("t_range", DEFAULT_T_RANGE)
        window = (
            "trials drawn from the whole schedule"
            if (lo, hi) == DEFAULT_T_RANGE
            else f"trials drawn from timesteps {lo}–{hi} only"
        )
        fitted = f"fitted on {c['n']} labelled tuning phantoms (seeds {c['first_seed']:,}+, never the benches')"
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
            cost = (
                f", at most {adopted['points_behind_at_most']:.2f} points behind N = {adopted['reference_trials']} "
                f"with {adopted['passes_saving']:.1f}x fewer UNet passes"
                if "points_behind_at_most" in adopted
                else ""
            )
            engine_n = (
                f" The engine runs N = {c['trials']} at that share of the votes, not the fit's N = "
                f"{c['trials_run']}: the"
                if c["trials"] != c["trials_run"]
                else " At that N the"
            )
            found += (
                f"{engine_n} classify bench on {adopted['n']} held-out phantoms gave {adopted['accuracy']:.2%} "
                f"({adopted['mean_trials']:.1f} trials on average){cost} (`{adopted['command']}`)."
            )
        lines.append(
            f"- **{attribute_phrase(domain, task)}**: the first class needs {c['votes_needed']} of {c['trials']} "
            "votes (`vote_threshold` "
            f"{c['vote_threshold']}), {window}, {c.get('weighting', 'disagreement')} error weighting; {found} "
            f"The Explain tab (its default operating point, with N = {c['trials']} as the default trials) and the "
            "classify bench apply it to this preset only (at another N the tab applies the same share of the "
            "votes); any other checkpoint or prompt set, or another weighting picked explicitly, keeps the plain "
            "majority over the whole schedule.")
    lines.append("")
    return lines


#: The model card section that ``record_edit_bench`` rewrites.
EDIT_BENCH_HEADING = "## Counterfactual edits as measured (`python -m medviz.bench counterfactual`)"


def _percent(share: float, met: bool) -> str:
    return f"{share:.0%}" if met else f"**{share:.0%}** (below the bar)"


def edit_bench_section(records: dict, domain: str | None) -> list[str]:
    """The model card's table of benched edits (medviz.json ``edit_bench``; none: no lines)."""
    if not records:
        return []
    first = next(iter(records.values()))
    bars = first["bars"]
    lines = [
        EDIT_BENCH_HEADING,
        "",
        "Held-out phantoms with known true counterfactuals (the phantom SCM's do(edit), same exogenous noise). "
        "Effective: the oracle (an attribute readout, not a diagnosis) reads the change asked for; kept: every "
        "other attribute keeps its label; faithful: closer (L1) to the true counterfactual than the input is; "
        f"near the truth: the same with every pixel farther than {first['near_truth_px']} px (at 128 px) from "
        f"the true change put back to the input. Bars: effective >= {bars['effectiveness']:.0%}, kept >= "
        f"{bars['preservation_all']:.0%}, faithful >= {bars['faithfulness']:.0%}. The Edit tab shows an "
        "edit's row above its Edit button, before it runs.",
        "",
        "| edit | phantoms | effective | kept all | faithful | near the truth | mask IoU | UNet passes | "
        "settings | date |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records.values():
        s = r["settings"]
        settings = (
            f"strength {s['strength']}, guidance {s['guidance_scale']}, {s['mask_mode']} mask (threshold "
            f"{s['mask_threshold']}, {s['mask_draws']} draws), change threshold {s['change_threshold']}, "
            f"{s['steps']} steps"
        )
        lines.append(
            f"| {edit_phrase(r, domain)} | {r['n']} | {_percent(r['effectiveness'], r['meets']['effectiveness'])} | "
            f"{_percent(r['preservation_all'], r['meets']['preservation_all'])} | "
            f"{_percent(r['faithfulness'], r['meets']['faithfulness'])} | {r['faithfulness_near_truth']:.0%} | "
            f"{r['mask_iou_mean']:.2f} | {r['mean_passes']:.0f} | {settings} | {r['date']} |"
        )
    commands = sorted({r["command"] for r in records.values()})
    lines += ["", "Reproduce: " + "; ".join(f"`{c}`" for c in commands) + ".", ""]
    return lines


DOMAIN_CHECK_HEADING = "## Domain check as measured (`python -m medviz.bench guard`)"


def domain_check_section(record: dict) -> list[str]:
    """The model card's lines on its domain check (medviz.json ``domain_check``; none: no lines)."""
    if not record:
        return []
    m = record.get("measured", {})
    lines = [
        DOMAIN_CHECK_HEADING,
        "",
        f"Edit and Explain flag an image whose score (the norm of its standardised VAE round-trip and one-step "
        f"denoising errors at t = {', '.join(map(str, record['timesteps']))}) exceeds **{record['threshold']:.2f}** "
        f"({len(record['timesteps'])} UNet passes per check; docs/guard.md).",
    ]
    if "detection_far" in m:
        lines += [
            "",
            f"- false alarms: {m['false_alarms_held_out']:.2%} of {m['n_held_out']} held-out phantoms, "
            f"{m['false_alarms_edges']:.2%} of {m['n_edges']} at the corners of the training acquisition ranges",
            f"- far images flagged: {m['detection_far']:.2%} of {m['n_far']} (AUROC {m['auroc']:.4f}): "
            + ", ".join(f"{group} {share}" for group, share in m.get("far_by_group", {}).items()),
            f"- cost: {m['unet_passes_per_check']} UNet passes, {m['cost_vs_edit']:.1%} of a default edit's "
            f"{m['edit_unet_passes']}; {m['check_seconds'] * 1e3:.0f} ms on this CPU",
        ]
    lines += ["", f"Measured {record.get('date', '')} with `{record.get('command', '')}`."]
    return lines


