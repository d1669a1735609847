"""Loading text-to-image models: bundled by name, or from a local path; never from the network.

A model is a Stable Diffusion pipeline folder in the diffusers layout (``model_index.json``, ``unet/``,
``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``), or one ``.safetensors``/``.ckpt`` file in
the original layout, read with diffusers' single-file loader against a local config folder (the
bundled models' layout, or a real SD folder you keep locally). The bundled models live under
``assets/models/<name>/``.

Device: CUDA in fp16, else Apple MPS, else CPU in fp32; SDPA attention (PyTorch's default in
diffusers); optional CPU offload and attention slicing for small GPUs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .card import read_card
from .folders import check_safetensors, check_weights, read_config
from .oracle import load_oracle

ASSETS = Path(__file__).resolve().parent.parent / "assets"
MODELS_DIR = ASSETS / "models"
PIPELINE_PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")

# Never reach the network from the default path, whatever the environment says.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class ModelLoadError(ValueError):
    """A model that cannot be loaded; the message names what is missing or broken."""


@dataclass(frozen=True)
class DeviceChoice:
    device: str            # "cuda", "mps" or "cpu"
    dtype_name: str        # "float16" or "float32"

    @property
    def dtype(self):
        import torch

        return getattr(torch, self.dtype_name)


def pick_device(prefer: str | None = None) -> DeviceChoice:
    """CUDA fp16 if available, else MPS fp32... see module docstring; ``prefer`` forces one device."""
    import torch

    if prefer:
        if prefer == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError("CUDA was requested but no CUDA device is available")
        return DeviceChoice(prefer, "float16" if prefer == "cuda" else "float32")
    if torch.cuda.is_available():
        return DeviceChoice("cuda", "float16")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return DeviceChoice("mps", "float32")
    return DeviceChoice("cpu", "float32")


def bundled_models() -> list[str]:
    """Names of the bundled pipeline folders under ``assets/models``."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "model_index.json").is_file())


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A bundled name ("cxr-phantom") or a path -> the path to load; clear error if neither exists."""
    text = str(name_or_path)
    candidate = Path(text).expanduser()
    if candidate.exists():
        return candidate
    if (MODELS_DIR / text).exists():
        return MODELS_DIR / text
    bundled = ", ".join(bundled_models()) or "none are installed"
    raise ModelLoadError(f"model {text!r} not found: no such path, and not a bundled model (bundled: {bundled})")


def check_pipeline_folder(path: Path) -> None:
    """Raise ``ModelLoadError`` naming the first missing or malformed part of a diffusers folder."""
    if not path.is_dir():
        raise ModelLoadError(f"{path}: not a folder")
    if not any(path.iterdir()):
        raise ModelLoadError(f"{path}: the folder is empty (expected a diffusers pipeline: model_index.json, "
                             f"{', '.join(PIPELINE_PARTS)})")
    read_config(path, "model_index.json", "diffusers pipeline", ModelLoadError)
    for part in PIPELINE_PARTS:
        folder = path / part
        if not folder.is_dir():
            raise ModelLoadError(f"{path}: missing the {part}/ folder")
        if part in ("unet", "vae", "text_encoder"):
            check_weights(folder, ModelLoadError)


def load_pipeline(name_or_path: str | os.PathLike = "cxr-phantom", *, device: str | None = None,
                  config: str | os.PathLike | None = None, cpu_offload: bool = False,
                  attention_slicing: bool = False):
    """A ``StableDiffusionPipeline`` on the best local device, loaded without network access.

    Args:
        name_or_path: bundled name, a diffusers folder, or a single ``.safetensors``/``.ckpt`` file.
        device: force "cuda", "mps" or "cpu" (default: best available).
        config: for a single file, a local diffusers folder describing its architecture.
        cpu_offload: sequentially offload submodules to the CPU (small GPUs).
        attention_slicing: compute attention in slices (small GPUs).

    Raises:
        ModelLoadError: what is missing or broken, in one sentence.
    """
    from diffusers import StableDiffusionPipeline

    path = resolve(name_or_path)
    choice = pick_device(device)
    try:
        if path.is_file():
            if path.suffix not in (".safetensors", ".ckpt"):
                raise ModelLoadError(f"{path}: a single-file model must be .safetensors or .ckpt")
            if path.suffix == ".safetensors":
                check_safetensors(path, ModelLoadError)
            if config is None:
                raise ModelLoadError(f"{path}: a single-file checkpoint needs config=<local diffusers folder> "
                                     "describing its architecture (nothing is fetched from the network)")
            pipe = StableDiffusionPipeline.from_single_file(
                str(path), config=str(config), local_files_only=True, torch_dtype=choice.dtype,
                safety_checker=None, requires_safety_checker=False)
        else:
            check_pipeline_folder(path)
            pipe = StableDiffusionPipeline.from_pretrained(
                str(path), local_files_only=True, torch_dtype=choice.dtype, safety_checker=None,
                requires_safety_checker=False)
    except ModelLoadError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"{path}: cannot load the pipeline ({' '.join(str(error).split())[:240]})") from None
    if cpu_offload and choice.device == "cuda":
        pipe.enable_model_cpu_offload()
    else:
        pipe = pipe.to(choice.device)
    if attention_slicing:
        pipe.enable_attention_slicing()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def read_model_card(path: str | os.PathLike) -> dict[str, Any]:
    """The ``medviz.json`` facts a bundled model carries (domain, attributes, oracle, training), if any."""
    return read_card(resolve(path))


@dataclass
class Model:
    """A loaded text-to-image model with what the engines need to know about it.

    ``oracle`` is ``None`` for a model without one (e.g. a user's real checkpoint): engines then skip
    attribute readouts. ``domain`` is "cxr", "skin" or ``None`` (unknown).
    """

    name: str
    pipe: Any
    oracle: Any = None
    domain: str | None = None
    card: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)       # engines' per-model precomputations (e.g. directions)

    @property
    def image_size(self) -> int:
        return int(self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor)

    @property
    def device(self):
        return self.pipe._execution_device


def load_model(name_or_path: str | os.PathLike = "cxr-phantom", *, device: str | None = None,
               oracle: str | os.PathLike | None = None, **pipeline_options) -> Model:
    """The pipeline plus its oracle (from ``medviz.json`` or ``oracle=``) and model card facts."""
    pipe = load_pipeline(name_or_path, device=device, **pipeline_options)
    path = resolve(name_or_path)
    card = read_model_card(path) if path.is_dir() else {}
    domain = card.get("domain")
    oracle_path = oracle or (path / card["oracle"] if card.get("oracle") else None)
    loaded_oracle = None
    if oracle_path is not None:
        try:
            loaded_oracle = load_oracle(oracle_path, domain)
        except (OSError, ValueError) as error:
            reason = " ".join(str(error).split())[:200]
            raise ModelLoadError(f"{oracle_path}: cannot load the oracle ({reason})") from None
    return Model(
        name=str(name_or_path),
        pipe=pipe,
        oracle=loaded_oracle,
        domain=domain or getattr(loaded_oracle, "domain", None),
        card=card,
    )
