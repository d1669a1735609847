"""How fast a moved Traverse slider is answered: the handler alone, and the HTTP round trip of a launched app.

A slider only picks a cached frame and redraws the readout chart (no model call; ``tests/ui/tabs/test_traverse.py``
asserts that). This bench computes one small trajectory, then times ``repeats`` slider moves both ways.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from gradio_client import Client

from ..models import load_model
from ..ui.common import Job
from ..ui.layout import build_demo, serve
from ..ui.session import ModelRegistry
from ..ui.tabs.traverse import TraverseRequest, compute_trajectories, frame_of, readout_figure
from .cli import add_common, write_json


def run(repeats: int = 50, frames: int = 7) -> dict:
    model = load_model("cxr-phantom", device="cpu")
    request = TraverseRequest(targets=("pleural_effusion",), frames=frames, steps=4)
    cache = compute_trajectories(model, request, Job("bench"))
    handler_ms = []
    for i in range(repeats):
        tic = time.perf_counter()
        frame_of(cache, "pleural_effusion", i % frames)
        readout_figure(cache, "pleural_effusion", i % frames)
        handler_ms.append(1e3 * (time.perf_counter() - tic))
    demo = build_demo(ModelRegistry("cxr-phantom", device="cpu", preloaded=model))
    url = serve(demo, block=False)
    try:
        client = Client(url, verbose=False)
        client.predict(model_name="cxr-phantom", targets=["pleural_effusion"], frames=frames, steps=4,
                       api_name="/traverse")
        round_trip_ms = []
        for i in range(repeats):
            tic = time.perf_counter()
            client.predict(index=i % frames, api_name="/frame_0")
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=50, help="slider moves timed")
    add_common(parser, domains=False)


def main(args: argparse.Namespace, command: str) -> int:
    result = run(repeats=args.repeats)
    print_table(result)
    return write_json(args.json, result)
