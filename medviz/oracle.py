"""The oracle: an attribute readout of images, used to *measure* the engines (never a diagnosis).

A multi-label ``transformers`` ResNet trained on phantoms (``python -m medviz.train oracle``); each
bundled model names its oracle in ``medviz.json``. Images enter in the I/O contract (float32 in
[0, 1], ``(H, W)`` or ``(H, W, 3)``) or as uint8; they are resized to the oracle's training size.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

#: Every figure the oracle produces is labelled with this, in tables, charts and metadata.
READOUT_KIND = "attribute readout (not a diagnosis)"

#: Attributes that are separate factors of the phantom SCM, per domain. Disentanglement metrics
#: (leakage, CFRT) compare a target with these; the device kinds (pacemaker, ...) are parts of
#: ``support_devices``, not independent factors.
FACTOR_ATTRIBUTES = {
    "cxr": ("pleural_effusion", "cardiomegaly", "support_devices", "female"),
    "skin": ("melanoma", "ruler", "hair", "gel_bubbles", "ink", "vignette"),
}


@dataclass
class Oracle:
    """A loaded oracle: ``readout(images)`` gives an (N, A) array of probabilities, one per attribute."""

    model: Any
    attributes: tuple[str, ...]
    image_size: int
    domain: str | None = None
    path: str = ""

    def readout(self, images: np.ndarray | Sequence[np.ndarray], batch: int = 128) -> np.ndarray:
        """Sigmoid probabilities (N, A) of N images (contract floats or uint8, any size, gray or RGB)."""
        from .train.oracle import predict

        uint8 = self._to_uint8_batch(images)
        if not len(uint8):
            return np.zeros((0, len(self.attributes)), np.float32)
        return predict(self.model, uint8, "cpu", batch)

    def readout_dicts(self, images) -> list[dict[str, float]]:
        return [dict(zip(self.attributes, map(float, row))) for row in self.readout(images)]

    def _to_uint8_batch(self, images) -> np.ndarray:
        from PIL import Image

        from .io import to_uint8

        arrays = []
        for image in images:
            image = np.asarray(image)
            if image.dtype != np.uint8:
                image = to_uint8(np.clip(image, 0.0, 1.0).astype(np.float32))
            if image.ndim == 2:
                image = np.repeat(image[..., None], 3, axis=-1)
            if image.shape[:2] != (self.image_size, self.image_size):
                image = np.asarray(Image.fromarray(image).resize((self.image_size, self.image_size), Image.BILINEAR))
            arrays.append(image)
        return np.stack(arrays) if arrays else np.zeros((0, self.image_size, self.image_size, 3), np.uint8)


def load_oracle(path: str | os.PathLike, domain: str | None = None) -> Oracle:
    """Load an oracle folder (``config.json`` + ``model.safetensors``) offline."""
    from transformers import ResNetForImageClassification

    folder = Path(path)
    model = ResNetForImageClassification.from_pretrained(str(folder), local_files_only=True).eval()
    attributes = tuple(model.config.id2label[i] for i in range(model.config.num_labels))
    size = 128
    record = folder / "medviz_train.json"
    if record.is_file():
        facts = json.loads(record.read_text())
        preset = facts.get("config", {}).get("preset")
        if preset:
            from .train.architectures import PRESETS

            size = PRESETS[preset].image_size
        domain = domain or facts.get("config", {}).get("domain")
    return Oracle(model=model, attributes=attributes, image_size=size, domain=domain, path=str(folder))
