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


def test_grow_vae_copies_every_module_that_has_a_place_and_adds_a_level():
    from dataclasses import replace

    from medviz.train.architectures import grow_vae, make_vae, vae_source_key

    tiny = PRESETS["tiny"]                                   # f = 2: channels (8, 16)
    deeper = replace(tiny, vae_channels=(8, 16, 16))         # f = 4
    source = make_vae(tiny)
    grown, share = grow_vae(source, deeper)
    assert grown.config.block_out_channels == (8, 16, 16) and 0.5 < share < 1.0
    old, new = source.state_dict(), grown.state_dict()
    # The encoder's blocks keep their place; the decoder's deepest block too, the others move one place down.
    moved = "decoder.up_blocks.{}.resnets.1.conv2.weight"
    assert vae_source_key(moved.format(2), 1) == moved.format(1)
    assert vae_source_key("decoder.up_blocks.1.resnets.0.conv1.weight", 1) == ""       # the new level
    for key in ("encoder.conv_in.weight", "encoder.down_blocks.1.resnets.0.conv1.weight", "encoder.mid_block."
                "attentions.0.to_q.weight", "decoder.up_blocks.0.resnets.0.conv1.weight", "decoder.conv_out.weight"):
        assert torch.equal(new[key], old[key]), key
    assert torch.equal(new[moved.format(2)], old[moved.format(1)])
    assert "encoder.down_blocks.2.resnets.0.conv1.weight" not in old                    # fresh
    with torch.no_grad():                                     # a 32-px image now has an 8 x 8 latent (f = 4)
        assert grown.encode(torch.zeros(1, 3, 32, 32)).latent_dist.mean.shape == (1, tiny.latent_channels, 8, 8)
    with pytest.raises(ValueError, match="shorter prefix"):
        grow_vae(source, replace(tiny, vae_channels=(16, 16, 16)))
    with pytest.raises(ValueError, match="shorter prefix"):
        grow_vae(grown, tiny)
    with pytest.raises(ValueError, match="latent channels"):
        grow_vae(source, replace(deeper, latent_channels=8))
