"""Labelled contact sheets of phantoms and of their true counterfactuals."""

from __future__ import annotations

from pathlib import Path

from .. import domains
from . import get_domain
from .render import mask_between


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
    base = next((s for s in (graph.sample(seed + i) for i in range(200)) if module.is_clean(s.factors)), samples[0])
    figure, axes = plt.subplots(3, columns, figsize=(2.6 * columns, 3.2 * 3), facecolor="black")
    cmap = "gray" if domain == "cxr" else None
    for ax, sample in zip(axes[:2].ravel(), samples):
        ax.imshow(module.render(sample.factors, sample.seed, size).image, cmap=cmap, vmin=0, vmax=1)
        ax.set_title(module.summary(sample.factors), color="white", fontsize=8)
    row = [(f"factual (seed {base.seed:d})", base)]
    vocabulary = domains.get(domain)
    for name in vocabulary.sheet:
        row.append((f"do({name})", graph.intervene(base, **vocabulary.intervention(name, base.factors))))
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
    figure.suptitle(
        f"medviz {vocabulary.title} phantoms (synthetic, research use only). Bottom row: true counterfactuals "
        f"of the first patient; red = changed region",
        color="white",
        fontsize=10,
    )
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110, facecolor="black")
    plt.close(figure)
    return out
