"""What every bench's command line shares: thread count, JSON output, domains, shards."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..models import load_model, resolve
from ..phantoms import DOMAINS


def add_common(parser: argparse.ArgumentParser, domains: bool = True, json_help: str = "write the result here as JSON"):
    """``--threads`` and ``--json`` (and ``--domain cxr|skin|all`` unless ``domains`` is False)."""
    if domains:
        parser.add_argument("--domain", default="all", choices=[*DOMAINS, "all"])
    parser.add_argument("--json", default=None, metavar="PATH", help=json_help)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; pin a core with taskset -c 0)")


def chosen_domains(args: argparse.Namespace) -> list[str]:
    return list(DOMAINS) if args.domain == "all" else [args.domain]


def shard(text: str) -> tuple[int, int]:
    """'K/M' -> (K, M) with 0 <= K < M (an argparse type)."""
    try:
        k, m = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard wants K/M, e.g. 0/2, got {text!r}") from None
    if not 0 <= k < m:
        raise argparse.ArgumentTypeError(f"--shard K/M needs 0 <= K < M, got {text!r}")
    return k, m


def write_json(path: str | None, result) -> int:
    """Write ``result`` to ``path`` (its folder created) when given; the bench's exit status, 0."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=2, default=str))
    return 0


def run_per_domain(args: argparse.Namespace, command: str, run_domain, print_table, write_card=None) -> int:
    """A bench's main: each chosen domain's ``run_domain(domain, args, command)``, its ``print_table``, its cards when
    ``--write-card`` asks (``write_card(domain, result, command)``), then the JSON (one domain's result alone)."""
    results = {}
    for domain in chosen_domains(args):
        results[domain] = run_domain(domain, args, command)
        print_table(results[domain])
        if getattr(args, "write_card", False) and write_card is not None:
            write_card(domain, results[domain], command)
    return write_json(args.json, results if len(results) > 1 else next(iter(results.values())))


def add_model_option(parser: argparse.ArgumentParser) -> None:
    """``--model DIR``: a candidate pipeline of one ``--domain``, measured (and carded) instead of the bundled one."""
    parser.add_argument("--model", default=None, metavar="DIR",
                        help="a pipeline folder of --domain, measured instead of its bundled model (with --write-card: "
                             "its own card is written)")


def check_one_domain(args: argparse.Namespace) -> None:
    """Refuse ``--model`` beside ``--domain all``: a pipeline is one domain's."""
    if getattr(args, "model", None) and args.domain == "all":
        raise SystemExit("--model is one domain's pipeline: name its --domain")


def chosen_model(args: argparse.Namespace, domain: str):
    """The ``--model`` pipeline, loaded for ``domain`` (None without ``--model``: the bench loads the bundled one)."""
    if not getattr(args, "model", None):
        return None
    check_one_domain(args)
    model = load_model(args.model, device="cpu")
    if model.domain != domain:
        raise SystemExit(f"--model {args.model} is a {model.domain} pipeline, not {domain}")
    return model


def model_folder(args: argparse.Namespace, domain: str) -> Path:
    """The folder whose card a ``--write-card`` run writes: ``--model``, or the domain's bundled model."""
    return resolve(getattr(args, "model", None) or f"{domain}-phantom")

