"""What every training job shares: accelerate set-up, seeding, config records, checkpoints, logging."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..processes import launched_accelerator

Progress = Callable[[int, int, dict], None]


@dataclass(frozen=True)
class TrainConfig:
    """What every training job takes; each job's config adds its own fields and its own defaults."""

    domain: str
    out: str
    preset: str = "small"              # medviz.train.architectures.PRESETS: the sizes
    n_images: int = 20000              # phantoms rendered for training (seeds 0 .. n_images - 1)
    steps: int = 1000
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    workers: int | None = None         # rendering processes (default: one per core)


def make_accelerator(seed: int, mixed_precision: str | None = None):
    """An ``Accelerator`` (bf16 on CUDA unless told otherwise, fp32 on CPU) with all RNGs seeded, process ``r`` at
    ``seed + r`` (so the processes draw different noise; one process keeps ``seed``).

    Made by ``processes.launched_accelerator``: on a CPU too, launched processes form one group."""
    import torch
    from accelerate.utils import set_seed

    if mixed_precision is None:
        mixed_precision = "bf16" if torch.cuda.is_available() else "no"
    accelerator = launched_accelerator(mixed_precision=mixed_precision)
    set_seed(seed, device_specific=True, deterministic=False)
    if accelerator.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return accelerator


class RowSampler:
    """Training batches drawn from this process's own rows: with N processes, process r owns the r-th of N
    contiguous blocks of the rows, so no two processes see the same sample and one optimizer step sees N x the
    per-process batch (DDP averages the gradients). With one process: every row, and the draws of
    ``np.random.default_rng(seed)`` (runs made before sharding are reproduced).

    ``rng`` is this process's generator for the job's other random choices (augmentation, captions)."""

    def __init__(self, n_rows: int, accelerator, seed: int):
        import numpy as np

        rank, world = accelerator.process_index, accelerator.num_processes
        self.rows = np.array_split(np.arange(n_rows), world)[rank]
        if not len(self.rows):
            raise ValueError(f"{n_rows} training rows cannot be shared by {world} processes")
        self.rank, self.world = rank, world
        self.seen = np.zeros(n_rows, bool)
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        import numpy as np

        self.rng = np.random.default_rng(seed if self.rank == 0 else [seed, self.rank])

    def draw(self, size: int):
        """``size`` row indices, uniformly with replacement from this process's rows."""
        return self.note(self.rows[self.rng.integers(0, len(self.rows), size)])

    def note(self, rows):
        """Count ``rows`` as seen (rows a job drew itself, from ``self.rows``); returns them."""
        self.seen[rows] = True
        return rows

    def record(self) -> dict:
        import numpy as np

        seen = np.flatnonzero(self.seen)
        return {"process": self.rank, "rows": [int(self.rows[0]), int(self.rows[-1])], "distinct_seen": len(seen),
                "first_seen": int(seen[0]) if len(seen) else None, "last_seen": int(seen[-1]) if len(seen) else None}


def scale_record(accelerator, sampler: RowSampler, batch_size: int) -> dict:
    """Processes, per-process and effective batch, and each process's rows and what it drew (a collective: every
    process calls it)."""
    from accelerate.utils import gather_object

    shards = gather_object([sampler.record()]) if accelerator.num_processes > 1 else [sampler.record()]
    return {"processes": accelerator.num_processes, "per_process_batch": batch_size,
            "effective_batch": batch_size * accelerator.num_processes, "shards": shards}


def announce_scale(accelerator, name: str, batch_size: int, n_rows: int) -> None:
    if accelerator.is_main_process:
        print(f"[{name}] {accelerator.num_processes} process(es) x {batch_size} per process = effective batch "
              f"{batch_size * accelerator.num_processes}; {n_rows} rows, split in {accelerator.num_processes} "
              "disjoint shards", flush=True)


def is_main_process() -> bool:
    """This process writes shared files: the only one, or rank 0 of a launched run."""
    from accelerate import PartialState

    return PartialState().is_main_process


def write_record(folder: Path, name: str, config: Any, extra: dict | None = None) -> Path:
    """``folder/name`` as JSON: the job's frozen config plus results (checkpoints carry their config)."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"config": asdict(config) if hasattr(config, "__dataclass_fields__") else dict(config)}
    payload.update(extra or {})
    path = folder / name
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def save_checkpoint(accelerator, folder: Path, step: int, config: Any) -> Path:
    """Model, optimizer, scheduler and RNG state at ``step`` (resumable), with the config beside it."""
    path = folder / f"checkpoint-{step:07d}"
    accelerator.save_state(str(path))          # every process: each saves its own RNG state, the main the weights
    if accelerator.is_main_process:
        write_record(path, "medviz_train.json", config, {"step": step, "processes": accelerator.num_processes})
    accelerator.wait_for_everyone()
    return path


def latest_checkpoint(folder: Path) -> tuple[Path, int] | None:
    checkpoints = sorted(folder.glob("checkpoint-*"))
    if not checkpoints:
        return None
    record = json.loads((checkpoints[-1] / "medviz_train.json").read_text())
    return checkpoints[-1], int(record["step"])


def resume_latest(accelerator, folder: Path) -> int:
    """Load the latest checkpoint under ``folder`` into ``accelerator``'s prepared objects; its step (0: none)."""
    resumed = latest_checkpoint(folder)
    if not resumed:
        return 0
    accelerator.load_state(str(resumed[0]))
    return resumed[1]


class Log:
    """Prints a line every ``every`` steps with the running mean of each metric and the rate since the last line
    (a resumed run's first line counts from the Log's start, not from step 0)."""

    def __init__(self, name: str, total: int, every: int = 100, progress: Progress | None = None, enabled: bool = True):
        self.name, self.total, self.every, self.progress = name, total, every, progress
        self.enabled = enabled             # False on all but the main process: one log per run
        self.sums: dict[str, float] = {}
        self.count = 0
        self.since = time.perf_counter()

    def step(self, step: int, **metrics: float) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.count += 1
        if step % self.every == 0 or step == self.total:
            means = {k: v / self.count for k, v in self.sums.items()}
            now = time.perf_counter()
            rate = self.count / max(now - self.since, 1e-9)
            self.since = now
            text = " ".join(f"{k}={v:.4f}" for k, v in means.items())
            if self.enabled:
                print(f"[{self.name}] step {step}/{self.total} {text} ({rate:.2f} steps/s)", flush=True)
            if self.progress and self.enabled:
                self.progress(step, self.total, means)
            self.sums, self.count = {}, 0


class BudgetedSchedule:
    """Linear warm-up then cosine decay whose length can be cut to fit a wall-clock budget.

    Every ``probe`` steps the measured rate caps the total number of steps at what fits in ``budget_s``,
    so a run that must end in time still anneals its learning rate. With several processes, pass the
    ``accelerator``: they then agree on the smallest cut, so none waits forever in a gradient sync another skipped.
    """

    def __init__(self, optimizer, warmup: int, max_steps: int, budget_s: float | None = None, probe: int = 100,
                 accelerator=None):
        import torch

        self.accelerator = accelerator if accelerator is not None and accelerator.num_processes > 1 else None
        self.total = max_steps
        self.warmup = max(1, min(warmup, max_steps // 10 or 1))
        self.budget_s, self.probe = budget_s, probe
        self.started = time.perf_counter()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._factor)

    def _factor(self, step: int) -> float:
        import math

        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    def step(self, step: int) -> None:
        # Re-estimated every ``probe`` steps from the rate so far, so a slowdown (a shared GPU) still ends
        # the run in time; the cosine tail is compressed, never extended.
        if self.budget_s and step % self.probe == 0:
            elapsed = time.perf_counter() - self.started
            remaining = max(0.0, self.budget_s - elapsed)
            fitting = step + int(remaining * step / max(elapsed, 1e-9))
            self.total = max(step + 1, min(self.total, fitting))
            if self.accelerator is not None:
                self.total = self._smallest(self.total)
        # The schedule is a function of the training step, not of how many steps this process has run: a run
        # resumed from a checkpoint goes on where it stopped instead of warming up and annealing again.
        self.scheduler.last_epoch = step - 1
        self.scheduler.step()

    def _smallest(self, total: int) -> int:
        import torch
        import torch.distributed as dist

        value = torch.tensor([total], device=self.accelerator.device)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return int(value.item())

    def done(self, step: int) -> bool:
        return step >= self.total


def optimizer_step(accelerator, loss, optimizer, scheduler, step: int, log: Log, **metrics: float) -> None:
    """One step of a training loop: backward, update, learning-rate schedule, zeroed gradients, the log line."""
    accelerator.backward(loss)
    optimizer.step()
    scheduler.step(step)
    optimizer.zero_grad(set_to_none=True)
    log.step(step, **metrics)
