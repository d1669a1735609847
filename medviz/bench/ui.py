"""How fast a moved Traverse slider is answered: the handler alone, and the HTTP round trip of a launched app.

A slider only picks a cached frame and redraws the readout chart (no model call; ``tests/test_app.py``
asserts that). This bench computes one small trajectory, then times ``repeats`` slider moves both ways.
"""

from __future__ import annotations

import time

import numpy as np


def run(repeats: int = 50, frames: int = 7) -> dict:
    from gradio_client import Client

    from ..models import load_model
    from ..ui import handlers
    from ..ui.layout import build_demo
    from ..ui.session import ModelRegistry

    model = load_model("cxr-phantom", device="cpu")
    cache = handlers.compute_trajectories(model, "attribute sliders", ["pleural_effusion"], "", 0, -1, frames, 4, 4.0,
                                          1.5, 0)
    handler_ms = []
    for i in range(repeats):
        tic = time.perf_counter()
        handlers.frame_of(cache, "pleural_effusion", i % frames)
        handlers.readout_figure(cache, "pleural_effusion", i % frames, model.domain)
        handler_ms.append(1e3 * (time.perf_counter() - tic))
    demo = build_demo(ModelRegistry("cxr-phantom", device="cpu", preloaded=model))
    demo.queue(default_concurrency_limit=1, max_size=32)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, run_history=False,
                enable_monitoring=False)
    try:
        client = Client(demo.local_url, verbose=False)
        client.predict("cxr-phantom", "attribute sliders", ["pleural_effusion"], "", 0, -1, frames, 4, 4.0, 1.5, 0,
                       api_name="/traverse")
        round_trip_ms = []
        for i in range(repeats):
            tic = time.perf_counter()
            client.predict("cxr-phantom", i % frames, api_name="/frame_0")
            round_trip_ms.append(1e3 * (time.perf_counter() - tic))
    finally:
        demo.close()
    return {"repeats": repeats, "handler_ms_median": float(np.median(handler_ms)),
            "handler_ms_p90": float(np.percentile(handler_ms, 90)),
            "round_trip_ms_median": float(np.median(round_trip_ms)),
            "round_trip_ms_p90": float(np.percentile(round_trip_ms, 90))}


def print_table(result: dict) -> None:
    print(f"\nTraverse slider move over cached frames ({result['repeats']} moves, no model call):")
    print(f"  handler (frame + readout chart): median {result['handler_ms_median']:.1f} ms, "
          f"p90 {result['handler_ms_p90']:.1f} ms")
    print(f"  gradio_client round trip (HTTP, upload of the frame): median {result['round_trip_ms_median']:.1f} ms, "
          f"p90 {result['round_trip_ms_p90']:.1f} ms")
