import json

import pytest
import torch

from medviz.phantoms import get_domain
from medviz.phantoms.effects import link_groups as groups
from medviz.phantoms.effects import link_parameters as graph_parameters
from medviz.train.__main__ import main
from medviz.train.classifier import ClassifierConfig, group_dro_loss
from medviz.train.data import render_phantoms


def test_the_planted_link_strength_reaches_the_rendered_phantoms():
    # The risk difference is a property of the SCM: measured on 300 samples of its graph (rendering them costs 8 s),
    # and the rendered phantoms shown to carry the very factors of that graph.
    module = get_domain("cxr")
    for strength, lo, hi in ((0.0, -0.15, 0.15), (0.9, 0.75, 1.0)):
        parameters = graph_parameters("cxr", strength)
        graph = module.build_graph(**parameters)
        factors = [dict(graph.sample(30_000_000 + i).factors) for i in range(300)]
        _, rendered = render_phantoms("cxr", 8, 32, 30_000_000, workers=1, graph_parameters=parameters)
        assert rendered == factors[:8]
        labels, group = groups("cxr", factors, "pleural_effusion", "support_devices")
        spurious = group % 2
        difference = spurious[labels == 1].mean() - spurious[labels == 0].mean()
        assert lo < difference < hi                              # the risk difference asked for, within sampling


def test_group_dro_raises_the_weight_of_the_group_with_the_largest_loss():
    weights = torch.full((4,), 0.25)
    losses = torch.tensor([0.1, 0.1, 2.0, 0.1, 0.1])
    group = torch.tensor([0, 1, 2, 3, 0])
    loss = group_dro_loss(losses, group, weights, step_size=0.5)
    assert weights.sum().item() == pytest.approx(1.0) and weights.argmax().item() == 2 and weights[2] > 0.25
    assert loss.item() == pytest.approx((weights * torch.tensor([0.1, 0.1, 2.0, 0.1])).sum().item())


def test_group_dro_weights_of_each_process_are_those_of_the_whole_batch():
    losses = torch.tensor([0.1, 0.3, 2.0, 0.1, 0.5, 1.0])
    group = torch.tensor([0, 1, 2, 3, 2, 0])
    whole = torch.full((4,), 0.25)
    group_dro_loss(losses, group, whole, step_size=0.5)
    halves = [(losses[:3], group[:3]), (losses[3:], group[3:])]
    for mine, theirs in (halves, halves[::-1]):       # each process sums its group losses with the other's
        their_sums = torch.zeros(4).index_add_(0, theirs[1], theirs[0])
        their_counts = torch.bincount(theirs[1], minlength=4).float()
        added = iter([their_sums, their_counts])
        weights = torch.full((4,), 0.25)
        group_dro_loss(*mine, weights, step_size=0.5, total=lambda t, added=added: t + next(added))
        assert torch.allclose(weights, whole)


def test_a_tiny_classifier_trains_and_writes_its_card(tmp_path):
    out = tmp_path / "clf"
    assert main(["classifier", "--domain", "skin", "--out", str(out), "--target", "melanoma", "--spurious", "ruler",
                 "--strength", "0.9", "--method", "groupdro", "--preset", "tiny", "--image-size", "32",
                 "--n-images", "120", "--n-test", "40", "--steps", "4", "--batch-size", "16", "--workers", "1"]) == 0
    card = json.loads((out / "medviz_classifier.json").read_text())
    measured = card["balanced_test"]
    assert card["method"] == "groupdro" and card["strength"] == 0.9 and len(card["group_weights"]) == 4
    assert set(measured["groups"]) == {"0", "1", "2", "3"} and 0 <= measured["worst_group_accuracy"] <= 1
    assert measured["worst_group_accuracy"] == min(measured["groups"].values())
    assert len(set(measured["n"].values())) == 1                            # the test set is balanced
    assert card["command"].startswith("python -m medviz.train classifier --domain skin")
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "no melanoma", "1": "melanoma"}


def test_the_classifier_refuses_a_link_the_phantoms_do_not_plant():
    with pytest.raises(ValueError, match="plant one link, pleural_effusion -> support_devices"):
        ClassifierConfig(domain="cxr", out="x", target="cardiomegaly", spurious="support_devices").validate()
    with pytest.raises(ValueError, match="unknown method"):
        ClassifierConfig(domain="skin", out="x", target="melanoma", spurious="ruler", method="irm").validate()
    assert graph_parameters("skin", 0.3) == {"melanoma_ruler_strength": 0.3, "ruler_base_rate": 0.05}


def test_augment_rows_join_the_training_set_with_their_groups_and_unlabelled_rows_are_refused(tmp_path):
    import csv

    from medviz.phantoms.export import write_dataset
    from medviz.train.classifier import augmentation

    write_dataset("skin", 6, 128, tmp_path / "extra", seed=5)
    csv_path = tmp_path / "extra" / "labels.csv"
    config = ClassifierConfig(domain="skin", out="x", target="melanoma", spurious="ruler", augment=str(csv_path))
    images, labels, group = augmentation(config)
    rows = list(csv.DictReader(open(csv_path)))
    assert images.shape == (6, 32, 32, 3) and images.dtype.name == "uint8"
    assert list(group) == [2 * int(r["target"]) + int(float(r["ruler"])) for r in rows] and list(labels) == list(
        group // 2
    )
    out = tmp_path / "clf"
    assert (
        main(
            [
                "classifier",
                "--domain",
                "skin",
                "--out",
                str(out),
                "--target",
                "melanoma",
                "--spurious",
                "ruler",
                "--preset",
                "tiny",
                "--n-images",
                "60",
                "--n-test",
                "40",
                "--steps",
                "2",
                "--batch-size",
                "8",
                "--workers",
                "1",
                "--augment",
                str(csv_path),
            ]
        )
        == 0
    )
    assert json.loads((out / "medviz_classifier.json").read_text())["augment_rows"] == 6
    header, *body = csv_path.read_text().splitlines()
    (tmp_path / "extra" / "nolabel.csv").write_text("\n".join([header.replace("ruler", "rule_r"), *body]))
    with pytest.raises(ValueError, match="has no 0/1 label for ruler"):
        augmentation(ClassifierConfig(domain="skin", out="x", target="melanoma", spurious="ruler",
                                      augment=str(tmp_path / "extra" / "nolabel.csv")))


def test_random_zoom_rescales_about_the_centre_and_keeps_the_shape():
    import numpy as np

    from medviz.train.classifier import random_zoom

    square = np.zeros((1, 32, 32, 3), np.uint8)
    square[0, 12:20, 12:20] = 255                                     # an 8-px "lesion" in the middle
    sizes = [int((random_zoom(square, np.random.default_rng(s), 0.4)[0, :, :, 0] > 127).sum()) for s in range(40)]
    assert min(sizes) < 64 * 0.75 and max(sizes) > 64 * 1.3                # smaller and larger than the original 64 px
    assert np.array_equal(random_zoom(square, np.random.default_rng(0), 0.0), square)
    assert ClassifierConfig(domain="skin", out="x").magnification == 0.4
    assert ClassifierConfig(domain="cxr", out="x").magnification == 0.0
