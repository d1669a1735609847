"""Datasets: folder + CSV in the CheXpert and ISIC layouts, and phantoms drawn on the fly.

Records are plain dataclasses; images are read through ``medviz.io`` (the intensity contract) only
when asked for.

CheXpert layout: a CSV with ``Path``, ``Sex``, ``Age``, ``Frontal/Lateral``, ``AP/PA`` and the 14
findings whose cells are 1, 0, -1 (uncertain) or blank (not mentioned); labels become 1.0, 0.0, NaN,
NaN. ``Path`` is resolved against the image root (default: the CSV's folder, then its parent, which
is how the released CSVs name ``CheXpert-v1.0-small/train/...``).

ISIC layout: a CSV with an image id column (``image_name``, ``isic_id``, ``image_id`` or ``image``) and
``diagnosis``/``dx`` and/or ``target``/``benign_malignant`` (or the 2019 one-hot ``MEL``); images are
``<root>/<id>.<jpg|png|...>``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from . import domains, prompts
from .io import MedicalImage, read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".webp")
ISIC_ID_COLUMNS = ("image_name", "isic_id", "image_id", "image")


class DatasetError(ValueError):
    """A dataset folder or CSV that cannot be used; the message names the problem."""


@dataclass(frozen=True)
class Record:
    """One image of a dataset.

    Attributes:
        path: the image file.
        labels: attribute/finding -> 1.0, 0.0 or NaN (CheXpert columns, or ISIC ``target`` etc.).
        caption: the training caption.
        meta: the remaining CSV columns, as strings (demographics, phantom factors, ...).
    """

    path: Path
    labels: Mapping[str, float]
    caption: str
    meta: Mapping[str, str] = field(default_factory=dict)

    def load(self, **kwargs: Any) -> MedicalImage:
        return read_image(self.path, **kwargs)

    def attribute_labels(self) -> dict[str, float]:
        """``labels`` under the vocabulary's keys ("Pleural Effusion" -> pleural_effusion), values unchanged."""
        return {name.lower().replace(" ", "_"): value for name, value in self.labels.items()}


def read_rows(csv_path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows as dicts of strings) of a CSV; a missing or empty file raises ``DatasetError``."""
    path = Path(csv_path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such CSV file")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        columns = list(reader.fieldnames or [])
    if not columns:
        raise DatasetError(f"{path}: the CSV is empty")
    return columns, rows


def load_chexpert(csv_path: str | os.PathLike, image_root: str | os.PathLike | None = None,
                  caption: Callable[[Mapping[str, Any], Mapping[str, str]], str] | None = None,
                  frontal_only: bool = True, check_files: bool = True) -> list[Record]:
    """Records of a CheXpert-layout CSV.

    Args:
        csv_path: the CSV.
        image_root: folder that ``Path`` is relative to; default tries the CSV's folder then its parent.
        caption: ``(labels, row) -> str``; default PRISM's caption.
        frontal_only: keep only ``Frontal/Lateral == Frontal`` rows (when the column exists).
        check_files: raise ``DatasetError`` naming the first missing image.
    """
    columns, rows = read_rows(csv_path)
    if "Path" not in columns:
        raise DatasetError(f"{csv_path}: not a CheXpert-layout CSV (no 'Path' column; found {columns[:6]})")
    findings = [f for f in prompts.CHEXPERT_FINDINGS if f in columns]
    if not findings:
        raise DatasetError(f"{csv_path}: none of the 14 CheXpert finding columns is present")
    roots = [Path(image_root)] if image_root else [Path(csv_path).parent, Path(csv_path).parent.parent]
    caption = caption or (lambda labels, row: prompts.prism_caption(labels))
    records = []
    for line, row in enumerate(rows, start=2):
        if frontal_only and row.get("Frontal/Lateral", "Frontal") not in ("Frontal", ""):
            continue
        try:
            labels = {f: prompts.label_value(row.get(f)) for f in findings}
        except ValueError as error:
            raise DatasetError(f"{csv_path}, line {line}: {error}") from None
        relative = Path(row["Path"])
        path = next((root / relative for root in roots if (root / relative).exists()), roots[0] / relative)
        if check_files and not path.exists():
            raise DatasetError(f"{csv_path}, line {line}: image {row['Path']} not found under {roots[0]}")
        meta = {k: v for k, v in row.items() if k not in findings and k != "Path"}
        records.append(Record(path, labels, caption(labels, row), meta))
    return records


def load_labelled(domain: str, csv_path: str | os.PathLike, **options) -> list[Record]:
    """Records of a user's labelled CSV in the public layout of ``domain``'s images (``Domain.dataset_layout``):
    CheXpert for chest X-rays, ISIC for dermoscopy. ``options``: the layout's loader's."""
    known = domains.find(domain)
    layout = known.dataset_layout if known else None
    if layout not in LAYOUTS:
        raise ValueError(f"{domain} images have no dataset layout to read a labelled CSV in")
    return LAYOUTS[layout](csv_path, **options)


def load_isic(csv_path: str | os.PathLike, image_root: str | os.PathLike | None = None,
              caption: Callable[[Mapping[str, Any]], str] | None = None, check_files: bool = True) -> list[Record]:
    """Records of an ISIC-layout CSV (2018-2020 challenge CSVs, HAM10000 metadata, phantom output)."""
    columns, rows = read_rows(csv_path)
    id_column = next((c for c in ISIC_ID_COLUMNS if c in columns), None)
    if id_column is None:
        raise DatasetError(f"{csv_path}: not an ISIC-layout CSV (no image id column among {ISIC_ID_COLUMNS})")
    root = Path(image_root) if image_root else Path(csv_path).parent
    caption = caption or prompts.skin_caption
    records = []
    for line, row in enumerate(rows, start=2):
        image_id = row[id_column].strip()
        diagnosis = (row.get("diagnosis") or row.get("dx") or "").strip().lower()
        if row.get("target", "").strip() != "":
            target = float(row["target"])
        elif row.get("benign_malignant"):
            target = 1.0 if row["benign_malignant"].strip().lower() == "malignant" else 0.0
        elif row.get("MEL", "").strip() != "":
            target = float(row["MEL"])
        elif diagnosis:
            target = 1.0 if diagnosis in ("melanoma", "mel") else 0.0
        else:
            raise DatasetError(f"{csv_path}, line {line}: no diagnosis, dx, target, benign_malignant or MEL value")
        labels: dict[str, float] = {"melanoma": target}
        for artifact in ("ruler", "hair", "gel_bubbles", "ink", "vignette"):
            if row.get(artifact, "").strip() != "":
                labels[artifact] = float(row[artifact])
        path = _find_image(root, image_id)
        if check_files and path is None:
            raise DatasetError(f"{csv_path}, line {line}: no image file for {image_id!r} in {root}")
        merged = {**row, "target": target, "diagnosis": diagnosis or ("melanoma" if target == 1 else "")}
        records.append(Record(path or root / image_id, labels, caption(merged),
                              {k: v for k, v in row.items() if k != id_column}))
    return records


def _find_image(root: Path, image_id: str) -> Path | None:
    direct = root / image_id
    if direct.suffix.lower() in IMAGE_SUFFIXES and direct.exists():
        return direct
    for suffix in IMAGE_SUFFIXES:
        for folder in (root, root / "images"):
            candidate = folder / (image_id + suffix)
            if candidate.exists():
                return candidate
    return None


#: Loader of each public dataset layout a labelled CSV may follow (``Domain.dataset_layout``).
LAYOUTS = {"chexpert": load_chexpert, "isic": load_isic}
