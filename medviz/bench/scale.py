"""Scale-out bench: the same batch of counterfactuals and the same classifier training with 1 and with 2 processes
under ``accelerate launch``, one thread each, side by side in one run: the rows must be identical, and the
throughput ratio is the figure (images per second for the edits, samples per second for training).

    python -m medviz.bench scale --json assets/bench/scale.json

On a CPU, ``accelerate launch --multi_gpu --num_processes N`` starts N torchrun processes that form one gloo
group (without --multi_gpu accelerate runs a single process).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ..augment.run import phantom_source
from ..train.classifier import CARD, TRAIN_FIRST_SEED
from .cli import add_common, write_json

ROOT = Path(__file__).resolve().parents[2]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, domains=False)
    parser.add_argument("--edits", type=int, default=16, help="counterfactuals per run (default 16)")
    parser.add_argument("--train-steps", type=int, default=150, help="classifier steps per run (default 150)")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--work", default="runs/scale")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(arguments: list[str], processes: int, timeout: float | None = None) -> subprocess.CompletedProcess:
    """``accelerate launch`` of ``arguments`` with ``processes`` CPU processes of one thread each."""
    spread = ["--multi_gpu"] if processes > 1 else []            # accelerate refuses --multi_gpu for one process
    command = [sys.executable, "-m", "accelerate.commands.launch", *spread, "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), *arguments]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _checked(run: subprocess.CompletedProcess, what: str) -> None:
    if run.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {run.returncode}):\n{run.stderr[-3000:]}")


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def bench_augment(work: Path, edits: int, processes: list[int]) -> dict:
    source = phantom_source(work / "source", "cxr", 200, 0.9, TRAIN_FIRST_SEED, 128)
    runs = {}
    for count in processes:
        out = work / f"augment-{count}"
        shutil.rmtree(out, ignore_errors=True)
        tic = time.perf_counter()
        run = launch(["-m", "medviz.augment", "--csv", str(source), "--model", "cxr-phantom", "--out", str(out),
                      "--plan", f"remove pleural_effusion where pleural_effusion max {edits}", "--threads", "1"], count)
        _checked(run, f"medviz.augment with {count} process(es)")
        summary = json.loads((out / "summary.json").read_text())
        runs[count] = {"images_per_s": summary["images_per_s"], "edit_seconds": round(summary["seconds"], 1),
                       "wall_seconds": round(time.perf_counter() - tic, 1), "kept": summary["kept"],
                       "skipped": summary["skipped"]}
        print(f"  augment, {count} process(es): {summary['images_per_s']:.3f} images/s", flush=True)
    first, *others = processes
    reference = _rows(work / f"augment-{first}" / "labels.csv")
    for count in others:
        rows = _rows(work / f"augment-{count}" / "labels.csv")
        identical = rows == reference and all(
            np.array_equal(np.asarray(Image.open(work / f"augment-{first}" / r["Path"])),
                           np.asarray(Image.open(work / f"augment-{count}" / r["Path"]))) for r in rows)
        runs[count]["rows_and_pixels_identical_to_1"] = identical
        runs[count]["speedup"] = round(runs[count]["images_per_s"] / runs[first]["images_per_s"], 3)
    return runs


def bench_training(work: Path, steps: int, processes: list[int]) -> dict:
    runs = {}
    for count in processes:
        out = work / f"classifier-{count}"
        shutil.rmtree(out, ignore_errors=True)
        run = launch(
            [
                "-m",
                "medviz.train",
                "classifier",
                "--domain",
                "cxr",
                "--out",
                str(out),
                "--target",
                "pleural_effusion",
                "--spurious",
                "support_devices",
                "--steps",
                str(steps),
                "--workers",
                "1",
            ],
            count,
        )
        _checked(run, f"classifier training with {count} process(es)")
        scale = json.loads((out / CARD).read_text())["scale"]
        samples = scale["steps"] * scale["effective_batch"]
        runs[count] = {"samples_per_s": round(samples / scale["train_seconds"], 1),
                       "steps_per_s": round(scale["steps"] / scale["train_seconds"], 3),
                       "effective_batch": scale["effective_batch"], "shards": scale["shards"]}
        print(f"  classifier training, {count} process(es): {runs[count]['samples_per_s']} samples/s "
              f"(effective batch {scale['effective_batch']})", flush=True)
    for count in processes[1:]:
        runs[count]["speedup"] = round(runs[count]["samples_per_s"] / runs[processes[0]]["samples_per_s"], 3)
    return runs


def main(args: argparse.Namespace, command: str) -> int:
    work = Path(args.work)
    result = {"command": command, "cpu_count": os.cpu_count(), "threads_per_process": 1,
              "augment": bench_augment(work, args.edits, args.processes),
              "classifier_training": bench_training(work, args.train_steps, args.processes)}
    for part in ("augment", "classifier_training"):
        for count, run in result[part].items():
            if "speedup" in run:
                print(f"{part}: {count} processes = {run['speedup']:.2f}x one process")
    return write_json(args.json, result)
