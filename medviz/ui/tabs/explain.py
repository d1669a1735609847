"""Explain tab: the model as a diffusion classifier, at its card's operating point, with its three maps."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np
import plotly.graph_objects as go

from ...display import for_display, overlay
from ... import domains
from ...engines.common import model_rgb
from ...engines.explain import (DEFAULT_T_RANGE, DEFAULT_TRIALS, ExplainConfig, ExplainResult, calibrated_settings,
                                classify, fitted_trials, measured_classifier, preset, preset_names, votes_needed)
from ..common import (MODEL_JOBS, NO_IMAGE, Job, Page, domain_banner, errors_as_messages, example_images, first_example,
                      image_input, pre_run_line, read_input, start_job, take_upload, unmeasured_settings)
from ..session import FILE_LIFETIME
from . import Tab

CUSTOM = "custom"
CARD_POINT = "card"
#: The weighting radio, (label, value); a value is the engine's weighting, or ``CARD_POINT``: the model card's fitted
#: operating point for a preset (its weighting with its timestep window and vote threshold; else "disagreement").
WEIGHTING_CHOICES = (("model card's operating point (default)", CARD_POINT),
                     ("where the classes differ", "disagreement"), ("uniform (Favero et al.)", "uniform"))
WEIGHTINGS = {value: None if value == CARD_POINT else value for _, value in WEIGHTING_CHOICES}


def preset_choices(domain: str | None) -> list[tuple[str, str]]:
    """The preset box, (UI words, identifier), then custom prompts."""
    known = domains.find(domain)
    return [(known.preset_shown(key), key) for key in preset_names(domain)] + [("custom prompts", CUSTOM)]


def default_trials(model, task: str) -> int:
    """The N a preset starts at: its model card's N (``calibrated_settings``), else the engine's default."""
    return calibrated_settings(model, task)["trials"] if task in preset_names(model.domain) else DEFAULT_TRIALS


NO_LADINE = "none"


@dataclass(frozen=True)
class ExplainRequest:
    """The Explain tab's controls: the loaded image (the last upload or example), the classes and the trials."""

    pixels: np.ndarray | None = None
    preset: str = CUSTOM
    custom_prompts: str = ""
    trials: int = DEFAULT_TRIALS
    early_stop: bool = True
    weighting: str = CARD_POINT
    ladine: str = NO_LADINE             # a LaDiNE folder to answer beside the diffusion classifier

    def config(self, model) -> ExplainConfig:
        """A preset's prompts at its model card's operating point (N from the slider, made odd), or custom
        prompts (one per line) under the plain majority over the whole schedule."""
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown error weighting {self.weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
        classes = preset(model.domain, self.preset) if self.preset != CUSTOM else None
        if classes is not None:
            labels, prompts = classes
        else:
            prompts = labels = tuple(p.strip() for p in (self.custom_prompts or "").split("\n") if p.strip())
        # Custom prompts get no card's fit: the plain majority over the whole schedule.
        settings = calibrated_settings(model if classes else None, self.preset, WEIGHTINGS[self.weighting])
        settings.pop("trials")          # the N to run comes from the slider (its default is the card's N)
        return ExplainConfig(prompts=prompts, labels=labels, trials=int(self.trials) | 1,
                             early_stop=bool(self.early_stop), **settings)


@dataclass
class ExplainView:
    image: np.ndarray                  # the input at model resolution, contract float
    explanation: np.ndarray            # float32 maps at model resolution: where the classes differ (>= 0)
    evidence: np.ndarray               # signed: > 0 where the winner denoises better
    uncertainty: np.ndarray
    summary: str
    figure: object


def expectation(model, request: ExplainRequest) -> str:
    """Markdown, before anything is classified: the classify bench's held-out accuracy for this preset at its model
    card's operating point (``measured_classifier``) and the settings that differ; empty for an unknown domain."""
    if model.domain is None:
        return ""
    if request.preset not in preset_names(model.domain):
        return "*Custom prompts were not measured on held-out phantoms.*  \n"
    m = measured_classifier(model, request.preset, request.config(model))
    if m is None:
        shown = domains.get(model.domain).preset_shown(request.preset)
        return (f"*{shown.capitalize()} was not measured on held-out phantoms with this model (model card: "
                "Diffusion-classifier operating point).*  \n")
    shown = domains.get(model.domain).preset_shown(m["task"])
    text = (f"**Measured on this model** for *{shown}* (classify bench, {m['n']} held-out phantoms"
            + (f", {m['date']}" if m.get("date") else "") + f"): at the card's operating point the diffusion "
            f"classifier gave the phantoms' true label in {m['accuracy']:.2%}, with {m['mean_trials']:.1f} trials on "
            "average.")
    if "points_behind_at_most" in m:
        text += f" At most {m['points_behind_at_most']:.2f} points behind N = {m['reference_trials']}."
    text += unmeasured_settings(m["differences"], lambda v: "–".join(map(str, v)) if isinstance(v, tuple) else str(v))
    return text + "  \n"


def ladine_line(ladine, pixels: np.ndarray, domain: str | None) -> str:
    """Markdown: LaDiNE's verdict on the same image, its confidence and its instance uncertainty (arXiv 2310.15952:
    a paired t-test between the two top classes over members x samples, uncertain at p >= 0.05)."""
    answer = ladine.predict([pixels])[0]
    target, known = ladine.config.labels[1], domains.find(domain)
    if known and target in known:               # "melanoma" / "benign nevus", not "Lesion" / "no Lesion"
        attribute = known.attribute(target)
        verdict = attribute.phrase if answer.predicted == 1 else attribute.absent_phrase
    else:
        verdict = ladine.config.labels[answer.predicted]
    certainty = (f"**uncertain** (paired t-test p = {answer.p_value:.2f})" if answer.uncertain else
                 f"certain (paired t-test p = {answer.p_value:.1g})")
    return (f"**LaDiNE ({ladine.name})**, beside it: **{verdict}**, confidence {answer.confidence:.2f}, {certainty}; "
            f"95% interval of its probability {answer.interval_width:.2f} wide.  \n")


def explain_view(model, request: ExplainRequest, job: Job, ladine=None) -> ExplainView:
    """Classify the input with the diffusion classifier (and ``ladine``, a loaded LaDiNE, beside it) and shape the
    result for the tab."""
    if request.pixels is None:
        raise ValueError(NO_IMAGE)
    pixels = np.asarray(request.pixels, np.float32)
    config = request.config(model)
    fit_n = fitted_trials(model, request.preset) if request.preset in preset_names(model.domain) else None
    result = classify(model, pixels, config, progress=job.progress, should_stop=job.should_stop)
    summary = _summary(model, result, config, fit_n)
    if ladine is not None:
        summary += "  \n" + ladine_line(ladine, pixels, model.domain)
    return ExplainView(image=model_rgb(pixels, model.image_size), explanation=result.explanation_map,
                       evidence=result.evidence_map, uncertainty=result.uncertainty_map,
                       summary=summary, figure=_votes_figure(result, config))


def _votes_figure(result: ExplainResult, config: ExplainConfig) -> go.Figure:
    figure = go.Figure(go.Bar(x=list(result.labels), y=result.vote_fractions,
                              marker_color=["#d62728" if i == result.predicted else "#7f7f7f"
                                            for i in range(len(result.labels))],
                              text=[f"{v:.0%}" for v in result.vote_fractions], textposition="auto"))
    needed = votes_needed(config.trials, config.vote_threshold)
    # With early stop the shares are of the trials run, so the operating point is stated, not drawn.
    point = "" if config.vote_threshold == 0.5 else f" ({result.labels[0]} needs {needed} of {config.trials})"
    figure.update_layout(title=f"Vote fractions over {result.trials_run} trials{point}", yaxis_range=[0, 1],
                         yaxis_title="share of trials", height=280, template="none",
                         margin={"l": 40, "r": 10, "t": 40, "b": 40})
    return figure


def _rule(result: ExplainResult, config: ExplainConfig, fit_n: int | None) -> tuple[str, str]:
    """(the decision rule as a sentence's start, the vote's own name): the vote at the card's operating point
    or the majority, or the card's mean-error rule (the trials stop on the vote either way)."""
    trials, threshold = config.trials, config.vote_threshold
    needed = votes_needed(trials, threshold)
    vote_rule = ("Majority vote" if threshold == 0.5 else
                 f"Vote at the model card's calibrated operating point ({result.labels[0]} needs {needed} of "
                 f"{trials} votes)")
    rule = (
        vote_rule
        if config.decision == "vote"
        else (
            f"Mean-error rule, the model card's decision rule (lowest mean denoising error over the trials run; "
            f"they stop once the vote is decided: {result.labels[0]} needs {needed} of {trials})"
        )
    )
    if tuple(config.t_range) != DEFAULT_T_RANGE:
        rule += f" over timesteps {config.t_range[0]}–{config.t_range[1]} (the model card's window)"
    if threshold != 0.5 and fit_n and trials != fit_n:
        # The share transfers; "k of N" was fitted (and is exact on the tuning draws) only at the fit's N.
        rule += f"; the card fitted {votes_needed(fit_n, threshold)} of {fit_n} votes, applied here as the same share"
    return rule, vote_rule.lower() if threshold == 0.5 else "the vote at that operating point"


def _summary(model, result: ExplainResult, config: ExplainConfig, fit_n: int | None) -> str:
    rule, vote_name = _rule(result, config, fit_n)
    stopped = (
        ", stopped early: the remaining votes could not change the vote" if result.trials_run < config.trials else ""
    )
    other = (
        f"mean-error rule: **{result.labels[result.predicted_mean_error]}**"
        if config.decision == "vote"
        else f"{vote_name}: **{result.labels[result.predicted_vote]}**"
    )
    weighted = "to where the class prompts differ" if config.weighting == "disagreement" else "uniformly"
    verdict = f"### {result.label}" + ("  (not meaningful: the image is outside the model's domain)"
                                      if not result.meaningful else "")
    return domain_banner(result.domain_check) + (f"{verdict}  \n"
            f"{rule} **{result.label}** (votes: {result.vote_fractions[result.predicted]:.0%} of "
            f"{result.trials_run} trials{stopped}); {other}.  \n"
            f"Uncertainty: vote entropy {result.vote_entropy:.2f} bits, paired error z = {result.z_score:.1f} "
            f"→ **{result.certainty}** certainty. {result.unet_passes} UNet passes"
            + (f" (+{result.domain_check.unet_passes} for the domain check)" if result.domain_check else "")
            + f", {result.seconds:.1f} s; errors "
            f"weighted {weighted}.  \n"
            f"Explanation map: bright where the model's prediction changes between **{result.label}** and "
            f"**{result.labels[result.runner_up]}** (where the class matters); evidence map: red where the "
            f"**{result.label}** prompt denoises better, blue where the runner-up does; uncertainty map: spread "
            f"of that difference across trials.  \n"
            f"*A model's reading of a {'synthetic ' if model.domain else ''}image, not a diagnosis.*")


def explain_overlays(view: ExplainView | None, opacity: float) -> tuple[np.ndarray | None, ...]:
    """uint8 RGB explanation, evidence and uncertainty overlays at ``opacity``, enlarged for display; no model call."""
    if view is None:
        return None, None, None
    return (for_display(overlay(view.image, view.explanation, opacity, "inferno", False)),
            for_display(overlay(view.image, view.evidence, opacity, "RdBu_r", True)),
            for_display(overlay(view.image, view.uncertainty, opacity, "magma", False)))


def _controls(domain: str | None, ladines: list[str]) -> dict:
    presets = preset_choices(domain)
    controls = {"preset": gr.Dropdown(presets, value=presets[0][1], label="Classes (prompt presets)")}
    controls["custom_prompts"] = gr.Textbox("", label="Custom class prompts (one per line; preset 'custom')", lines=3)
    with gr.Row():
        controls["trials"] = gr.Slider(1, 201, value=DEFAULT_TRIALS, step=2, label="Trials N (odd)",
                                       elem_id="explain-trials")
        controls["early_stop"] = gr.Checkbox(value=True, label="Stop once the leader cannot be overtaken")
    controls["weighting"] = gr.Radio(
        list(WEIGHTING_CHOICES),
        value=CARD_POINT,
        label="Operating point / denoising error weighted",
        elem_id="explain-weighting",
    )
    controls["ladine"] = gr.Dropdown([NO_LADINE, *ladines], value=NO_LADINE, label="LaDiNE beside it (a folder)")
    return controls


def build(page: Page, domain: str | None) -> Tab:
    with gr.Tab("Explain", id="explain"):
        with gr.Row():
            with gr.Column(scale=2):
                upload, example = image_input("explain", domain)
                info = gr.Markdown(elem_id="explain-input-info")
                controls = _controls(domain, page.registry.ladine_choices(domain))
                expect = gr.Markdown(elem_id="explain-expect")     # the card's held-out figures
                button = gr.Button("Classify and explain", variant="primary", elem_id="explain-button")
            with gr.Column(scale=3):
                summary = gr.Markdown(elem_id="explain-summary")
                votes = gr.Plot(label="Votes")
                opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Overlay opacity")
                with gr.Row():
                    maps = [gr.Image(label=f"{name} map", format="png", interactive=False)
                            for name in ("Explanation", "Evidence", "Uncertainty")]
        # The loaded image, in memory: kept FILE_LIFETIME s after it was loaded, as the server's files are.
        state, pixels = gr.State(None), gr.State(None, time_to_live=FILE_LIFETIME)

    def read(model_name, source: dict | None) -> list:
        """(pixels, info) of the input; a file that cannot be read leaves no image (never an earlier one)."""
        if not source:
            return [None, ""]
        image, info = read_input(page, model_name, source)
        return [None if image is None else image.pixels, info]

    def on_example(model_name, example):
        return read(model_name, {"example": example}) if example else [gr.skip()] * 2   # emptied by an upload: keep it

    def on_upload(model_name, upload):
        data = take_upload(upload)            # read into memory; the file and its name leave the server now
        return [*read(model_name, {"upload": data} if data else None), None, None]

    loaded = [pixels, info]
    upload.upload(on_upload, [page.model_name, upload], [*loaded, upload, example], api_name="explain_load")
    upload.clear(lambda: [None, ""], None, loaded, api_name=False)
    example.change(on_example, [page.model_name, example], loaded, api_name="explain_example")

    @errors_as_messages
    def on_explain(model_name, opacity, request: gr.Request, progress=gr.Progress(), **values):
        explain_request = ExplainRequest(**values)
        ladine = None
        if explain_request.ladine not in ("", NO_LADINE):
            ladine = page.registry.ladine(explain_request.ladine)
            if ladine is None:
                raise ValueError(f"{explain_request.ladine!r} is not a LaDiNE folder (bundled or under the models "
                                 "folder)")
        view = explain_view(page.registry.get(model_name), explain_request,
                            start_job(page, request, progress, "trials"), ladine)
        return (view, *explain_overlays(view, opacity), view.figure, view.summary)

    @errors_as_messages
    def on_preset(model_name, preset):
        return gr.Slider(value=default_trials(page.registry.get(model_name), preset))

    button.click(on_explain, [page.model_name, opacity], [state, *maps, votes, summary],
                 inputs_kwargs={"pixels": pixels, **controls}, api_name="explain", concurrency_id=MODEL_JOBS)
    line_controls = {k: controls[k] for k in ("preset", "custom_prompts", "trials", "weighting")}
    after_model = pre_run_line(page, lambda model, **values: expectation(model, ExplainRequest(**values)), expect,
                               line_controls, "explain_expect")
    # The card's operating point is "k of N votes": N follows the card for each preset (still the user's to change).
    controls["preset"].change(on_preset, [page.model_name, controls["preset"]], controls["trials"], api_name=False,
                              queue=False, show_progress="hidden")
    opacity.change(explain_overlays, [state, opacity], maps, api_name="explain_opacity", queue=False,
                   show_progress="hidden")

    def on_model(model) -> list:
        presets, examples = preset_choices(model.domain), example_images(model.domain)
        return [gr.Dropdown(choices=presets, value=presets[0][1]),
                gr.Dropdown(choices=examples, value=first_example(examples, "explain")),
                gr.Slider(value=default_trials(model, presets[0][1]))]


    return Tab(outputs=[controls["preset"], example, controls["trials"]], on_model=on_model, after_model=after_model,
               on_load=lambda demo: demo.load(on_example, [page.model_name, example], loaded, api_name=False))
