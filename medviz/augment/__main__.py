"""python -m medviz.augment --csv CSV | --phantoms N --model NAME --out DIR [--plan RULE ...] [--dry-run]

Counterfactuals of a dataset's rows by a plan of edits, in the dataset's own layout with provenance columns. The
same command runs on one CPU, several GPUs or several nodes:

    accelerate launch --multi_gpu --num_processes 2 -m medviz.augment ...   # 2 processes (GPUs, or CPU cores)

Each process takes every N-th unfinished job; a rerun into the same --out resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from datetime import timedelta
from pathlib import Path

from .. import domains
from ..engines.counterfactual import EditConfig
from ..models import load_model
from ..processes import end_processes, launched_accelerator
from .plan import group_counts, make_jobs
from .run import AugmentConfig, augment, phantom_source, plan_rules, read_source


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m medviz.augment", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", help="the dataset's CSV: CheXpert layout (cxr models) or ISIC layout (skin)")
    source.add_argument("--phantoms", type=int, help="render this many phantoms into OUT/source first")
    parser.add_argument("--strength", type=float, default=0.9, help="--phantoms: the planted link's strength")
    parser.add_argument("--first-seed", type=int, default=0, help="--phantoms: the first phantom's seed")
    parser.add_argument("--model", default="cxr-phantom", help="bundled model name or pipeline folder")
    parser.add_argument("--out", required=True)
    parser.add_argument("--plan", action="append", default=[], metavar="RULE",
                        help="'ACTION ATTRIBUTE [where [no] NAME [and ...]] [max N]', repeatable; default: balance "
                             "--target against --spurious")
    parser.add_argument("--target", default="", help="default plan: the target (default: the domain's planted link)")
    parser.add_argument("--spurious", default="", help="default plan: the spurious attribute")
    parser.add_argument("--seed", type=int, default=0, help="job i edits with seed SEED + i")
    parser.add_argument("--limit", type=int, default=None, help="at most this many jobs")
    parser.add_argument("--steps", type=int, default=EditConfig.steps, help="the edits' schedule length")
    parser.add_argument("--domain-check", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and its jobs, edit nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    import torch
    from accelerate.utils import InitProcessGroupKwargs
    from tqdm.auto import tqdm

    if args.threads:
        torch.set_num_threads(args.threads)
    # A long collective timeout: the processes meet only at the start and the end of hours of edits.
    accelerator = launched_accelerator(kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(hours=12))])
    main_process = accelerator.is_main_process
    model = load_model(args.model, device=str(accelerator.device))
    out = Path(args.out)
    csv_path = args.csv
    if args.phantoms:
        if main_process:
            phantom_source(
                out / "source", model.domain, args.phantoms, args.strength, args.first_seed, model.image_size
            )
        accelerator.wait_for_everyone()
        csv_path = str(out / "source" / "labels.csv")
    config = AugmentConfig(csv=csv_path, out=str(out), model=args.model, rules=tuple(args.plan), target=args.target,
                           spurious=args.spurious, seed=args.seed, domain_check=args.domain_check,
                           edit=replace(EditConfig(domain_check=False), steps=args.steps), limit=args.limit)
    if args.dry_run:
        if main_process:
            print(json.dumps(describe_plan(config, model), indent=2))
        end_processes()
        return 0
    bar = tqdm(total=0, unit="edit", disable=not main_process, desc="counterfactuals")

    def progress(done: int, total: int) -> None:
        bar.total, bar.n = total, done
        bar.refresh()

    tic = time.perf_counter()
    result = augment(config, model, accelerator, progress)
    bar.close()
    if main_process:
        ran = result.jobs - result.done_before
        summary = {**asdict(result), "images_per_s": round(ran / max(time.perf_counter() - tic, 1e-9), 4),
                   "threads_per_process": torch.get_num_threads()}
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary, indent=2))
    end_processes()
    return 0


def describe_plan(config: AugmentConfig, model) -> dict:
    """The plan's rules, its jobs per rule and the source's groups, without editing."""
    source = read_source(config.csv, model.domain)
    rules = plan_rules(config, source, model.card, model.domain)
    jobs = make_jobs(source.labels, rules, config.seed)[:config.limit]
    per_rule = {rule.text(): sum(1 for job in jobs if job.rule == rule) for rule in rules}
    _, cause, effect = domains.get(model.domain).planted_link
    target, spurious = config.target or cause, config.spurious or effect
    groups = group_counts(source.labels, target, spurious)
    return {
        "rows": len(source.rows),
        "rules": per_rule,
        "jobs": len(jobs),
        "groups": {f"{'' if t else 'no '}{target}, {'' if s else 'no '}{spurious}": n for (t, s), n in groups.items()},
    }


if __name__ == "__main__":
    sys.exit(main())
