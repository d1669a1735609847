"""Labelled contact sheets of phantoms and of their true counterfactuals."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from . import get_domain
from .render import mask_between

# One patient's interventions per domain: (title, changes).
INTERVENTIONS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "cxr": [("do(effusion=bilateral)", {"effusion": "bilateral", "effusion_severity": 0.6}),
            ("do(cardiomegaly)", {"cardiomegaly": True}),
            ("do(pacemaker)", {"support_devices": True, "devices": ("pacemaker",)}),
            ("do(ETT, CVC, NGT)", {"support_devices": True, "devices": ("ett", "cvc", "ngt")}),
            ("do(sex flipped)", {"sex": None})],
    "skin": [("do(melanoma)", {"melanoma": True}), ("do(hair)", {"hair": True}),
             ("do(ruler)", {"ruler": True}), ("do(ink)", {"ink": True}),
             ("do(gel bubbles)", {"gel_bubbles": True})],
}


def describe(domain: str, factors: Mapping[str, Any]) -> str:
    """A short label of the factors that matter to a reader."""
    if domain == "cxr":
        findings = []
        if factors["effusion"] != "none":
            findings.append(f"effusion {factors['effusion'][0].upper()} {factors['effusion_severity']:.1f}")
        if factors["cardiomegaly"]:
            findings.append(f"cardiomegaly (CTR {factors['ctr']:.2f})")
        devices = "+".join(factors["devices"]) or "no devices"
        return f"{factors['sex']} {factors['age']}y\n" + (", ".join(findings) or "no finding") + f"\n{devices}"
    lesion = "MELANOMA" if factors["melanoma"] else "nevus"
    artifacts = [a for a in ("ruler", "hair", "gel_bubbles", "ink") if factors[a]]
    if factors["vignette"] > 0:
        artifacts.append("vignette")
    return f"{lesion} {factors['diameter_mm']:.1f} mm, type {factors['skin_type']}\n" + (", ".join(artifacts) or "no artifacts")


def _is_clean(domain: str, factors: Mapping[str, Any]) -> bool:
    if domain == "cxr":
        return factors["effusion"] == "none" and not factors["cardiomegaly"] and not factors["devices"]
    return not any(factors[a] for a in ("melanoma", "ruler", "hair", "gel_bubbles", "ink")) and factors["skin_type"] <= 4


def contact_sheet(domain: str, out: str | Path, seed: int = 0, size: int = 256, columns: int = 6,
                  **strengths: float) -> Path:
    """Two rows of random phantoms and a row of one patient's true counterfactuals (mask outlined)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    module = get_domain(domain)
    graph = module.build_graph(**strengths)
    samples = [graph.sample(seed + i) for i in range(2 * columns)]
    # The counterfactual row starts from a clean patient, so that every "add" shows a change.
    base = next((s for s in (graph.sample(seed + i) for i in range(200)) if _is_clean(domain, s.factors)), samples[0])
    figure, axes = plt.subplots(3, columns, figsize=(2.6 * columns, 3.2 * 3), facecolor="black")
    cmap = "gray" if domain == "cxr" else None
    for ax, sample in zip(axes[:2].ravel(), samples):
        ax.imshow(module.render(sample.factors, sample.seed, size).image, cmap=cmap, vmin=0, vmax=1)
        ax.set_title(describe(domain, sample.factors), color="white", fontsize=8)
    row = [("factual (seed %d)" % base.seed, base)]
    for title, changes in INTERVENTIONS[domain]:
        if changes.get("sex", "") is None:
            changes = {"sex": "M" if base.factors["sex"] == "F" else "F"}
        row.append((title, graph.intervene(base, **changes)))
    base_render = module.render(base.factors, base.seed, size)
    for ax, (title, sample) in zip(axes[2], row[:columns]):
        rendering = base_render if sample is base else module.render(sample.factors, sample.seed, size)
        ax.imshow(rendering.image, cmap=cmap, vmin=0, vmax=1)
        if sample is not base:
            mask = mask_between(base_render, rendering)
            ax.contour(mask.astype(float), levels=[0.5], colors="red", linewidths=0.8)
            downstream = [k for k in graph.names if k not in sample.interventions and sample[k] != base[k]]
            if downstream:
                title += "\ndownstream: " + ", ".join(downstream[:3]) + ("..." if len(downstream) > 3 else "")
        ax.set_title(title, color="orange", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    name = {"cxr": "chest X-ray", "skin": "dermoscopy"}[domain]
    figure.suptitle(f"medviz {name} phantoms (synthetic, research use only). Bottom row: true counterfactuals "
                    f"of the first patient; red = changed region", color="white", fontsize=10)
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110, facecolor="black")
    plt.close(figure)
    return out
