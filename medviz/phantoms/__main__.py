"""python -m medviz.phantoms --domain cxr|skin --n N --size S --out DIR [--seed SEED] [--contact-sheet PNG]"""

from __future__ import annotations

import argparse
import json
import sys

from .. import domains
from . import DOMAINS, get_domain
from .export import write_dataset
from .sheets import contact_sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medviz.phantoms", description=(
        "Write procedural phantoms with known causal factors as images plus a CSV (CheXpert layout for "
        "cxr, ISIC layout for skin)."))
    parser.add_argument("--domain", choices=sorted(DOMAINS), required=True)
    parser.add_argument("--n", type=int, default=100, help="number of images (default 100)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels, 128-512 (default 256)")
    parser.add_argument("--out", help="output folder (images/ and labels.csv are written inside)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first sample; sample i uses seed+i")
    parser.add_argument("--strength", type=float, default=None,
                        help="planted spurious link strength (risk difference): effusion->devices for cxr, "
                             "melanoma->ruler for skin (default 0.5)")
    parser.add_argument("--contact-sheet", metavar="PNG", help="also write a labelled contact sheet here")
    args = parser.parse_args(argv)
    if not 128 <= args.size <= 512:
        parser.error(f"--size must be between 128 and 512, got {args.size}")
    if args.n < 1:
        parser.error("--n must be at least 1")
    if not args.out and not args.contact_sheet:
        parser.error("give --out, --contact-sheet or both")
    strengths = {}
    if args.strength is not None:
        strengths = {domains.get(args.domain).planted_link[0]: args.strength}
    try:
        get_domain(args.domain).build_graph(**strengths)
    except ValueError as error:
        parser.error(str(error))
    if args.out:
        def progress(done: int, total: int) -> None:
            if done % max(total // 20, 1) == 0 or done == total:
                print(f"\r{done}/{total} images", end="" if done < total else "\n", file=sys.stderr, flush=True)

        report = write_dataset(args.domain, args.n, args.size, args.out, args.seed, progress, **strengths)
        print(json.dumps(report, indent=2))
    if args.contact_sheet:
        path = contact_sheet(args.domain, args.contact_sheet, seed=args.seed, **strengths)
        print(f"contact sheet: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
