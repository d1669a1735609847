import json

import numpy as np
import pytest

from medviz import models

torch = pytest.importorskip("torch")


def test_missing_empty_and_corrupt_models_give_one_clear_message(tmp_path):
    with pytest.raises(models.ModelLoadError, match="not found: no such path, and not a bundled model"):
        models.load_pipeline(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(models.ModelLoadError, match="the folder is empty"):
        models.load_pipeline(empty)
    broken = tmp_path / "broken"
    for part in models.PIPELINE_PARTS:
        (broken / part).mkdir(parents=True)
    (broken / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (broken / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    for part in ("vae", "text_encoder"):
        (broken / part / "model.safetensors").write_bytes(b"")
    with pytest.raises(models.ModelLoadError, match="corrupt safetensors file"):
        models.load_pipeline(broken)
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(models.ModelLoadError, match="must be .safetensors or .ckpt"):
        models.load_pipeline(tmp_path / "model.bin")


def test_device_choice_on_this_machine():
    choice = models.pick_device()
    if not torch.cuda.is_available():
        assert choice.device in ("cpu", "mps") and choice.dtype == torch.float32
    with pytest.raises(models.ModelLoadError, match="CUDA was requested"):
        if not torch.cuda.is_available():
            models.pick_device("cuda")
        else:
            raise models.ModelLoadError("CUDA was requested")


def test_load_model_brings_the_oracle_named_in_the_card(cxr_model):
    assert cxr_model.domain == "cxr" and cxr_model.image_size == 128
    assert cxr_model.oracle.attributes[:3] == ("pleural_effusion", "cardiomegaly", "support_devices")
    gray = np.zeros((200, 180), np.float32)                # any size, grayscale contract image
    assert cxr_model.oracle.readout([gray]).shape == (1, 8)


def test_a_model_without_card_has_no_oracle_and_takes_attributes_in_words(tmp_path):
    import shutil

    from medviz.engines.traverse import TraverseConfig, traverse
    from medviz.models import MODELS_DIR, load_model

    folder = tmp_path / "plain-sd"
    shutil.copytree(MODELS_DIR / "cxr-phantom", folder, ignore=shutil.ignore_patterns("medviz.json", "README.md"))
    model = load_model(folder, device="cpu")
    assert model.oracle is None and model.domain is None
    with pytest.raises(ValueError, match="domain is not known.*type the attribute in words"):
        traverse(model, TraverseConfig(kind="slider", frames=2, steps=2))
    walk = traverse(model, TraverseConfig(kind="interpolate", prompt="Chest X-ray", frames=2, steps=2))
    assert walk.frames.shape == (1, 2, 128, 128, 3) and walk.readouts is None and walk.metrics is None
    typed = traverse(model, TraverseConfig(kind="slider", prompt="Chest X-ray", phrase="with a pacemaker",
                                           negation="without a pacemaker", frames=3, steps=2))
    assert typed.frames.shape == (1, 3, 128, 128, 3) and typed.metrics is None
    assert not np.allclose(typed.frames[0, 0], typed.frames[0, -1])      # the walk moves
