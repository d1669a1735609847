"""Figures the benches write to assets/examples (matplotlib, off-screen)."""

from __future__ import annotations

import numpy as np

from .. import RESEARCH_ONLY_NOTICE
from ..display import overlay


def save_strip(result, path: str, title: str = "") -> str:
    """Frames of a ``TraverseResult``: one row per seed, one column per frame, the target's oracle
    readout (an attribute readout, not a diagnosis) under each frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds, frames = result.frames.shape[:2]
    target = result.parameters.get("target")
    k = result.attributes.index(target) if result.readouts is not None and target in result.attributes else None
    figure, axes = plt.subplots(seeds, frames, figsize=(1.5 * frames, 1.65 * seeds + 0.5), facecolor="black",
                                squeeze=False)
    for s in range(seeds):
        for f in range(frames):
            ax = axes[s, f]
            ax.imshow(result.frames[s, f], vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            label = f"pos {result.positions[f]:.2f}"
            if k is not None:
                label += f"\n{target} {result.readouts[s, f, k]:.2f}"
            ax.set_xlabel(label, color="white", fontsize=6)
        axes[s, 0].set_ylabel(f"seed {result.seeds[s]}", color="white", fontsize=7)
    return _save(figure, path, f"{title}\noracle attribute readout under each frame; {RESEARCH_ONLY_NOTICE}", 110)


def save_explain_figure(cases: list[dict], path: str, title: str = "") -> str:
    """Rows of (input, explanation, evidence and uncertainty overlays) for correct and wrong cases.

    Each case: {"image": contract pixels, "explanation", "evidence", "uncertainty": maps, "caption": str}.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(cases), 4, figsize=(8.0, 2.1 * len(cases) + 0.6), facecolor="black", squeeze=False)
    for r, case in enumerate(cases):
        panels = (case["image"], overlay(case["image"], case["explanation"], 0.55, "inferno", False),
                  overlay(case["image"], case["evidence"], 0.55, "RdBu_r", True),
                  overlay(case["image"], case["uncertainty"], 0.55, "magma", False))
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel, cmap="gray", vmin=0, vmax=1 if panel.dtype != np.uint8 else 255)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(case["caption"], color="white", fontsize=6, rotation=0, ha="right", va="center")
    for c, name in enumerate(
        (
            "input (phantom)",
            "explanation\n(where the class matters)",
            "evidence\n(red: winner fits better)",
            "uncertainty\n(spread over trials)",
        )
    ):
        axes[0, c].set_title(name, color="white", fontsize=7)
    return _save(figure, path, f"{title}\n{RESEARCH_ONLY_NOTICE}", 110)


def save_edit_figure(rows: list[dict], path: str, title: str = "") -> str:
    """One row per edit: input, counterfactual (mask outlined), the SCM's true counterfactual, difference map.

    Each row: {"edit": str, "input", "counterfactual", "truth": contract pixels, "difference": signed (H, W)
    map, "mask": bool (H, W), optionally "edited": bool (H, W), the pixels taken from the edit, "readout":
    oracle probability of the target on the counterfactual}.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(rows), 4, figsize=(7.2, 1.9 * len(rows) + 0.7), facecolor="black", squeeze=False)
    for r, row in enumerate(rows):
        limit = max(0.05, float(np.abs(row["difference"]).max()))
        panels = ((row["input"], "gray", 0, 1), (row["counterfactual"], "gray", 0, 1), (row["truth"], "gray", 0, 1),
                  (row["difference"], "RdBu_r", -limit, limit))
        for c, (panel, cmap, lo, hi) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel, cmap=cmap, vmin=lo, vmax=hi)
            if c == 1 and not row["mask"].all():
                ax.contour(row["mask"].astype(float), levels=[0.5], colors=["#ffd000"], linewidths=0.6)
            edited = row.get("edited")
            if c == 1 and edited is not None and edited.any() and not np.array_equal(edited, row["mask"]):
                ax.contour(edited.astype(float), levels=[0.5], colors=["#00e5ff"], linewidths=0.5)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(f"{row['edit']}\nreadout after {row['readout']:.2f}", color="white", fontsize=6,
                              rotation=0, ha="right", va="center")
    names = ("input (phantom)", "counterfactual (yellow: automatic\nmask, cyan: taken from the edit)",
             "true counterfactual\n(phantom SCM)",
             "difference\n(red brighter, blue darker)")
    for c, name in enumerate(names):
        axes[0, c].set_title(name, color="white", fontsize=7)
    return _save(
        figure, path, f"{title}\noracle readout = attribute readout, not a diagnosis; {RESEARCH_ONLY_NOTICE}", 120
    )


def _save(figure, path: str, title: str, dpi: int) -> str:
    """Title, tight layout, a black PNG (its folder created), and the figure closed."""
    from pathlib import Path

    import matplotlib.pyplot as plt

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.suptitle(title, color="white", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=dpi, facecolor="black")
    plt.close(figure)
    return path
