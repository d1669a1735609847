"""A text-to-image run's latest checkpoint as trained parts: its EMA weights, written as ``text_encoder/`` and
``unet/`` beside the run's ``vae/`` and ``tokenizer/``, so that ``bundle`` can make a pipeline of it while the run
goes on (issue 52: a UNet stage spans sessions; its halfway model is benched, not guessed at).

The EMA (``ema.pt``) holds the trainable parameters in the order the training listed them; the model is rebuilt
exactly as the training built it (``text2image._starting_point``, with the same grown modules and frozen parts),
so that order is the same, then the EMA is copied in, as ``text2image._save`` does at the end of a run.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from .bundle import bundle_pipeline
from .common import latest_checkpoint, make_accelerator, write_record
from .text2image import CHECKPOINTS, Text2ImageConfig, _denoiser, _freeze_other_tokens, _starting_point


def snapshot_text2image(run: str | Path, into: str | Path) -> int:
    """Write ``into/{text_encoder,unet,tokenizer,vae}`` from ``run``'s latest checkpoint's EMA; returns its step.

    ``run`` is a ``python -m medviz.train text2image --out`` folder with ``text2image-checkpoints/``.
    """
    import torch

    run, into = Path(run), Path(into)
    found = latest_checkpoint(run / CHECKPOINTS)
    if not found or not (found[0] / "ema.pt").exists():
        raise FileNotFoundError(f"{run / CHECKPOINTS} holds no checkpoint with its EMA (ema.pt)")
    folder, step = found
    saved = json.loads((folder / "medviz_train.json").read_text())["config"]
    config = Text2ImageConfig(**{f.name: saved[f.name] for f in fields(Text2ImageConfig) if f.name in saved})
    if not config.init_from or config.pretrained:
        # A new model's starting point builds a tokenizer, a CSV fine-tune's reads the CSV's images: not rebuilt here.
        raise ValueError(f"{run} is not a fine-tune of a phantom pipeline (init_from): only those are snapshot; "
                         "let the run finish")
    no_images = (np.zeros((0, 1, 1, 3), np.uint8), [], None)        # the models only: nothing is rendered
    parts = _starting_point(replace(config, out=str(into)), make_accelerator(config.seed), no_images)
    if parts.trained_ids is not None:
        _freeze_other_tokens(parts.text_encoder, parts.trained_ids, "cpu")
    model = _denoiser(parts.text_encoder, parts.unet)
    trainable = [p for p in model.parameters() if p.requires_grad]
    shadow = torch.load(folder / "ema.pt", map_location="cpu")["shadow_params"]
    if len(shadow) != len(trainable) or any(s.shape != p.shape for s, p in zip(shadow, trainable)):
        raise ValueError(f"{folder / 'ema.pt'} does not match the model its config builds "
                         f"({len(shadow)} tensors for {len(trainable)} parameters)")
    with torch.no_grad():
        for parameter, value in zip(trainable, shadow):
            parameter.copy_(value)
    model.text_encoder.save_pretrained(str(into / "text_encoder"), safe_serialization=True)
    model.unet.save_pretrained(str(into / "unet"), safe_serialization=True)
    write_record(into / "unet", "medviz_train.json", config, {"steps": step, "snapshot_of": str(folder)})
    return step


def bundle_checkpoint(domain: str, run: str | Path, model_dir: str | Path, oracle_dir: str | Path | None = None,
                      dtype: str = "float32") -> Path:
    """``bundle_pipeline`` of ``run``'s latest checkpoint (``snapshot_text2image``); medviz.json gives its step."""
    with tempfile.TemporaryDirectory() as parts:
        step = snapshot_text2image(run, parts)
        return bundle_pipeline(domain, parts, model_dir, {"checkpoint_step": step, "run": str(run)}, dtype,
                               oracle_dir=oracle_dir)
