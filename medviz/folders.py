"""What every loader of a Hugging Face folder checks (pipelines, oracles, audited classifiers): each problem is one
sentence naming the first thing missing or broken, raised as the loader's own error type (``error``); ``shown`` is
how the folder is named in it (a user's folder as they typed it, never the server's path)."""

from __future__ import annotations

import json
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin")


def read_config(folder: Path, name: str, kind: str, error: type[Exception], shown: str | None = None) -> dict:
    """``folder/name`` as JSON, e.g. a pipeline's ``model_index.json`` (``kind`` 'diffusers pipeline')."""
    shown = shown or str(folder)
    path = folder / name
    if not path.is_file():
        raise error(f"{shown}: no {name}, so this is not a {kind} folder")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as reason:
        raise error(f"{shown}/{name}: malformed JSON ({reason})") from None


def check_weights(folder: Path, error: type[Exception], shown: str | None = None) -> None:
    """The folder holds a weights file, and every safetensors file in it reads."""
    weights = [p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES]
    if not weights:
        raise error(f"{shown or folder}: no weights file (.safetensors)")
    for weight in weights:
        if weight.suffix == ".safetensors":
            check_safetensors(weight, error)


def check_safetensors(path: Path, error: type[Exception]) -> None:
    """Open the file and read its last tensor: a truncated or damaged file fails here, not inside a library."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            keys = list(handle.keys())
            if keys:
                handle.get_slice(keys[-1])
    except Exception as reason:  # safetensors raises its own SafetensorError on any damage
        raise error(f"{path}: corrupt safetensors file ({_one_line(reason, 160)})") from None
    size = path.stat().st_size
    if size < 8:
        raise error(f"{path}: corrupt safetensors file (only {size} bytes)")


def load_image_classifier(folder: Path, kind: str, error: type[Exception], shown: str | None = None):
    """A ``transformers`` image classifier from ``folder``, offline, in eval mode (``kind``: 'oracle', ...)."""
    from transformers import AutoModelForImageClassification

    try:
        return AutoModelForImageClassification.from_pretrained(str(folder), local_files_only=True).eval()
    except (OSError, ValueError, KeyError) as reason:
        raise error(f"{shown or folder}: cannot load the {kind} ({_one_line(reason, 200)})") from None


def _one_line(reason: Exception, limit: int) -> str:
    return " ".join(str(reason).split())[:limit]
