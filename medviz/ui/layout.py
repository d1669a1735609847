"""The page: a banner, the model selector and Stop, one tab per ``medviz.ui.tabs`` module, and a model change
that updates every tab. Every event has an ``api_name`` so the app is scriptable with ``gradio_client``;
model work shares one concurrency id (one job on the model at a time, bounded queue); Stop bypasses the
queue and sets a flag that the running denoising loop polls.
"""

from __future__ import annotations

import gradio as gr

from ..models import ModelLoadError, read_model_card
from .common import BANNER, MODEL_JOBS, Page, errors_as_messages
from .session import FILE_LIFETIME, SWEEP_EVERY, ModelRegistry, StopFlags, forget_session, start_sweeper
from .tabs import about, audit, edit, explain, generate, phantoms, progression, stress, traverse

TABS = (generate, traverse, edit, explain, audit, stress, progression, phantoms, about)


def _domain_of(name: str) -> str | None:
    """The domain a model's card names, read without loading it (None: unknown or not found)."""
    try:
        return read_model_card(name).get("domain")
    except ModelLoadError:
        return None


def serve(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, *, block: bool = True,
          auth: list[tuple[str, str]] | None = None) -> str:
    """Queue and launch the page as medviz always does: one model job at a time in a bounded queue, uploads up to
    50 MB, no share link, no run history or monitoring, errors shown. ``block=False`` returns at once (tests,
    benches). Returns the local URL."""
    demo.queue(default_concurrency_limit=1, max_size=32)
    demo.launch(server_name=host, server_port=port, share=False, auth=auth, max_file_size="50mb", run_history=False,
                enable_monitoring=False, show_error=True, prevent_thread_lock=not block, quiet=not block)
    return demo.local_url


def build_demo(registry: ModelRegistry | None = None) -> gr.Blocks:
    """The app's Blocks; ``registry`` holds the loaded models (default: the bundled CXR model, lazily)."""
    registry = registry or ModelRegistry()
    stops = StopFlags()
    start_sweeper()
    # The sweeper deletes every file in gradio's cache FILE_LIFETIME s after it was made, checked every SWEEP_EVERY s
    # (gradio's delete_cache, the same, covers only the files it tracks); closing the page deletes at once.
    with gr.Blocks(title="medviz", analytics_enabled=False, delete_cache=(SWEEP_EVERY, FILE_LIFETIME)) as demo:
        gr.Markdown(BANNER, elem_id="research-banner")
        with gr.Row():
            model_name = gr.Dropdown(registry.choices(), value=registry.default, allow_custom_value=True, scale=3,
                                     label="Model (bundled, or a folder under the models folder)")
            stop = gr.Button("Stop", variant="stop", scale=1, elem_id="stop")
            status = gr.Markdown("", elem_id="status")
        page = Page(registry, stops, model_name)
        domain = _domain_of(registry.default)
        tabs = [module.build(page, domain) for module in TABS]

        @errors_as_messages
        def on_model_change(model_name):
            model = registry.get(model_name)
            return [update for tab in tabs for update in tab.on_model(model)]

        def on_unload(request: gr.Request):
            forget_session(request.session_hash or "anonymous")

        def on_stop(request: gr.Request):
            stops.stop(request.session_hash or "anonymous")
            return "Stop requested: the running job ends at its next denoising step."

        outputs = [component for tab in tabs for component in tab.outputs]
        switched = model_name.change(on_model_change, model_name, outputs, api_name="select_model",
                                     concurrency_id=MODEL_JOBS)
        loaded = demo.load(on_model_change, model_name, outputs, api_name=False)
        # The lines above the run buttons follow a model change only once it has set the controls to that model's
        # defaults: run alongside it, they raced it and could show the figures for the controls' old values.
        for tab in tabs:
            tab.after_model(switched)
            tab.after_model(loaded)
            tab.on_load(demo)
        stop.click(on_stop, None, status, api_name="stop", queue=False)
        demo.unload(on_unload)
    return demo
