"""Per-particle measurements: sizes in nm from the calibration, Feret diameters, shape
descriptors and border flags of known masks; the particles.parquet contract."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from skimage.measure import regionprops

from nanoforge import tables
from nanoforge.tem import coco
from nanoforge.tem.measure import PARTICLES_SCHEMA, feret_diameters, measure_document, particle_features
from nanoforge.tem.shapes import render_particle


def _doc(masks, shape_hw=(100, 120), key="d/img", scores=None):
    doc = coco.new_document()
    doc["images"].append(coco.image_entry(1, key, "img.png", shape_hw[1], shape_hw[0]))
    for k, m in enumerate(masks, start=1):
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        crop = m[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        doc["annotations"].append(coco.annotation_from_crop(
            crop, rows[0], cols[0], shape_hw, 1, k, score=None if scores is None else scores[k - 1]))
    return doc


def _table(nm):
    return pl.DataFrame({"image_id": ["d/img"], "nm_per_px": [nm], "dataset": ["d"], "sample_id": ["s1"]},
                        schema={"image_id": pl.Utf8, "nm_per_px": pl.Float64, "dataset": pl.Utf8, "sample_id": pl.Utf8})


def test_rectangle_and_disc_measurements():
    rect = np.zeros((100, 120), bool)
    rect[10:20, 30:70] = True  # 10 x 40 px
    disc = np.zeros((100, 120), bool)
    d = render_particle("sphere", 30)
    disc[50:50 + d.shape[0], 60:60 + d.shape[1]] = d
    edge = np.zeros((100, 120), bool)
    edge[90:100, 0:5] = True
    t = measure_document(_doc([rect, disc, edge], scores=[0.9, 0.8, 0.7]), _table(0.5), "test")
    assert t.columns[:17] == ["image_id", "particle_id", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "area_px",
                              "area_nm2", "eq_diameter_nm", "feret_max_nm", "feret_min_nm", "aspect_ratio",
                              "circularity", "solidity", "touches_border", "score", "method"]
    r = t.row(0, named=True)
    assert (r["bbox_x"], r["bbox_y"], r["bbox_w"], r["bbox_h"], r["area_px"]) == (30, 10, 40, 10, 400)
    assert r["area_nm2"] == pytest.approx(100.0)
    assert r["eq_diameter_nm"] == pytest.approx(math.sqrt(4 * 400 / math.pi) * 0.5)
    assert r["feret_min_nm"] == pytest.approx(5.0)  # 10 px wide
    assert r["feret_max_nm"] == pytest.approx(math.hypot(39, 9) * 0.5 + 0.5)
    assert r["solidity"] == pytest.approx(1.0) and not r["touches_border"] and r["score"] == 0.9
    c = t.row(1, named=True)
    assert c["eq_diameter_nm"] == pytest.approx(15.0, rel=0.02)
    assert c["feret_max_nm"] == pytest.approx(15.0, rel=0.05) and c["feret_min_nm"] == pytest.approx(15.0, rel=0.05)
    assert c["circularity"] > 0.95 and c["aspect_ratio"] < 1.1
    assert t.row(2, named=True)["touches_border"]
    # the RLE round-trips to the same mask
    assert np.array_equal(coco.decode_mask(dict(r["mask_rle"])), rect)


def test_uncalibrated_images_have_null_nm_columns():
    m = np.zeros((100, 120), bool)
    m[40:50, 40:50] = True
    t = measure_document(_doc([m]), _table(None), "test")
    assert t["area_nm2"].to_list() == [None] and t["eq_diameter_nm"].to_list() == [None]
    assert t["eq_diameter_px"].item() == pytest.approx(math.sqrt(400 / math.pi))


def test_missing_image_is_an_error_naming_it():
    m = np.zeros((100, 120), bool)
    m[1:3, 1:3] = True
    with pytest.raises(KeyError, match="image 'other/x' of the masks is not in the images table"):
        measure_document(_doc([m], key="other/x"), _table(1.0), "test")


def test_schema_and_empty_documents():
    t = measure_document(_doc([]), _table(1.0), "test")
    assert t.height == 0 and t.schema == tables.polars_schema(PARTICLES_SCHEMA)


def _particles():
    m = np.zeros((100, 120), bool)
    m[40:50, 40:50] = True
    m2 = np.zeros((100, 120), bool)
    m2[10:20, 60:65] = True
    return measure_document(_doc([m, m2]), _table(0.5), "test")


def test_writing_particles_checks_the_contract(tmp_path):
    """A particles table that breaks its schema is not written; the error names the file,
    the column and the rows."""
    out = tmp_path / "particles.parquet"
    good = _particles()
    tables.write_table(good, out, PARTICLES_SCHEMA)
    assert pl.read_parquet(out).equals(good)
    bad_cases = [
        (good.drop("feret_min_nm"), r"columns differ: missing \['feret_min_nm'\]"),
        (good.with_columns(pl.col("area_px").cast(pl.Float64)), "column area_px has dtype Float64, the schema wants Int64"),
        (good.with_columns(pl.lit(0, pl.Int64).alias("area_px")), r"area_px: 2 value\(s\) below minimum 1 \(rows 0, 1\)"),
        (good.with_columns(pl.lit(1, pl.Int64).alias("particle_id")), r"image_id, particle_id: 2 rows share a value"),
        (good.with_columns(pl.lit(float("nan")).alias("circularity")), r"circularity: 2 value\(s\) NaN"),
        (good.with_columns(pl.when(pl.col("particle_id") == 2).then(None).otherwise(pl.col("image_id"))
                           .alias("image_id")), r"image_id: 1 value\(s\) null.*\(rows 1\)"),
        (good.with_columns(pl.col("mask_rle").struct.with_fields(pl.lit("").alias("zz"))),
         "column mask_rle has dtype"),
    ]
    for k, (bad, message) in enumerate(bad_cases):
        path = tmp_path / f"bad{k}.parquet"
        with pytest.raises(tables.TableSchemaError, match=message) as err:
            tables.write_table(bad, path, PARTICLES_SCHEMA)
        assert f"not writing {path}: results/particles/<method>/particles.parquet: " in str(err.value)
        assert not path.exists()


def test_agrees_with_regionprops_on_random_shapes():
    rng = np.random.default_rng(0)
    for shape in ("triangle", "hexagon", "rod", "six_pointed_star", "irregular"):
        m = render_particle(shape, 40, rotation_rad=float(rng.uniform(0, 6)), rng=rng)
        f = particle_features(m)
        rp = regionprops(m.astype(np.uint8))[0]
        assert f["area_px"] == rp.area
        assert f["feret_max_px"] == pytest.approx(rp.feret_diameter_max, abs=1.5)
        assert f["solidity"] == pytest.approx(rp.solidity, abs=0.05)


def test_feret_of_a_segment_and_a_point():
    assert feret_diameters(np.array([[0.0, 0.0]])) == (0.0, 0.0)
    assert feret_diameters(np.array([[0.0, 0.0], [3.0, 4.0]])) == (5.0, 0.0)
    fmax, fmin = feret_diameters(np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 2.0], [0.0, 2.0]]))
    assert fmax == pytest.approx(math.hypot(4, 2)) and fmin == pytest.approx(2.0)
