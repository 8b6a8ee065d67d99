"""Particle shapes: every dataset class renders with the requested size, aspect and
orientation; the scanline fill agrees with scikit-image; randomness follows the rng."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.draw import polygon as sk_polygon

from nanoforge.tem.measure import particle_features
from nanoforge.tem.shapes import (
    DEFAULT_ASPECT,
    fill_polygon,
    particle_outline,
    render_particle,
)
from nanoforge.vocabulary import SHAPE_CLASSES


def test_every_class_has_geometry():
    assert set(DEFAULT_ASPECT) == set(SHAPE_CLASSES)
    with pytest.raises(ValueError, match="unknown particle shape 'pentagon'"):
        render_particle("pentagon", 20)
    # any spelling the vocabulary accepts draws the class
    rng = np.random.default_rng(3)
    assert np.array_equal(render_particle("Four-pointed star", 30, rng=rng),
                          render_particle("four_pointed_star", 30, rng=np.random.default_rng(3)))


@pytest.mark.parametrize("shape", SHAPE_CLASSES)
@pytest.mark.parametrize("size", [12.0, 40.0, 100.0])
def test_area_matches_equivalent_diameter(shape, size):
    m = render_particle(shape, size, rotation_rad=0.37, rng=np.random.default_rng(1))
    expected = math.pi * size**2 / 4
    tol = 0.06 if size < 20 else 0.02
    assert abs(m.sum() - expected) / expected < tol
    # centred: the centroid is at the array centre
    rr, cc = np.nonzero(m)
    c = (m.shape[0] - 1) / 2
    assert abs(rr.mean() - c) < 0.05 * size + 0.5 and abs(cc.mean() - c) < 0.05 * size + 0.5
    # padded: nothing touches the array edge
    assert not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())


@pytest.mark.parametrize("shape,aspect", [("rod", 4.0), ("rectangle", 2.0), ("rhombus", 1.8), ("sphere", 1.5)])
def test_aspect_ratio_is_the_feret_ratio(shape, aspect):
    m = render_particle(shape, 60, aspect=aspect, rotation_rad=0.0)
    f = particle_features(m)
    if shape in ("rhombus", "rectangle"):  # length/width (or diagonals) along x and y
        assert abs(m.any(axis=0).sum() / m.any(axis=1).sum() - aspect) < 0.1
    else:
        assert abs(f["feret_max_px"] / f["feret_min_px"] - aspect) / aspect < 0.08


def test_rotation_turns_the_particle():
    a = render_particle("rod", 40, rotation_rad=0.0)
    b = render_particle("rod", 40, rotation_rad=math.pi / 2)
    assert a.any(axis=0).sum() > 2 * a.any(axis=1).sum()  # long along x
    assert b.any(axis=1).sum() > 2 * b.any(axis=0).sum()  # long along y
    # a quarter turn of a square is the same square
    s0, s90 = render_particle("cube", 30, rotation_rad=0.0), render_particle("cube", 30, rotation_rad=math.pi / 2)
    assert (s0 != s90).sum() <= 0.01 * s0.sum()


def test_random_shapes_follow_the_rng():
    a = render_particle("irregular", 50, rng=np.random.default_rng(5))
    b = render_particle("irregular", 50, rng=np.random.default_rng(5))
    c = render_particle("irregular", 50, rng=np.random.default_rng(6))
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_stars_and_flowers_are_concave():
    for shape in ("four_pointed_star", "six_pointed_star", "flower"):
        f = particle_features(render_particle(shape, 80, rng=np.random.default_rng(0)))
        assert f["solidity"] < 0.9, shape
    for shape in ("sphere", "cube", "hexagon", "triangle"):
        assert particle_features(render_particle(shape, 80))["solidity"] > 0.97, shape


def test_defaults_and_bad_arguments():
    assert DEFAULT_ASPECT["rod"] > 2
    with pytest.raises(ValueError, match="aspect"):
        particle_outline("rod", 20, aspect=0.5)
    with pytest.raises(ValueError, match="size_px"):
        particle_outline("sphere", 0)


def test_fill_polygon_agrees_with_skimage():
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(3, 12))
        xs = rng.uniform(-5, 45, n)  # may leave the 40 x 40 image: clipping is tested too
        ys = rng.uniform(-5, 45, n)
        crop, r0, c0 = fill_polygon(xs, ys, (40, 40))
        got = np.zeros((40, 40), bool)
        got[r0 : r0 + crop.shape[0], c0 : c0 + crop.shape[1]] = crop
        ref = np.zeros((40, 40), bool)
        rr, cc = sk_polygon(ys, xs, (40, 40))
        ref[rr, cc] = True
        # skimage and the even-odd rule may disagree only on pixel centres exactly on an edge
        assert (got != ref).sum() <= 2
