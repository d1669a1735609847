"""Stable Diffusion architecture, small: the configs of the bundled models and of the test models.

Same classes as SD v1.5 (``AutoencoderKL``, ``CLIPTextModel``, ``UNet2DConditionModel``), narrower and
shallower so that the whole recipe runs on a 2-core CPU; the oracle is a small ``transformers`` ResNet.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Architecture:
    """Sizes of one text-to-image model. ``image_size`` / 4 is the latent side (two VAE downsamplings)."""

    image_size: int = 128
    vae_channels: tuple[int, ...] = (32, 64, 128)
    latent_channels: int = 4
    unet_channels: tuple[int, ...] = (64, 128, 160)
    attention_head_dim: int = 8
    text_width: int = 192
    text_layers: int = 4
    text_heads: int = 4
    max_tokens: int = 32
    vocab_size: int = 1024
    oracle_widths: tuple[int, ...] = (32, 64, 128, 256)

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.vae_channels) - 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Architecture:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


PRESETS = {
    "small": Architecture(),
    # Issue 52's comparison: an f = 8 VAE at 256 px (SD's factor), whose 32 x 32 latent costs the UNet what
    # "small"'s f = 4 latent of a 128-px image does. Only the VAE is trained at this preset.
    "f8-256": Architecture(image_size=256, vae_channels=(32, 64, 128, 128)),
    "tiny": Architecture(image_size=32, vae_channels=(8, 16), unet_channels=(16, 32), attention_head_dim=4,
                         text_width=32, text_layers=1, text_heads=2, max_tokens=16, oracle_widths=(8, 16)),
}


def make_vae(arch: Architecture):
    from diffusers import AutoencoderKL

    blocks = len(arch.vae_channels)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * blocks,
                         up_block_types=("UpDecoderBlock2D",) * blocks, block_out_channels=arch.vae_channels,
                         layers_per_block=1, latent_channels=arch.latent_channels,
                         norm_num_groups=min(16, arch.vae_channels[0]), sample_size=arch.image_size)


def make_unet(arch: Architecture):
    from diffusers import UNet2DConditionModel

    # No attention at the full latent resolution (its 1024-token self-attention dominates the cost on a
    # CPU); cross-attention at every coarser level and in the mid block.
    levels = len(arch.unet_channels)
    down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (levels - 1)
    up = ("CrossAttnUpBlock2D",) * (levels - 1) + ("UpBlock2D",)
    return UNet2DConditionModel(sample_size=arch.latent_size, in_channels=arch.latent_channels,
                                out_channels=arch.latent_channels, block_out_channels=arch.unet_channels,
                                down_block_types=down, up_block_types=up, layers_per_block=1,
                                cross_attention_dim=arch.text_width, attention_head_dim=arch.attention_head_dim,
                                norm_num_groups=min(16, arch.unet_channels[0]))


def make_text_encoder(arch: Architecture, tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=arch.text_width,
                            intermediate_size=2 * arch.text_width, num_hidden_layers=arch.text_layers,
                            num_attention_heads=arch.text_heads, max_position_embeddings=arch.max_tokens,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)
    return CLIPTextModel(config)


ORACLE_FAMILIES = ("resnet", "convnext")


def make_oracle(arch: Architecture, labels: tuple[str, ...], family: str = "resnet"):
    """Multi-label classifier reading attributes off an image (an attribute readout, not a diagnosis): a ResNet
    (the bundled oracles), or a ConvNeXt (Liu et al. 2022) at the same widths, the independent judge of
    anything trained against the first (another architecture: its blind spots are not the reward's)."""
    from transformers import ConvNextConfig, ConvNextForImageClassification, ResNetConfig, ResNetForImageClassification

    common = dict(num_channels=3, hidden_sizes=list(arch.oracle_widths), num_labels=len(labels),
                  problem_type="multi_label_classification", id2label=dict(enumerate(labels)),
                  label2id={label: i for i, label in enumerate(labels)},
                  image_size=arch.image_size)      # medviz.oracle resizes its inputs to this side
    if family == "resnet":
        return ResNetForImageClassification(ResNetConfig(embedding_size=arch.oracle_widths[0], layer_type="basic",
                                                         depths=[1] * len(arch.oracle_widths), **common))
    if family == "convnext":
        # One block per stage, as the ResNet: at 128 px a training step costs the same (0.7 s at batch 64, 1 thread);
        # patch 2 cost 15x that. The 4 x 4 patchify conv still sees every pixel of a 1-px line.
        return ConvNextForImageClassification(ConvNextConfig(patch_size=4, depths=[1] * len(arch.oracle_widths),
                                                             num_stages=len(arch.oracle_widths), **common))
    raise ValueError(f"oracle family must be one of {ORACLE_FAMILIES}, got {family!r}")


def make_noise_scheduler():
    """SD v1.5's training schedule: 1000 steps, scaled-linear betas, epsilon prediction."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         prediction_type="epsilon", clip_sample=False)


def make_sampling_scheduler():
    """The pipeline's default sampler (swap by config: any diffusers scheduler reads the same file)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         prediction_type="epsilon", clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def grow_unet(unet, *, full_resolution_attention: bool = False, full_resolution_layer: bool = False):
    """A copy of ``unet`` with more capacity at the full latent resolution that computes the same function.

    Args:
        unet: a ``UNet2DConditionModel`` built by :func:`make_unet` (first level without attention, one
            resnet per block).
        full_resolution_attention: make the first down block and the last up block cross-attention blocks
            (self-attention over all latent cells + cross-attention to the prompt), as in SD v1.5, whose
            first level has attention too.
        full_resolution_layer: a second resnet in the first down block (and a third in the last up block).

    Every new module starts as the identity (zero output projection of each new transformer; zero last
    convolution of each new resnet, whose shortcut passes the main path through), the same trick as
    ControlNet's zero convolutions (Zhang et al. 2023, sec. 3.1): fine-tuning starts from exactly what
    the old UNet drew and only learns what the extra capacity adds.
    """
    import torch
    from diffusers import UNet2DConditionModel

    config = dict(unet.config)
    down, up = list(config["down_block_types"]), list(config["up_block_types"])
    levels = len(down)
    per_block = config["layers_per_block"]
    per_block = list(per_block) if isinstance(per_block, (list, tuple)) else [per_block] * levels
    if full_resolution_attention:
        if down[0] != "DownBlock2D" or up[-1] != "UpBlock2D":
            raise ValueError("grow_unet: the first level already has attention")
        down[0], up[-1] = "CrossAttnDownBlock2D", "CrossAttnUpBlock2D"
    if full_resolution_layer:
        if per_block != [1] * levels:
            raise ValueError(f"grow_unet: expected one resnet per block, found {per_block}")
        per_block[0] = 2
    config.update(down_block_types=tuple(down), up_block_types=tuple(up),
                  layers_per_block=per_block[0] if len(set(per_block)) == 1 else tuple(per_block))
    grown = UNet2DConditionModel.from_config({k: v for k, v in config.items() if not k.startswith("_")})
    old = unet.state_dict()
    last = levels - 1
    if full_resolution_layer:
        # Skips of level 0 were (conv_in, resnet 0); now (conv_in, resnet 0, new resnet 1). The last up
        # block pops them in reverse: its old resnet 0 (which read resnet 0's output, now passed through
        # unchanged by new resnet 1) stays resnet 0, its old resnet 1 (which read conv_in) becomes resnet 2,
        # and the new resnet 1 (reading resnet 0's output) returns its main input unchanged. The attention
        # after each resnet (if the level has attention) moves with it.
        def moved(key: str) -> str:
            return (key.replace(f"up_blocks.{last}.resnets.1.", f"up_blocks.{last}.resnets.2.")
                    .replace(f"up_blocks.{last}.attentions.1.", f"up_blocks.{last}.attentions.2."))

        old = {moved(k): v for k, v in old.items()}
    missing, unexpected = grown.load_state_dict(old, strict=False)
    if unexpected:
        raise ValueError(f"grow_unet: weights with no place in the grown UNet: {unexpected[:4]}")
    with torch.no_grad():
        for module_name, module in grown.named_modules():
            if f"{module_name}.weight" not in missing:
                continue
            if module_name.endswith(".proj_out") or (module_name.endswith(".conv2") and ".resnets." in module_name):
                module.weight.zero_()
                module.bias.zero_()
            elif module_name.endswith(".conv_shortcut"):
                # Pass the main path (the first channels) through; ignore the skip channels.
                out_channels = module.weight.shape[0]
                module.weight.zero_()
                module.weight[:, :out_channels, 0, 0] = torch.eye(out_channels)
                module.bias.zero_()
    return grown


# Issue 52 asks for an f = 8 VAE at 256 px beside the f = 4 one at 128 px. Rather than start it from noise, every
# module of the f = 4 VAE that has a place in the f = 8 one is copied there: the outer encoder and decoder blocks,
# which code edges and thin lines, keep what they learnt; the new level (one encoder block and its downsampler, one
# decoder block) starts fresh. diffusers loads weights only into the same architecture, hence this mapping.
def vae_source_key(key: str, added: int) -> str:
    """The source VAE's name of the target's parameter ``key`` when ``added`` levels were added.

    The encoder's down blocks keep their index (the former last block gains a downsampler); the decoder's first up
    block (the deepest) keeps index 0 and the others move ``added`` places down, the new blocks in between.
    """
    match = re.match(r"decoder\.up_blocks\.(\d+)\.(.*)", key)
    if match and int(match.group(1)) > 0:
        index = int(match.group(1)) - added
        return f"decoder.up_blocks.{index}.{match.group(2)}" if index > 0 else ""
    return key


def grow_vae(source, arch: Architecture):
    """A new ``AutoencoderKL`` of ``arch`` with every parameter of ``source`` that has a place in it copied.

    ``source``'s ``block_out_channels`` must be a prefix of ``arch.vae_channels`` (e.g. (32, 64, 128) into
    (32, 64, 128, 128)); its latent channels must match. Returns (the grown VAE, the share of its parameter
    tensors copied, in [0, 1]).
    """
    import torch

    channels = tuple(source.config.block_out_channels)
    if arch.vae_channels[:len(channels)] != channels or len(arch.vae_channels) <= len(channels):
        raise ValueError(f"cannot grow a VAE with channels {channels} into {arch.vae_channels}: "
                         "the source's channels must be a shorter prefix of the target's")
    if source.config.latent_channels != arch.latent_channels:
        raise ValueError(f"the source VAE has {source.config.latent_channels} latent channels, the target "
                         f"{arch.latent_channels}")
    added = len(arch.vae_channels) - len(channels)
    grown = make_vae(arch)
    state, source_state = grown.state_dict(), source.state_dict()
    copied = 0
    with torch.no_grad():
        for key, value in state.items():
            origin = source_state.get(vae_source_key(key, added))
            if origin is not None and origin.shape == value.shape:
                value.copy_(origin)
                copied += 1
    return grown, copied / len(state)
