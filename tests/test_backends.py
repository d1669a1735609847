"""The UNet's CPU routes on a tiny random pipeline: the choice, the fallback, the wrapping and its undoing."""

import pytest
import torch

from medviz import backends


@pytest.fixture()
def amx(monkeypatch):
    """Pretend this CPU has (True) or lacks (False) AMX tiles: the choice must not depend on the test machine."""
    def set_to(present: bool):
        monkeypatch.setattr(backends, "amx_available", lambda: present)
    return set_to


def test_auto_picks_bfloat16_only_on_a_cpu_with_amx_and_an_impossible_choice_says_why(amx):
    amx(True)
    assert backends.choose("auto", "cpu") == ("bf16", "") and backends.choose("bf16", "cpu") == ("bf16", "")
    assert backends.choose("eager", "cpu") == ("eager", "")
    amx(False)
    assert backends.choose("auto", "cpu") == ("eager", "")
    assert backends.choose("bf16", "cpu") == (
        "eager", "this CPU has no AMX tiles, so bfloat16 would be slower: running eager (fp32) instead")
    assert backends.choose("bf16", "cuda") == ("eager", "the bf16 backend is for CPUs: this cuda pipeline runs eager")
    assert backends.choose("auto", "cuda") == ("eager", "")
    with pytest.raises(ValueError, match="unknown backend 'openvino'; choose one of auto, eager, bf16"):
        backends.choose("openvino", "cpu")


def _noise(unet, return_dict=True):
    generator = torch.Generator().manual_seed(0)
    size = unet.config.sample_size
    sample = torch.randn(2, unet.config.in_channels, size, size, generator=generator)
    condition = torch.randn(2, 32, unet.config.cross_attention_dim, generator=generator)
    with torch.no_grad():
        out = unet(sample, 500, encoder_hidden_states=condition, return_dict=return_dict)
    return out.sample if return_dict else out[0]


def test_bf16_runs_the_unet_in_bfloat16_returns_fp32_and_cannot_be_taken_back(amx):
    from tests.tiny import tiny_model

    amx(True)
    pipe = tiny_model("cxr").pipe                            # its own: the weights are rounded for good
    exact = _noise(pipe.unet)
    assert backends.apply(pipe, "bf16") == ("bf16", "") and backends.route_of(pipe) == "bf16"
    dtypes = {type(m).__name__: m.weight.dtype for m in pipe.unet.modules() if hasattr(m, "weight")}
    assert dtypes["Conv2d"] == dtypes["Linear"] == torch.bfloat16 and dtypes["GroupNorm"] == torch.float32
    fast, tupled = _noise(pipe.unet), _noise(pipe.unet, return_dict=False)
    assert fast.dtype == tupled.dtype == torch.float32 and torch.equal(fast, tupled)
    assert not torch.equal(fast, exact)                                  # bfloat16 really ran
    relative = (fast - exact).pow(2).mean().sqrt() / exact.std()
    assert 1e-5 < relative < 0.05, relative                              # and close to fp32
    assert backends.apply(pipe, "auto") == ("bf16", "")                 # again: nothing changes
    assert torch.equal(_noise(pipe.unet), fast)
    with pytest.raises(ValueError, match="rounded to bfloat16: load the model again to run it eager"):
        backends.apply(pipe, "eager")


def test_a_model_loads_with_a_backend_and_a_cpu_without_amx_falls_back_with_one_line(tiny_cxr, amx, tmp_path):
    from medviz.models import load_model

    folder = tmp_path / "tiny-sd"
    tiny_cxr.pipe.save_pretrained(str(folder))
    amx(False)
    model = load_model(folder, device="cpu", backend="bf16")
    assert model.backend == "eager" and model.backend_note.startswith("this CPU has no AMX tiles")
    amx(True)
    assert load_model(folder, device="cpu", backend="auto").backend == "bf16"
    with pytest.raises(ValueError, match="unknown backend"):
        load_model(folder, device="cpu", backend="fast")
