"""An oracle (or judge) trained with a share of its images decoded by a VAE, on tiny random models."""

import pytest


def test_a_reader_trained_on_decoded_images_is_scored_on_them_too(tmp_path, monkeypatch, capsys):
    from medviz.train import oracle as trainer
    from medviz.train.architectures import PRESETS, make_vae

    make_vae(PRESETS["tiny"]).save_pretrained(str(tmp_path / "vae"))
    seen = []
    original = trainer.round_trip
    monkeypatch.setattr(trainer, "round_trip", lambda vae, images, **kw: seen.append(images.shape)
                        or original(vae, images, batch=2, **kw))
    config = trainer.OracleConfig(domain="skin", out=str(tmp_path / "judge"), preset="tiny", n_images=16, steps=2,
                                  batch_size=4, n_held_out=8, workers=1, family="convnext", first_seed=50_000_000,
                                  decoded_by=str(tmp_path), decoded_share=0.25)
    result = trainer.train_oracle(config)
    assert seen == [(4, 32, 32, 3), (8, 32, 32, 3)]              # a quarter of the training set, all the held-out
    said = [line.split(" (")[0] for line in capsys.readouterr().out.splitlines() if "round trips:" in line]
    assert said == ["[oracle] round trips: 2/4", "[oracle] round trips: 4/4",         # a line per tenth reached
                    *(f"[oracle] held-out round trips: {n}/8" for n in (2, 4, 6, 8))]
    assert set(result["held_out_auc_decoded"]) == set(result["held_out_auc"]) and result["decoded_by"] == str(tmp_path)
    assert (tmp_path / "judge" / "oracle" / "medviz_train.json").is_file()


def test_a_bad_share_or_folder_is_named_before_rendering(tmp_path):
    from medviz.train.oracle import OracleConfig, train_oracle

    with pytest.raises(ValueError, match=r"decoded_share must be in \(0, 1\], got 0"):
        train_oracle(OracleConfig(domain="skin", out=str(tmp_path), decoded_by=str(tmp_path), decoded_share=0))
    with pytest.raises(FileNotFoundError, match="decoded_by: nowhere is not a folder"):
        train_oracle(OracleConfig(domain="skin", out=str(tmp_path), decoded_by="nowhere"))


def test_a_resumable_reader_goes_on_from_its_checkpoint_with_its_round_trips_kept(tmp_path, monkeypatch):
    from medviz.train import data
    from medviz.train import oracle as trainer
    from medviz.train.architectures import PRESETS, make_vae

    make_vae(PRESETS["tiny"]).save_pretrained(str(tmp_path / "vae"))
    decoded, steps = [], []
    original = data.round_trip
    monkeypatch.setattr(data, "round_trip", lambda vae, images, **kw: decoded.append(len(images))
                        or original(vae, images, batch=2, **kw))
    monkeypatch.setattr(trainer, "optimizer_step", lambda *a, **kw: steps.append(a[4]))
    config = trainer.OracleConfig(domain="skin", out=str(tmp_path / "judge"), preset="tiny", n_images=16, steps=4,
                                  batch_size=4, n_held_out=8, workers=1, family="convnext", first_seed=50_000_000,
                                  decoded_by=str(tmp_path), decoded_share=0.25, checkpoint_every=3)
    assert trainer.train_oracle(config, should_stop=lambda: len(steps) == 2) == {"stopped_at": 2}
    assert decoded == [4] and steps == [1, 2]                          # cut at step 2: a checkpoint there too
    assert not (tmp_path / "judge" / "oracle").exists()
    result = trainer.train_oracle(config)                              # the same command again
    assert steps == [1, 2, 3, 4] and decoded == [4, 8]                 # the training round trips were kept
    kept = sorted(p.name for p in (tmp_path / "judge" / trainer.CHECKPOINTS).iterdir())
    assert kept == ["checkpoint-0000002", "checkpoint-0000003", "held-out-round-trips", "round-trips"]
    assert set(result["held_out_auc_decoded"]) == set(result["held_out_auc"])
