"""The phantom trial's world: enrolment, true courses under every arm on one noise path, the planted responders."""

import numpy as np
import pytest

from medviz.phantoms import trial as T


def test_a_patient_is_a_cxr_phantom_with_an_effusion_records_and_irregular_visits():
    patient = T.enrol(T.TRIAL_FIRST_SEED + 3)
    assert patient.factors["effusion"] != "none" and patient.factors["effusion_severity"] == patient.baseline_size
    assert 0.25 <= patient.baseline_size <= 0.85 and patient.arm in T.ARMS and 5 <= patient.bnp <= 5000
    assert patient.visits[0] == 0.0 and list(patient.visits) == sorted(patient.visits) and 4 <= len(patient.visits) <= 7
    assert max(patient.visits) <= T.HORIZON_DAYS
    assert set(T.tabular(patient)) == {"age", "female", "heart_failure", "log10_bnp"}     # the cause stays hidden
    assert T.enrol(patient.seed) == patient and T.enrol(patient.seed, arm="drain").arm == "drain"
    with pytest.raises(ValueError, match="unknown treatment 'surgery'; choose one of none, diuretic, drain"):
        T.enrol(patient.seed, arm="surgery")


def test_every_arm_runs_on_the_same_noise_path_so_each_patient_has_every_true_course():
    patient = next(p for p in T.trial(50) if not p.responder)
    none, diuretic, drain = (T.true_course(patient, arm) for arm in T.ARMS)
    assert np.array_equal(none, T.true_course(patient, "none"))                      # a fixed world
    assert none[0] == diuretic[0] == drain[0] == patient.baseline_size                # day 0: before treatment
    assert drain[1] < 0.3 * patient.baseline_size < none[1]                          # the drain empties at once
    assert np.corrcoef(np.diff(none), np.diff(diuretic))[0, 1] > 0.9                  # one Brownian path, two arms
    assert all(0.0 <= c.min() and c.max() <= 1.0 for c in (none, diuretic, drain))
    assert T.sizes_at(patient, "none", [0.0, T.HORIZON_DAYS]).tolist() == [none[0], none[-1]]


def test_a_diuretic_clears_cardiac_effusions_and_barely_touches_the_others():
    patients = T.trial(200)
    effect = np.array([T.sizes_at(p, "diuretic", [14.0])[0] - T.sizes_at(p, "none", [14.0])[0] for p in patients])
    responders = np.array([p.responder for p in patients])
    assert 0.2 < responders.mean() < 0.5
    assert effect[responders].mean() < -0.3 and effect[~responders].mean() > -0.1
    heart_failure = np.array([p.heart_failure for p in patients])
    assert responders[heart_failure].mean() > 0.8 > 0.2 > responders[~heart_failure].mean()   # findable, not exactly


def test_the_records_hold_one_row_per_visit_under_the_arm_given():
    patients = T.trial(5)
    rows = T.observations(patients)
    assert len(rows) == sum(len(p.visits) for p in patients)
    assert {r["arm"] for r in rows if r["patient"] == patients[0].seed} == {patients[0].arm}
    truth = T.sizes_at(patients[0], patients[0].arm, patients[0].visits)
    recorded = [r["effusion_size"] for r in rows if r["patient"] == patients[0].seed]
    assert np.abs(np.array(recorded) - truth).max() < 5 * T.MEASUREMENT_NOISE


def test_the_drain_is_drawn_on_the_effusions_side_while_it_is_in_place_and_only_under_the_drain():
    from medviz.phantoms import get_domain

    cxr = get_domain("cxr")
    patient = T.enrol(T.TRIAL_FIRST_SEED + 3)
    for arm, day, drawn in (("drain", 0.0, False), ("drain", 3.0, True), ("drain", 7.0, False),
                            ("diuretic", 3.0, False)):
        factors = T.factors_at(patient, arm, day)
        assert (factors.get("chest_drain") == patient.factors["effusion"]) is drawn
        rendering = cxr.render(factors, patient.seed, 128)
        assert ("chest_drain" in rendering.supports) is drawn
    supports = cxr.render(T.factors_at(patient, "drain", 3.0), patient.seed, 128).supports["chest_drain"]
    columns = np.nonzero(supports.any(0))[0]
    image_side = +1 if patient.factors["effusion"] == "left" else -1       # the patient's left is the image's right
    assert np.sign(columns.mean() - 63.5) == image_side and supports.sum() > 100
