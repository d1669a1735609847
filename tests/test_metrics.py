import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from medviz.metrics import thin_line_shapes, tone_spread

SKIN, LINE = (205, 160, 130), (40, 30, 25)


def _canvas():
    image = Image.new("RGB", (128, 128), SKIN)
    return image, ImageDraw.Draw(image)


def _straight_shafts(seed):
    """A few long straight dark lines that cross, like the phantoms' hair."""
    rng = np.random.default_rng(seed)
    image, draw = _canvas()
    for _ in range(6):
        angle = rng.uniform(0, math.pi)
        x, y = rng.uniform(20, 108, 2)
        dx, dy = 90 * math.cos(angle), 90 * math.sin(angle)
        draw.line([(x - dx, y - dy), (x + dx, y + dy)], fill=LINE, width=1)
    return np.asarray(image)


def _crack_net(seed):
    """Voronoi cell borders: a net of short lines meeting three at a time, like the crack glaze."""
    rng = np.random.default_rng(seed)
    seeds = rng.uniform(0, 128, (40, 2))
    y, x = np.mgrid[:128, :128]
    nearest = np.argmin((x[..., None] - seeds[:, 0]) ** 2 + (y[..., None] - seeds[:, 1]) ** 2, axis=-1)
    border = np.zeros((128, 128), bool)
    border[:, :-1] |= nearest[:, :-1] != nearest[:, 1:]
    border[:-1, :] |= nearest[:-1, :] != nearest[1:, :]
    image = np.empty((128, 128, 3), np.uint8)
    image[:] = SKIN
    image[border] = LINE
    return image


def _wavy_lines(seed):
    rng = np.random.default_rng(seed)
    image, draw = _canvas()
    for row in (30, 64, 98):
        phase = rng.uniform(0, 2 * math.pi)
        points = [(x, row + 12 * math.sin(x / 6 + phase)) for x in range(0, 128, 2)]
        draw.line(points, fill=LINE, width=1)
    return np.asarray(image)


def test_crack_nets_have_more_junctions_and_shorter_segments_than_crossing_shafts():
    shafts = thin_line_shapes(np.stack([_straight_shafts(s) for s in range(8)]))
    cracks = thin_line_shapes(np.stack([_crack_net(s) for s in range(8)]))
    assert shafts["junctions_per_100px"] < 0.5 * cracks["junctions_per_100px"]
    assert shafts["segment_px"] > 1.5 * cracks["segment_px"]
    assert shafts["straightness"] > 0.9 and cracks["straightness"] > 0.9       # Voronoi borders are straight too
    assert 400 < shafts["line_px"] < 128 * 12                                   # ~6 shafts across the image


def test_straightness_falls_for_curving_lines():
    straight = thin_line_shapes(np.stack([_straight_shafts(s) for s in range(4)]))
    wavy = thin_line_shapes(np.stack([_wavy_lines(s) for s in range(4)]))
    assert wavy["straightness"] < straight["straightness"] - 0.1


def test_an_image_without_lines_has_no_line_statistics():
    blank = np.full((2, 64, 64, 3), 180, np.uint8)
    shapes = thin_line_shapes(blank)
    assert shapes["line_px"] == 0
    assert all(math.isnan(shapes[k]) for k in ("junctions_per_100px", "segment_px", "straightness"))
    # A broad dark blob (a nevus) is not a line: the black-hat only keeps what is thinner than its square.
    nevus, draw = _canvas()
    draw.ellipse([34, 34, 94, 94], fill=LINE)
    assert thin_line_shapes(np.asarray(nevus)[None])["line_px"] < 20


def test_bright_lines_are_measured_as_dark_ones_are_and_only_when_asked():
    shafts = np.stack([_straight_shafts(s) for s in range(4)])
    catheters = 255 - shafts                            # the same lines, bright on a dark ground (an X-ray)
    dark, bright = thin_line_shapes(shafts), thin_line_shapes(catheters, bright=True)
    assert dark == bright and dark["line_px"] > 400
    assert thin_line_shapes(catheters)["line_px"] < 0.25 * dark["line_px"]   # dark lines asked: crossings only


def test_a_background_leaves_out_the_scene_lines_and_keeps_the_structure_drawn_over_them():
    textures = np.stack([255 - _crack_net(s) for s in range(4)])        # a bright net, like lung texture on an X-ray
    catheters = 255 - np.stack([_straight_shafts(s) for s in range(4)])
    scenes = np.maximum(textures, catheters)                             # bright catheters drawn over the texture
    alone = thin_line_shapes(catheters, bright=True)
    mixed = thin_line_shapes(scenes, bright=True)
    separated = thin_line_shapes(scenes, bright=True, background=textures)
    assert mixed["junctions_per_100px"] > 2 * alone["junctions_per_100px"]     # the net dominates without a background
    # The catheters' own shapes come back, less what the grown background cuts where they cross it.
    assert 0.4 * alone["line_px"] < separated["line_px"] < alone["line_px"]
    assert separated["junctions_per_100px"] < 0.5 * mixed["junctions_per_100px"]
    assert separated["straightness"] > 0.9
    # A background of the same scene removes everything; one of another shape is refused.
    assert thin_line_shapes(scenes, bright=True, background=scenes)["line_px"] == 0
    with pytest.raises(ValueError, match="background images must match the images"):
        thin_line_shapes(scenes, background=textures[:2])


def test_ece_is_zero_when_confidence_matches_accuracy_and_the_gap_when_it_does_not():
    from medviz.metrics import expected_calibration_error, reliability_bins

    labels = np.array([1] * 8 + [0] * 2)
    assert expected_calibration_error(labels, np.full(10, 0.8)) == pytest.approx(0.0)
    assert expected_calibration_error(labels, np.full(10, 0.99)) == pytest.approx(0.19)
    # two bins: confident and right (0.95, all positive), unsure and half right (0.55 -> 50%)
    p = np.array([0.95] * 6 + [0.55] * 4)
    truth = np.array([1] * 6 + [1, 0, 1, 0])
    assert expected_calibration_error(truth, p) == pytest.approx(0.6 * 0.05 + 0.4 * 0.05)
    points = reliability_bins(truth, p)
    assert [(b["n"], b["accuracy"]) for b in points] == [(4, 0.5), (6, 1.0)]


def test_nll_entropy_and_selective_accuracy():
    from medviz.metrics import binary_entropy, negative_log_likelihood, selective_accuracy

    assert negative_log_likelihood(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(np.log(2))
    assert negative_log_likelihood(np.array([1]), np.array([0.0])) == pytest.approx(-np.log(1e-7))
    np.testing.assert_allclose(binary_entropy(np.array([0.5, 0.0, 1.0])), [1.0, 0.0, 0.0], atol=1e-5)
    correct = np.array([True, True, False, True, False])
    uncertainty = np.array([0.1, 0.2, 0.9, 0.3, 0.8])                    # the wrong ones are the least sure
    assert selective_accuracy(correct, uncertainty, 0.6) == 1.0 and selective_accuracy(correct, uncertainty, 1.0) == 0.6
    assert selective_accuracy(correct, -uncertainty, 0.4) == 0.0


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_more_images():
    from medviz.metrics import bootstrap_interval, roc_auc

    rng = np.random.default_rng(0)
    small, large = rng.random(40) < 0.7, rng.random(4000) < 0.7
    low, high = bootstrap_interval(lambda c: float(c.mean()), (small,), 500, seed=1)
    assert low <= small.mean() <= high
    wide = high - low
    low, high = bootstrap_interval(lambda c: float(c.mean()), (large,), 500, seed=1)
    assert high - low < wide / 5
    one_class = np.ones(5, bool)                                          # AUROC undefined in every resample
    assert all(np.isnan(bootstrap_interval(roc_auc, (one_class, np.arange(5.0)), 50)))


def test_tone_spread_tells_samples_that_crowd_at_the_mean_from_data_that_spans_the_tones():
    tones = np.linspace(60, 200, 11)                      # dark to fair skin, one flat image each
    data = np.stack([np.full((8, 8, 3), t, np.uint8) for t in tones])
    crowded = np.stack([np.full((8, 8, 3), t, np.uint8) for t in np.linspace(135, 175, 11)])
    spread, narrow = tone_spread(data), tone_spread(crowded)
    assert spread["p10"] == pytest.approx(74, abs=1) and spread["p90"] == pytest.approx(186, abs=1)
    assert spread["p50"] == pytest.approx(130, abs=1)
    assert narrow["p90"] - narrow["p10"] < 0.3 * (spread["p90"] - spread["p10"])
    assert all(math.isnan(v) for v in tone_spread(np.zeros((0, 8, 8, 3), np.uint8)).values())
