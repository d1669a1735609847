"""Assemble trained parts into a stock diffusers ``StableDiffusionPipeline`` folder and its medviz.json
(the model card's README is ``medviz.bench.cards.write_model_card``'s)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .. import RESEARCH_ONLY_NOTICE, domains
from ..models import MODELS_DIR
from .architectures import make_sampling_scheduler

def bundle_pipeline(domain: str, work: str | Path, model_dir: str | Path, facts: dict, dtype: str = "float32",
                    oracle_dir: str | Path | None = None) -> Path:
    """Write ``model_dir`` (safetensors, DDIM scheduler config, tokenizer) plus medviz.json.

    ``work`` holds the trained ``vae``, ``text_encoder``, ``tokenizer`` and ``unet`` folders (a ``recipe`` or
    a ``text2image --init-from`` output). medviz.json names the oracle by its path relative to ``model_dir``:
    ``oracle_dir``, or the domain's bundled oracle when None (a candidate pipeline judged by the usual oracle).
    float32 by default, so that a stock ``StableDiffusionPipeline.from_pretrained(model_dir)`` runs on a
    CPU as is; float16 halves the size for transfer (``upcast_pipeline`` restores float32).
    """
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    work, model_dir = Path(work), Path(model_dir)
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL.from_pretrained(work / "vae", local_files_only=True),
        text_encoder=CLIPTextModel.from_pretrained(work / "text_encoder", local_files_only=True),
        tokenizer=CLIPTokenizer.from_pretrained(work / "tokenizer", local_files_only=True),
        unet=UNet2DConditionModel.from_pretrained(work / "unet", local_files_only=True),
        scheduler=make_sampling_scheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.to(getattr(torch, dtype)).save_pretrained(str(model_dir), safe_serialization=True)
    oracle = os.path.relpath(Path(oracle_dir or MODELS_DIR / f"{domain}-oracle").resolve(), model_dir.resolve())
    facts = {"domain": domain, "attributes": list(domains.get(domain).oracle_labels),
             "oracle": Path(oracle).as_posix(), "notice": RESEARCH_ONLY_NOTICE, **facts}
    (model_dir / "medviz.json").write_text(json.dumps(facts, indent=2, default=str))
    return model_dir


def bundle_oracle(work: str | Path, oracle_dir: str | Path) -> Path:
    """Copy the trained oracle (config + safetensors + its training record) to ``oracle_dir``."""
    source, target = Path(work) / "oracle", Path(oracle_dir)
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors", "medviz_train.json"):
        shutil.copy2(source / name, target / name)
    return target


def upcast_pipeline(source: str | Path, target: str | Path) -> Path:
    """Re-save a pipeline folder in float32 (e.g. one bundled in float16 on a GPU), keeping medviz.json."""
    import torch
    from diffusers import StableDiffusionPipeline

    source, target = Path(source), Path(target)
    pipe = StableDiffusionPipeline.from_pretrained(str(source), torch_dtype=torch.float32, local_files_only=True)
    pipe.save_pretrained(str(target), safe_serialization=True)
    for extra in ("medviz.json", "README.md"):
        if (source / extra).exists():
            shutil.copy2(source / extra, target / extra)
    return target
