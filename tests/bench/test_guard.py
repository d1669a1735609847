import json

from medviz.bench.__main__ import main
from medviz.bench.guard import phantoms
from medviz.engines.guard import check_domain
from medviz.io import write_png
from medviz.models import load_model
from tests.tiny import tiny_model


def test_a_users_checkpoint_is_calibrated_from_a_folder_of_its_images(tmp_path, capsys):
    folder, images = tmp_path / "mine", tmp_path / "images"
    tiny_model(None).pipe.save_pretrained(str(folder))
    images.mkdir()
    for i, image in enumerate(phantoms("cxr", 40, 32, 0)):
        write_png(images / f"{i}.png", image.astype("float32") / 255)
    (images / "notes.txt").write_text("not an image")                       # skipped: not an image file
    assert main(["guard", "--model", str(folder), "--images", str(images), "--write-card"]) == 0
    record = json.loads((folder / "medviz.json").read_text())["domain_check"]
    assert record["n_scale"] == record["n_threshold"] == 20 and record["margin"] == 1.25
    assert record["command"].startswith("python -m medviz.bench guard --model")
    model = load_model(folder, device="cpu")
    assert check_domain(model, phantoms("cxr", 1, 32, 500)[0]).in_domain is not None      # it has a check now
    assert "threshold" in capsys.readouterr().out
