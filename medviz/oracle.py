"""The oracle: an attribute readout of images, used to *measure* the engines (never a diagnosis).

A multi-label ``transformers`` ResNet (or ConvNeXt, the independent judge) trained on phantoms
(``python -m medviz.train oracle``); each bundled model names its oracle in ``medviz.json``. Images enter in the
I/O contract (float32 in [0, 1], ``(H, W)`` or ``(H, W, 3)``) or as uint8; they are resized to the side its
``config.json`` gives (``image_size``, the size it was trained at).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import domains
from .folders import load_image_classifier
from .io import to_model_batch, uint8_rgb

#: Every figure the oracle produces is labelled with this, in tables, charts and metadata.
READOUT_KIND = "attribute readout (not a diagnosis)"


def predict(model, images: np.ndarray, device, batch: int = 256, softmax: bool = False) -> np.ndarray:
    """Probabilities (N, n_labels) of uint8 N x H x W x 3 images, in batches of ``batch``: sigmoid per label
    (multi-label, the oracle), or ``softmax`` over the labels (a single-label classifier)."""
    import torch

    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            logits = model(pixel_values=to_model_batch(images[start:start + batch], device)).logits.float()
            outputs.append((torch.softmax(logits, dim=-1) if softmax else torch.sigmoid(logits)).cpu().numpy())
    return np.concatenate(outputs)


@dataclass
class Oracle:
    """A loaded oracle: ``readout(images)`` gives an (N, A) array of probabilities, one per attribute."""

    model: Any
    attributes: tuple[str, ...]
    image_size: int
    domain: str | None = None
    path: str = ""

    @property
    def factors(self) -> tuple[str, ...]:
        """The attributes it reads that are separate factors of its domain's SCM (all of them: unknown domain)."""
        domain = domains.find(self.domain)
        return tuple(a.name for a in domain.factors) if domain else self.attributes

    def readout(self, images: np.ndarray | Sequence[np.ndarray], batch: int = 128) -> np.ndarray:
        """Sigmoid probabilities (N, A) of N images (contract floats or uint8, any size, gray or RGB)."""
        uint8 = self._to_uint8_batch(images)
        if not len(uint8):
            return np.zeros((0, len(self.attributes)), np.float32)
        return predict(self.model, uint8, "cpu", batch)

    def readout_dicts(self, images) -> list[dict[str, float]]:
        return [dict(zip(self.attributes, map(float, row))) for row in self.readout(images)]

    def _to_uint8_batch(self, images) -> np.ndarray:
        arrays = [uint8_rgb(image, self.image_size) for image in images]
        return np.stack(arrays) if arrays else np.zeros((0, self.image_size, self.image_size, 3), np.uint8)


def load_oracle(path: str | os.PathLike, domain: str | None = None) -> Oracle:
    """Load an oracle folder (``config.json`` with ``image_size`` + ``model.safetensors``) offline."""
    folder = Path(path)
    model = load_image_classifier(folder, "oracle", ValueError)
    attributes = tuple(model.config.id2label[i] for i in range(model.config.num_labels))
    size = getattr(model.config, "image_size", None)
    if not size:
        raise ValueError(f"{folder}/config.json gives no image_size (the side the oracle was trained at)")
    record = folder / "medviz_train.json"
    if domain is None and record.is_file():
        domain = json.loads(record.read_text()).get("config", {}).get("domain")
    return Oracle(model=model, attributes=attributes, image_size=int(size), domain=domain, path=str(folder))
