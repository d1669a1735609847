"""Phantom rendering speed: best-of and median images per second of each domain's renderer, and SCM sampling."""

from __future__ import annotations

import argparse
import time

from ..phantoms import DOMAINS, get_domain
from .cli import add_common, write_json


def bench_phantoms(size: int, n: int, repeats: int) -> list[dict]:
    rows = []
    for domain in DOMAINS:
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=256, help="image side, px")
    parser.add_argument("--n", type=int, default=200, help="renders per batch")
    parser.add_argument("--repeats", type=int, default=5, help="batches; the best and the median are reported")
    add_common(parser, domains=False)


def main(args: argparse.Namespace, command: str) -> int:
    rows = bench_phantoms(args.size, args.n, args.repeats)
    print(f"{'domain':<8}{'size':>6}{'n':>6}{'best img/s':>12}{'median img/s':>14}{'sample ms':>11}")
    for r in rows:
        print(f"{r['domain']:<8}{r['size']:>6}{r['n']:>6}{r['best_images_per_s']:>12.1f}"
              f"{r['median_images_per_s']:>14.1f}{r['sampling_ms']:>11.2f}")
    return write_json(args.json, rows)
