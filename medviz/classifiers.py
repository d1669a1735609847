"""Classifiers to audit: a ``transformers`` image-classification folder (a bundled one by name, or the user's) and
the label whose score is audited. Loaded offline; every broken folder gets one sentence naming what is wrong.

Images enter in the I/O contract (float32 in [0, 1], gray or RGB, any size) or as uint8, and are resized to the
side the folder's ``config.json`` gives (``image_size``, else 224) and mapped to [-1, 1] like the oracle's inputs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .folders import check_weights, load_image_classifier, read_config
from .io import uint8_rgb
from .oracle import predict

CLASSIFIERS_DIR = Path(__file__).resolve().parent.parent / "assets" / "models"     # beside the pipelines
CARD = "medviz_classifier.json"          # what ``python -m medviz.train classifier`` writes beside the weights


class ClassifierLoadError(ValueError):
    """A classifier folder that cannot be audited; the message names what is missing or wrong."""


@dataclass
class AuditedClassifier:
    """A loaded classifier and the label audited: ``score(images)`` gives P(label) per image."""

    model: Any
    label: str
    index: int
    image_size: int
    name: str
    card: dict = field(default_factory=dict)

    def score(self, images, batch: int = 128) -> np.ndarray:
        """(N,) the softmax (single-label) or sigmoid (multi-label) probability of ``label`` for N images."""
        uint8 = np.stack([uint8_rgb(image, self.image_size) for image in images])
        multi_label = getattr(self.model.config, "problem_type", None) == "multi_label_classification"
        return predict(self.model, uint8, "cpu", batch, softmax=not multi_label)[:, self.index]


def bundled_classifiers() -> list[str]:
    """Names of the bundled classifiers to audit: folders under ``assets/models`` with a classifier card."""
    if not CLASSIFIERS_DIR.is_dir():
        return []
    return sorted(p.name for p in CLASSIFIERS_DIR.iterdir() if (p / "config.json").is_file() and (p / CARD).is_file())


def classifier_domain(name: str) -> str | None:
    """The domain a bundled classifier was trained on (its card), None when its card does not say."""
    path = CLASSIFIERS_DIR / name / CARD
    try:
        return json.loads(path.read_text()).get("config", {}).get("domain")
    except (OSError, json.JSONDecodeError):
        return None


def load_classifier(name_or_path: str | os.PathLike, label: str | None = None) -> AuditedClassifier:
    """Load a classifier folder and pick the audited ``label`` (default: its card's target, else the only positive
    label of a two-class head).

    Raises:
        ClassifierLoadError: no such folder, no config.json, no labels (id2label), the label absent, no weights.
    """
    text = str(name_or_path)
    folder = CLASSIFIERS_DIR / text if text in bundled_classifiers() else Path(text).expanduser()
    if not folder.is_dir():
        raise ClassifierLoadError(f"classifier {text!r} not found: not a bundled classifier "
                                  f"({', '.join(bundled_classifiers()) or 'none installed'}) and not a folder")
    config = read_config(folder, "config.json", "transformers classifier", ClassifierLoadError, text)
    id2label = {int(k): v for k, v in (config.get("id2label") or {}).items()}
    if not id2label or all(v == f"LABEL_{k}" for k, v in id2label.items()):
        raise ClassifierLoadError(f"{text}/config.json names no labels (id2label), so no score can be audited")
    card = json.loads((folder / CARD).read_text()) if (folder / CARD).is_file() else {}
    label = label or card.get("target") or _positive_label(id2label, text)
    if label not in id2label.values():
        raise ClassifierLoadError(f"{text} has no label {label!r}; its labels: {', '.join(id2label.values())}")
    check_weights(folder, ClassifierLoadError, text)
    model = load_image_classifier(folder, "classifier", ClassifierLoadError, text)
    size = int(config.get("image_size") or 224)
    index = next(k for k, v in id2label.items() if v == label)
    return AuditedClassifier(model=model, label=label, index=index, image_size=size, name=text, card=card)


def _positive_label(id2label: dict[int, str], text: str) -> str:
    """The label of class 1 in a two-class head whose class 0 is its negation ('no X' / 'X'); else ask for one."""
    if len(id2label) == 2 and id2label[0] == f"no {id2label[1]}":
        return id2label[1]
    raise ClassifierLoadError(f"{text}: say which label to audit; its labels: {', '.join(id2label.values())}")
