import json

import numpy as np
import pytest

from medviz.classifiers import ClassifierLoadError, load_classifier
from medviz.train.classifier import make_classifier


@pytest.fixture()
def folder(tmp_path):
    """A tiny random two-class classifier folder, as ``python -m medviz.train classifier`` writes it."""
    path = tmp_path / "clf"
    make_classifier((8, 16), "melanoma", 32).save_pretrained(str(path))
    return path


def test_a_classifier_folder_loads_and_scores_its_label(folder):
    classifier = load_classifier(folder)
    assert classifier.label == "melanoma" and classifier.index == 1 and classifier.image_size == 32
    images = [np.zeros((64, 48), np.float32), np.ones((20, 20, 3), np.float32), np.zeros((32, 32, 3), np.uint8)]
    scores = classifier.score(images)
    assert scores.shape == (3,) and ((0 <= scores) & (scores <= 1)).all()
    other = load_classifier(folder, label="no melanoma").score(images)
    assert np.allclose(scores + other, 1, atol=1e-5)                      # softmax over the two classes
    (folder / "medviz_classifier.json").write_text(json.dumps({"target": "no melanoma"}))
    assert load_classifier(folder).label == "no melanoma"                 # the card's target is the default


def test_every_broken_folder_gets_one_clear_message(folder, tmp_path):
    with pytest.raises(ClassifierLoadError, match="not found: not a bundled classifier"):
        load_classifier(tmp_path / "nothing")
    with pytest.raises(ClassifierLoadError, match="has no label 'ruler'; its labels: no melanoma, melanoma"):
        load_classifier(folder, label="ruler")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "id2label": {"0": "LABEL_0", "1": "LABEL_1"}}))
    with pytest.raises(ClassifierLoadError, match="names no labels"):
        load_classifier(folder)
    (folder / "config.json").write_text("{ not json")
    with pytest.raises(ClassifierLoadError, match="malformed JSON"):
        load_classifier(folder)
    (folder / "config.json").unlink()
    with pytest.raises(ClassifierLoadError, match="no config.json"):
        load_classifier(folder)
    (folder / "config.json").write_text(json.dumps({**config, "id2label": {"0": "cat", "1": "dog", "2": "eel"}}))
    with pytest.raises(ClassifierLoadError, match="say which label to audit"):
        load_classifier(folder)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ClassifierLoadError, match="no weights file"):
        load_classifier(folder, label="dog")


def test_the_bundled_classifiers_load_and_their_readmes_are_rendered_from_their_cards(tmp_path):
    import shutil

    from medviz.bench.cards import write_classifier_card
    from medviz.classifiers import CLASSIFIERS_DIR, bundled_classifiers, classifier_domain

    names = bundled_classifiers()
    assert names == ["cxr-effusion-erm", "cxr-effusion-erm-cfaug", "cxr-effusion-groupdro", "skin-melanoma-erm",
                     "skin-melanoma-erm-cfaug", "skin-melanoma-groupdro"]
    for name in names:
        classifier = load_classifier(name)
        assert classifier.label == ("pleural_effusion" if name.startswith("cxr") else "melanoma")
        assert classifier_domain(name) == name.split("-")[0] and classifier.card["strength"] == 0.9
        assert (CLASSIFIERS_DIR / name / "model.safetensors").stat().st_size < 10 * 2**20
        copy = tmp_path / name
        shutil.copytree(CLASSIFIERS_DIR / name, copy, ignore=shutil.ignore_patterns("*.safetensors"))
        assert write_classifier_card(copy).read_text() == (CLASSIFIERS_DIR / name / "README.md").read_text()
    for domain in ("cxr-effusion", "skin-melanoma"):       # the shortcut and its fixes, side by side
        erm, dro, augmented = (load_classifier(f"{domain}-{m}").card for m in ("erm", "groupdro", "erm-cfaug"))
        worst = [card["balanced_test"]["worst_group_accuracy"] for card in (erm, dro, augmented)]
        assert worst[1] > worst[0] and worst[2] > worst[0]
        assert augmented["augment_rows"] > 0 and augmented["augment_source"].startswith("python -m medviz.augment")
