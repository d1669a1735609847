import numpy as np
import pytest
import torch

from medviz.train.architectures import PRESETS, grow_unet, make_unet


def _inputs(unet, batch=2):
    generator = torch.Generator().manual_seed(0)
    size, channels = unet.config.sample_size, unet.config.in_channels
    return (torch.randn(batch, channels, size, size, generator=generator), torch.tensor([10, 900])[:batch],
            torch.randn(batch, 16, unet.config.cross_attention_dim, generator=generator))


@pytest.mark.parametrize("attention, layer", [(True, False), (False, True), (True, True)])
def test_grown_unet_starts_as_the_same_function_and_then_learns(attention, layer):
    torch.manual_seed(0)
    unet = make_unet(PRESETS["tiny"]).eval()
    grown = grow_unet(unet, full_resolution_attention=attention, full_resolution_layer=layer).eval()
    sample, timesteps, states = _inputs(unet)
    with torch.no_grad():
        before, after = unet(sample, timesteps, states).sample, grown(sample, timesteps, states).sample
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    assert sum(p.numel() for p in grown.parameters()) > sum(p.numel() for p in unet.parameters())
    config = grown.config
    assert (config.down_block_types[0], config.up_block_types[-1]) == (
        ("CrossAttnDownBlock2D", "CrossAttnUpBlock2D") if attention else ("DownBlock2D", "UpBlock2D"))
    assert len(grown.down_blocks[0].resnets) == (2 if layer else 1)
    assert len(grown.up_blocks[-1].resnets) == (3 if layer else 2)
    # Zero-initialised outputs still pass gradient: one optimiser step moves the function.
    grown.train()
    zeroed = [(name, p) for name, p in grown.named_parameters() if name.endswith("weight") and not p.any()]
    # proj_out of each new transformer (one per level-0 resnet: 1 + 2, or 2 + 3 with the layer); conv2 of 2 resnets
    assert len(zeroed) == attention * (3 + 2 * layer) + layer * 2
    optimizer = torch.optim.SGD(grown.parameters(), lr=0.1)
    grown(sample, timesteps, states).sample.pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.any() for _, p in zeroed), [n for n, p in zeroed if not p.grad.any()]
    optimizer.step()
    with torch.no_grad():
        assert not torch.allclose(grown.eval()(sample, timesteps, states).sample, before, atol=1e-4)


def test_growing_in_two_steps_keeps_the_function_too():
    torch.manual_seed(0)
    unet = make_unet(PRESETS["tiny"]).eval()
    with_attention = grow_unet(unet, full_resolution_attention=True)
    for module in with_attention.modules():       # as if trained: the new attention no longer an identity
        if isinstance(module, torch.nn.Conv2d) and not module.weight.any():
            torch.nn.init.normal_(module.weight, std=0.05)
    sample, timesteps, states = _inputs(unet)
    grown = grow_unet(with_attention, full_resolution_layer=True).eval()
    with torch.no_grad():
        before, after = with_attention.eval()(sample, timesteps, states).sample, grown(sample, timesteps, states).sample
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)


def test_grow_unet_refuses_what_it_cannot_grow():
    unet = make_unet(PRESETS["tiny"])
    grown = grow_unet(unet, full_resolution_attention=True, full_resolution_layer=True)
    with pytest.raises(ValueError, match="already has attention"):
        grow_unet(grown, full_resolution_attention=True)
    with pytest.raises(ValueError, match="one resnet per block"):
        grow_unet(grown, full_resolution_layer=True)


def test_a_convnext_oracle_saves_and_loads_as_an_oracle(tmp_path):
    from medviz.oracle import load_oracle
    from medviz.train.architectures import PRESETS, make_oracle
    from medviz.train.oracle import OracleConfig, train_oracle

    labels = ("melanoma", "ruler")
    model = make_oracle(PRESETS["tiny"], labels, "convnext")
    assert type(model).__name__ == "ConvNextForImageClassification" and model.config.patch_size == 4
    model.save_pretrained(str(tmp_path / "judge"))
    judge = load_oracle(tmp_path / "judge", domain="skin")
    readout = judge.readout([np.zeros((64, 64, 3), np.float32), np.ones((32, 32), np.float32)])
    assert judge.attributes == labels and judge.image_size == 32 and readout.shape == (2, 2)
    assert ((readout > 0) & (readout < 1)).all()
    with pytest.raises(ValueError, match="oracle family must be one of"):
        make_oracle(PRESETS["tiny"], labels, "vit")
    with pytest.raises(ValueError, match="overlap the held-out phantoms 10000000..10001999"):
        train_oracle(OracleConfig(domain="skin", out=str(tmp_path), first_seed=9_999_000))
