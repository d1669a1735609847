"""The acquisition shifts as image transforms: shapes, ranges, seeds, and what each level does."""

import numpy as np
import pytest

from medviz import domains, shifts

LEVELS = {"exposure": 1.3, "contrast": 1.3, "illumination": 0.7, "noise": 0.05, "resolution": 3.0, "zoom": 1.3,
          "rotation": 9.0, "translation": 0.1, "jpeg": 10.0}


@pytest.mark.parametrize("shape", [(48, 40), (48, 40, 3)])
@pytest.mark.parametrize("name", sorted(shifts.TRANSFORMS))
def test_every_shift_keeps_the_contract_and_changes_the_image(name, shape):
    image = np.random.default_rng(1).random(shape).astype(np.float32)
    out = shifts.apply(image, name, LEVELS[name])
    assert out.shape == shape and out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0
    assert np.abs(out - image).mean() > 0.01


def test_every_domain_shift_has_a_transform_and_graded_levels():
    for domain in ("cxr", "skin"):
        for shift in domains.get(domain).shifts:
            assert shift.name in shifts.TRANSFORMS and len(shift.levels) >= 4
    with pytest.raises(ValueError, match="cxr has no shift 'blur'; choose one of exposure, contrast"):
        domains.get("cxr").shift("blur")
    with pytest.raises(ValueError, match="unknown shift 'blur'; choose one of exposure"):
        shifts.apply(np.zeros((8, 8), np.float32), "blur", 1.0)


def test_exposure_and_contrast_redo_the_phantoms_display_mapping():
    attenuation = np.linspace(0.0, 3.0, 64, dtype=np.float32).reshape(8, 8)
    display = 1 - np.exp(-attenuation)                          # phantoms.cxr at exposure 1, gamma 1
    np.testing.assert_allclose(shifts.apply(display, "exposure", 1.25), 1 - np.exp(-attenuation / 1.25), atol=1e-5)
    np.testing.assert_allclose(shifts.apply(display, "contrast", 1.25), display ** 1.25, atol=1e-6)


def test_geometry_moves_pixels_where_it_should():
    image = np.zeros((40, 40), np.float32)
    image[10, 20] = 1.0
    moved = shifts.apply(image, "translation", 0.1)             # 4 px right and down
    assert moved[14, 24] == 1.0 and moved.sum() == 1.0
    turned = shifts.apply(image, "rotation", 90.0)              # counter-clockwise, as np.rot90 turns it
    assert np.array_equal(turned, np.rot90(image))
    zoomed = shifts.apply(np.pad(np.ones((20, 20), np.float32), 10), "zoom", 2.0)
    assert zoomed.mean() > 0.95                                  # the central half fills the field


def test_noise_is_seeded_and_harsher_levels_lose_more():
    image = np.full((32, 32), 0.5, np.float32)
    assert np.array_equal(shifts.apply(image, "noise", 0.05, seed=3), shifts.apply(image, "noise", 0.05, seed=3))
    assert not np.array_equal(shifts.apply(image, "noise", 0.05, seed=3), shifts.apply(image, "noise", 0.05, seed=4))
    texture = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    errors = [np.abs(shifts.apply(texture, "jpeg", q) - texture).mean() for q in (50, 30, 10)]
    assert errors == sorted(errors)
    errors = [np.abs(shifts.apply(texture, "resolution", k) - texture).mean() for k in (1.5, 2, 4)]
    assert errors == sorted(errors)
