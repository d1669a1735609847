"""What every training job shares: accelerate set-up, seeding, config records, checkpoints, logging."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

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
    """An ``Accelerator`` (bf16 on CUDA unless told otherwise, fp32 on CPU) with all RNGs seeded."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    if mixed_precision is None:
        mixed_precision = "bf16" if torch.cuda.is_available() else "no"
    accelerator = Accelerator(mixed_precision=mixed_precision)
    set_seed(seed, deterministic=False)
    if accelerator.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return accelerator


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
    accelerator.save_state(str(path))
    write_record(path, "medviz_train.json", config, {"step": step})
    return path


def latest_checkpoint(folder: Path) -> tuple[Path, int] | None:
    checkpoints = sorted(folder.glob("checkpoint-*"))
    if not checkpoints:
        return None
    record = json.loads((checkpoints[-1] / "medviz_train.json").read_text())
    return checkpoints[-1], int(record["step"])


class Log:
    """Prints a line every ``every`` steps with the running mean of each metric and the rate."""

    def __init__(self, name: str, total: int, every: int = 100, progress: Progress | None = None):
        self.name, self.total, self.every, self.progress = name, total, every, progress
        self.sums: dict[str, float] = {}
        self.count = 0
        self.start = time.perf_counter()

    def step(self, step: int, **metrics: float) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.count += 1
        if step % self.every == 0 or step == self.total:
            means = {k: v / self.count for k, v in self.sums.items()}
            rate = step / max(time.perf_counter() - self.start, 1e-9)
            text = " ".join(f"{k}={v:.4f}" for k, v in means.items())
            print(f"[{self.name}] step {step}/{self.total} {text} ({rate:.2f} steps/s)", flush=True)
            if self.progress:
                self.progress(step, self.total, means)
            self.sums, self.count = {}, 0


class BudgetedSchedule:
    """Linear warm-up then cosine decay whose length can be cut to fit a wall-clock budget.

    Every ``probe`` steps the measured rate caps the total number of steps at what fits in ``budget_s``,
    so a run that must end in time still anneals its learning rate.
    """

    def __init__(self, optimizer, warmup: int, max_steps: int, budget_s: float | None = None, probe: int = 100):
        import torch

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
        self.scheduler.step()

    def done(self, step: int) -> bool:
        return step >= self.total


def optimizer_step(accelerator, loss, optimizer, scheduler, step: int, log: "Log", **metrics: float) -> None:
    """One step of a training loop: backward, update, learning-rate schedule, zeroed gradients, the log line."""
    accelerator.backward(loss)
    optimizer.step()
    scheduler.step(step)
    optimizer.zero_grad(set_to_none=True)
    log.step(step, **metrics)
