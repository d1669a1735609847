"""Tiny random models for behaviour tests, as diffusers tests its pipelines: the Stable Diffusion architecture at
32 px (``medviz.train.architectures.PRESETS["tiny"]``), randomly initialised, and a small random oracle, built
in about a second. They draw noise; tests that need the bundled models' quality use those (``-m slow``)."""

from __future__ import annotations

from dataclasses import replace

import torch
from diffusers import StableDiffusionPipeline
from transformers import CLIPTokenizer

from medviz import domains
from medviz.models import MODELS_DIR, Model, read_model_card
from medviz.oracle import Oracle
from medviz.train.architectures import (PRESETS, make_oracle, make_sampling_scheduler, make_text_encoder, make_unet,
                                        make_vae)


def tiny_model(domain: str | None = "cxr", seed: int = 0, card: dict | None = None) -> Model:
    """A random 32-px pipeline and oracle of ``domain`` (None: a checkpoint of unknown domain, without an oracle).

    The tokenizer is the bundled model's (files only, no weights), at its 32 tokens;
    ``card`` defaults to the bundled model's medviz.json, so the lines the benches wrote into it show as they
    would for that model; its domain-check calibration, which belongs to the bundled weights, is left out.
    """
    arch = replace(PRESETS["tiny"], max_tokens=32)          # the bundled models' prompt length
    torch.manual_seed(seed)
    tokenizer = CLIPTokenizer.from_pretrained(str(MODELS_DIR / f"{domain or 'cxr'}-phantom" / "tokenizer"),
                                              model_max_length=arch.max_tokens)
    pipe = StableDiffusionPipeline(
        vae=make_vae(arch).eval(),
        text_encoder=make_text_encoder(arch, tokenizer).eval(),
        tokenizer=tokenizer,
        unet=make_unet(arch).eval(),
        scheduler=make_sampling_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    oracle = None
    if domain is not None:
        labels = domains.get(domain).oracle_labels
        oracle = Oracle(make_oracle(arch, labels).eval(), labels, arch.image_size, domain)
        if card is None:                  # the bundled card, less its domain check (the bundled weights' calibration)
            card = {k: v for k, v in read_model_card(f"{domain}-phantom").items() if k != "domain_check"}
    return Model(name=f"tiny-{domain}", pipe=pipe, oracle=oracle, domain=domain, card=card or {})
