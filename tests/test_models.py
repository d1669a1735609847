import json

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
