"""The engines behind the app, one file each: generate, traverse, counterfactual (Edit), explain.

Each engine takes a loaded ``medviz.models.Model`` and a frozen config dataclass and returns a result
dataclass (images in the I/O contract, maps, readouts, seeds, every parameter needed to reproduce, and
what a user should know first: warnings).
Long loops take ``progress(step, total)`` and ``should_stop()``; stopping raises ``Interrupted``.
Engines never import gradio.
"""

from .common import SCHEDULERS, Interrupted, make_scheduler

__all__ = ["Interrupted", "SCHEDULERS", "make_scheduler"]
