import math

import numpy as np
import pytest

from medviz import data


def test_chexpert_csv_with_released_style_paths(tmp_path):
    root = tmp_path / "CheXpert-v1.0-small"
    (root / "train" / "patient00001" / "study1").mkdir(parents=True)
    image = root / "train" / "patient00001" / "study1" / "view1_frontal.jpg"
    from PIL import Image
    Image.fromarray(np.full((16, 16), 100, np.uint8)).save(image)
    header = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(data.prompts.CHEXPERT_FINDINGS)
    cells = {f: "" for f in data.prompts.CHEXPERT_FINDINGS}
    cells.update({"Pleural Effusion": "1.0", "Cardiomegaly": "-1.0", "Support Devices": "0.0"})
    rows = [
        "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,"
        + ",".join(cells.values()),
        "CheXpert-v1.0-small/train/patient00001/study1/view2_lateral.jpg,Female,68,Lateral,,"
        + ",".join(cells.values()),
    ]
    (root / "train.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    records = data.load_chexpert(root / "train.csv")
    assert len(records) == 1                                     # lateral view dropped
    record = records[0]
    assert record.path == image
    assert record.labels["Pleural Effusion"] == 1.0 and record.labels["Support Devices"] == 0.0
    assert math.isnan(record.labels["Cardiomegaly"]) and math.isnan(record.labels["Edema"])
    assert record.caption == "Chest X-ray showing pleural effusion"
    assert record.meta["Age"] == "68"
    assert np.allclose(record.load().pixels, 100 / 255)


def test_loaders_give_clear_errors(tmp_path):
    with pytest.raises(data.DatasetError, match="no such CSV"):
        data.load_chexpert(tmp_path / "missing.csv")
    (tmp_path / "x.csv").write_text("image_name,target\nISIC_1,1\n")
    with pytest.raises(data.DatasetError, match="no 'Path' column"):
        data.load_chexpert(tmp_path / "x.csv")
    with pytest.raises(data.DatasetError, match="no image file for 'ISIC_1'"):
        data.load_isic(tmp_path / "x.csv")
    (tmp_path / "y.csv").write_text("Path,Pleural Effusion\nimages/a.png,1\n")
    with pytest.raises(data.DatasetError, match="image images/a.png not found"):
        data.load_chexpert(tmp_path / "y.csv")


def test_isic_layouts(tmp_path):
    from PIL import Image
    for name in ("ISIC_0001", "ISIC_0002"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8) + 50).save(tmp_path / f"{name}.jpg")
    (tmp_path / "2020.csv").write_text("image_name,patient_id,sex,diagnosis,benign_malignant,target\n"
                                       "ISIC_0001,P1,male,melanoma,malignant,1\nISIC_0002,P2,female,nevus,benign,0\n")
    records = data.load_isic(tmp_path / "2020.csv")
    assert [r.labels["melanoma"] for r in records] == [1.0, 0.0]
    assert records[0].caption == "Dermoscopy image of a melanoma"
    (tmp_path / "ham.csv").write_text("image_id,dx\nISIC_0001,mel\nISIC_0002,nv\n")
    assert [r.labels["melanoma"] for r in data.load_isic(tmp_path / "ham.csv")] == [1.0, 0.0]


def test_a_labelled_csv_is_read_in_its_domains_dataset_layout(tmp_path):
    from PIL import Image

    from medviz import domains

    (tmp_path / "ham.csv").write_text("image_id,dx\nISIC_1,mel\nISIC_2,nv\n")
    for name in ("ISIC_1", "ISIC_2"):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{name}.jpg")
    read = data.load_labelled("skin", tmp_path / "ham.csv")
    assert [r.labels["melanoma"] for r in read] == [r.labels["melanoma"] for r in data.load_isic(tmp_path / "ham.csv")]
    assert (domains.get("cxr").dataset_layout, domains.get("skin").dataset_layout) == ("chexpert", "isic")
    assert domains.get("skin").mirrored and not domains.get("cxr").mirrored
    with pytest.raises(ValueError, match="retina images have no dataset layout"):
        data.load_labelled("retina", tmp_path / "ham.csv")
