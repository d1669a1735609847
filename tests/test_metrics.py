import math

import numpy as np
from PIL import Image, ImageDraw

from medviz.metrics import thin_line_shapes

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
