"""How the UNet runs on a CPU: the inference route of a loaded pipeline (issue 54).

Benches take a route (``load_model(..., backend=)``); the app does not yet: ``bf16`` changed 2 of 20 of the bundled
CXR model's diffusion-classifier verdicts, so it may only become a labelled preview for Generate and Traverse.

Routes, measured side by side by ``python -m medviz.bench backends`` (docs/cpu.md):

- ``eager``: PyTorch in the pipeline's dtype (fp32 on a CPU), as diffusers runs it.
- ``bf16``: the UNet's matrix products and convolutions in bfloat16 (their weights stored so, its normalisations
  in fp32, under ``torch.autocast``), on a CPU with AMX tiles (Intel Sapphire Rapids and later), which compute
  bfloat16 in hardware; everything around the UNet (schedulers, inversion arithmetic, the VAE, the text encoder)
  stays in fp32, and the UNet's output is returned in the input's dtype.
- ``auto``: ``bf16`` where the CPU has AMX tiles, else ``eager``; a CUDA or MPS pipeline always runs ``eager``
  (it is already in fp16 there).

Why autocast and not a converted graph: on this 2-core AMX CPU, OpenVINO's fp32 graph was 1.32x eager per SD-1.5
pass and its bf16 graph about as fast as autocast, after a 64 s conversion; torch autocast needs no conversion,
cache or extra package (the figures: docs/cpu.md).
"""

from __future__ import annotations

import functools

ROUTES = ("auto", "eager", "bf16")


def amx_available() -> bool:
    """Whether this CPU computes bfloat16 matrix products in hardware (AMX tiles)."""
    import torch

    try:    # a private helper, the one torch itself uses to pick its AMX kernels; absent, assume no AMX
        return bool(torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def choose(route: str, device: str) -> tuple[str, str]:
    """(the route that will run, a one-line note or ""): ``auto`` resolved, an impossible choice falling back."""
    if route not in ROUTES:
        raise ValueError(f"unknown backend {route!r}; choose one of {', '.join(ROUTES)}")
    if device != "cpu":
        note = f"the {route} backend is for CPUs: this {device} pipeline runs eager" if route == "bf16" else ""
        return "eager", note
    if route == "eager":
        return "eager", ""
    if amx_available():
        return "bf16", ""
    if route == "bf16":
        return "eager", "this CPU has no AMX tiles, so bfloat16 would be slower: running eager (fp32) instead"
    return "eager", ""


def apply(pipe, route: str) -> tuple[str, str]:
    """Run ``pipe.unet`` by ``route`` (see ``choose``) from now on; returns ``choose``'s (route, note).

    ``bf16`` stores the UNet's convolution and linear weights in bfloat16, once (cast at every call, autocast
    re-cast all 860M SD-1.5 weights per pass: 1.74x instead of 2.7x, and 2 GB more memory), keeps the
    normalisation layers in fp32, and runs the forward under autocast. The rounded weights cannot be taken back:
    to run eager again, load the model again."""
    used, note = choose(route, pipe.unet.device.type)
    unet = pipe.unet
    if route_of(pipe) == "bf16":
        if used == "bf16":
            return used, note
        raise ValueError("this UNet's weights were rounded to bfloat16: load the model again to run it eager")
    if used == "bf16":
        import torch

        for module in unet.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                module.to(torch.bfloat16)
        unet.forward = _bfloat16_forward(unet.forward)
    unet._medviz_backend = used
    return used, note


def route_of(pipe) -> str:
    """The route ``pipe``'s UNet runs (``eager`` for a pipeline ``apply`` never saw)."""
    return getattr(pipe.unet, "_medviz_backend", "eager")


def _bfloat16_forward(forward):
    """``forward`` under CPU autocast to bfloat16, its noise prediction cast back to the input's dtype."""
    import torch

    @functools.wraps(forward)
    def run(sample, *args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = forward(sample, *args, **kwargs)
        if isinstance(out, tuple):                                   # return_dict=False
            return (out[0].to(sample.dtype), *out[1:])
        out.sample = out.sample.to(sample.dtype)
        return out

    return run
