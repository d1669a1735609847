import csv
import math

import numpy as np
import pytest

from medviz import data
from medviz.io import read_image, read_png_parameters
from medviz.phantoms import cxr, skin
from medviz.phantoms.__main__ import main


def test_cli_writes_a_chexpert_layout_folder_the_loader_reads(tmp_path, capsys):
    assert main(["--domain", "cxr", "--n", "6", "--size", "128", "--out", str(tmp_path), "--seed", "40"]) == 0
    records = data.load_chexpert(tmp_path / "labels.csv")
    assert len(records) == 6
    graph = cxr.build_graph()
    for i, record in enumerate(records):
        factors = graph.sample(40 + i).factors
        assert record.labels["Pleural Effusion"] == float(factors["effusion"] != "none")
        assert record.labels["Support Devices"] == float(factors["support_devices"])
        assert math.isnan(record.labels["Pneumothorax"])          # blank -> NaN
        assert record.meta["Sex"] in ("Male", "Female")
        image = record.load()
        assert image.pixels.shape == (128, 128) and image.pixels.dtype == np.float32
        # The PNG is the 8-bit rendering of the same sample.
        expected = cxr.render(factors, 40 + i, 128).image
        assert np.abs(image.pixels - expected).max() <= 0.5 / 255 + 1e-6
        assert read_png_parameters(record.path)["seed"] == 40 + i
        assert record.caption.startswith(("Chest X-ray showing", "Normal chest X-ray"))
    assert '"render_images_per_s"' in capsys.readouterr().out


def test_cli_writes_an_isic_layout_folder_the_loader_reads(tmp_path):
    assert main(["--domain", "skin", "--n", "5", "--size", "128", "--out", str(tmp_path), "--strength", "0.3"]) == 0
    records = data.load_isic(tmp_path / "labels.csv")
    graph = skin.build_graph(melanoma_ruler_strength=0.3)
    assert len(records) == 5
    for i, record in enumerate(records):
        factors = graph.sample(i).factors
        assert record.labels["melanoma"] == float(factors["melanoma"])
        assert record.labels["ruler"] == float(factors["ruler"])
        assert record.load().pixels.shape == (128, 128, 3)
        assert ("melanoma" in record.caption) == factors["melanoma"]
    with open(tmp_path / "labels.csv") as handle:
        header = next(csv.reader(handle))
    assert header[:3] == ["image_name", "patient_id", "diagnosis"]


def test_cli_rejects_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        main(["--domain", "cxr", "--size", "64", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["--domain", "cxr", "--strength", "0.99", "--out", str(tmp_path)])


def test_contact_sheet(tmp_path):
    out = main(["--domain", "skin", "--contact-sheet", str(tmp_path / "sheet.png")])
    assert out == 0
    image = read_image(tmp_path / "sheet.png")
    assert image.pixels.shape[0] > 500 and image.is_rgb


def test_the_bundled_example_inputs_are_the_phantoms_write_examples_renders(tmp_path):
    """assets/examples/inputs come from the phantom world, reproducibly (within one 8-bit level: the renderer's
    float noise has moved by that much since they were written)."""
    import numpy as np

    from medviz.io import read_image
    from medviz.phantoms.export import EXAMPLE_INPUTS, write_examples
    from medviz.ui.common import EXAMPLES_DIR

    written = write_examples(tmp_path)
    assert sorted(p.name for p in written) == sorted(EXAMPLE_INPUTS)
    for path in written:
        again, bundled = read_image(path).pixels, read_image(EXAMPLES_DIR / path.name).pixels
        assert again.shape == bundled.shape and np.abs(again - bundled).max() <= 1 / 255 + 1e-6, path.name
