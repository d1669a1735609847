"""How the UNet runs on a CPU (issue 54): exactly (PyTorch fp32) in every engine, or, for Generate and Traverse
only and only when asked, as a bfloat16 *preview*.

The preview runs the engine under ``torch.autocast`` to bfloat16 on a CPU with AMX tiles (Intel Sapphire Rapids
and later), which compute bfloat16 matrix products in hardware. The autocast weight cache is off: each layer's
weights are cast when used and freed, so memory stays that of fp32 (with the cache, a full-size UNet held a second,
bfloat16 copy: 1.31x the peak), and the fp32 weights are never touched, so the exact engines beside it are
unaffected. Measured on this 2-core CPU, SD-1.5 architecture, one UNet pass (docs/cpu.md): 1.81x at batch 1,
2.89x at batch 2 (a guided step), output PSNR 57 dB against fp32. It is approximate: on the bundled CXR model it
changed 2 of 20 diffusion-classifier verdicts, so Edit, Explain, Audit and the domain check never use it.
"""

from __future__ import annotations

from contextlib import contextmanager

ROUTES = ("eager", "bf16")
PREVIEW_WARNING = ("Preview: computed in bfloat16 for speed; the exact image (preview off, same seed) differs "
                   "slightly. Use it to explore, then run it exactly.")


def amx_available() -> bool:
    """Whether this CPU computes bfloat16 matrix products in hardware (AMX tiles)."""
    import torch

    try:    # a private helper, the one torch itself uses to pick its AMX kernels; absent, assume no AMX
        return bool(torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


#: The smallest latent side a preview runs bfloat16 at: SD at 512 px (64) gained 2.9x per guided pass; the bundled
#: 128-px models (32) lost (0.79x per pass, Generate 1.4 -> 1.6 s): the casts outweigh small convolutions.
PREVIEW_MIN_LATENT = 64


def preview_route(device: str, latent_size: int) -> tuple[str, str]:
    """(route, note) of a preview on ``device`` for a UNet of ``latent_size``: "bf16" on a CPU with AMX tiles and a
    large enough UNet, else "eager" and why, in a line."""
    if device != "cpu":
        return "eager", f"no preview on {device}: it runs in half precision already, so this is the exact run"
    if not amx_available():
        return "eager", "no preview on this CPU (no AMX tiles: bfloat16 would be slower), so this is the exact run"
    if latent_size < PREVIEW_MIN_LATENT:
        return "eager", "no preview for a model this small (bfloat16 would be slower), so this is the exact run"
    return "bf16", PREVIEW_WARNING


@contextmanager
def running(route: str, unet=None):
    """Run the torch code inside by ``route``: "eager" changes nothing, "bf16" autocasts to bfloat16 on the CPU.

    With ``unet``, its noise predictions come back in fp32, so the scheduler and inversion arithmetic around it
    (and the fp32 buffers it fills) stay in fp32: only the network's own products run in bfloat16."""
    if route not in ROUTES:
        raise ValueError(f"unknown route {route!r}; choose one of {', '.join(ROUTES)}")
    if route == "eager":
        yield
        return
    import torch

    def in_fp32(module, inputs, output):
        if isinstance(output, tuple):
            return (output[0].float(), *output[1:])
        output.sample = output.sample.float()
        return output

    hook = unet.register_forward_hook(in_fp32) if unet is not None else None
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
            yield
    finally:
        if hook is not None:
            hook.remove()
