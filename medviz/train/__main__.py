"""python -m medviz.train {vae,text2image,oracle,classifier,align,ladine,progression,progression-band,bundle,recipe} ...

`recipe` runs the whole bundled-model recipe for one domain: render phantoms once, train the VAE, the
text encoder + UNet and the oracle, and write the pipeline and oracle folders. `align` fine-tunes a pipeline's
UNet (LoRA) to draw what its prompts name, rewarded by its oracle (``medviz.train.align``: DDPO or DRaFT-K).
Each job can be run on its own and resumes from its latest checkpoint in DIR.
``accelerate launch --multi_gpu --num_processes N -m medviz.train ...`` runs the same jobs on N GPUs (or N CPU
processes), each process on its own share of the training rows; the main process writes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

from ..processes import end_processes
from .align import AlignConfig, train_align
from .architectures import PRESETS
from .bundle import bundle_oracle, bundle_pipeline
from .classifier import ClassifierConfig, train_classifier
from .common import is_main_process
from .data import render_training_set
from .ladine import LaDiNETrainConfig, train_ladine
from .progression import ProgressionTrainConfig, calibrate_folder, train_progression
from .snapshot import bundle_checkpoint
from .oracle import OracleConfig, train_oracle
from .text2image import Text2ImageConfig, train_text2image
from .vae import VAEConfig, train_vae


def _add(parser: argparse.ArgumentParser, config_type) -> None:
    for field in fields(config_type):
        if field.name in ("domain", "out"):
            continue
        flag = "--" + field.name.replace("_", "-")
        if str(field.type) == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
            continue
        kind = {"int": int, "float": float, "str": str}.get(
            str(field.type).split(" ")[0].replace("None", "").strip("| "), str
        )
        parser.add_argument(flag, type=kind, default=field.default)


def _config(config_type, args) -> object:
    values = {f.name: getattr(args, f.name) for f in fields(config_type) if hasattr(args, f.name)}
    return config_type(**values)


def _training_record(work: str) -> dict:
    """What ``bundle`` writes into medviz.json of a text2image run: its command's config and results, so that a
    candidate kept apart from its run still says how it was trained (nothing for a run without the record)."""
    record = Path(work) / "unet" / "medviz_train.json"
    return {"text2image": json.loads(record.read_text())} if record.is_file() else {}


def _add_recipe(commands) -> None:
    """The ``recipe`` command's options."""
    recipe = commands.add_parser("recipe")
    recipe.add_argument("--domain", choices=["cxr", "skin"], required=True)
    recipe.add_argument("--out", required=True)
    recipe.add_argument("--model-dir", required=True)
    recipe.add_argument("--oracle-dir", required=True)
    recipe.add_argument("--preset", default="small")
    recipe.add_argument("--n-images", type=int, default=20000)
    recipe.add_argument("--vae-steps", type=int, default=4000)
    recipe.add_argument("--unet-steps", type=int, default=20000)
    recipe.add_argument("--oracle-steps", type=int, default=3000)
    recipe.add_argument("--batch-size", type=int, default=64)
    recipe.add_argument("--workers", type=int, default=None)
    recipe.add_argument("--seed", type=int, default=0)
    recipe.add_argument("--vae-budget-s", type=float, default=0.0, help="cut VAE steps to fit this many seconds")
    recipe.add_argument("--vae-structure-weight", type=float, default=0.0,
                        help="extra VAE loss weight on the pixels the renderer drew a thin structure in (hair, ruler "
                             "ticks, ink, bubbles; catheters): VAEConfig.structure_weight")
    recipe.add_argument("--vae-crop-latents", type=int, default=0,
                        help="train the VAE on windows this many latent cells wide (0: whole images)")
    recipe.add_argument("--vae-structure-windows", type=float, default=0.0,
                        help="share of VAE steps whose windows sit on a thin structure (needs --vae-crop-latents)")
    recipe.add_argument("--vae-balance-structures", action=argparse.BooleanOptionalAction, default=False,
                        help="give every thin-structure type the same share of those windows")
    recipe.add_argument("--unet-budget-s", type=float, default=0.0, help="cut UNet steps to fit this many seconds")
    recipe.add_argument(
        "--unet-structure-weight",
        type=float,
        default=0.0,
        help="extra UNet loss weight on the latent cells holding a thin structure: Text2ImageConfig.structure_weight",
    )
    recipe.add_argument("--n-held-out", type=int, default=2000)
    recipe.add_argument("--dtype", default="float32", choices=["float32", "float16"],
                        help="weights of the written pipeline (float16 for transfer; upcast before use)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medviz.train", description=__doc__.split("\n\n")[1])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, config_type in (("vae", VAEConfig), ("text2image", Text2ImageConfig), ("oracle", OracleConfig),
                              ("classifier", ClassifierConfig), ("align", AlignConfig), ("ladine", LaDiNETrainConfig),
                              ("progression", ProgressionTrainConfig)):
        sub = commands.add_parser(name)
        sub.add_argument("--domain", choices=["cxr", "skin"], required=True)
        sub.add_argument("--out", required=True)
        _add(sub, config_type)
    band = commands.add_parser("progression-band", help="calibrate progression folders' 90%% bands on validation "
                                                        "patients (training does it at its end)")
    band.add_argument("--models", nargs="+", required=True)
    bundle = commands.add_parser("bundle")
    bundle.add_argument("--domain", choices=["cxr", "skin"], required=True)
    bundle.add_argument("--out", required=True)
    bundle.add_argument("--model-dir", required=True)
    bundle.add_argument("--oracle-dir", default=None,
                        help="also copy OUT/oracle here (with --checkpoint: only name it); without it the pipeline is "
                             "judged by the bundled oracle")
    bundle.add_argument("--checkpoint", action="store_true",
                        help="the pipeline of a text2image --init-from run's latest checkpoint (its EMA weights), "
                             "while the run goes on")
    bundle.add_argument("--dtype", default="float32", choices=["float32", "float16"],
                        help="weights of the written pipeline (float16: a candidate kept in git; loading upcasts)")
    _add_recipe(commands)
    args = parser.parse_args(argv)

    if args.command == "vae":
        print(json.dumps(train_vae(_config(VAEConfig, args)), indent=2))
    elif args.command == "text2image":
        print(json.dumps(train_text2image(_config(Text2ImageConfig, args)), indent=2))
    elif args.command == "oracle":
        print(json.dumps(train_oracle(_config(OracleConfig, args)), indent=2, default=str))
    elif args.command == "classifier":
        command = "python -m medviz.train " + " ".join(argv if argv is not None else sys.argv[1:])
        print(json.dumps(train_classifier(_config(ClassifierConfig, args), command=command), indent=2, default=str))
    elif args.command == "align":
        command = "python -m medviz.train " + " ".join(argv if argv is not None else sys.argv[1:])
        record = train_align(_config(AlignConfig, args), command=command)
        print(json.dumps({k: v for k, v in record.items() if k != "history"}, indent=2, default=str))
    elif args.command == "ladine":
        command = "python -m medviz.train " + " ".join(argv if argv is not None else sys.argv[1:])
        print(json.dumps(train_ladine(_config(LaDiNETrainConfig, args), command=command), indent=2, default=str))
    elif args.command == "progression":
        command = "python -m medviz.train " + " ".join(argv if argv is not None else sys.argv[1:])
        record = train_progression(_config(ProgressionTrainConfig, args), command=command)
        print(json.dumps(record, indent=2, default=str))
    elif args.command == "progression-band":
        for folder in args.models:
            card = calibrate_folder(folder)
            print(f"{folder}: band level {card['band_level']} (validation coverage {card['band_coverage_validation']})")
    elif args.command == "bundle" and args.checkpoint:
        print(f"wrote {bundle_checkpoint(args.domain, args.out, args.model_dir, args.oracle_dir, args.dtype)}")
    elif args.command == "bundle":
        bundle_pipeline(args.domain, args.out, args.model_dir, _training_record(args.out), args.dtype,
                        oracle_dir=args.oracle_dir)
        if args.oracle_dir:
            bundle_oracle(args.out, args.oracle_dir)
    else:
        print(json.dumps(run_recipe(args), indent=2, default=str))
    end_processes()
    return 0


def run_recipe(args) -> dict:
    arch = PRESETS[args.preset]
    timings: dict[str, float] = {}
    start = time.perf_counter()
    images, factors, masks = render_training_set(args.domain, args.n_images, arch.image_size, args.workers,
                                                 bool(args.vae_structure_weight or args.vae_structure_windows
                                                      or args.unet_structure_weight))
    timings["render_s"] = time.perf_counter() - start
    common = dict(domain=args.domain, out=args.out, preset=args.preset, seed=args.seed, workers=args.workers)
    tic = time.perf_counter()
    vae = train_vae(VAEConfig(steps=args.vae_steps, batch_size=min(args.batch_size, 64), n_images=args.n_images,
                              time_budget_s=args.vae_budget_s, structure_weight=args.vae_structure_weight,
                              crop_latents=args.vae_crop_latents, structure_windows=args.vae_structure_windows,
                              balance_structures=args.vae_balance_structures, **common),
                    images, masks=masks)
    timings["vae_s"] = time.perf_counter() - tic
    tic = time.perf_counter()
    text2image = train_text2image(Text2ImageConfig(steps=args.unet_steps, batch_size=args.batch_size,
                                                   n_images=args.n_images, time_budget_s=args.unet_budget_s,
                                                   structure_weight=args.unet_structure_weight, **common),
                                 images, factors, masks=masks)
    timings["text2image_s"] = time.perf_counter() - tic
    tic = time.perf_counter()
    oracle = train_oracle(OracleConfig(steps=args.oracle_steps, n_images=args.n_images, n_held_out=args.n_held_out,
                                       batch_size=max(args.batch_size, 128), **common), images, factors)
    timings["oracle_s"] = time.perf_counter() - tic
    timings["total_s"] = time.perf_counter() - start
    import torch

    hardware = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    facts = {"image_size": arch.image_size, "architecture": arch.to_dict(), "trained_on": hardware,
             "recipe": {k: v for k, v in vars(args).items() if k not in ("command",)},
             "results": {"vae": vae, "text2image": text2image, "oracle": oracle}, "timings": timings}
    if is_main_process():
        bundle_pipeline(args.domain, args.out, args.model_dir, facts, args.dtype, oracle_dir=args.oracle_dir)
        bundle_oracle(args.out, args.oracle_dir)
    return facts


if __name__ == "__main__":
    raise SystemExit(main())
