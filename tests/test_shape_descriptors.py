"""Shape descriptors: invariance to position, rotation, scale and mirroring; known values;
RLE decoding against the reference decoder; bad masks kept with their reason; streaming."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import polars as pl
import pytest

from nanoforge.shapes import descriptors as D
from nanoforge.tem.coco import decode_crop, encode_crop
from nanoforge.tem.shapes import render_particle

ROBUST = ["circularity", "solidity", "convexity", "rectangularity", "radial_cv", "hu_1",
          *[c for c in D.FD_COLUMNS]]


def _variants(shape, rng_seed=None):
    """The same particle rotated, scaled, shifted by a sub-pixel offset and mirrored."""
    def rng():
        return None if rng_seed is None else np.random.default_rng(rng_seed)
    return [
        render_particle(shape, 40, None, 0.0, rng()),
        render_particle(shape, 40, None, 0.7, rng()),
        render_particle(shape, 64, None, 2.1, rng(), offset=(0.3, -0.2)),
        np.fliplr(render_particle(shape, 50, None, 1.0, rng())),
    ]


@pytest.mark.parametrize("shape", ["sphere", "cube", "triangle", "hexagon", "rod", "six_pointed_star", "flower"])
def test_descriptors_invariant_to_rotation_scale_translation_mirror(shape):
    d = D.describe_masks(_variants(shape, rng_seed=3))
    assert d["status"].to_list() == ["ok"] * 4
    a = d.select(ROBUST).to_numpy()
    dev = np.abs(a - a[0]).max(axis=0)
    bad = {c: round(float(x), 3) for c, x in zip(ROBUST, dev) if x > 0.035}
    assert not bad, f"{shape}: descriptors change by more than 0.035: {bad}"
    ar = d["aspect_ratio"].to_numpy()
    assert np.ptp(ar) / ar.mean() < 0.1
    assert d["corner_count"].n_unique() == 1 and d["concave_count"].n_unique() == 1


def test_translation_in_the_image_changes_nothing():
    m = render_particle("triangle", 30, None, 0.4)
    rles = [encode_crop(m, r, c, (300, 400)) for r, c in [(0, 0), (17, 233), (300 - m.shape[0], 400 - m.shape[1])]]
    d = D.describe_rles(rles).drop("status")
    for row in d.iter_rows():
        assert row == d.row(0)


def test_hu_invariants_of_an_asymmetric_shape():
    d = D.describe_masks(_variants("irregular", rng_seed=0)).select(D.HU_COLUMNS).to_numpy()
    assert np.abs(d - d[0]).max() < 0.5  # log10 units
    assert d[0, 0] == pytest.approx(-math.log10(0.16), abs=0.05)  # hu_1 near a disc's 1/(2 pi)


def test_polygon_moments_match_opencv():
    rng = np.random.default_rng(1)
    t = np.sort(rng.uniform(0, 2 * np.pi, 40))
    r = 20 + 6 * np.sin(3 * t) + rng.uniform(-1, 1, 40)
    x, y = 50 + r * np.cos(t), 50 + r * np.sin(t)
    out = np.zeros((1, 16))
    D._outline_kernel(x[None, :], y[None, :], D.CORNER_WINDOW, D.CORNER_MIN_DEG, D.CONCAVE_MIN_DEG, out)
    m = cv2.moments(np.stack([x, y], 1).astype(np.float32))
    assert out[0, 0] == pytest.approx(m["m00"], rel=1e-4)
    for k, name in zip(range(6, 13), ["mu20", "mu11", "mu02", "mu30", "mu21", "mu12", "mu03"]):
        assert out[0, k] == pytest.approx(m[name], rel=1e-3, abs=1e-3 * abs(m["mu20"]))
    hu = D.hu_invariants(np.array([m["m00"]]), tuple(np.array([out[0, k]]) for k in range(6, 13)))[0]
    assert hu == pytest.approx(cv2.HuMoments(m).ravel(), rel=1e-3, abs=1e-12)
    hull = cv2.convexHull(np.stack([x, y], 1).astype(np.float32))
    assert out[0, 2] == pytest.approx(cv2.contourArea(hull), rel=1e-4)


def test_known_values_disc_square_and_polygons():
    d = D.describe_masks([
        render_particle("sphere", 60), render_particle("sphere", 24),
        render_particle("cube", 50, rounding=0.0), render_particle("cube", 50, rounding=0.0, rotation_rad=0.5),
        render_particle("triangle", 50, rounding=0.0), render_particle("hexagon", 50, rounding=0.0),
        render_particle("rod", 30, 4.0),
    ])
    disc, small_disc, square, square_rot, tri, hexa, rod = d.iter_rows(named=True)
    assert disc["circularity"] == pytest.approx(1.0, abs=0.02)
    assert small_disc["circularity"] == pytest.approx(1.0, abs=0.04)
    assert disc["solidity"] == pytest.approx(1.0, abs=0.01)
    assert disc["corner_count"] == 0 and disc["aspect_ratio"] < 1.05 and disc["radial_cv"] < 0.02
    for sq in (square, square_rot):
        assert sq["corner_count"] == 4 and sq["concave_count"] == 0
        assert sq["circularity"] == pytest.approx(math.pi / 4, abs=0.06)
        assert sq["rectangularity"] > 0.95 and sq["aspect_ratio"] < 1.05
        assert sq["fd_m3"] > 0.08  # a square's energy is in c_-3
    assert tri["corner_count"] == 3 and tri["fd_m2"] > 0.15
    assert tri["rectangularity"] == pytest.approx(0.5, abs=0.05)
    assert hexa["corner_count"] == 6 and hexa["fd_m5"] > 0.02
    assert rod["aspect_ratio"] == pytest.approx(4.0, rel=0.12) and rod["eccentricity"] > 0.9


def test_star_has_concave_corners():
    d = D.describe_masks([render_particle("four_pointed_star", 50), render_particle("six_pointed_star", 50)])
    assert d["corner_count"].to_list() == [4, 6]
    assert d["concave_count"].to_list() == [4, 6]
    assert (d["solidity"] < 0.8).all()


def test_numba_decoder_matches_reference():
    rng = np.random.default_rng(0)
    rles, ref = [], []
    for i in range(60):
        m = render_particle(["rod", "flower", "irregular"][i % 3], rng.uniform(8, 40), None, rng.uniform(0, 6), rng)
        h, w = 200, 150
        r0 = int(rng.integers(0, h - m.shape[0]))
        c0 = int(rng.integers(0, w - m.shape[1]))
        rles.append(encode_crop(m, r0, c0, (h, w)))
        ref.append(decode_crop(rles[-1]))
    # a mask spanning several full columns (runs wrap from one column to the next)
    block = np.zeros((50, 40), bool)
    block[:, 5:9] = True
    rles.append(encode_crop(block, 0, 0, (50, 40)))
    ref.append(decode_crop(rles[-1]))
    crops, r0, c0, area, status = D.decode_crops(rles, pad=0)
    assert (status == "ok").all()
    for crop, a, b, n, (rc, ra, rb) in zip(crops, r0, c0, area, ref):
        assert (crop.astype(bool) == rc).all() and (a, b) == (ra, rb) and n == rc.sum()
    # the polars struct column path gives the same crops as the list-of-dicts path
    series = pl.Series("mask_rle", rles)
    crops2, *_ = D.decode_crops(series, pad=1)
    for c1, c2 in zip(crops, crops2):
        assert (np.pad(c1, 1) == c2).all()


def test_bad_masks_keep_their_row_and_reason():
    good = encode_crop(render_particle("cube", 20), 5, 5, (60, 60))
    bad_sum = {"size": [60, 60], "counts": good["counts"][:-2]}  # counts no longer sum to H*W
    empty = {"size": [10, 10], "counts": [100]}
    tiny = encode_crop(np.ones((2, 2), bool), 3, 3, (10, 10))
    values = [good, bad_sum, empty, tiny, "not json", None, json.dumps(good)]
    d = D.describe_rles(values)
    assert d.height == len(values)
    assert d["status"].to_list() == ["ok", "bad_rle", "empty_mask", "too_small", "bad_rle", "bad_rle", "ok"]
    assert d.row(0) == d.row(6)
    assert d["circularity"][1] is None or math.isnan(d["circularity"][1])


def _table(n, path):
    rng = np.random.default_rng(5)
    rows = []
    for i in range(n):
        m = render_particle(["sphere", "cube", "rod", "triangle"][i % 4], rng.uniform(15, 30), None, rng.uniform(0, 6), rng)
        rows.append({"image_id": f"img{i % 3}", "particle_id": i, "mask_rle": encode_crop(m, 10, 10, (100, 100))})
    pl.DataFrame(rows).write_parquet(path)
    return rows


def test_streaming_extraction_in_batches_and_threads(tmp_path):
    rows = _table(50, tmp_path / "p.parquet")
    s1 = D.extract_descriptors(tmp_path / "p.parquet", tmp_path / "d1.parquet", batch_size=7, workers=1)
    s2 = D.extract_descriptors(tmp_path / "p.parquet", tmp_path / "d2.parquet", batch_size=11, workers=2)
    assert s1 == s2 == {"rows": 50, "skipped": 0, "status": {"ok": 50}}
    d1, d2 = pl.read_parquet(tmp_path / "d1.parquet"), pl.read_parquet(tmp_path / "d2.parquet")
    assert d1.equals(d2)
    assert d1.columns == D.OUTPUT_COLUMNS
    assert d1["particle_id"].to_list() == [r["particle_id"] for r in rows]
    direct = D.describe_rles([r["mask_rle"] for r in rows])
    assert d1.drop("image_id", "particle_id").equals(direct)
    s3 = D.extract_descriptors(tmp_path / "p.parquet", tmp_path / "d3.parquet", image_ids=["img1"])
    assert s3["rows"] == 17 and s3["skipped"] == 33
    assert set(pl.read_parquet(tmp_path / "d3.parquet")["image_id"]) == {"img1"}


def test_missing_column_is_named(tmp_path):
    pl.DataFrame({"image_id": ["a"], "particle_id": [1]}).write_parquet(tmp_path / "p.parquet")
    with pytest.raises(D.DescriptorError, match="mask_rle"):
        D.extract_descriptors(tmp_path / "p.parquet", tmp_path / "d.parquet")
