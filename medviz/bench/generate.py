"""Generate engine vs. the stock ``StableDiffusionPipeline`` on the same model, side by side.

Both run the same prompt, steps, guidance and batch; the runs alternate (engine, stock, engine, ...)
so that machine noise hits both alike; the table gives best and median images/s and their ratio.
Also checks that a fixed seed reproduces bit-identical images.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from ..engines.generate import GenerateConfig, generate
from ..models import load_model
from .cli import add_common, write_json


@dataclass(frozen=True)
class GenerateBenchConfig:
    model: str = "cxr-phantom"
    prompt: str = "Chest X-ray showing pleural effusion"
    batch_size: int = 4
    steps: int = 25
    guidance_scale: float = 4.0
    repeats: int = 5
    device: str | None = None


def run(config: GenerateBenchConfig, model=None) -> dict:
    import torch

    model = model or load_model(config.model, device=config.device)
    pipe = model.pipe
    size = model.image_size
    engine_config = GenerateConfig(prompt=config.prompt, batch_size=config.batch_size, seed=1234, steps=config.steps,
                                   guidance_scale=config.guidance_scale, scheduler="DDIM")

    def sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def engine_once():
        return generate(model, engine_config)

    def stock_once():
        return pipe([config.prompt] * config.batch_size, num_inference_steps=config.steps,
                    guidance_scale=config.guidance_scale, height=size, width=size,
                    generator=torch.Generator("cpu").manual_seed(1234), output_type="np").images

    engine_once(), stock_once()                       # warm-up (allocations, kernels)
    times = {"engine": [], "stock": []}
    peak = {"engine": 0, "stock": 0}
    for _ in range(config.repeats):
        for name, call in (("engine", engine_once), ("stock", stock_once)):
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            sync()
            tic = time.perf_counter()
            call()
            sync()
            times[name].append(time.perf_counter() - tic)
            if torch.cuda.is_available():
                peak[name] = max(peak[name], torch.cuda.max_memory_allocated())
    first, second = generate(model, engine_config), generate(model, engine_config)
    identical = all(np.array_equal(a, b) for a, b in zip(first.images, second.images))
    rows = {}
    for name, values in times.items():
        rows[name] = {"best_images_per_s": config.batch_size / min(values),
                      "median_images_per_s": config.batch_size / float(np.median(values)),
                      "peak_memory_gib": peak[name] / 2**30}
    return {"config": config.__dict__, "device": str(model.device), "dtype": str(pipe.unet.dtype), "size": size,
            "rows": rows, "ratio_median": rows["engine"]["median_images_per_s"] / rows["stock"]["median_images_per_s"],
            "ratio_best": rows["engine"]["best_images_per_s"] / rows["stock"]["best_images_per_s"],
            "same_seed_identical": identical}


def print_table(result: dict) -> None:
    c = result["config"]
    print(
        f"\ngenerate bench: {c['model']} on {result['device']} ({result['dtype']}), {result['size']} px, "
        f"batch {c['batch_size']}, {c['steps']} DDIM steps, CFG {c['guidance_scale']}, {c['repeats']} alternating "
        "repeats"
    )
    print(f"{'':<10}{'best img/s':>12}{'median img/s':>14}{'peak GiB':>10}")
    for name, row in result["rows"].items():
        print(
            f"{name:<10}{row['best_images_per_s']:>12.3f}{row['median_images_per_s']:>14.3f}{row['peak_memory_gib']:>10.2f}"
        )
    print(
        f"engine / stock: median {result['ratio_median']:.3f}, best {result['ratio_best']:.3f}; "
        f"same seed -> identical images: {result['same_seed_identical']}"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="cxr-phantom", help="bundled name or local path")
    parser.add_argument("--batch", type=int, default=4, help="images per call")
    parser.add_argument("--steps", type=int, default=25, help="denoising steps")
    parser.add_argument("--repeats", type=int, default=5, help="alternating runs of each")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    add_common(parser, domains=False)


def main(args: argparse.Namespace, command: str) -> int:
    result = run(GenerateBenchConfig(model=args.model, batch_size=args.batch, steps=args.steps, repeats=args.repeats,
                                     device=args.device))
    print_table(result)
    return write_json(args.json, result)
