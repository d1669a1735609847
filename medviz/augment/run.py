"""Batch counterfactuals of a dataset, sharded over the processes of ``accelerate launch``.

Steps, per process:

1. read the CSV (CheXpert or ISIC layout) and make the plan's jobs; every process makes the same list;
2. list the jobs that have no record yet under ``OUT/parts`` (so a rerun resumes) and take every N-th of them;
3. per job: read the image, the domain check (``medviz.guard``), the edit (``engines.counterfactual``, seed of the
   job) with its effect check; write the image, then the job's record (written last, atomically: a job with a
   record is finished);
4. once all processes are done, the main process merges the records into ``OUT/labels.csv`` (the source layout,
   with the edited label switched and provenance columns) and ``OUT/skipped.csv`` (row, edit, reason).

Records live in ``OUT/parts``, one JSON per job, never rewritten: an interrupted run loses at most the jobs in
flight. Several nodes need ``OUT`` on a shared file system.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .. import domains
from ..data import ISIC_ID_COLUMNS, load_labelled, read_rows
from ..engines.audit import FAITHFUL_ENOUGH, edit_faithfulness
from ..engines.counterfactual import EditConfig, counterfactual
from ..engines.guard import check_domain
from ..io import read_image, write_png
from ..phantoms.effects import link_parameters
from ..phantoms.export import write_dataset
from ..prompts import CHEXPERT_FINDINGS
from .plan import Job, Rule, default_plan, make_jobs, parse_rule

#: Provenance columns of ``labels.csv`` (prefixed: a phantom CSV has its own ``seed``).
PROVENANCE = ("cf_source_row", "cf_source_image", "cf_edit", "cf_seed", "cf_model", "cf_domain_check",
              "cf_readout_before", "cf_readout_after", "cf_effect_check")
SKIPPED_COLUMNS = ("job", "source_row", "source_image", "edit", "seed", "reason")


@dataclass(frozen=True)
class AugmentConfig:
    """A batch of counterfactuals.

    Args:
        csv: the source dataset's CSV (CheXpert layout for "cxr", ISIC for "skin"; images resolved as
            ``medviz.data`` does).
        out: the output folder (``images/``, ``labels.csv``, ``skipped.csv``, ``parts/``, ``plan.json``).
        model: a bundled model name or a pipeline folder; its domain picks the layout.
        rules: plan rules (``plan.parse_rule``); none: ``default_plan`` of ``target`` and ``spurious``.
        target, spurious: the attributes the default plan balances (default: the domain's planted link).
        seed: job ``i`` edits with seed ``seed + i``.
        domain_check: skip images the domain check flags.
        edit: the Edit engine's settings (add / remove / seed are the job's).
        limit: at most this many jobs (a trial run); None: all.
    """

    csv: str
    out: str
    model: str
    rules: tuple[str, ...] = ()
    target: str = ""
    spurious: str = ""
    seed: int = 0
    domain_check: bool = True
    edit: EditConfig = EditConfig(domain_check=False)
    limit: int | None = None


@dataclass(frozen=True)
class Source:
    """The dataset: its layout, raw CSV rows and columns, and each row's image path and labels."""

    layout: str                        # "chexpert" or "isic"
    columns: list[str]
    rows: list[dict[str, str]]
    paths: list[Path]
    labels: list[dict[str, bool | None]]

    def image_cell(self, row: int) -> str:
        """Row ``row``'s image as its CSV names it (CheXpert ``Path``, ISIC image id)."""
        column = "Path" if self.layout == "chexpert" else next(c for c in ISIC_ID_COLUMNS if c in self.columns)
        return self.rows[row][column]


@dataclass(frozen=True)
class AugmentResult:
    kept: int
    skipped: dict = field(default_factory=dict)      # reason kind -> count
    jobs: int = 0
    done_before: int = 0                             # jobs found finished when this run started
    seconds: float = 0.0
    processes: int = 1
    csv: str = ""


def phantom_source(folder: Path, domain: str, n: int, strength: float, first_seed: int, size: int) -> Path:
    """Phantoms ``first_seed ..`` with the planted link at ``strength``, written once to ``folder`` (CheXpert / ISIC
    layout, ``phantoms.export``): a dataset like any other. Returns its CSV."""
    csv_path = folder / "labels.csv"
    if not csv_path.is_file():
        write_dataset(domain, n, size, folder, seed=first_seed, **link_parameters(domain, strength))
    return csv_path


def read_source(csv_path: str, domain: str) -> Source:
    """The dataset's rows and labels. Lateral CheXpert views get no labels, so no rule selects them (the models
    are trained on frontal views)."""
    columns, rows = read_rows(csv_path)
    layout = domains.get(domain).dataset_layout
    views = {"frontal_only": False} if layout == "chexpert" else {}       # lateral views, kept unlabelled
    records = load_labelled(domain, csv_path, check_files=False, **views)
    labels = []
    for record, row in zip(records, rows):
        frontal = row.get("Frontal/Lateral", "Frontal") in ("Frontal", "")
        named = record.attribute_labels() if frontal else {}
        labels.append({k: None if math.isnan(v) else v == 1.0 for k, v in named.items()})
    return Source(layout, columns, rows, [r.path for r in records], labels)


def plan_rules(config: AugmentConfig, source: Source, model_card: dict, domain: str) -> list[Rule]:
    """The config's rules, or the default plan of its target and spurious attribute."""
    vocabulary = domains.get(domain)
    editable = [a.name for a in vocabulary.editable]
    if config.rules:
        return [parse_rule(text, editable) for text in config.rules]
    _, cause, effect = vocabulary.planted_link or (None, "", "")
    target, spurious = config.target or cause, config.spurious or effect
    faithfulness = edit_faithfulness(model_card, (target, spurious), config.edit)
    return default_plan(source.labels, target, spurious, faithfulness, FAITHFUL_ENOUGH)


def _write_json(path: Path, payload: dict) -> None:
    """Written whole or not at all: a job's record marks it finished."""
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    temporary.write_text(json.dumps(payload, default=str))
    os.replace(temporary, path)


def _check_plan(out: Path, payload: dict, main: bool) -> None:
    """The plan of this folder's earlier run must be this one: else resuming would mix two plans' images."""
    path = out / "plan.json"
    if path.is_file():
        earlier = json.loads(path.read_text())
        if earlier != json.loads(json.dumps(payload, default=str)):
            raise ValueError(f"{out} holds the results of another plan or dataset ({earlier.get('rules')}); "
                             "choose a new --out folder, or delete that one to start over")
    elif main:
        _write_json(path, payload)


def image_name(source: Source, job: Job) -> str:
    stem = Path(source.paths[job.row]).stem
    return f"{stem}_{job.rule.action}-{job.rule.attribute}_{job.index:06d}.png"


def run_job(model, source: Source, job: Job, config: AugmentConfig, out: Path) -> dict:
    """One job: its record, kept (with the image written) or skipped with the reason."""
    record = {"job": job.index, "source_row": job.row, "source_image": source.image_cell(job.row),
              "edit": job.rule.edit, "seed": job.seed, "model": model.name}
    try:
        pixels = read_image(source.paths[job.row], max_side=512).pixels
    except Exception as error:                      # any unreadable file is the row's fault, not the run's
        return {**record, "status": "skipped", "kind": "unreadable",
                "reason": f"unreadable: {' '.join(str(error).split())[:200]}"}
    if config.domain_check:
        checked = check_domain(model, pixels)
        record["domain_check"] = checked.record()
        if checked.in_domain is False:
            return {**record, "status": "skipped", "kind": "outside the domain",
                    "reason": f"outside the model's domain ({checked.reason})"}
    edit = replace(config.edit, add=(job.rule.attribute,) if job.rule.action == "add" else (),
                   remove=(job.rule.attribute,) if job.rule.action == "remove" else (), seed=job.seed,
                   domain_check=False)
    result = counterfactual(model, pixels, edit)
    record.update(readout_before=_rounded(result.readout_before), readout_after=_rounded(result.readout_after),
                  unet_passes=result.unet_passes)
    if result.effect is not None:
        record["effect_check"] = {"passed": result.effect.passed, "verdict": result.effect.verdict}
        if not result.effect.passed:
            return {**record, "status": "skipped", "kind": "effect check failed",
                    "reason": f"effect check failed: {result.effect.verdict}"}
    name = image_name(source, job)
    write_png(out / "images" / name, result.counterfactual, {"source": record["source_image"], "edit": job.rule.edit,
                                                               "seed": job.seed, "model": model.name})
    return {**record, "status": "kept", "image": f"images/{name}"}


def _rounded(readout: dict | None) -> dict | None:
    return None if readout is None else {k: round(float(v), 4) for k, v in readout.items()}


def augment(config: AugmentConfig, model, accelerator=None,
            progress: Callable[[int, int], None] | None = None) -> AugmentResult:
    """Run this process's share of the plan, then (main process) merge. ``accelerator``: an ``accelerate``
    ``Accelerator`` (None: one process). ``progress(done, total)``: jobs finished by all processes."""
    tic = time.perf_counter()
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    main = rank == 0
    out = Path(config.out)
    if not (domains.find(model.domain) and domains.get(model.domain).dataset_layout):
        raise ValueError(f"{model.name}: a batch of counterfactuals needs a model of a domain with a dataset layout "
                         f"(cxr, skin), got domain {model.domain!r}")
    source = read_source(config.csv, model.domain)
    rules = plan_rules(config, source, model.card, model.domain)
    jobs = make_jobs(source.labels, rules, config.seed)[:config.limit]
    parts = out / "parts"
    if main:
        (out / "images").mkdir(parents=True, exist_ok=True)
        parts.mkdir(exist_ok=True)
    _wait(accelerator)
    _check_plan(out, {"csv": str(Path(config.csv).resolve()), "model": model.name, "seed": config.seed,
                      "rules": [r.text() for r in rules], "jobs": len(jobs), "edit": asdict(config.edit)}, main)
    remaining = [job for job in jobs if not (parts / f"{job.index:07d}.json").is_file()]
    _wait(accelerator)                         # every process has listed the same remaining jobs
    done_before = len(jobs) - len(remaining)
    mine = remaining[rank::world]              # dealt anew on a resume, so no process idles at the end
    for job in mine:
        _write_json(parts / f"{job.index:07d}.json", run_job(model, source, job, config, out))
        if progress and main:
            progress(sum(1 for _ in parts.glob("*.json")), len(jobs))
    _wait(accelerator)
    records = [json.loads((parts / f"{job.index:07d}.json").read_text()) for job in jobs] if main else []
    if main:
        merge(source, records, out)
    skipped: dict[str, int] = {}
    for record in records:
        if record["status"] == "skipped":
            skipped[record["kind"]] = skipped.get(record["kind"], 0) + 1
    return AugmentResult(kept=sum(r["status"] == "kept" for r in records), skipped=skipped, jobs=len(jobs),
                         done_before=done_before, seconds=time.perf_counter() - tic, processes=world,
                         csv=str(out / "labels.csv"))


def _wait(accelerator) -> None:
    if accelerator is not None:
        accelerator.wait_for_everyone()


def merge(source: Source, records: Sequence[dict], out: Path) -> None:
    """``labels.csv``: one row per kept job in job order, the source row with its image and the edited label
    switched, plus ``PROVENANCE``; ``skipped.csv``: the rest with the reason."""
    kept, skipped = [], []
    for record in records:
        if record["status"] == "kept":
            kept.append(edited_row(source, record))
        else:
            skipped.append({k: record.get(k, "") for k in SKIPPED_COLUMNS})
    columns = list(source.columns) + [c for c in _switched_columns(source, records) if c not in source.columns]
    _write_csv(out / "labels.csv", columns + list(PROVENANCE), kept)
    _write_csv(out / "skipped.csv", list(SKIPPED_COLUMNS), skipped)


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    temporary = path.with_suffix(".csv.tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def label_columns(layout: str, attribute: str, value: bool, columns: Sequence[str]) -> dict[str, str]:
    """The cells that say ``attribute`` is ``value`` in the layout: a CheXpert finding column; in ISIC, melanoma's
    target / benign_malignant / diagnosis / MEL columns where the CSV has them, another attribute's own column."""
    if layout == "chexpert":
        finding = next((f for f in CHEXPERT_FINDINGS if f.lower().replace(" ", "_") == attribute), None)
        return {finding or attribute: "1.0" if value else "0.0"}
    if attribute != "melanoma":
        return {attribute: str(int(value))}
    cells = {"target": str(int(value))}
    for column, cell in (("benign_malignant", "malignant" if value else "benign"), ("MEL", f"{float(value):.1f}"),
                         ("diagnosis", "melanoma" if value else "nevus"), ("dx", "mel" if value else "nv")):
        if column in columns:
            cells[column] = cell
    return cells


def _switched_columns(source: Source, records: Sequence[dict]) -> list[str]:
    names = []
    for record in records:
        action, attribute = record["edit"].split(" ", 1)
        names += [c for c in label_columns(source.layout, attribute, action == "add", source.columns) if c not in names]
    return names


def edited_row(source: Source, record: dict) -> dict:
    """The source row with the new image, the switched label and the provenance of ``record``."""
    row = dict(source.rows[record["source_row"]])
    action, attribute = record["edit"].split(" ", 1)
    if source.layout == "chexpert":
        row["Path"] = record["image"]
    else:
        id_column = next(c for c in ISIC_ID_COLUMNS if c in source.columns)
        row[id_column] = Path(record["image"]).stem
    row.update(label_columns(source.layout, attribute, action == "add", source.columns))
    row.update({"cf_source_row": record["source_row"], "cf_source_image": record["source_image"],
                "cf_edit": record["edit"], "cf_seed": record["seed"], "cf_model": record["model"],
                **{f"cf_{key}": json.dumps(record.get(key)) for key in ("domain_check", "readout_before",
                                                                       "readout_after", "effect_check")}})
    return row
