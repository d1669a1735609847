"""The training data helpers, on a tiny random VAE."""

import numpy as np
import pytest
import torch


def test_cached_latents_are_used_again_only_for_the_same_images_and_vae(tmp_path, monkeypatch):
    from medviz.train import data
    from medviz.train.architectures import PRESETS, make_vae

    vae = make_vae(PRESETS["tiny"]).eval()
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    path = tmp_path / "run" / "latents.pt"
    means, stds = data.cached_latents(path, vae, images, "cpu")
    assert path.is_file() and means.shape == stds.shape == (3, vae.config.latent_channels, 16, 16)   # f = 2
    assert not list(path.parent.glob("*.partial"))
    encoded = []
    original = data.encode_latents
    monkeypatch.setattr(data, "encode_latents", lambda *a, **k: encoded.append(1) or original(*a, **k))
    again = data.cached_latents(path, vae, images, "cpu")             # the resumed run: read, not encoded
    assert encoded == [] and torch.equal(again[0], means) and torch.equal(again[1], stds)
    other = images.copy()
    other[0, 0, 0, 0] ^= 1                                            # one bit of one pixel
    data.cached_latents(path, vae, other, "cpu")
    with torch.no_grad():
        vae.decoder.conv_out.bias.add_(1.0)                           # the decoder's weights are in the key too
    data.cached_latents(path, vae, other, "cpu")
    assert encoded == [1, 1]
    data.cached_latents(tmp_path / "not-main.pt", vae, images, "cpu", write=False)
    assert not (tmp_path / "not-main.pt").exists()


@pytest.mark.parametrize("batch", [2, 64])
def test_round_trip_reports_each_batch(batch):
    from medviz.train.architectures import PRESETS, make_vae
    from medviz.train.data import round_trip

    images = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    seen = []
    decoded, psnr = round_trip(make_vae(PRESETS["tiny"]).eval(), images, batch, progress=lambda *a: seen.append(a))
    assert decoded.shape == images.shape and decoded.dtype == np.uint8 and psnr.shape == (5,)
    assert seen == ([(2, 5), (4, 5), (5, 5)] if batch == 2 else [(5, 5)])


def test_cached_round_trips_go_on_from_the_last_whole_chunk(tmp_path, monkeypatch):
    from medviz.train import data
    from medviz.train.architectures import PRESETS, make_vae

    vae = make_vae(PRESETS["tiny"]).eval()
    images = np.random.default_rng(2).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    calls, said = [], []
    original = data.round_trip
    monkeypatch.setattr(data, "round_trip",
                        lambda vae, chunk, **kw: calls.append(len(chunk)) or original(vae, chunk, **kw))
    decoded, psnr = data.cached_round_trip(tmp_path / "kept", vae, images, chunk=2, progress=lambda *a: said.append(a))
    # The same chunks decoded directly (a batch's size can change the convolutions' rounding, so chunk for chunk).
    chunks = [original(vae, images[k:k + 2]) for k in (0, 2, 4)]
    whole, whole_psnr = (np.concatenate(parts) for parts in zip(*chunks))
    assert calls == [2, 2, 1] and said == [(2, 5), (4, 5), (5, 5)]
    assert np.array_equal(decoded, whole) and np.array_equal(psnr, whole_psnr)
    (tmp_path / "kept" / "part-0000002.npz").unlink()                  # the run was cut while writing chunk 2
    calls.clear()
    again = data.cached_round_trip(tmp_path / "kept", vae, images, chunk=2)
    assert calls == [2] and np.array_equal(again[0], decoded)          # only the missing chunk is decoded
    with torch.no_grad():
        vae.decoder.conv_out.bias.add_(1.0)                           # another VAE: nothing kept is used
    calls.clear()
    data.cached_round_trip(tmp_path / "kept", vae, images, chunk=2)
    assert calls == [2, 2, 1] and not list((tmp_path / "kept").glob("*.partial*"))
