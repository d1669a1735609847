"""python -m medviz.bench phantoms [--size 256] [--n 200] [--repeats 5] [--json PATH]
python -m medviz.bench models [--domain cxr|skin|all] [--model DIR] [--n 64] [--steps 25] [--vae DIR] [--round-trip-only]
    [--device-kinds] [--sheet PNG] [--json PATH] [--write-card]
python -m medviz.bench generate [--model cxr-phantom] [--batch 4] [--steps 25] [--repeats 5] [--json PATH]
python -m medviz.bench classify [--domain cxr|skin|all] [--n 400] [--trials N (card)] [--n-cost 24] [--n-wallclock K]
    [--reference-on-errors] [--reference-uncertain K] [--reference-early-stop] [--reference-from LOG ...]
    [--resume LOG ...] [--shard K/M] [--figure-dir DIR] [--json PATH] [--write-card]
python -m medviz.bench calibrate [--domain cxr|skin|all] [--n 120] [--trials 21] [--weighting disagreement|uniform]
    [--t-range LO HI] [--resume LOG ...] [--shard K/M] [--json PATH] [--write-card]
python -m medviz.bench counterfactual [--domain cxr|skin|all] [--n 100] [--n-reconstruction 100] [--n-cost 10]
    [--steps N] [--strength S] [--guidance W] [--mask auto|none] [--mask-threshold M]
    [--mask-draws K] [--change-threshold C] [--residual on|off] [--tuning] [--ceilings-only] [--figure-dir DIR]
    [--json PATH] [--write-card]
python -m medviz.bench ui [--repeats 50] [--json PATH]       (a moved Traverse slider, server side)
python -m medviz.bench traverse [--model cxr-phantom] [--seeds 32] [--frames 7] [--steps 20] [--strips DIR] [--json PATH]

Timings on a shared machine are noisy: each figure is the best of ``--repeats`` batches, and
``--threads 1`` pins numpy/torch to one thread (use ``taskset -c 0`` to pin one core).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..phantoms import get_domain


def bench_phantoms(size: int, n: int, repeats: int) -> list[dict]:
    rows = []
    for domain in ("cxr", "skin"):
        module = get_domain(domain)
        graph = module.build_graph()
        samples = [graph.sample(seed) for seed in range(n)]
        batches = []
        for _ in range(repeats):
            start = time.perf_counter()
            for sample in samples:
                module.render(sample.factors, sample.seed, size)
            batches.append(time.perf_counter() - start)
        start = time.perf_counter()
        for seed in range(n):
            graph.sample(seed)
        sampling = time.perf_counter() - start
        best, median = min(batches), sorted(batches)[len(batches) // 2]
        rows.append({"domain": domain, "size": size, "n": n, "best_images_per_s": n / best,
                     "median_images_per_s": n / median, "sampling_ms": 1e3 * sampling / n})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medviz.bench")
    parser.add_argument("name", choices=["phantoms", "models", "generate", "traverse", "classify", "calibrate",
                                           "counterfactual", "ui"])
    parser.add_argument("--trials", type=int, default=None,
                        help="classify, calibrate: trials N per image (odd; classify: the model card's N, "
                             "calibrate: 21)")
    parser.add_argument("--weighting", default="disagreement", choices=["disagreement", "uniform"],
                        help="calibrate: the error weighting to fit the operating point for")
    parser.add_argument("--t-range", type=int, nargs=2, default=None, metavar=("LO", "HI"),
                        help="calibrate: draw the trials from this timestep window only and fit only the threshold "
                             "(with --trials = the engine's N: exactly the engine's draws)")
    parser.add_argument("--write-card", action="store_true",
                        help="calibrate: store the fit as the bundled model's operating point for the task "
                             "(medviz.json) and rewrite that section of its model card (README.md); classify: make "
                             "this run's --trials the engine's N for the task (at the card's share of the votes), "
                             "with this run's figures kept beside the fit as the reason); counterfactual: store "
                             "each edit's figures in the model's card (medviz.json and README.md; the Edit tab shows "
                             "them before an edit runs): held-out phantoms, n >= 100, the engine's default settings only; "
                             "models: store each prompt's figures, the FD and the VAE round trip in the model's card "
                             "(medviz.json and README.md; the Generate tab shows them before it runs): a full run at "
                             "the bench's default settings only")
    parser.add_argument("--trials-per-batch", type=int, default=16,
                        help="classify, calibrate: most trials per round (the engine's default, 16)")
    parser.add_argument("--resume", default=None, nargs="+", metavar="LOG",
                        help="classify, calibrate: logs of earlier runs (or of --shard runs); their printed rows "
                             "are kept, not recomputed")
    parser.add_argument("--shard", default="0/1", metavar="K/M",
                        help="classify, calibrate: only images i with i %% M == K, rows only (run M of these, one per core, "
                             "then once more with all their logs as --resume for the summary)")
    parser.add_argument("--n-wallclock", type=int, default=0,
                        help="classify: also time engine vs reference loop side by side on this many images spread "
                             "evenly over the set (the first --n-cost ones need not be typical)")
    parser.add_argument("--reference-trials", type=int, default=501, help="classify: N of the cost comparison (501)")
    parser.add_argument("--reference-on-errors", action="store_true",
                        help="classify: run N=501 also on every image the engine gets wrong (bounds N=501's accuracy "
                             "on all images from above)")
    parser.add_argument("--reference-uncertain", type=int, default=0, metavar="K",
                        help="classify: run N=501 also on the K images the engine is least sure of (smallest |z|)")
    parser.add_argument("--reference-from", default=None, nargs="+", metavar="LOG",
                        help="classify: logs of a run with the same card apart from its N (--trials); their N=501 "
                             "runs are taken for images this run's rows lack one for, not rerun")
    parser.add_argument("--reference-early-stop", action="store_true",
                        help="classify: stop N=501 once its vote is decided (exact for the vote; about half the cost)")
    parser.add_argument("--n-cost", type=int, default=None,
                        help="classify: images for the N=501 / reference-loop cost runs (24); counterfactual: images "
                             "per edit type for the DDIM-inversion comparison (10)")
    parser.add_argument("--n-reconstruction", type=int, default=100, help="counterfactual: empty edits per domain")
    parser.add_argument("--strength", type=float, default=None, help="counterfactual: edit strength (engine default)")
    parser.add_argument("--guidance", type=float, default=None, help="counterfactual: guidance scale (engine default)")
    parser.add_argument("--mask", default="auto", choices=["auto", "none"], help="counterfactual: mask mode")
    parser.add_argument("--mask-threshold", type=float, default=None,
                        help="counterfactual: automatic mask threshold (engine default)")
    parser.add_argument("--mask-draws", type=int, default=None,
                        help="counterfactual: noise draws of the automatic mask (engine default)")
    parser.add_argument("--change-threshold", type=float, default=None,
                        help="counterfactual: keep the input where the edit changed the decoded image by less "
                             "than this (0 = off; engine default per domain)")
    parser.add_argument("--residual", default=None, choices=["on", "off"],
                        help="counterfactual: add only the edit's change to the input (engine default)")
    parser.add_argument("--tuning", action="store_true",
                        help="counterfactual: run on the tuning phantoms (for choosing defaults), not the bench set")
    parser.add_argument("--ceilings-only", action="store_true",
                        help="counterfactual: only the faithfulness ceilings (the true counterfactual through the VAE, "
                             "and under fresh draws of the noise the input does not show); no edit is run")
    parser.add_argument("--edit", action="append", default=None, metavar="NAME",
                        help="counterfactual: only this edit type, e.g. 'add support devices' (repeatable; default: "
                             "every edit of --domain)")
    parser.add_argument("--figure-dir", default=None,
                        help="classify: write explain_<domain>.png; counterfactual: counterfactual_<domain>.png here")
    parser.add_argument("--vae", default=None,
                        help="models: a candidate VAE folder (or a folder holding vae/) measured beside the bundled one: "
                             "its round trip, and its decode of the very same generated latents ({domain} is replaced)")
    parser.add_argument("--sheet", default=None, metavar="PNG",
                        help="models: also write a contact sheet of the benched model, generated vs real phantoms "
                             "({domain} in the path is replaced by the domain)")
    parser.add_argument("--round-trip-only", action="store_true",
                        help="models: only the VAE round trip (no generation)")
    parser.add_argument("--device-kinds", action="store_true",
                        help="models (cxr): only the device-kind table: each kind asked alone, which kinds are drawn")
    parser.add_argument("--model", default=None, help="generate/traverse: bundled name or local path (cxr-phantom); "
                                                      "models: a pipeline folder of --domain (its bundled model); "
                                                      "counterfactual: a pipeline folder for the edits' domain")
    parser.add_argument("--batch", type=int, default=4, help="generate: images per call")
    parser.add_argument("--seeds", type=int, default=32, help="traverse: trajectories per slider")
    parser.add_argument("--frames", type=int, default=7, help="traverse: frames per trajectory")
    parser.add_argument("--start-step", type=int, default=0, help="traverse: slider shift starts at this step")
    parser.add_argument("--strips", default=None, help="traverse: write frame strips (PNG) to this folder")
    parser.add_argument("--device", default=None, help="generate: cuda, mps or cpu (default: best available)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--n", type=int, default=None, help="phantoms: renders per batch (200); models: samples per prompt (64); classify: "
                             "held-out phantoms (400); calibrate: tuning phantoms (120)")
    parser.add_argument("--domain", default="all", choices=["cxr", "skin", "all"])
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (models/generate 25, traverse 20)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, help="write the rows here as JSON")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.name == "generate":
        from .generate import GenerateBenchConfig, print_table, run

        result = run(GenerateBenchConfig(model=args.model or "cxr-phantom", batch_size=args.batch,
                                         steps=args.steps or 25, repeats=args.repeats, device=args.device))
        print_table(result)
        return _write(args.json, result)
    if args.name == "classify":
        from .classify import ClassifyBenchConfig, print_table, read_rows, run_task, with_reference_runs

        shard = _shard(parser, args.shard)
        config = ClassifyBenchConfig(n=args.n or 400, trials=args.trials, n_cost=24 if args.n_cost is None else args.n_cost,
                                     n_wallclock=args.n_wallclock,
                                     trials_per_batch=args.trials_per_batch, reference_trials=args.reference_trials,
                                     reference_on_errors=args.reference_on_errors,
                                     reference_uncertain=args.reference_uncertain,
                                     reference_early_stop=args.reference_early_stop, shard=shard)
        results = []
        for domain in (["cxr", "skin"] if args.domain == "all" else [args.domain]):
            done = {i: row for log in args.resume or () for i, row in read_rows(log, domain).items()}
            if args.reference_from:
                done = with_reference_runs(done, {i: row for log in args.reference_from
                                                  for i, row in read_rows(log, domain).items()})
            result = run_task(domain, config, done_rows=done, on_row=lambda i, row: print(
                f"{domain} {i}: {json.dumps(row)}", flush=True))
            if "shard" in result:
                print(f"{domain} shard {shard[0]}/{shard[1]} done: {len(result['rows'])} rows; summarise with "
                      f"--resume and every shard's log", flush=True)
                continue
            print(f"done: {json.dumps({k: v for k, v in result.items() if k != 'cases'})}", flush=True)
            if args.figure_dir:
                from .figures import save_explain_figure

                save_explain_figure(result["cases"], str(Path(args.figure_dir) / f"explain_{domain}.png"),
                                    title=f"{domain}-phantom diffusion classifier: {result['task']} (N={result['trials']}"
                                          + _operating_point(result) + ")")
            results.append({k: v for k, v in result.items() if k != "cases"})
            if args.write_card:
                from ..models import resolve
                from ..train.bundle import record_engine_trials

                record_engine_trials(resolve(f"{domain}-phantom"), result,
                                     "python -m medviz.bench " + " ".join(sys.argv[1:] if argv is None else argv))
                print(f"written to the {domain}-phantom model card: the engine runs N={result['trials']} for "
                      f"{result['task']}")
        if not results:             # shard runs: rows only
            return 0
        print_table(results)
        return _write(args.json, results)
    if args.name == "calibrate":
        from .classify import ClassifyBenchConfig, calibrate, print_calibration, read_rows

        shard = _shard(parser, args.shard)
        results = []
        for domain in (["cxr", "skin"] if args.domain == "all" else [args.domain]):
            config = ClassifyBenchConfig(n=args.n or 120, trials=args.trials, trials_per_batch=args.trials_per_batch,
                                         shard=shard)
            done = {i: row for log in args.resume or () for i, row in read_rows(log, domain).items()}
            result = calibrate(domain, config, done_rows=done, weighting=args.weighting, t_range=args.t_range,
                               on_row=lambda i, row: print(f"{domain} {i}: {json.dumps(row)}", flush=True))
            if "shard" in result:
                print(f"{domain} shard {shard[0]}/{shard[1]} done: {len(result['rows'])} rows", flush=True)
                continue
            print_calibration(result)
            if args.write_card:
                from ..models import resolve
                from ..train.bundle import record_calibration

                record_calibration(resolve(f"{domain}-phantom"), result, calibration_command(result))
                print(f"written to the {domain}-phantom model card (medviz.json and README.md)")
            results.append(result)
        return _write(args.json, results) if results else 0
    if args.name == "counterfactual":
        return _counterfactual(args, argv)
    if args.name == "ui":
        from .ui import print_table, run

        result = run(repeats=args.repeats if args.repeats != 5 else 50)
        print_table(result)
        return _write(args.json, result)
    if args.name == "traverse":
        from .traverse import TraverseBenchConfig, print_table, run

        result = run(TraverseBenchConfig(model=args.model or "cxr-phantom", seeds=args.seeds, frames=args.frames,
                                         steps=args.steps or 20, start_step=args.start_step), strips_dir=args.strips)
        print_table(result)
        return _write(args.json, result)
    if args.name == "models":
        from .models import ModelsBenchConfig, card_problem, print_table, run, write_models_card

        if args.sheet and args.round_trip_only:
            raise SystemExit("--sheet needs generated samples; drop --round-trip-only")
        if args.device_kinds and args.domain == "skin":
            raise SystemExit("--device-kinds is a CXR measurement: use --domain cxr")
        domains = ["cxr"] if args.device_kinds else ["cxr", "skin"] if args.domain == "all" else [args.domain]
        configs = [ModelsBenchConfig(domain=domain, n=args.n or 64, steps=args.steps or 25,
                                     vae=args.vae.replace("{domain}", domain) if args.vae else None,
                                     round_trip_only=args.round_trip_only, device_kinds=args.device_kinds,
                                     model=args.model, sheet=args.sheet.replace("{domain}", domain) if args.sheet else None)
                   for domain in domains]
        if args.write_card:
            if args.model and len(configs) > 1:
                raise SystemExit("--write-card: with --model, name the model's --domain")
            problem = next(filter(None, map(card_problem, configs)), None)
            if problem:
                raise SystemExit(f"--write-card: {problem}")
        results = []
        for config in configs:
            result = run(config, progress=lambda line: print(line, file=sys.stderr, flush=True))
            print_table(result)
            results.append(result)
            if args.write_card:
                write_models_card(result, "python -m medviz.bench " + " ".join(sys.argv[1:] if argv is None else argv))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
        return 0
    rows = bench_phantoms(args.size, args.n or 200, args.repeats)
    print(f"{'domain':<8}{'size':>6}{'n':>6}{'best img/s':>12}{'median img/s':>14}{'sample ms':>11}")
    for r in rows:
        print(f"{r['domain']:<8}{r['size']:>6}{r['n']:>6}{r['best_images_per_s']:>12.1f}"
              f"{r['median_images_per_s']:>14.1f}{r['sampling_ms']:>11.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def _counterfactual(args, argv: list[str] | None) -> int:
    from .counterfactual import EDITS, CounterfactualBenchConfig, card_problem, print_table, run, write_edit_card

    unknown = sorted(set(args.edit or ()) - set(EDITS))
    if unknown:
        raise SystemExit(f"unknown edit type {unknown[0]!r}; known: {', '.join(EDITS)}")
    edits = tuple(e for e in EDITS if args.domain in ("all", EDITS[e][0]) and (not args.edit or e in args.edit))
    if not edits:
        raise SystemExit(f"no edit of --domain {args.domain} among {', '.join(args.edit)}; "
                         f"{args.domain} edits: {', '.join(e for e in EDITS if EDITS[e][0] == args.domain)}")
    chosen = {"steps": args.steps, "strength": args.strength, "guidance_scale": args.guidance,
              "mask_threshold": args.mask_threshold, "mask_draws": args.mask_draws,
              "change_threshold": args.change_threshold,
              "residual": None if args.residual is None else args.residual == "on"}
    config = CounterfactualBenchConfig(edits=edits, n=args.n or 100, n_reconstruction=args.n_reconstruction,
                                       n_cost=10 if args.n_cost is None else args.n_cost, mask_mode=args.mask,
                                       tuning=args.tuning, model=args.model, ceilings_only=args.ceilings_only,
                                       **{k: v for k, v in chosen.items() if v is not None})
    if args.write_card:
        problem = card_problem(config)
        if problem:
            raise SystemExit(f"--write-card: {problem}")
    result = run(config, progress=lambda name, row: print(f"done: {name} {json.dumps(row, default=str)}", flush=True))
    print_table(result)
    if args.write_card:
        write_edit_card(result, "python -m medviz.bench " + " ".join(sys.argv[1:] if argv is None else argv))
    if args.figure_dir:
        from .figures import save_edit_figure

        for domain in sorted({EDITS[e][0] for e in edits}):
            done = [r for r in result["edits"] if r["domain"] == domain and r.get("cases")]
            if not done:
                continue
            rows = [{**r["cases"][0], "edit": r["edit"]} for r in done]
            used = done[0]                                  # the settings the engine resolved for the domain
            change = f", change threshold {used['change_threshold']:g}" if used["change_threshold"] else ""
            save_edit_figure(rows, str(Path(args.figure_dir) / f"counterfactual_{domain}.png"),
                             title=f"{args.model or domain + '-phantom'} counterfactual edits (edit-friendly DDPM inversion, "
                                   f"strength {used['strength']}, guidance {used['guidance_scale']}, "
                                   f"{config.steps} steps{change})")
    for r in result["edits"]:
        r.pop("cases", None)
    return _write(args.json, result)


def calibration_command(result: dict) -> str:
    """The command that reproduces a ``calibrate`` result (its shards and their --resume give the same rows)."""
    command = (f"python -m medviz.bench calibrate --domain {result['domain']} --n {result['n']} --trials "
               f"{result['trials_run']} --weighting {result['weighting']}")
    if not result.get("window_searched", True):
        command += " --t-range {} {}".format(*result["trials_t_range"])
    return command + " --threads 1"


def _operating_point(result: dict) -> str:
    """', first class needs k of N votes, t lo-hi' for a figure title (and the decision rule when it is the
    mean-error rule); empty for the plain majority."""
    from ..engines.explain import DEFAULT_T_RANGE, votes_needed

    text = ""
    if result["vote_threshold"] != 0.5:
        text += f", {result['labels'][0]} needs {votes_needed(result['trials'], result['vote_threshold'])} of {result['trials']} votes"
    if result.get("decision") == "mean_error":     # the vote above then sets only when the trials stop
        text = ", mean-error rule; trials stop once the vote is decided" + (f" ({text[2:]})" if text else "")
    if tuple(result["t_range"]) != DEFAULT_T_RANGE:
        text += f", t {result['t_range'][0]}–{result['t_range'][1]}"
    return text


def _shard(parser: argparse.ArgumentParser, text: str) -> tuple[int, int]:
    """'K/M' -> (K, M) with 0 <= K < M."""
    try:
        shard, shards = (int(part) for part in text.split("/"))
    except ValueError:
        parser.error(f"--shard wants K/M, e.g. 0/2, got {text!r}")
    if not 0 <= shard < shards:
        parser.error(f"--shard K/M needs 0 <= K < M, got {text!r}")
    return shard, shards


def _write(path: str | None, result: dict) -> int:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
