"""Full-size Stable Diffusion 1.5: every engine at 512 px on the SD-1.5 architecture with random weights.

Built offline from the published component configs (UNet ~860M parameters, CLIP ViT-L/14 text encoder, the
SD VAE; the bundled tokenizer); it says what a user's real checkpoint costs on this machine, and whether every
setting measured in pixels scales with the resolution. Never run by a test (it needs ~6 GB of memory).

    python -m medviz.bench fullsize [--device cuda]

``python -m medviz.bench backends`` runs its engines once per route (``medviz.backends``) and compares them.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from ..engines.common import decode_latents, encode_image, encode_prompts
from ..engines.counterfactual import EditConfig, counterfactual, pixel_settings
from ..engines.explain import ExplainConfig, classify
from ..engines.generate import GenerateConfig, generate
from ..engines.traverse import TraverseConfig, traverse
from ..metrics import channel_mean
from ..models import MODELS_DIR, Model, pick_device
from ..phantoms import get_domain
from .cli import add_common, write_json
from .counterfactual import NEAR_TRUTH_PX

#: The published SD-1.5 component configs (runwayml/stable-diffusion-v1-5: unet, vae, text_encoder config.json).
UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, cross_attention_dim=768,
            block_out_channels=(320, 640, 1280, 1280), attention_head_dim=8,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))
VAE = dict(sample_size=512, in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
           block_out_channels=(128, 256, 512, 512),
           down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
            max_position_embeddings=77, hidden_act="quick_gelu")
SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                 clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def sd15_random(device: str | None = None) -> Model:
    """The SD-1.5 architecture with random weights (seed 0), as a ``Model`` of unknown domain, without an oracle."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    choice = pick_device(device)
    torch.manual_seed(0)
    tokenizer = CLIPTokenizer.from_pretrained(str(MODELS_DIR / "cxr-phantom" / "tokenizer"), model_max_length=77)
    pipe = StableDiffusionPipeline(vae=AutoencoderKL(**VAE), text_encoder=CLIPTextModel(CLIPTextConfig(**TEXT)),
                                   tokenizer=tokenizer, unet=UNet2DConditionModel(**UNET),
                                   scheduler=DDIMScheduler(**SCHEDULER), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe = pipe.to(choice.device, choice.dtype)
    pipe.set_progress_bar_config(disable=True)
    return Model(name="sd-1.5 (random weights)", pipe=pipe)


def parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


def run(model: Model, steps: int) -> tuple[list[dict], dict]:
    """Each engine once at 512 px: (rows, outputs). A row: seconds, UNet passes, seconds per pass (everything the
    engine did, VAE and text encoder included, over its UNet passes), peak memory so far. Outputs: the generated
    image (float32 (H, W, 3) in [0, 1]), the empty edit and the input's VAE round trip (their channel means, (H, W)),
    the classifier's verdict."""
    image = get_domain("cxr").render(get_domain("cxr").build_graph().sample(0).factors, 0, 512).image  # [0, 1]
    prompt = "Chest X-ray of a female patient"
    runs = {
        "generate": lambda: generate(model, GenerateConfig(prompt=prompt, steps=steps, batch_size=1, seed=0)),
        "traverse slider (typed)": lambda: traverse(model, TraverseConfig(
            kind="slider", prompt=prompt, phrase="with a pacemaker", negation="without a pacemaker", frames=2,
            steps=steps)),
        "traverse prompt switch (typed)": lambda: traverse(model, TraverseConfig(
            kind="prompt_switch", prompt=prompt, phrase="with a pacemaker", frames=2, steps=steps,
            switch_fractions=(0.5,))),
        "traverse interpolate": lambda: traverse(model, TraverseConfig(kind="interpolate", prompt=prompt, frames=2,
                                                                       steps=steps)),
        "edit (automatic mask)": lambda: counterfactual(model, image, EditConfig(
            target_prompt=prompt + " with a pacemaker", source_prompt=prompt, steps=steps + 1, strength=0.7,
            mask_draws=1, seed=0)),
        "edit reconstruction (no edit)": lambda: counterfactual(model, image, EditConfig(
            target_prompt=prompt, source_prompt=prompt, steps=steps + 1, strength=0.7, mask_mode="none", seed=0,
            domain_check=False)),
        "explain": lambda: classify(model, image, ExplainConfig(prompts=(prompt, prompt + " with a pacemaker"),
                                                                trials=3, early_stop=False)),
    }
    rows, results = [], {}
    for name, call in runs.items():
        start = time.perf_counter()
        result = results[name] = call()
        seconds = time.perf_counter() - start
        passes = int(getattr(result, "unet_passes", 0) or 0)
        rows.append({"engine": name, "seconds": round(seconds, 2), "unet_passes": passes,
                     "seconds_per_unet_pass": round(seconds / passes, 3) if passes else None,
                     "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)})
        print(f"{name:<32}{seconds:>8.1f} s{passes:>6} UNet passes"
              + (f"{seconds / passes:>8.2f} s/pass" if passes else "") + f"{rows[-1]['peak_rss_mb']:>8} MB peak")
    round_trip = decode_latents(model.pipe, encode_image(model.pipe, image, model.image_size))[0]
    outputs = {"generate": results["generate"].images[0], "round_trip": channel_mean(round_trip),
        "reconstruction": channel_mean(results["edit reconstruction (no edit)"].counterfactual),
        "explain_predicted": results["explain"].predicted, "explain_votes": results["explain"].vote_fractions}
    return rows, {k: np.asarray(v, dtype=np.float32) for k, v in outputs.items()}


def unet_seconds(model: Model, repeats: int = 3) -> float:
    """Best-of seconds of one UNet pass alone (batch 1, the model's latent size, a text condition)."""
    import torch

    pipe = model.pipe
    size = pipe.unet.config.sample_size
    latent = torch.randn(1, pipe.unet.config.in_channels, size, size, dtype=pipe.unet.dtype, device=model.device)
    condition = encode_prompts(pipe, ["Chest X-ray"]).to(pipe.unet.dtype)
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            pipe.unet(latent, 500, encoder_hidden_states=condition)
            times.append(time.perf_counter() - start)
    return min(times)


def scaling(latent_size: int, size: int = 512) -> list[dict]:
    """Each pixel setting at 128 px (bundled: 32-cell latents) and at ``size``; scales when the ratio is size/128."""
    small, large = pixel_settings(128, 32), pixel_settings(size, latent_size)
    small["near_truth_px"], large["near_truth_px"] = NEAR_TRUTH_PX, max(1, round(NEAR_TRUTH_PX * size / 128))
    return [{"setting": k, "at_128": small[k], f"at_{size}": large[k], "ratio": large[k] / small[k],
             "scales": abs(large[k] / small[k] - size / 128) < 1e-9} for k in small]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda: fp16")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps per engine")
    add_common(parser, domains=False)


def main(args: argparse.Namespace, command: str) -> int:
    start = time.perf_counter()
    model = sd15_random(args.device)
    pipe = model.pipe
    built = time.perf_counter() - start
    sizes = {"unet": parameters(pipe.unet), "text_encoder": parameters(pipe.text_encoder), "vae": parameters(pipe.vae)}
    print(f"SD-1.5 architecture, random weights, built in {built:.1f} s: " +
          ", ".join(f"{k} {v / 1e6:.0f}M" for k, v in sizes.items()) + f"; {model.image_size} px, {args.device}")
    alone = unet_seconds(model)
    print(f"one UNet pass alone (batch 1, {pipe.unet.config.sample_size}² latent): {alone:.2f} s")
    rows, _ = run(model, args.steps)
    checks = scaling(pipe.unet.config.sample_size, model.image_size)
    for row in checks:
        print(f"  {row['setting']:<28}{row['at_128']:>6.2f} px at 128{row['at_512']:>7.2f} px at 512  "
              f"{'scales' if row['scales'] else 'DOES NOT SCALE'}")
    return write_json(args.json, {"command": command, "parameters": sizes, "build_seconds": built,
                                  "unet_pass_seconds": alone, "engines": rows,
                                  "pixel_settings": checks, "all_scale": all(r["scales"] for r in checks),
                                  "image_size": model.image_size, "device": args.device})
