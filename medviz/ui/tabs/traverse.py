"""Traverse tab: every frame of a trajectory computed at once and cached, one slider per attribute, a GIF."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np
import plotly.graph_objects as go
from PIL import Image

from ... import RESEARCH_ONLY_NOTICE, domains
from ...display import for_display
from ...engines.traverse import TraverseConfig, traverse
from ...oracle import READOUT_KIND
from ..common import PREVIEW_LABEL, MODEL_JOBS, Job, Page, errors_as_messages, start_job, warned
from . import Tab

#: The trajectory radio, (label, the engine's kind).
KINDS = (("attribute sliders", "slider"), ("prompt switch (2503.23623)", "prompt_switch"),
         ("patient interpolation", "interpolate"))
MAX_SLIDERS = 6
X_TITLES = {"slider": "slider position (alpha)", "prompt_switch": "Bezier parameter (neutral → attribute)",
            "interpolate": "slerp fraction (patient A → B)"}


def slider_attributes(domain: str | None) -> list[str]:
    """The attributes a slider can walk: the domain's SCM factors (none for an unknown domain)."""
    known = domains.find(domain)
    return [a.name for a in known.factors] if known else []


def slider_choices(domain: str | None) -> list[tuple[str, str]]:
    """The attribute boxes, (UI words, identifier) of ``slider_attributes``."""
    known = domains.find(domain)
    return [(known.attribute(name).shown, name) for name in slider_attributes(domain)] if known else []


@dataclass(frozen=True)
class TraverseRequest:
    """The Traverse tab's controls; ``seed_b`` < 0 walks to patient ``seed`` + 1."""

    kind: str = "slider"
    targets: tuple[str, ...] = ()
    prompt: str = ""
    seed: int = 0
    seed_b: int = -1
    frames: int = 7
    steps: int = 20
    guidance_scale: float = 4.0
    alpha_max: float = 1.5                 # sliders walk alpha over [-alpha_max, alpha_max]
    start_step: int = 0
    phrase: str = ""
    negation: str = ""
    preview: bool = False

    def configs(self) -> dict[str, TraverseConfig]:
        """One engine config per trajectory: per ticked attribute and the attribute typed in words (named by its
        phrase), or the one patient walk ("walk")."""
        kind = self.kind
        phrase = (self.phrase or "").strip()
        names = ["walk"] if kind == "interpolate" else list(self.targets or [])
        if not names and not (phrase and kind != "interpolate"):
            raise ValueError("tick at least one attribute to traverse, or type one in words")
        common = dict(kind=kind, prompt=(self.prompt or "").strip() or None, seeds=(int(self.seed),),
                      seed_b=None if self.seed_b is None or int(self.seed_b) < 0 else int(self.seed_b),
                      frames=int(self.frames), steps=int(self.steps), guidance_scale=float(self.guidance_scale),
                      alpha_range=(-float(self.alpha_max), float(self.alpha_max)), start_step=int(self.start_step),
                      preview=bool(self.preview))
        configs = {name: TraverseConfig(target=name, **common) if kind != "interpolate" else TraverseConfig(**common)
                   for name in names}
        if phrase and kind != "interpolate":
            configs[phrase] = TraverseConfig(phrase=phrase, negation=(self.negation or "").strip() or None, **common)
        return configs


@dataclass
class TrajectoryCache:
    """Frames of every computed trajectory (uint8), so that moving a slider needs no model call."""

    kind: str
    frames: dict[str, np.ndarray]             # trajectory name -> (K, H, W, 3) uint8
    positions: dict[str, list[float]]
    readouts: dict[str, np.ndarray]           # name -> (K, A) probabilities (may be empty)
    attributes: tuple[str, ...]               # the readouts' columns
    shown: tuple[str, ...]                    # those the chart draws: the SCM's factors
    summaries: dict[str, dict]
    parameters: dict
    warnings: tuple[str, ...] = ()            # the engine's (a preview), shown above the metrics


def compute_trajectories(model, request: TraverseRequest, job: Job) -> TrajectoryCache:
    """One trajectory per target (sliders, prompt switch) or one patient walk, all frames at once."""
    configs = request.configs()
    first = next(iter(configs.values()))
    attributes = model.oracle.attributes if model.oracle is not None else ()
    cache = TrajectoryCache(kind=first.kind, frames={}, positions={}, readouts={}, attributes=attributes,
                            shown=model.oracle.factors if model.oracle is not None else (), summaries={}, parameters={})
    for n, (name, config) in enumerate(configs.items()):
        def step_progress(done, total, n=n):
            if job.progress is not None:
                job.progress(n * total + done, len(configs) * total)

        result = traverse(model, config, progress=step_progress, should_stop=job.should_stop)
        cache.frames[name] = (np.clip(result.frames[0], 0, 1) * 255).round().astype(np.uint8)
        cache.positions[name] = [float(p) for p in result.positions]
        cache.readouts[name] = result.readouts[0] if result.readouts is not None else np.zeros((config.frames, 0))
        cache.summaries[name] = result.summary()
        cache.parameters[name] = result.parameters
        cache.warnings = result.warnings
    return cache


def frame_of(cache: TrajectoryCache, name: str, index: int) -> np.ndarray:
    """The cached frame ``index`` of trajectory ``name``, enlarged for display (no model call)."""
    frames = cache.frames[name]
    return for_display(frames[int(np.clip(index, 0, len(frames) - 1))])


def readout_figure(cache: TrajectoryCache, name: str, index: int) -> go.Figure:
    """Plotly chart of the oracle readout along trajectory ``name``, the current frame marked."""
    figure = go.Figure()
    readouts = cache.readouts.get(name)
    positions = cache.positions[name]
    for attribute in [a for a in cache.attributes if a in (cache.shown or cache.attributes)]:
        k = cache.attributes.index(attribute)
        figure.add_trace(go.Scatter(x=positions, y=readouts[:, k], mode="lines+markers", name=attribute,
                                    line={"width": 3 if attribute == name else 1.5}))
    index = int(np.clip(index, 0, len(positions) - 1))
    figure.add_vline(x=positions[index], line_dash="dash", line_color="orange")
    figure.update_layout(title=f"Oracle {READOUT_KIND} along the trajectory", xaxis_title=X_TITLES[cache.kind],
                         yaxis_title="probability", yaxis_range=[-0.02, 1.02], height=320,
                         margin={"l": 40, "r": 10, "t": 40, "b": 80}, legend={"orientation": "h", "y": -0.35})
    return figure


def summary_markdown(cache: TrajectoryCache) -> str:
    """Each trajectory's metrics, or why it has none (no oracle; an attribute in words; a patient walk)."""
    if cache.kind == "interpolate":
        lines = ["Patient interpolation (no target attribute)."]
    else:
        lines = [f"**{name}**: Spearman {s['median_spearman']:.2f}, leakage {s['max_leakage']:.3f}, "
                 f"CFRT {'✓' if s['cfrt'] >= 1 else '✗'}" if s else
                 f"**{name}**: no trajectory metrics (the oracle reads no attribute of this name)"
                 for name, s in cache.summaries.items()]
    if not cache.attributes:
        lines.append("*This model has no oracle: attribute readouts and trajectory metrics are absent.*")
    return warned(cache.warnings, "  \n".join(lines))


def trajectory_gif(cache: TrajectoryCache, name: str, job: Job, duration_ms: int = 250) -> str:
    """The trajectory's frames as a looping GIF (there and back) in the session's export folder."""
    frames = [Image.fromarray(f) for f in cache.frames[name]]
    frames = frames + frames[-2:0:-1]
    path = job.file(f"trajectory_{cache.kind}_{''.join(c if c.isalnum() else '_' for c in name)[:40]}", ".gif")
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0,
                   comment=RESEARCH_ONLY_NOTICE.encode())
    return str(path)


def _controls(domain: str | None) -> dict:
    """The controls whose values make a ``TraverseRequest``, by field name."""
    sliders = slider_choices(domain)
    controls = {"kind": gr.Radio(list(KINDS), value="slider", label="Trajectory"),
                "targets": gr.CheckboxGroup(sliders, value=[name for _, name in sliders[:3]],
                                            label="Attributes (one slider each)"),
                "prompt": gr.Textbox("", label="Context prompt (blank = the model's neutral prompt)",
                                     placeholder="Chest X-ray of a female patient")}
    with gr.Row():             # any model, its domain known or not
        controls["phrase"] = gr.Textbox("", label="…or an attribute in your words (slider: with; switch: the target)",
                                        placeholder="with a pacemaker", elem_id="traverse-phrase")
        controls["negation"] = gr.Textbox("", label="…and its absence (sliders)", placeholder="without a pacemaker",
                                          elem_id="traverse-negation")
    with gr.Row():
        controls["seed"] = gr.Number(value=0, precision=0, label="Seed (patient A)")
        controls["seed_b"] = gr.Number(value=-1, precision=0, label="Patient B seed (-1 = A + 1)")
    with gr.Row():
        controls["frames"] = gr.Slider(3, 15, value=7, step=1, label="Frames", elem_id="traverse-frames")
        controls["steps"] = gr.Slider(4, 50, value=20, step=1, label="Steps", elem_id="traverse-steps")
    with gr.Row():
        controls["alpha_max"] = gr.Slider(0.25, 3, value=1.5, step=0.25, label="Slider range ±alpha")
        controls["start_step"] = gr.Slider(0, 20, value=0, step=1, label="Shift from step (keeps anatomy)")
    with gr.Row():
        controls["guidance_scale"] = gr.Slider(1, 15, value=4.0, step=0.5, label="Guidance scale")
        controls["preview"] = gr.Checkbox(False, label=PREVIEW_LABEL, elem_id="traverse-preview")
    return controls


def _show_frame(slot: int):
    def show_frame(cache, index):
        """Pick a precomputed frame: no model call."""
        if cache is None:
            raise gr.Error("compute a trajectory first")
        names = list(cache.frames)
        if slot >= len(names):
            raise gr.Error("no trajectory for this slider")
        return frame_of(cache, names[slot], index), readout_figure(cache, names[slot], index)

    show_frame.__name__ = f"show_frame_{slot}"
    return show_frame


def build(page: Page, domain: str | None) -> Tab:
    with gr.Tab("Traverse", id="traverse"):
        with gr.Row():
            with gr.Column(scale=2):
                controls = _controls(domain)
                button = gr.Button("Compute trajectory", variant="primary", elem_id="traverse-button")
            with gr.Column(scale=3):
                frame = gr.Image(label="Frame (synthetic)", format="png", interactive=False, height=320,
                                 elem_id="traverse-frame")
                sliders = [gr.Slider(0, 6, value=3, step=1, visible=False, label="", elem_id=f"frame-slider-{i}")
                           for i in range(MAX_SLIDERS)]
                chart = gr.Plot(label=f"Oracle {READOUT_KIND}", elem_id="traverse-chart")
                summary = gr.Markdown()
                gif = gr.File(label="Trajectory GIF")
        trajectory = gr.State(None)

    @errors_as_messages
    def on_traverse(model_name, request: gr.Request, progress=gr.Progress(), **values):
        job = start_job(page, request, progress, "denoising")
        cache = compute_trajectories(page.registry.get(model_name), TraverseRequest(**values), job)
        names = list(cache.frames)
        first, middle = names[0], len(cache.frames[names[0]]) // 2
        shown = [gr.Slider(visible=i < len(names), label=names[i] if i < len(names) else "",
                           maximum=len(cache.frames[first]) - 1, value=middle, step=1) for i in range(MAX_SLIDERS)]
        return (cache, frame_of(cache, first, middle), readout_figure(cache, first, middle), summary_markdown(cache),
                trajectory_gif(cache, first, job), *shown)

    button.click(on_traverse, [page.model_name], [trajectory, frame, chart, summary, gif, *sliders],
                 inputs_kwargs=controls, api_name="traverse", concurrency_id=MODEL_JOBS)
    for slot, slider in enumerate(sliders):
        # input, not change: the trajectory's own updates of every slot (hidden ones too) fired a frame request per
        # slot, an error traceback in the server log for each hidden one (the page showed none).
        slider.input(_show_frame(slot), [trajectory, slider], [frame, chart], api_name=f"frame_{slot}", queue=False,
                      show_progress="hidden")

    def on_model(model) -> list:
        sliders = slider_choices(model.domain)
        return [gr.CheckboxGroup(choices=sliders, value=[name for _, name in sliders[:3]])]

    return Tab(outputs=[controls["targets"]], on_model=on_model)
