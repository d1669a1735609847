import numpy as np
import pytest
import torch

from medviz import domains
from medviz.engines import Interrupted
from medviz.engines.common import decode_latents, encode_prompts, initial_noise
from medviz.engines.traverse import (TraverseConfig, bezier, caption_pairs, conditional_direction, slerp,
                                     trajectory_metrics, traverse)
from medviz.prompts import parse_prompt

FEMALE = "Chest X-ray of a female patient"


def _stock_latents(model, prompt, noise, steps, guidance=4.0):
    pipe = model.pipe
    return pipe(prompt_embeds=encode_prompts(pipe, [prompt]).expand(len(noise), -1, -1),
                negative_prompt_embeds=encode_prompts(pipe, [""]).expand(len(noise), -1, -1), latents=noise.clone(),
                num_inference_steps=steps, guidance_scale=guidance, output_type="latent").images


def test_slider_frames_batched_and_the_zero_frame_is_the_stock_pipeline(tiny_cxr):
    config = TraverseConfig(kind="slider", target="pleural_effusion", prompt=FEMALE, seeds=(5, 6), frames=3, steps=6,
                            alpha_range=(-1.0, 1.0))
    result = traverse(tiny_cxr, config)
    assert result.frames.shape == (2, 3, 32, 32, 3) and result.frames.dtype == np.float32
    assert result.readouts.shape == (2, 3, 8) and len(result.metrics) == 2
    np.testing.assert_allclose(result.positions, [-1, 0, 1])
    assert result.unet_passes == result.unet_passes_unshared == 2 * 3 * 6
    # alpha = 0 is the plain prompt: the frame must match the stock pipeline from the same noise.
    noise = initial_noise([5, 6], (4, 16, 16), torch.float32, "cpu")
    stock = _stock_latents(tiny_cxr, FEMALE, noise, 6)
    np.testing.assert_allclose(result.frames[:, 1], decode_latents(tiny_cxr.pipe, stock), atol=2e-3)


@pytest.mark.bundled
def test_effusion_slider_raises_effusion_and_keeps_the_rest(cxr_model):
    result = traverse(cxr_model, TraverseConfig(kind="slider", target="pleural_effusion", prompt=FEMALE, seeds=(3,),
                                                frames=4, steps=10, alpha_range=(0.0, 1.5)))
    k = result.attributes.index("pleural_effusion")
    assert result.readouts[0, 0, k] < 0.2 and result.readouts[0, -1, k] > 0.8
    assert result.metrics[0].cfrt_success and result.metrics[0].leakage < 0.2


def test_start_step_shares_the_prefix(tiny_cxr):
    config = TraverseConfig(kind="slider", target="cardiomegaly", prompt=FEMALE, seeds=(1,), frames=4, steps=6,
                            start_step=3)
    result = traverse(tiny_cxr, config)
    assert result.unet_passes == 3 + 4 * 3 and result.unet_passes_unshared == 4 * 6


def test_prompt_switch_shares_the_neutral_run_and_ends_on_its_control_points(tiny_cxr):
    config = TraverseConfig(kind="prompt_switch", target="pleural_effusion", seeds=(2,), frames=5, steps=10)
    result = traverse(tiny_cxr, config)
    lambdas = range(1, 10)                                    # 0.1 .. 0.9 of 10 steps
    assert result.control_points == 10
    assert result.unet_passes == 10 + sum(10 - lam for lam in lambdas)
    assert result.unet_passes_unshared == 10 * 10
    assert result.unet_passes / result.unet_passes_unshared <= 0.6
    # The curve starts at the neutral run: the stock pipeline with the neutral prompt.
    noise = initial_noise([2], (4, 16, 16), torch.float32, "cpu")
    neutral = decode_latents(tiny_cxr.pipe, _stock_latents(tiny_cxr, FEMALE, noise, 10))
    np.testing.assert_allclose(result.frames[0, 0], neutral[0], atol=2e-3)


def test_interpolation_walks_from_one_patient_to_another(tiny_cxr):
    result = traverse(tiny_cxr, TraverseConfig(kind="interpolate", prompt=FEMALE, seeds=(7,), seed_b=9, frames=3,
                                                steps=5))
    noise = initial_noise([7, 9], (4, 16, 16), torch.float32, "cpu")
    ends = decode_latents(tiny_cxr.pipe, _stock_latents(tiny_cxr, FEMALE, noise, 5))
    np.testing.assert_allclose(result.frames[0, 0], ends[0], atol=2e-3)
    np.testing.assert_allclose(result.frames[0, -1], ends[1], atol=2e-3)
    assert result.metrics is None


def test_interrupt_and_progress(tiny_cxr):
    ticks = []
    with pytest.raises(Interrupted):
        traverse(tiny_cxr, TraverseConfig(kind="slider", prompt=FEMALE, seeds=(0,), frames=2, steps=6),
                 progress=lambda d, t: ticks.append(d), should_stop=lambda: len(ticks) >= 2)
    assert ticks == [1, 2]


def test_bad_requests_have_clear_messages(tiny_cxr):
    with pytest.raises(ValueError, match="no slider for 'ruler'"):
        traverse(tiny_cxr, TraverseConfig(kind="slider", target="ruler", frames=2, steps=2))
    with pytest.raises(ValueError, match="unknown trajectory kind"):
        traverse(tiny_cxr, TraverseConfig(kind="zoom"))
    with pytest.raises(ValueError, match="frames"):
        traverse(tiny_cxr, TraverseConfig(frames=1))


def test_caption_pairs_differ_in_the_attribute_only():
    with_it, without_it = caption_pairs("cxr", "support_devices", 40)
    for a, b in zip(with_it, without_it):
        assert parse_prompt(a, "cxr").get("support_devices") or any(
            parse_prompt(a, "cxr").get(d) for d in ("pacemaker", "ett", "cvc", "ngt")), a
        assert not parse_prompt(b, "cxr").get("support_devices"), b
        # Other attributes agree on presence (negatives may be spelt out on one side only).
        for other in ("pleural_effusion", "cardiomegaly"):
            assert bool(parse_prompt(a, "cxr").get(other)) == bool(parse_prompt(b, "cxr").get(other)), (a, b)


def test_conditional_direction_is_orthogonal_to_the_others():
    generator = torch.Generator().manual_seed(0)
    target, a, b = (torch.randn(6, 5, generator=generator) for _ in range(3))
    d = conditional_direction(target, [a, b])
    assert abs(float((d * a).sum())) < 1e-4 and abs(float((d * b).sum())) < 1e-4
    assert float((d * target).sum()) > 0


def test_bezier_and_slerp_endpoints():
    points = torch.randn(4, 3, 2, 2)
    curve, ts = bezier(points, 5)
    torch.testing.assert_close(curve[0], points[0])
    torch.testing.assert_close(curve[-1], points[-1])
    line, _ = bezier(points[:2], 3)
    torch.testing.assert_close(line[1], (points[0] + points[1]) / 2)
    a, b = torch.randn(4, 32, 32), torch.randn(4, 32, 32)
    path = slerp(a, b, [0.0, 0.5, 1.0])
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[2], b, atol=1e-5, rtol=1e-5)
    # Slerp keeps a Gaussian's norm where a straight line would shrink it.
    assert abs(path[1].norm() / a.norm() - 1) < 0.05


def test_trajectory_metrics_on_known_curves():
    attributes = ("pleural_effusion", "cardiomegaly", "support_devices", "pacemaker", "ett", "cvc", "ngt", "female")
    factors = tuple(a.name for a in domains.get("cxr").factors)
    clean = np.zeros((5, 8))
    clean[:, 0] = [0.0, 0.1, 0.5, 0.9, 1.0]
    clean[:, 3] = [0.0, 0.0, 0.0, 1.0, 1.0]          # pacemaker is part of devices, not a factor: ignored
    metrics = trajectory_metrics(clean, attributes, "pleural_effusion", factors)
    assert metrics.monotonicity == pytest.approx(1.0) and metrics.leakage == 0 and metrics.cfrt_success
    leaking = clean.copy()
    leaking[:, 7] = [1.0, 1.0, 0.0, 0.0, 0.0]
    metrics = trajectory_metrics(leaking, attributes, "pleural_effusion", factors)
    assert metrics.leakage == pytest.approx(1.0) and not metrics.cfrt_success
