"""The bfloat16 preview: where it runs, what it says, and that it leaves the exact route untouched (tiny models)."""

import numpy as np
import pytest
import torch

from medviz import backends
from medviz.engines.generate import GenerateConfig, generate
from medviz.engines.traverse import TraverseConfig, traverse


@pytest.fixture()
def amx(monkeypatch):
    """Pretend this CPU has (True) or lacks (False) AMX tiles: the choice must not depend on the test machine."""
    def set_to(present: bool):
        monkeypatch.setattr(backends, "amx_available", lambda: present)
    return set_to


def test_a_preview_runs_in_bfloat16_only_on_a_cpu_with_amx_and_otherwise_says_it_ran_exactly(amx):
    amx(True)
    assert backends.preview_route("cpu", 64) == ("bf16", backends.PREVIEW_WARNING)
    assert backends.preview_route("cpu", 32) == (
        "eager", "no preview for a model this small (bfloat16 would be slower), so this is the exact run")
    amx(False)
    assert backends.preview_route("cpu", 64) == (
        "eager", "no preview on this CPU (no AMX tiles: bfloat16 would be slower), so this is the exact run")
    assert backends.preview_route("cuda", 64)[0] == "eager"
    with pytest.raises(ValueError, match="unknown route 'openvino'; choose one of eager, bf16"):
        with backends.running("openvino"):
            pass


def test_the_bf16_route_computes_in_bfloat16_and_leaves_the_fp32_weights_alone(tiny_cxr):
    unet = tiny_cxr.pipe.unet
    weights = {k: v.clone() for k, v in unet.state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size,
                         generator=generator)
    condition = torch.randn(2, 32, unet.config.cross_attention_dim, generator=generator)
    with torch.no_grad():
        exact = unet(sample, 500, encoder_hidden_states=condition).sample
        with backends.running("bf16"):
            raw = unet(sample, 500, encoder_hidden_states=condition).sample
        with backends.running("bf16", unet):
            fast = unet(sample, 500, encoder_hidden_states=condition).sample
            tupled = unet(sample, 500, encoder_hidden_states=condition, return_dict=False)[0]
        again = unet(sample, 500, encoder_hidden_states=condition).sample
    assert raw.dtype == torch.bfloat16 and fast.dtype == tupled.dtype == torch.float32 and torch.equal(fast, tupled)
    assert torch.equal(fast, raw.float()) and torch.equal(exact, again)          # outside: fp32, as before
    assert not unet._forward_hooks                                               # the cast leaves with the context
    relative = ((fast.float() - exact).pow(2).mean().sqrt() / exact.std()).item()
    assert 1e-5 < relative < 0.05, relative                                      # bfloat16 ran, and is close
    assert all(torch.equal(v, weights[k]) for k, v in unet.state_dict().items())


def test_generate_and_traverse_previews_are_labelled_close_and_the_exact_run_unchanged(tiny_cxr, amx, monkeypatch):
    amx(True)
    monkeypatch.setattr(backends, "PREVIEW_MIN_LATENT", 4)          # the tiny UNet's 4x4 latents count as large
    config = GenerateConfig(prompt="Chest X-ray", batch_size=1, seed=5, steps=3)
    exact, preview = generate(tiny_cxr, config), generate(tiny_cxr, GenerateConfig(**{**config.__dict__,
                                                                                    "preview": True}))
    assert preview.warnings[0] == backends.PREVIEW_WARNING and preview.parameters["route"] == "bf16"
    assert exact.parameters["route"] == "eager" and backends.PREVIEW_WARNING not in exact.warnings
    assert preview.images[0].dtype == np.float32 and 0 < np.abs(preview.images[0] - exact.images[0]).max() < 0.1
    assert np.array_equal(generate(tiny_cxr, config).images[0], exact.images[0])
    walk = TraverseConfig(kind="interpolate", prompt="Chest X-ray", frames=2, steps=2, preview=True)
    result = traverse(tiny_cxr, walk)
    assert result.warnings == (backends.PREVIEW_WARNING,) and result.frames.dtype == np.float32
    amx(False)
    assert generate(tiny_cxr, GenerateConfig(**{**config.__dict__, "preview": True})).warnings[0].startswith(
        "no preview on this CPU")


def test_slider_directions_cached_during_a_preview_are_the_exact_ones(tiny_cxr):
    from medviz.engines.traverse import slider_directions

    tiny_cxr.cache.clear()
    with backends.running("bf16", tiny_cxr.pipe.unet):
        previewed = slider_directions(tiny_cxr, ("pleural_effusion",), n_contexts=2)["pleural_effusion"]
    tiny_cxr.cache.clear()
    exact = slider_directions(tiny_cxr, ("pleural_effusion",), n_contexts=2)["pleural_effusion"]
    assert previewed.dtype == torch.float32 and torch.equal(previewed, exact)      # later exact runs reuse it
