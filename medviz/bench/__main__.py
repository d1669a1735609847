"""python -m medviz.bench BENCH [options]: the benches, one subcommand each; ``python -m medviz.bench BENCH --help``.

Benchmarks are commands, never timed tests. Timings on a shared machine are noisy: each figure is the best
of ``--repeats`` batches, and ``--threads 1`` pins numpy/torch to one thread (``taskset -c 0`` pins a core).
"""

from __future__ import annotations

import argparse
import sys

from . import (align, audit, backends, calibrate, classify, counterfactual, debias, fullsize, generate, guard, models,
               phantoms, progression, robust, scale, traverse, ui, uncertainty, unet)

BENCHES = {"phantoms": phantoms, "models": models, "generate": generate, "traverse": traverse, "classify": classify,
           "calibrate": calibrate, "counterfactual": counterfactual, "guard": guard, "fullsize": fullsize,
           "ui": ui, "audit": audit, "debias": debias, "robust": robust, "uncertainty": uncertainty,
           "scale": scale, "align": align, "backends": backends,
           "progression": progression, "unet": unet}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m medviz.bench", description=__doc__.split("\n\n")[0])
    benches = parser.add_subparsers(dest="bench", required=True, metavar="BENCH")
    for name, module in BENCHES.items():
        summary = module.__doc__.strip().splitlines()[0]
        bench = benches.add_parser(name, help=summary, description=module.__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(bench)
        bench.set_defaults(run=module.main)
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    # The command as typed: a model card's figures name the command that reproduces them.
    return args.run(args, "python -m medviz.bench " + " ".join(argv))


if __name__ == "__main__":
    raise SystemExit(main())
