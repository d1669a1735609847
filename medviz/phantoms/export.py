"""Write phantom datasets in the layouts the real-data loaders read, and measure planted links."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import domains
from ..io import write_dicom, write_png
from ..prompts import CHEXPERT_FINDINGS
from . import get_domain
from .scm import CausalGraph, Sample


def measure_planted_link(graph: CausalGraph, n: int, first_seed: int = 0) -> dict[str, float]:
    """Risk difference P(effect | cause) - P(effect | no cause) over ``n`` samples of ``graph``, for the
    domain's planted spurious link (``Domain.planted_link``: effusion -> devices, melanoma -> ruler)."""
    return measure_planted_links([graph], n, first_seed)[0]


def measure_planted_links(graphs: Sequence[CausalGraph], n: int, first_seed: int = 0) -> list[dict[str, float]]:
    """``measure_planted_link`` for several graphs of one domain (other parameters) on the same ``n`` seeds:
    the exogenous noise, most of the cost of a sample, is drawn once per seed and solved in every graph."""
    domain = graphs[0].domain
    if any(graph.domain != domain for graph in graphs):
        raise ValueError(f"graphs of one domain only, got {sorted({graph.domain for graph in graphs})}")
    vocabulary = domains.get(domain)
    _, cause, effect = vocabulary.planted_link
    counts = np.zeros((len(graphs), 2, 2))
    for seed in range(first_seed, first_seed + n):
        drawn = graphs[0].sample(seed)
        for index, graph in enumerate(graphs):       # no intervention: every factor solved from the same noise
            factors = drawn.factors if index == 0 else graph.intervene(Sample(domain, seed, {}, drawn.noise)).factors
            present = vocabulary.attributes_of(factors)
            counts[index, int(present[cause]), int(present[effect])] += 1
    results = []
    for count in counts:
        p_exposed = count[1, 1] / max(count[1].sum(), 1)
        p_unexposed = count[0, 1] / max(count[0].sum(), 1)
        results.append({"risk_difference": p_exposed - p_unexposed, "p_effect_given_cause": p_exposed,
                        "p_effect_given_no_cause": p_unexposed, "n_cause": count[1].sum(), "n": n})
    return results


def _factor_cells(factors: Mapping[str, Any]) -> dict[str, str]:
    cells = {}
    for name, value in factors.items():
        if isinstance(value, tuple):
            value = "|".join(value)
        elif isinstance(value, float):
            value = f"{value:.4f}"
        cells[f"phantom_{name}"] = str(value)
    return cells


def _cxr_row(name: str, factors: Mapping[str, Any], labels: Mapping[str, Any]) -> dict[str, str]:
    row = {"Path": f"images/{name}.png", "Sex": labels["Sex"], "Age": str(labels["Age"]),
           "Frontal/Lateral": "Frontal", "AP/PA": "PA"}
    for finding in CHEXPERT_FINDINGS:
        row[finding] = f"{labels[finding]:.1f}" if finding in labels else ""
    return row


def _skin_row(name: str, factors: Mapping[str, Any], labels: Mapping[str, Any]) -> dict[str, str]:
    return {"image_name": name, "patient_id": f"phantom_{name}", **{k: str(v) for k, v in labels.items()}}


def write_dataset(domain: str, n: int, size: int, out: str | Path, seed: int = 0,
                  progress: Callable[[int, int], None] | None = None, **strengths: float) -> dict[str, Any]:
    """Render ``n`` phantoms to ``out/images/*.png`` and ``out/labels.csv``.

    The CSV is in the CheXpert layout for "cxr" and the ISIC layout for "skin", with every factor in
    extra ``phantom_*`` columns and the sample seed, so a sample can be re-rendered or intervened on.
    Returns timing figures.
    """
    module = get_domain(domain)
    graph = module.build_graph(**strengths)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    make_row = _cxr_row if domain == "cxr" else _skin_row
    rows = []
    render_seconds = 0.0
    start = time.perf_counter()
    for index in range(n):
        sample_seed = seed + index
        name = f"{domain}_{sample_seed:07d}"
        sample = graph.sample(sample_seed)
        tic = time.perf_counter()
        image = module.render(sample.factors, sample.seed, size).image
        render_seconds += time.perf_counter() - tic
        parameters = {"domain": domain, "seed": sample_seed, "size": size, **graph.parameters}
        write_png(out / "images" / f"{name}.png", image, parameters)
        rows.append({**make_row(name, sample.factors, module.labels(sample.factors)), "seed": str(sample_seed),
                     **_factor_cells(sample.factors)})
        if progress:
            progress(index + 1, n)
    with (out / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    total = time.perf_counter() - start
    return {"n": n, "size": size, "render_images_per_s": n / max(render_seconds, 1e-9),
            "total_images_per_s": n / max(total, 1e-9), "csv": str(out / "labels.csv")}


#: Bundled example inputs for the Edit and Explain tabs: name -> (domain, held-out seed, interventions).
EXAMPLE_INPUTS = {
    "cxr_effusion.png": ("cxr", 10_900_001, {"effusion": "bilateral", "effusion_severity": 0.7,
                                             "support_devices": False}),
    "cxr_pacemaker.png": ("cxr", 10_900_002, {"effusion": "none", "support_devices": True, "devices": ("pacemaker",)}),
    "cxr_clear.png": ("cxr", 10_900_003, {"effusion": "none", "support_devices": False, "cardiomegaly": False}),
    "cxr_clear.dcm": ("cxr", 10_900_003, {"effusion": "none", "support_devices": False, "cardiomegaly": False}),
    "skin_melanoma.png": ("skin", 10_900_004, {"melanoma": True, "ruler": False}),
    "skin_nevus_ruler.png": ("skin", 10_900_005, {"melanoma": False, "ruler": True, "hair": False}),
}


def write_examples(folder: str | Path, size: int = 256) -> list[Path]:
    """Render the example inputs (PNG, and one DICOM Secondary Capture) with their factors in metadata."""
    folder = Path(folder)
    paths = []
    for name, (domain, seed, changes) in EXAMPLE_INPUTS.items():
        module = get_domain(domain)
        graph = module.build_graph()
        sample = graph.intervene(graph.sample(seed), **changes)
        image = module.render(sample.factors, sample.seed, size).image
        parameters = {"phantom_domain": domain, "phantom_seed": seed, "interventions": changes,
                      "factors": {k: v for k, v in sample.factors.items()}}
        writer = write_dicom if name.endswith(".dcm") else write_png
        paths.append(writer(folder / name, image, parameters))
    return paths
