"""Layout and wiring of the medviz app (Gradio 6): thin adapters from widgets to ``handlers``.

Every event has an ``api_name`` so the app is scriptable with ``gradio_client``. Model work shares one
concurrency id (one job on the model at a time, bounded queue); Stop bypasses the queue and sets a
flag that the running denoising loop polls.
"""

from __future__ import annotations

import functools

import gradio as gr

from .. import RESEARCH_ONLY_NOTICE, __version__
from ..engines import SCHEDULERS, Interrupted
from ..engines.counterfactual import EditConfig, edit_defaults
from ..models import ModelLoadError, read_model_card
from ..oracle import READOUT_KIND
from . import handlers
from .session import ModelRegistry, StopFlags

#: The Edit tab's sliders start at the engine's defaults (chosen on tuning phantoms; see the README); those
#: that depend on the model's domain follow the loaded model (``_edit_sliders``).
EDIT_DEFAULTS = EditConfig()


def _domain_of(name: str) -> str | None:
    """The domain a model's card names, read without loading it (None: unknown or not found)."""
    try:
        return read_model_card(name).get("domain")
    except ModelLoadError:
        return None


def _edit_sliders(domain: str | None) -> tuple:
    """Updates of the Edit tab's strength, guidance and change-threshold sliders to ``domain``'s defaults."""
    defaults = edit_defaults(domain)
    return (gr.Slider(value=defaults.strength), gr.Slider(value=defaults.guidance_scale),
            gr.Slider(value=defaults.change_threshold))


BANNER = (f"**medviz {__version__}** · ⚠️ {RESEARCH_ONLY_NOTICE.capitalize()}. Images here are synthetic or "
          "edited; never use them for clinical decisions.")
MODEL_JOBS = "model"          # concurrency id shared by every event that runs the model
MAX_SLIDERS = 6


def _errors_as_messages(function):
    """Show engine and input errors as a Gradio error toast instead of a stack trace."""

    @functools.wraps(function)        # keeps the signature: Gradio injects gr.Request / gr.Progress by it
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Interrupted as error:
            raise gr.Error(f"Stopped: {error}") from None
        except (ValueError, ModelLoadError) as error:
            raise gr.Error(str(error)) from None

    return wrapper


def _image_input(tab: str) -> tuple[gr.File, gr.Dropdown]:
    """An upload box (PNG, JPEG, TIFF, DICOM) and a bundled-example picker; the upload wins."""
    upload = gr.File(label="Upload PNG, JPEG, TIFF or DICOM", file_types=[".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm"],
                     type="filepath", elem_id=f"{tab}-upload")
    example = gr.Dropdown(handlers.example_images("cxr"), value="cxr_effusion.png",
                          label="…or a bundled example (phantom; an upload takes precedence)")
    return upload, example


def build_demo(registry: ModelRegistry | None = None) -> gr.Blocks:
    """The app's Blocks; ``registry`` holds the loaded models (default: the bundled CXR model, lazily)."""
    registry = registry or ModelRegistry()
    stops = StopFlags()

    def progress_reporter(progress: gr.Progress, what: str):
        return lambda done, total: progress((done, total), desc=what)

    # ---------------------------------------------------------------- adapters (no model logic)
    @_errors_as_messages
    def on_model_change(name):
        model = registry.get(name)
        domain = model.domain
        attributes = handlers.prompt_attributes(domain)
        sliders = handlers.slider_attributes(domain)
        about = handlers.model_about(model)
        presets = handlers.explain_presets(domain)
        examples = handlers.example_images(domain)
        editable = handlers.edit_attributes(domain)
        return (gr.CheckboxGroup(choices=attributes, value=[]), gr.Radio(visible=domain == "cxr"),
                gr.Radio(visible=domain == "skin"), gr.CheckboxGroup(choices=sliders, value=sliders[:3]), about,
                gr.Dropdown(choices=presets, value=presets[0]),
                gr.Dropdown(choices=examples, value=next((e for e in examples if e.endswith(".png")), None)),
                gr.Dropdown(choices=examples, value=next((e for e in examples if e.endswith(".png") and "clear" not in e),
                                                         None)),
                gr.Dropdown(choices=editable, value=editable[0] if editable else None),
                gr.Slider(value=handlers.explain_trials(model, presets[0])), *_edit_sliders(domain))

    @_errors_as_messages
    def on_preset_change(name, preset):
        return gr.Slider(value=handlers.explain_trials(registry.get(name), preset))

    @_errors_as_messages
    def on_generate(name, attributes, free_text, sex, lesion, negative, seed, batch, scheduler, steps, guidance,
                    history, request: gr.Request, progress=gr.Progress()):
        model = registry.get(name)
        prompt = handlers.compose_prompt(model.domain, attributes, free_text, sex, lesion)
        session = request.session_hash or "anonymous"
        view = handlers.generate_view(model, prompt, negative, seed, batch, scheduler, steps, guidance, session,
                                      progress=progress_reporter(progress, "denoising"),
                                      should_stop=stops.arm(session))
        history = ([view.history_row] + list(history or []))[:50]
        return view.gallery, view.files, view.info, view.seed, history, history

    @_errors_as_messages
    def on_traverse(name, kind, targets, prompt, seed, seed_b, frames, steps, guidance, strength, start_step,
                    request: gr.Request, progress=gr.Progress()):
        model = registry.get(name)
        session = request.session_hash or "anonymous"
        cache = handlers.compute_trajectories(model, kind, targets, prompt, seed, seed_b, frames, steps, guidance,
                                              strength, start_step, progress=progress_reporter(progress, "denoising"),
                                              should_stop=stops.arm(session))
        names = list(cache.frames)
        first = names[0]
        middle = len(cache.frames[first]) // 2
        sliders = [gr.Slider(visible=i < len(names), label=names[i] if i < len(names) else "",
                             maximum=len(cache.frames[first]) - 1, value=middle, step=1)
                   for i in range(MAX_SLIDERS)]
        return (cache, handlers.frame_of(cache, first, middle), handlers.readout_figure(cache, first, middle, model.domain),
                handlers.summary_markdown(cache), handlers.trajectory_gif(cache, first, session), *sliders)

    @_errors_as_messages
    def on_explain(name, upload, example, preset, custom_prompts, trials, early_stop, weighting, opacity, request: gr.Request,
                   progress=gr.Progress()):
        model = registry.get(name)
        session = request.session_hash or "anonymous"
        view = handlers.explain_view(model, upload, example, preset, custom_prompts, trials, early_stop, weighting,
                                     progress=progress_reporter(progress, "trials"), should_stop=stops.arm(session))
        return (view, *handlers.explain_overlays(view, opacity), view.figure, view.summary)

    @_errors_as_messages
    def on_edit_load(upload, example, window_center, window_width):
        loaded = handlers.edit_input(upload, example, window_center, window_width)
        center, width = loaded.window if loaded.window else (None, None)
        return loaded.pixels, loaded.canvas, loaded.info, center, width

    @_errors_as_messages
    def on_edit(name, pixels, canvas, action, attribute, target_prompt, mask_mode, strength, guidance, steps, seed,
                opacity, keep, request: gr.Request, progress=gr.Progress()):
        model = registry.get(name)
        session = request.session_hash or "anonymous"
        view = handlers.edit_view(model, pixels, canvas, action, attribute, target_prompt, mask_mode, strength,
                                  guidance, steps, seed, session, progress=progress_reporter(progress, "edit"),
                                  should_stop=stops.arm(session), change_threshold=keep)
        return (view, (handlers.for_display(view.before), handlers.for_display(view.after)),
                handlers.difference_overlay(view, opacity), view.summary, view.readout, view.files)

    # The lines above the run buttons: what the benches measured for what the controls ask, from the model card (no
    # model call). A model that fails to load leaves them empty: the model selector's own event says why.
    def with_loaded_model(line):
        def adapter(name, *controls):
            try:
                model = registry.get(name)
            except ModelLoadError:
                return ""
            return line(model, *controls)
        return adapter

    on_edit_controls = with_loaded_model(handlers.edit_expectation)

    @with_loaded_model
    def on_generate_controls(model, attributes, free_text, sex, lesion, negative, scheduler, steps, guidance):
        prompt = handlers.compose_prompt(model.domain, attributes, free_text, sex, lesion)
        return handlers.generate_expectation(model, prompt, negative, scheduler, steps, guidance)

    on_explain_controls = with_loaded_model(handlers.explain_expectation)

    def on_difference_opacity(view, opacity):
        """Re-blend the stored difference map: no model call."""
        return handlers.difference_overlay(view, opacity)

    def on_overlay_opacity(view, opacity):
        """Re-blend the stored maps: no model call."""
        return handlers.explain_overlays(view, opacity)

    def show_frame_for(slot: int):
        def show_frame(name, cache, index):
            """Pick a precomputed frame: no model call."""
            if cache is None:
                raise gr.Error("compute a trajectory first")
            names = list(cache.frames)
            if slot >= len(names):
                raise gr.Error("no trajectory for this slider")
            domain = registry.get(name).domain
            return (handlers.frame_of(cache, names[slot], index),
                    handlers.readout_figure(cache, names[slot], index, domain))

        show_frame.__name__ = f"show_frame_{slot}"
        return show_frame

    def on_stop(request: gr.Request):
        stops.stop(request.session_hash or "anonymous")
        return "Stop requested: the running job ends at its next denoising step."

    def on_reuse_seed(last_seed):
        return last_seed if last_seed is not None else -1

    def on_preview(domain, seed, intervention):
        try:
            return handlers.phantom_preview(domain, int(seed), intervention)
        except ValueError as error:
            raise gr.Error(str(error)) from None

    def on_phantom_domain(domain):
        names = handlers.intervention_names(domain)
        return gr.Dropdown(choices=names, value=names[0])

    # ---------------------------------------------------------------- layout
    default = registry.default
    default_domain = _domain_of(default)
    with gr.Blocks(title="medviz", analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
        gr.Markdown(BANNER, elem_id="research-banner")
        with gr.Row():
            model_name = gr.Dropdown(registry.choices(), value=default, label="Model (bundled name or local path)",
                                     allow_custom_value=True, scale=3)
            stop = gr.Button("Stop", variant="stop", scale=1, elem_id="stop")
            status = gr.Markdown("", elem_id="status")
        with gr.Tab("Generate", id="generate"):
            with gr.Row():
                with gr.Column(scale=2):
                    attributes = gr.CheckboxGroup(handlers.prompt_attributes("cxr"), label="Findings and devices")
                    sex = gr.Radio(list(handlers.SEX_CHOICES), value="female", label="Sex")
                    lesion = gr.Radio(list(handlers.LESION_CHOICES), value="benign nevus", label="Lesion", visible=False)
                    free_text = gr.Textbox(label="More prompt text (appended)", placeholder="e.g. small left effusion")
                    negative = gr.Textbox(label="Negative prompt", value="")
                    with gr.Row():
                        seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)", minimum=-1)
                        random_seed = gr.Button("Random seed", scale=0)
                        reuse_seed = gr.Button("Reuse last seed", scale=0)
                    with gr.Row():
                        batch = gr.Slider(1, 8, value=4, step=1, label="Batch size")
                        steps = gr.Slider(2, 100, value=25, step=1, label="Steps", elem_id="generate-steps")
                    with gr.Row():
                        guidance = gr.Slider(1, 15, value=4.0, step=0.5, label="Guidance scale")
                        scheduler = gr.Dropdown(list(SCHEDULERS), value="DDIM", label="Sampler")
                    generate_expect = gr.Markdown(elem_id="generate-expect")   # the card's figures for this prompt
                    generate_button = gr.Button("Generate", variant="primary", elem_id="generate-button")
                with gr.Column(scale=3):
                    gallery = gr.Gallery(label="Generated (synthetic)", format="png", columns=4, height=360,
                                         elem_id="gallery")
                    generate_info = gr.Markdown()
                    files = gr.File(label="PNG downloads (parameters and research-only notice embedded)",
                                    file_count="multiple")
            history_table = gr.Dataframe(headers=["seed", "prompt", "negative", "sampler", "steps", "guidance", "batch"],
                                         label="This session's history", interactive=False, wrap=True)
            last_seed = gr.State(None)
            history = gr.State([])
        with gr.Tab("Traverse", id="traverse"):
            with gr.Row():
                with gr.Column(scale=2):
                    kind = gr.Radio(list(handlers.TRAVERSE_KINDS), value="attribute sliders", label="Trajectory")
                    targets = gr.CheckboxGroup(handlers.slider_attributes("cxr"),
                                               value=handlers.slider_attributes("cxr")[:3],
                                               label="Attributes (one slider each)")
                    traverse_prompt = gr.Textbox(label="Context prompt (blank = the model's neutral prompt)",
                                                 placeholder="Chest X-ray of a female patient")
                    with gr.Row():
                        traverse_seed = gr.Number(value=0, precision=0, label="Seed (patient A)")
                        seed_b = gr.Number(value=-1, precision=0, label="Patient B seed (-1 = A + 1)")
                    with gr.Row():
                        frames = gr.Slider(3, 15, value=7, step=1, label="Frames", elem_id="traverse-frames")
                        traverse_steps = gr.Slider(4, 50, value=20, step=1, label="Steps", elem_id="traverse-steps")
                    with gr.Row():
                        strength = gr.Slider(0.25, 3, value=1.5, step=0.25, label="Slider range ±alpha")
                        start_step = gr.Slider(0, 20, value=0, step=1, label="Shift from step (keeps anatomy)")
                    traverse_guidance = gr.Slider(1, 15, value=4.0, step=0.5, label="Guidance scale")
                    traverse_button = gr.Button("Compute trajectory", variant="primary", elem_id="traverse-button")
                with gr.Column(scale=3):
                    frame = gr.Image(label="Frame (synthetic)", format="png", interactive=False, height=320,
                                     elem_id="traverse-frame")
                    sliders = [gr.Slider(0, 6, value=3, step=1, visible=False, label="", elem_id=f"frame-slider-{i}")
                               for i in range(MAX_SLIDERS)]
                    chart = gr.Plot(label=f"Oracle {READOUT_KIND}", elem_id="traverse-chart")
                    traverse_summary = gr.Markdown()
                    gif = gr.File(label="Trajectory GIF")
            trajectory = gr.State(None)
        with gr.Tab("Edit", id="edit"):
            with gr.Row():
                with gr.Column(scale=2):
                    edit_upload, edit_example = _image_input("edit")
                    with gr.Row():
                        window_center = gr.Number(label="DICOM window center", value=None)
                        window_width = gr.Number(label="DICOM window width", value=None, minimum=0)
                        apply_window = gr.Button("Apply window / level", scale=0)
                    input_info = gr.Markdown(elem_id="edit-input-info")
                    canvas = gr.ImageEditor(label="Input — paint the region to edit (mask mode 'painted')",
                                            type="numpy", format="png", image_mode="RGBA", sources=(),
                                            transforms=(), layers=False, height=420, elem_id="edit-canvas",
                                            brush=gr.Brush(colors=["#ffd000"], color_mode="fixed"))
                with gr.Column(scale=2):
                    with gr.Row():
                        edit_action = gr.Radio(list(handlers.EDIT_ACTIONS), value="remove", label="Action")
                        edit_attribute = gr.Dropdown(handlers.edit_attributes("cxr"), value="pleural_effusion",
                                                     label="Attribute")
                    edit_target = gr.Textbox(label="…or a free target prompt (overrides add/remove)",
                                             placeholder="Chest X-ray of a female patient with no pleural effusion")
                    edit_mask_mode = gr.Radio(list(handlers.EDIT_MASK_MODES), value="automatic (DiffEdit)",
                                              label="Mask: where the edit may change pixels")
                    # The strength, guidance and change-threshold sliders follow the model (``_edit_sliders``).
                    edit_strength = gr.Slider(0.2, 1.0, value=edit_defaults(default_domain).strength, step=0.05,
                                              label="Strength (how early in the trajectory the edit starts)")
                    with gr.Row():
                        edit_guidance = gr.Slider(1, 12, value=edit_defaults(default_domain).guidance_scale, step=0.5,
                                                  label="Guidance scale")
                        edit_steps = gr.Slider(10, 100, value=EDIT_DEFAULTS.steps, step=5, label="Steps",
                                               elem_id="edit-steps")
                        edit_seed = gr.Number(value=0, precision=0, label="Seed (-1 = random)", minimum=-1)
                    edit_keep = gr.Slider(0, 0.2, value=edit_defaults(default_domain).change_threshold,
                                          step=0.01,
                                          label="Keep the input where the edit changed the intensity by less than "
                                                "(0 = take the whole mask)")
                    edit_expect = gr.Markdown(elem_id="edit-expect")        # the card's figures for this edit
                    edit_button = gr.Button("Edit", variant="primary", elem_id="edit-button")
                    edit_summary = gr.Markdown(elem_id="edit-summary")
                    edit_readout = gr.Dataframe(headers=["attribute", "before", "after"], interactive=False,
                                                label=f"Oracle {READOUT_KIND}")
            with gr.Row():
                before_after = gr.ImageSlider(label="Before / after (drag)", format="png", type="numpy",
                                              elem_id="edit-slider", max_height=420)
                with gr.Column():
                    difference_image = gr.Image(label="Difference (red: brighter, blue: darker)", format="png",
                                                interactive=False, elem_id="edit-difference", height=360)
                    difference_opacity = gr.Slider(0, 1, value=0.6, step=0.05, label="Difference overlay opacity")
            edit_files = gr.File(label="Export: PNG and DICOM Secondary Capture (parameters and notice embedded)",
                                 file_count="multiple")
            edit_pixels = gr.State(None)
            edit_state = gr.State(None)
        with gr.Tab("Explain", id="explain"):
            with gr.Row():
                with gr.Column(scale=2):
                    explain_upload, explain_example = _image_input("explain")
                    preset = gr.Dropdown(handlers.explain_presets("cxr"), value="pleural effusion",
                                         label="Classes (prompt presets)")
                    custom_prompts = gr.Textbox(label="Custom class prompts (one per line; preset 'custom')", lines=3)
                    with gr.Row():
                        trials = gr.Slider(1, 201, value=21, step=2, label="Trials N (odd)", elem_id="explain-trials")
                        early_stop = gr.Checkbox(value=True, label="Stop once the leader cannot be overtaken")
                    weighting = gr.Radio(list(handlers.EXPLAIN_WEIGHTINGS), value=list(handlers.EXPLAIN_WEIGHTINGS)[0],
                                         label="Operating point / denoising error weighted", elem_id="explain-weighting")
                    explain_expect = gr.Markdown(elem_id="explain-expect")     # the card's held-out figures
                    explain_button = gr.Button("Classify and explain", variant="primary", elem_id="explain-button")
                with gr.Column(scale=3):
                    explain_summary = gr.Markdown(elem_id="explain-summary")
                    votes_chart = gr.Plot(label="Votes")
                    explain_opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Overlay opacity")
                    with gr.Row():
                        explanation_image = gr.Image(label="Explanation map", format="png", interactive=False)
                        evidence_image = gr.Image(label="Evidence map", format="png", interactive=False)
                        uncertainty_image = gr.Image(label="Uncertainty map", format="png", interactive=False)
            explain_state = gr.State(None)
        with gr.Tab("Phantoms", id="phantoms"):
            gr.Markdown("Procedural phantoms with known causal factors, and their *true* counterfactuals "
                        "(the region an intervention changed is tinted red).")
            with gr.Row():
                domain = gr.Radio(["cxr", "skin"], value="cxr", label="Domain")
                phantom_seed = gr.Number(value=0, precision=0, label="Seed")
                intervention = gr.Dropdown(handlers.intervention_names("cxr"), value="none", label="Intervention",
                                           allow_custom_value=True)  # checked by the handler, per domain
                phantom_button = gr.Button("Render", variant="primary")
            with gr.Row():
                factual = gr.Image(label="Factual", format="png", interactive=False)
                counterfactual = gr.Image(label="True counterfactual", format="png", interactive=False)
            description = gr.Markdown()
        with gr.Tab("Model & About", id="about"):
            about = gr.Markdown(handlers.ABOUT)

        # ------------------------------------------------------------ wiring
        model_outputs = [attributes, sex, lesion, targets, about, preset, explain_example, edit_example, edit_attribute,
                         trials, edit_strength, edit_guidance, edit_keep]
        model_switched = model_name.change(on_model_change, model_name, model_outputs,
                                           api_name="select_model", concurrency_id=MODEL_JOBS)
        generate_button.click(on_generate, [model_name, attributes, free_text, sex, lesion, negative, seed, batch,
                                            scheduler, steps, guidance, history],
                              [gallery, files, generate_info, last_seed, history, history_table],
                              api_name="generate", concurrency_id=MODEL_JOBS)
        generate_controls = [attributes, free_text, sex, lesion, negative, scheduler, steps, guidance]
        gr.on([control.change for control in generate_controls], on_generate_controls,
              [model_name, *generate_controls], generate_expect, api_name="generate_expect", queue=False,
              show_progress="hidden")
        random_seed.click(lambda: -1, None, seed, api_name=False, queue=False)
        reuse_seed.click(on_reuse_seed, last_seed, seed, api_name=False, queue=False)
        traverse_button.click(on_traverse, [model_name, kind, targets, traverse_prompt, traverse_seed, seed_b, frames,
                                            traverse_steps, traverse_guidance, strength, start_step],
                              [trajectory, frame, chart, traverse_summary, gif, *sliders],
                              api_name="traverse", concurrency_id=MODEL_JOBS)
        for slot, slider in enumerate(sliders):
            slider.change(show_frame_for(slot), [model_name, trajectory, slider], [frame, chart],
                          api_name=f"frame_{slot}", queue=False, show_progress="hidden")
        explain_button.click(on_explain, [model_name, explain_upload, explain_example, preset, custom_prompts, trials,
                                          early_stop, weighting, explain_opacity],
                             [explain_state, explanation_image, evidence_image, uncertainty_image, votes_chart, explain_summary],
                             api_name="explain", concurrency_id=MODEL_JOBS)
        explain_controls = [preset, custom_prompts, trials, weighting]
        gr.on([control.change for control in explain_controls], on_explain_controls,
              [model_name, *explain_controls], explain_expect, api_name="explain_expect", queue=False,
              show_progress="hidden")
        # The card's operating point is "k of N votes": N follows the card for each preset (still the user's to change).
        preset.change(on_preset_change, [model_name, preset], trials, api_name=False, queue=False,
                      show_progress="hidden")
        explain_opacity.change(on_overlay_opacity, [explain_state, explain_opacity],
                               [explanation_image, evidence_image, uncertainty_image], api_name="explain_opacity", queue=False,
                               show_progress="hidden")
        load_inputs = [edit_upload, edit_example, window_center, window_width]
        load_outputs = [edit_pixels, canvas, input_info, window_center, window_width]
        edit_upload.change(on_edit_load, load_inputs, load_outputs, api_name="edit_load")
        edit_example.change(on_edit_load, load_inputs, load_outputs, api_name=False)
        apply_window.click(on_edit_load, load_inputs, load_outputs, api_name=False)
        edit_button.click(on_edit, [model_name, edit_pixels, canvas, edit_action, edit_attribute, edit_target,
                                    edit_mask_mode, edit_strength, edit_guidance, edit_steps, edit_seed,
                                    difference_opacity, edit_keep],
                          [edit_state, before_after, difference_image, edit_summary, edit_readout, edit_files],
                          api_name="edit", concurrency_id=MODEL_JOBS)
        edit_controls = [edit_action, edit_attribute, edit_target, edit_mask_mode, edit_strength, edit_guidance,
                         edit_steps, edit_keep]
        gr.on([control.change for control in edit_controls], on_edit_controls,
              [model_name, *edit_controls], edit_expect, api_name="edit_expect", queue=False, show_progress="hidden")
        difference_opacity.change(on_difference_opacity, [edit_state, difference_opacity], difference_image,
                                  api_name="edit_opacity", queue=False, show_progress="hidden")
        stop.click(on_stop, None, status, api_name="stop", queue=False)
        domain.change(on_phantom_domain, domain, intervention, api_name=False)
        phantom_button.click(on_preview, [domain, phantom_seed, intervention], [factual, counterfactual, description],
                             api_name="phantom")
        demo.load(on_preview, [domain, phantom_seed, intervention], [factual, counterfactual, description],
                  api_name=False)
        model_loaded = demo.load(on_model_change, model_name, model_outputs, api_name=False)
        # The lines above the run buttons follow a model change only once it has set the controls to that model's
        # defaults: run alongside it, they raced it and could show the figures for the controls' old values.
        for event in (model_switched, model_loaded):
            event.then(on_generate_controls, [model_name, *generate_controls], generate_expect, api_name=False,
                       queue=False, show_progress="hidden")
            event.then(on_edit_controls, [model_name, *edit_controls], edit_expect, api_name=False, queue=False,
                       show_progress="hidden")
            event.then(on_explain_controls, [model_name, *explain_controls], explain_expect, api_name=False,
                       queue=False, show_progress="hidden")
        demo.load(on_edit_load, load_inputs, load_outputs, api_name=False)     # the preselected example, ready to edit
    return demo
