"""The UNet's CPU routes (``medviz.backends``) side by side on one model: is the fast route fast, and exact enough?

The bf16 route runs here under every engine, the exact ones too, to show where it is exact enough and where not
(the app offers it as a preview for Generate and Traverse only).

Each route runs in a process of its own (so its peak memory is its own) on the same seeds; the first route is
the baseline. Per route: one UNet pass alone, every engine once (``bench fullsize``'s run: seconds, UNet passes,
peak memory), the generated image's PSNR against the baseline's, the empty edit's reconstruction PSNR against the
input's VAE round trip, and, with ``--n``, the diffusion classifier's verdicts (the card's operating point on the
domain's primary task) and the domain check's scores on ``n`` held-out phantoms, compared with the baseline's.

    python -m medviz.bench backends [--model sd-1.5|cxr-phantom|PATH] [--backends eager,bf16] [--steps 2] [--n 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import backends
from ..card import domain_calibration
from ..engines.guard import raw_features, scores
from ..engines.stress import diffusion_scorer
from ..metrics import psnr
from ..models import load_model
from ..train.data import render_phantoms
from . import fullsize
from .cli import add_common, write_json

SD15 = "sd-1.5"              # the full-size architecture with random weights (bench fullsize)
CHECK_FIRST_SEED = 70_000_000  # the classifier checks' phantoms: apart from every training and bench set


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=SD15, help=f"{SD15} (default: the SD-1.5 architecture, random weights, "
                                                      "512 px), a bundled model or a local folder")
    parser.add_argument("--backends", default="eager,bf16", help="comma-separated routes; the first is the baseline")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps per engine")
    parser.add_argument("--n", type=int, default=0, help="phantoms for the diffusion classifier's verdicts and the "
                                                         "domain check's scores (a model of a bundled domain)")
    parser.add_argument("--route", help=argparse.SUPPRESS)      # a route's own process
    parser.add_argument("--outputs", help=argparse.SUPPRESS)    # where that process saves its outputs (.npz)
    add_common(parser, domains=False)


def main(args: argparse.Namespace, command: str) -> int:
    if args.route:
        return run_route(args)
    routes = args.backends.split(",")
    for route in routes:
        if route not in backends.ROUTES:                     # an unknown name fails before any process starts
            raise SystemExit(f"unknown route {route!r}; choose among {', '.join(backends.ROUTES)}")
    records, outputs = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for route in routes:
            print(f"== backend {route}", flush=True)
            json_path, npz_path = Path(folder) / f"{route}.json", Path(folder) / f"{route}.npz"
            call = [sys.executable, "-m", "medviz.bench", "backends", "--model", args.model, "--steps",
                    str(args.steps), "--n", str(args.n), "--route", route, "--json", str(json_path),
                    "--outputs", str(npz_path)]
            subprocess.run(call + (["--threads", str(args.threads)] if args.threads else []), check=True)
            records[route], outputs[route] = json.loads(json_path.read_text()), dict(np.load(npz_path))
    base = routes[0]
    compared = [route_figures(records[r], outputs[r], records[base], outputs[base]) for r in routes]
    for row in compared:
        checks = (f"  verdicts {row['verdicts_same']}/{row['n']} same, domain-check scores within "
                  f"{100 * row['domain_check_max_relative']:.2f}%" if row["n"] else "")
        print(f"{row['backend']:<6} UNet pass {row['unet_pass_seconds']:.2f} s "
              f"({row['unet_pass_ratio']:.2f}x)  generate PSNR {row['generate_psnr_db']:.1f} dB  reconstruction "
              f"{row['reconstruction_psnr_db']:.1f} dB  peak {row['peak_rss_mb']} MB ({row['peak_ratio']:.2f}x)"
              + checks)
    return write_json(args.json, {"command": command, "model": args.model, "baseline": base, "routes": compared,
                                  "records": records})


def run_route(args: argparse.Namespace) -> int:
    """One route in this process: the model, one UNet pass alone, every engine, the classifier checks."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = fullsize.sd15_random("cpu") if args.model == SD15 else load_model(args.model, device="cpu")
    print(f"{args.model} on {args.route}, loaded in {time.perf_counter() - start:.1f} s")
    with backends.running(args.route, model.pipe.unet):   # every engine, the exact ones too: why they stay exact
        alone = fullsize.unet_seconds(model)
        rows, outputs = fullsize.run(model, args.steps)
        if args.n:
            outputs.update(classifier_checks(model, args.n))
    np.savez(args.outputs, **outputs)
    return write_json(args.json, {"backend": args.route, "model": args.model,
                                  "unet_pass_seconds": alone, "engines": rows, "steps": args.steps, "n": args.n})


def classifier_checks(model, n: int, trials: int | None = None) -> dict[str, np.ndarray]:
    """On ``n`` held-out phantoms of the model's domain: the diffusion classifier's decisions (bool (n,)) and the
    domain check's scores ((n,), NaN without a calibration in the card). ``trials``: another N than the card's."""
    if model.domain is None:
        raise ValueError("--n needs a model of a bundled domain (its phantoms and its card's operating points)")
    images, _ = render_phantoms(model.domain, n, model.image_size, CHECK_FIRST_SEED, workers=1)
    scorer = diffusion_scorer(model, trials=trials)
    probabilities = scorer.predict(list(images))[0]
    calibration = domain_calibration(model.card)
    guard = scores(raw_features(model, list(images)), calibration) if calibration else np.full(n, np.nan)
    return {"verdicts": probabilities >= scorer.threshold, "domain_check": guard}


def route_figures(record: dict, out: dict, base: dict, base_out: dict) -> dict:
    """One route against the baseline's run: speed ratios (baseline / route), PSNRs, verdicts, scores, memory."""
    engines = {row["engine"]: row for row in record["engines"]}
    peak, base_peak = (max(row["peak_rss_mb"] for row in r["engines"]) for r in (record, base))
    n = len(out.get("verdicts", ()))
    return {
        "backend": record["backend"],
        "unet_pass_seconds": record["unet_pass_seconds"],
        "unet_pass_ratio": base["unet_pass_seconds"] / record["unet_pass_seconds"],
        "engine_ratios": {row["engine"]: round(row["seconds"] / engines[row["engine"]]["seconds"], 3)
                          for row in base["engines"]},
        "generate_psnr_db": psnr(out["generate"], base_out["generate"]),
        "reconstruction_psnr_db": psnr(out["reconstruction"], out["round_trip"]),
        "explain_same": bool(out["explain_predicted"] == base_out["explain_predicted"]),
        "n": n,
        "verdicts_same": int((out["verdicts"] == base_out["verdicts"]).sum()) if n else None,
        "domain_check_max_relative": float(np.max(np.abs(out["domain_check"] - base_out["domain_check"])
                                                  / np.abs(base_out["domain_check"]))) if n else None,
        "peak_rss_mb": peak, "peak_ratio": peak / base_peak,
    }
