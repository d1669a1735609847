import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

from medviz.engines import Interrupted
from medviz.engines.audit import (AuditConfig, Counterfactuals, ImageCounterfactuals, Switch, folder_images,
                                  make_counterfactuals, phantom_images, report, report_rows, scls_of, score_audit)
from medviz.engines.counterfactual import EditConfig

FAST = EditConfig(steps=6, strength=0.5, mask_draws=1, domain_check=False)
CXR = dict(spurious="support_devices", target="pleural_effusion")


@dataclass
class BrightnessClassifier:
    """A stand-in classifier whose score is an image's top-left pixel: every figure is then known exactly."""

    name: str = "brightness"
    label: str = "pleural_effusion"

    def score(self, images):
        return np.array([float(np.asarray(image)[0, 0, 0]) for image in images])


def _image(value: float) -> np.ndarray:
    return np.full((4, 4, 3), value, np.float32)


def _made(rows) -> Counterfactuals:
    """rows: (input value, labels, {attribute: (action, cf value, passed)}, truth or None)."""
    images = [ImageCounterfactuals(f"im{i}", _image(v), labels,
                                   {a: Switch(a, action, _image(cf), passed, "", 10) for a, (action, cf, passed) in
                                    switches.items()}, truth)
              for i, (v, labels, switches, truth) in enumerate(rows)]
    return Counterfactuals(images, [("gone", "outside the model's domain (score 99)")], CXR["spurious"], CXR["target"],
                           unet_passes=10 * 2 * len(rows), seconds=1.0, parameters={})


def test_reliance_is_the_mean_score_change_on_minus_off_and_failed_edits_are_left_out():
    truth = {"support_devices": (_image(0.7), _image(0.2)), "pleural_effusion": (_image(0.9), _image(0.1))}
    rows = [  # devices removed from an image that has them: on - off = before - after
        (0.8, {"pleural_effusion": True, "support_devices": True},
         {"support_devices": ("remove", 0.3, True), "pleural_effusion": ("remove", 0.2, True)}, truth),
        # devices added: on - off = after - before
        (0.1, {"pleural_effusion": False, "support_devices": False},
         {"support_devices": ("add", 0.5, True), "pleural_effusion": ("add", 0.9, True)}, truth),
        # the device edit did not switch: left out of the reliance, counted
        (0.4, {"pleural_effusion": False, "support_devices": True},
         {"support_devices": ("remove", 0.4, False), "pleural_effusion": ("add", 0.6, True)}, truth),
    ]
    made = _made(rows)
    result = score_audit(BrightnessClassifier(), made, AuditConfig(**CXR, bootstrap=200))
    assert result.reliance.n == 2 and result.reliance.mean == pytest.approx((0.5 + 0.4) / 2)
    assert result.target_effect.n == 3 and result.target_effect.mean == pytest.approx((0.6 + 0.8 + 0.2) / 3)
    assert result.reliance.low <= result.reliance.mean <= result.reliance.high
    assert result.scls.mean == pytest.approx(0.45 / (0.45 + 1.6 / 3))
    assert result.excluded == {"outside the model's domain": 1, "support_devices edit did not switch it": 1,
                               "support_devices edit unfaithful on this model": 0,
                               "pleural_effusion edit did not switch it": 0,
                               "pleural_effusion edit unfaithful on this model": 0}
    assert result.flagged                                            # 0.45 >= 0.075
    assert result.truth["reliance"]["mean"] == pytest.approx(0.5) and result.truth["target_effect"][
        "mean"
    ] == pytest.approx(0.8)
    assert result.truth["reliance_same_images"] == pytest.approx(0.5)
    # Subgroups: score >= 0.5 reads effusion; im0 (effusion, devices) right, im1 (neither) right, im2 (devices) right.
    assert {(g["target"], g["spurious"]): (g["n"], g["accuracy"]) for g in result.subgroups} == {
        (True, True): (1, 1.0), (False, False): (1, 1.0), (False, True): (1, 1.0)}
    assert result.worst_group_accuracy == 1.0 and result.mean_accuracy == 1.0
    assert result.unet_passes_per_image == pytest.approx(60 / 4)      # three kept and one left out
    assert result.gallery[0][2] == "im1: add pleural_effusion: 0.10 -> 0.90"             # the largest move first
    assert any("did not switch it" in w for w in result.warnings) and any("left out" in w for w in result.warnings)
    rows_csv = report_rows(result).splitlines()
    assert rows_csv[0].startswith("classifier,image,attribute,action,passed,used,score_before,score_after,change_on_")
    assert len(rows_csv) == 1 + 6 and rows_csv[1].startswith("brightness,im0,")
    other = score_audit(BrightnessClassifier(name="other"), made, AuditConfig(**CXR, bootstrap=50))
    both = report_rows(result, other).splitlines()             # one header, then each classifier's rows
    assert len(both) == 1 + 12 and both[7].startswith("other,im0,")
    record = json.loads(json.dumps(report(result)))
    assert record["reliance"]["mean"] == pytest.approx(0.45) and record["flagged"] is True


def test_edits_the_model_card_measured_unfaithful_are_left_out_and_named():
    rows = [(0.8, {}, {"support_devices": ("remove", 0.3, True), "pleural_effusion": ("remove", 0.2, True)}, None),
            (0.1, {}, {"support_devices": ("add", 0.9, True), "pleural_effusion": ("add", 0.9, True)}, None)]
    made = _made(rows)
    made = Counterfactuals(
        **{**vars(made), "faithfulness": {"add support_devices": 0.01, "remove support_devices": 0.99}}
    )
    result = score_audit(BrightnessClassifier(), made, AuditConfig(**CXR, bootstrap=20))
    assert result.reliance.n == 1 and result.reliance.mean == pytest.approx(0.5)
    assert result.reliance_every_switch == pytest.approx((0.5 + 0.8) / 2)
    assert result.excluded["support_devices edit unfaithful on this model"] == 1
    assert any("'add support_devices' edit rarely looks like the true counterfactual (counterfactual bench: faithful "
               "in 1%): its 1 edits are left out" in w for w in result.warnings)
    assert [p["used"] for p in result.pairs] == [True, False, True, True]
    # An edit the engine did not run (its image is the input) counts as unfaithful, never as a change of 0.
    skipped = Switch("support_devices", "add", _image(0.1), None, "not run", 0, ran=False)
    item = made.images[1]
    made = Counterfactuals(**{**vars(made), "images": [made.images[0], ImageCounterfactuals(
        item.name, item.input, item.labels, {**item.switches, "support_devices": skipped}, None)]})
    result = score_audit(BrightnessClassifier(), made, AuditConfig(**CXR, bootstrap=20))
    assert result.reliance_every_switch == pytest.approx(0.5)
    assert result.excluded["support_devices edit unfaithful on this model"] == 1
    assert result.excluded["support_devices edit did not switch it"] == 0


def test_a_classifier_that_ignores_the_spurious_attribute_is_not_flagged_and_scls_is_zero():
    rows = [(0.3, {}, {"support_devices": ("add", 0.3, True), "pleural_effusion": ("add", 0.9, True)}, None)] * 5
    result = score_audit(BrightnessClassifier(), _made(rows), AuditConfig(**CXR, bootstrap=50))
    assert result.reliance.mean == 0 and not result.flagged and result.scls.mean == 0
    assert result.subgroups == [] and result.worst_group_accuracy is None and result.truth is None
    assert scls_of(np.array([0.2, -0.2, np.nan]), np.array([0.6, 0.6, 0.6])) == pytest.approx(0.25)
    assert math.isnan(scls_of(np.zeros(3), np.zeros(3)))             # no sensitivity at all: undefined


def test_every_edit_failing_leaves_no_estimate_and_says_so():
    rows = [(0.3, {}, {"support_devices": ("add", 0.9, False), "pleural_effusion": ("add", 0.9, True)}, None)] * 3
    result = score_audit(BrightnessClassifier(), _made(rows), AuditConfig(**CXR, bootstrap=20))
    assert result.reliance.n == 0 and math.isnan(result.reliance.mean) and not result.flagged
    assert any("rests on 0 images" in w for w in result.warnings)


def test_the_config_names_what_cannot_be_audited():
    with pytest.raises(ValueError, match="cannot be edited on a cxr model; choose one of"):
        AuditConfig(spurious="female", target="pleural_effusion").validate("cxr")
    with pytest.raises(ValueError, match="must differ"):
        AuditConfig(spurious="pleural_effusion", target="pleural_effusion").validate("cxr")
    with pytest.raises(ValueError, match="known domain"):
        AuditConfig(**CXR).validate(None)


def test_phantoms_carry_labels_and_true_counterfactuals_that_differ_in_one_attribute():
    images = phantom_images("cxr", 6, 40_000_000, attributes=("support_devices",), size=32)
    assert len(images) == 6 and all(set(i.truth) == {"support_devices"} for i in images)
    for image in images:
        on, off = image.truth["support_devices"]
        assert on.shape == off.shape == image.pixels.shape and np.abs(on - off).max() > 0.05
        same = on if image.labels["support_devices"] else off
        assert np.array_equal(same, image.pixels)                      # one of the pair is the phantom itself
    rate = np.mean([i.labels["support_devices"] for i in phantom_images("cxr", 60, 40_000_100, size=32)])
    assert 0.3 < rate < 0.7                                            # P(spurious) 0.5, whatever the target
    linked = phantom_images("cxr", 80, 40_000_200, strength=0.9, size=32)
    for has_effusion, expected in ((True, 0.95), (False, 0.05)):
        share = np.mean([i.labels["support_devices"] for i in linked if i.labels["pleural_effusion"] == has_effusion])
        assert abs(share - expected) < 0.2                             # the link planted: (1 +- strength) / 2


def test_counterfactuals_switch_each_attribute_the_way_its_label_says_and_stop_on_request(tiny_cxr):
    images = phantom_images("cxr", 3, 40_000_000, attributes=("support_devices", "pleural_effusion"), size=32)
    seen = []
    made = make_counterfactuals(
        tiny_cxr, images, AuditConfig(**CXR, edit=FAST), progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [(k, 6) for k in range(1, 7)] and len(made.images) == 3 and not made.excluded
    for image, item in zip(images, made.images):
        for attribute in CXR.values():
            switch = item.switches[attribute]
            assert switch.action == ("remove" if image.labels[attribute] else "add")
            assert switch.image.shape == (32, 32, 3) and switch.passed in (True, False, None)
    assert made.unet_passes == sum(s.unet_passes for item in made.images for s in item.switches.values())
    # The bundled CXR card (which the tiny model carries) measured "add support devices" faithful in 1%: not run.
    assert made.faithfulness["add support_devices"] == pytest.approx(0.01)
    for image, item in zip(images, made.images):
        switch = item.switches["support_devices"]
        assert (switch.unet_passes == 0 and switch.passed is None) == (not image.labels["support_devices"])
    with pytest.raises(Interrupted):
        make_counterfactuals(tiny_cxr, images, AuditConfig(**CXR, edit=FAST), should_stop=lambda: True)
    with pytest.raises(ValueError, match="no images"):
        make_counterfactuals(tiny_cxr, [], AuditConfig(**CXR))


def test_a_dataset_folder_gives_vocabulary_labels_and_reports_unreadable_files(tmp_path):
    from medviz.data import load_chexpert
    from medviz.io import write_png

    write_png(tmp_path / "a.png", np.full((40, 40), 0.5, np.float32))
    (tmp_path / "b.png").write_bytes(b"not a png")
    (tmp_path / "labels.csv").write_text("Path,Pleural Effusion,Support Devices\na.png,1,-1\nb.png,0,1\n")
    images, unreadable = folder_images(load_chexpert(tmp_path / "labels.csv", image_root=tmp_path))
    assert [i.name for i in images] == ["a.png"] and images[0].labels == {"pleural_effusion": True}   # -1: unknown
    assert len(unreadable) == 1 and unreadable[0].startswith("b.png: ")
