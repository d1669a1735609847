"""The progression engine on a tiny random model: checked records, courses under every arm, effects, the truth."""

import numpy as np
import pytest

from medviz import progression as P
from medviz.engines.progression import CourseConfig, Record, phantom_patient, phantom_record, predict_course
from medviz.phantoms import trial as world

TINY = dict(image_size=32, latent=4, width=16, embedding=4, dt_days=2.0)


@pytest.fixture(scope="module")
def tiny():
    import torch

    torch.manual_seed(0)
    shape = P.ProgressionConfig(**TINY)
    return P.build(shape).eval(), shape


@pytest.mark.parametrize("fields, message", [
    ((-3, False, True, 400), "age must be between 18 and 110 years, got -3"),
    (("", False, True, 400), "age is missing: enter it in years"),
    ((None, False, True, 400), "age is missing: enter it in years"),
    ((70, False, True, "high"), "BNP must be a number in pg/mL, got 'high'"),
    ((70, False, True, "nan"), "BNP must be a number in pg/mL, got 'nan'"),
    ((70, False, True, 0), "BNP must be between 1 and 50000 pg/mL, got 0"),
])
def test_a_bad_record_is_refused_in_one_sentence_naming_the_field(fields, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        Record.from_fields(*fields)


def test_a_phantoms_courses_come_with_its_truth_effects_and_images(tiny):
    network, shape = tiny
    patient = phantom_patient(3)
    record = phantom_record(patient)
    assert record.tabular() == pytest.approx(world.tabular(patient))          # what the trial's models were given
    result = predict_course(network, shape, np.zeros((50, 40)), record, CourseConfig(n_paths=30, step_days=7.0),
                            patient)
    assert result.arms == ("none", "diuretic", "drain") and result.days.tolist() == [0, 7, 14, 21, 28]
    assert result.mean.shape == result.true.shape == (3, 5) and result.paths.shape == (30, 3, 5)
    assert np.all(result.low <= result.mean + 1e-6) and np.all(result.mean <= result.high + 1e-6)
    assert 0 <= result.low.min() and result.high.max() <= 1
    effect, low, high = result.effects["diuretic"]
    paired = result.paths[:, 1, 2] - result.paths[:, 0, 2]                     # day 14, the same paths
    assert effect == pytest.approx(paired.mean()) and low <= effect <= high
    assert result.p_response == pytest.approx((paired < -P.RESPONSE_MARGIN).mean())
    assert result.true[:, 2] == pytest.approx([world.sizes_at(patient, a, [14.0])[0] for a in world.ARMS])
    assert result.true_effects["drain"] == pytest.approx(result.true[2, 2] - result.true[0, 2])
    assert set(result.images) == {(a, d) for a in world.ARMS for d in (0.0, 3.0, 7.0, 14.0, 28.0)}
    assert result.images[("none", 0.0)].shape == (128, 128, 3) and result.warnings == ()
    assert np.array_equal(result.images[("none", 0.0)], result.images[("drain", 0.0)])   # day 0: before any arm
    assert 0 < result.parameters["seconds_paths"] <= result.seconds
    assert len(result.records()) == 15 and result.records()[0]["true"] == pytest.approx(patient.baseline_size)


def test_an_edited_record_is_predicted_and_the_truth_is_named_as_the_phantoms(tiny):
    network, shape = tiny
    patient = phantom_patient(3)
    edited = Record(80.0, True, True, 2000.0)
    result = predict_course(network, shape, np.zeros((32, 32)), edited, CourseConfig(n_paths=5), patient)
    assert "the true courses are those of the phantom as enrolled" in result.warnings[0]
    alone = predict_course(network, shape, np.zeros((32, 32)), edited, CourseConfig(n_paths=5))
    assert alone.true is None and alone.images == {} and np.array_equal(alone.mean, result.mean)


def test_a_deterministic_baseline_has_no_band_and_says_so():
    shape = P.ProgressionConfig(model="gru", fusion="concat", **TINY)
    result = predict_course(P.build(shape).eval(), shape, np.zeros((32, 32)), Record(60.0, False, False, 100.0),
                            CourseConfig(n_paths=50))
    assert np.array_equal(result.low, result.high) and result.p_response is None
    assert result.warnings == ("This model is a deterministic baseline: one course per treatment, no band.",)
    with pytest.raises(ValueError, match="paths must be between 1 and 2000, got 0"):
        predict_course(P.build(shape).eval(), shape, np.zeros((32, 32)), Record(60.0, False, False, 100.0),
                       CourseConfig(n_paths=0))
    with pytest.raises(ValueError, match="the band's level must lie between 0 and 1, got 1.0"):
        predict_course(P.build(shape).eval(), shape, np.zeros((32, 32)), Record(60.0, False, False, 100.0),
                       CourseConfig(band_level=1.0))
