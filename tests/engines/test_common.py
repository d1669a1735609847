import torch

from medviz.engines.common import CPU_UNET_BATCH, predict_noise


class _CountingUNet(torch.nn.Module):
    """A stand-in UNet whose output depends on every input, recording the batch of each call."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, sample, timestep, encoder_hidden_states):
        self.calls.append(len(sample))
        out = sample * timestep.view(-1, 1, 1, 1) + encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1)
        return type("Output", (), {"sample": out})()


def test_predict_noise_splits_a_batch_without_changing_it():
    generator = torch.Generator().manual_seed(0)
    noisy = torch.randn((2 * CPU_UNET_BATCH + 5, 4, 8, 8), generator=generator)
    steps = torch.arange(len(noisy))
    embeds = torch.randn((len(noisy), 3, 6), generator=generator)
    unet = _CountingUNet()
    whole = predict_noise(unet, noisy, steps, embeds, max_batch=len(noisy))
    assert unet.calls == [len(noisy)]
    unet.calls.clear()
    split = predict_noise(unet, noisy, steps, embeds)                  # CPU default: at most CPU_UNET_BATCH per call
    assert unet.calls == [CPU_UNET_BATCH, CPU_UNET_BATCH, 5]
    torch.testing.assert_close(split, whole)
    unet.calls.clear()
    assert predict_noise(unet, noisy[:3], steps[:3], embeds[:3], max_batch=2).shape == (3, 4, 8, 8)
    assert unet.calls == [2, 1]


def test_forward_noise_is_ddpm_eq_4_per_sample_in_the_latents_dtype():
    import torch

    from medviz.engines.common import forward_noise

    alphas = torch.linspace(0.99, 0.01, 1000)
    x0, noise = torch.ones(1, 4, 2, 2), torch.full((3, 4, 2, 2), 2.0)
    noisy = forward_noise(alphas, x0, noise, torch.tensor([0, 500, 999]))
    expected = [a ** 0.5 + 2 * (1 - a) ** 0.5 for a in alphas[[0, 500, 999]].tolist()]
    assert noisy.shape == (3, 4, 2, 2) and noisy.dtype == torch.float32
    assert torch.allclose(noisy[:, 0, 0, 0], torch.tensor(expected))
    assert forward_noise(alphas, x0.half(), noise, torch.tensor([1, 2, 3])).dtype == torch.float16


def test_the_inverse_scheduler_is_made_like_the_samplers_but_never_offered():
    from medviz.engines.common import SCHEDULERS, make_scheduler
    from tests.tiny import tiny_model

    config = tiny_model("cxr").pipe.scheduler.config
    inverse = make_scheduler("DDIM inverse", config, steps=10)
    assert type(inverse).__name__ == "DDIMInverseScheduler" and len(inverse.timesteps) == 10
    assert "DDIM inverse" not in SCHEDULERS
