"""Sample labels: size, size spread and shape shares per sample and per recipe (border
particles excluded), sample -> recipe matching, and the merge into the recipe table."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from nanoforge import tables
from nanoforge.shapes import labels as L
from nanoforge.tables import TableSchemaError
from nanoforge.vocabulary import SHAPE_CLASSES


def _write(df: pl.DataFrame, path):
    df.write_parquet(path)
    return path


@pytest.fixture
def inputs(tmp_path):
    # sample A (images a1, a2): 5 cubes of 10, 12, 14, 16, 18 nm, 1 noise particle of 20 nm,
    #   a 99 nm border particle and a 50 nm low-score particle (both excluded)
    # sample B (image b1): 3 spheres of 5 nm and 1 rod of 8 nm
    # sample C (image c1): uncalibrated (no size); B is called src:3, like a recipe id
    parts = [
        ("a1", 1, 10.0, False, 0.9, "cube"), ("a1", 2, 12.0, False, 0.9, "cube"), ("a2", 3, 14.0, False, 0.9, "cube"),
        ("a2", 4, 16.0, False, 0.9, "cube"), ("a2", 5, 18.0, False, 0.9, "cube"), ("a2", 6, 20.0, False, 0.9, "noise"),
        ("a1", 7, 99.0, True, 0.9, "sphere"), ("a1", 8, 50.0, False, 0.1, "sphere"),
        ("b1", 1, 5.0, False, 1.0, "sphere"), ("b1", 2, 5.0, False, 1.0, "sphere"), ("b1", 3, 5.0, False, 1.0, "sphere"),
        ("b1", 4, 8.0, False, 1.0, "rod"),
        ("c1", 1, None, False, 1.0, "triangle"), ("c1", 2, None, False, 1.0, "triangle"),
        ("synthetic_holdout/0", 1, 3.0, False, 1.0, None),  # not an ingested TEM image: left out
    ]
    p = pl.DataFrame(parts, schema={"image_id": pl.String, "particle_id": pl.Int64, "eq_diameter_nm": pl.Float64,
                                    "touches_border": pl.Boolean, "score": pl.Float64, "shape": pl.String},
                     orient="row")
    particles = _write(p.drop("shape"), tmp_path / "particles.parquet")
    shapes = _write(p.filter(pl.col("shape").is_not_null()).select("image_id", "particle_id", "shape"),
                    tmp_path / "shapes.parquet")
    images = _write(pl.DataFrame({"image_id": ["a1", "a2", "b1", "c1"], "sample_id": ["A", "A", "src:3", "C"]}),
                    tmp_path / "images.parquet")
    recipes = _write(recipe_table(["src:1", "src:2", "src:3", "src:4"]), tmp_path / "recipes.parquet")
    return {"particles": particles, "shapes": shapes, "images": images, "recipes": recipes, "dir": tmp_path}


def recipe_table(ids):
    schema = tables.load_table_schema("recipes")
    rows = []
    for i, rid in enumerate(ids):
        rows.append({
            "recipe_id": rid, "source": "src", "source_row": i + 2, "source_id": None, "doi": None, "product": "PbSe",
            "injection_temp_c": 150.0, "reaction_temp_c": 100.0 + 20 * i, "heating_rate_c_per_min": None,
            "time_min": 5.0, "reactants": [{"name": "PbO", "mmol": 1.0, "role": "precursor"}], "size_nm": 7.0,
            "size_spread_pct": None if i == 1 else 9.0, "shape": "sphere", "n_counted": None if i == 1 else 300,
            "label_source": "literature", "measured_by_segmentation": None, "flags": [], "unknown_chemicals": [],
        })
    df = pl.DataFrame(rows, schema=tables.polars_schema(schema))
    tables.validate_table(df, schema)
    return df


def test_sample_label_math(inputs):
    samples, per_recipe = L.build_labels(inputs["particles"], inputs["shapes"], inputs["images"], inputs["recipes"],
                                         min_score=0.5, min_particles=3)
    a = samples.filter(pl.col("sample_id") == "A").row(0, named=True)
    sizes = np.array([10, 12, 14, 16, 18, 20.0])
    assert (a["n_images"], a["n_particles_total"], a["n_border"], a["n_low_score"]) == (2, 8, 1, 1)
    assert (a["n_particles"], a["n_sized"], a["n_named"]) == (6, 6, 5)
    assert a["size_nm"] == pytest.approx(sizes.mean())
    assert a["size_std_nm"] == pytest.approx(sizes.std(ddof=1))
    assert a["size_spread_pct"] == pytest.approx(sizes.std(ddof=1) / sizes.mean() * 100)
    assert a["shape"] == "cube" and a["shape_share"] == 1.0 and a["share_cube"] == 1.0
    assert a["share_sphere"] == 0.0  # the border and low-score spheres do not count
    assert a["noise_share"] == pytest.approx(1 / 6)
    assert a["usable"] and a["reason"] is None
    b = samples.filter(pl.col("sample_id") == "src:3").row(0, named=True)
    assert b["size_nm"] == pytest.approx(23 / 4) and b["shape"] == "sphere"
    assert b["share_sphere"] == pytest.approx(0.75) and b["share_rod"] == pytest.approx(0.25)
    assert sum(b[c] for c in L.SHARE_COLUMNS) == pytest.approx(1.0)
    c = samples.filter(pl.col("sample_id") == "C").row(0, named=True)
    assert c["size_nm"] is None and not c["usable"] and "calibrated" in c["reason"]
    assert c["shape"] == "triangle"
    # sample src:3 links to recipe src:3 by its id; A and C to nothing
    assert dict(zip(samples["sample_id"], samples["recipe_match"])) == {"A": "none", "src:3": "sample_id", "C": "none"}
    assert per_recipe["recipe_id"].to_list() == ["src:3"] and per_recipe["sample_ids"].to_list() == [["src:3"]]
    tables.validate_table(samples, L.sample_labels_schema())
    tables.validate_table(per_recipe, L.recipe_tem_labels_schema())


def test_min_particles_and_ties(inputs):
    samples, _ = L.build_labels(inputs["particles"], inputs["shapes"], inputs["images"], inputs["recipes"],
                                min_particles=5)
    b = samples.filter(pl.col("sample_id") == "src:3").row(0, named=True)
    assert not b["usable"] and "only 4 sized particles" in b["reason"]
    df = pl.DataFrame({"image_id": ["x"] * 2, "sample_id": ["S"] * 2, "eq_diameter_nm": [1.0, 2.0],
                       "touches_border": [False, False], "score": [1.0, 1.0], "shape": ["rod", "cube"]})
    assert L.aggregate(df, "sample_id", min_particles=1)["shape"].to_list() == ["cube"]  # tie: alphabetical


def test_sample_recipe_table_pools_samples(inputs):
    csv = inputs["dir"] / "links.csv"
    csv.write_text("sample_id,recipe_id\nA,src:2\nsrc:3,src:2\nC,nope:9\n")
    samples, per_recipe = L.build_labels(inputs["particles"], inputs["shapes"], inputs["images"], inputs["recipes"],
                                         csv, min_score=0.5, min_particles=3)
    assert dict(zip(samples["sample_id"], samples["recipe_match"])) == {"A": "table", "src:3": "table",
                                                                        "C": "unknown_recipe"}
    r = per_recipe.row(0, named=True)
    assert r["recipe_id"] == "src:2" and r["sample_ids"] == ["A", "src:3"]
    pooled = np.array([10, 12, 14, 16, 18, 20, 5, 5, 5, 8.0])
    assert r["n_particles"] == 10 and r["size_nm"] == pytest.approx(pooled.mean())
    assert r["size_spread_pct"] == pytest.approx(pooled.std(ddof=1) / pooled.mean() * 100)
    assert r["shape"] == "cube" and r["share_cube"] == pytest.approx(5 / 9)


def test_bad_sample_recipe_table_is_named(inputs):
    csv = inputs["dir"] / "links.csv"
    csv.write_text("sample_id,recipe_id\nA,src:2\nA,src:1\n")
    with pytest.raises(L.LabelError, match="listed twice"):
        L.read_sample_recipes(csv)
    csv.write_text("sample,recipe\nA,src:2\n")
    with pytest.raises(L.LabelError, match="missing column"):
        L.read_sample_recipes(csv)
    csv.write_text("sample_id,recipe_id\nA,\n")
    with pytest.raises(L.LabelError, match="row"):
        L.read_sample_recipes(csv)


def test_merge_precedence(inputs):
    csv = inputs["dir"] / "links.csv"
    csv.write_text("sample_id,recipe_id\nA,src:2\n")
    _, per_recipe = L.build_labels(inputs["particles"], inputs["shapes"], inputs["images"], inputs["recipes"],
                                   csv, min_score=0.5, min_particles=3)
    recipes = pl.read_parquet(inputs["recipes"])
    tem = L.merge_labels(recipes, per_recipe, "tem")
    tables.validate_table(tem, L.recipes_labelled_schema())
    assert tem.height == recipes.height
    by = {r["recipe_id"]: r for r in tem.iter_rows(named=True)}
    a = by["src:2"]  # from sample A
    assert a["label_source"] == "tem" and a["shape"] == "cube" and a["size_nm"] == pytest.approx(15.0)
    assert a["n_counted"] == 6 and a["literature_size_nm"] == 7.0 and a["literature_shape"] == "sphere"
    assert a["literature_n_counted"] is None and a["tem_sample_ids"] == ["A"]
    assert sorted(a["label_fields_from_tem"]) == ["n_counted", "shape", "size_nm", "size_spread_pct"]
    b = by["src:3"]  # sample src:3 links by its id: 4 particles, min_particles 3 -> used
    assert b["label_source"] == "tem" and b["shape"] == "sphere"
    for rid in ("src:1", "src:4"):
        assert by[rid]["label_source"] == "literature" and by[rid]["tem_size_nm"] is None
        assert by[rid]["size_nm"] == 7.0 and by[rid]["label_fields_from_tem"] == []
    lit = L.merge_labels(recipes, per_recipe, "literature")
    a = lit.filter(pl.col("recipe_id") == "src:2").row(0, named=True)
    assert a["label_source"] == "literature" and a["size_nm"] == 7.0 and a["shape"] == "sphere"
    assert a["n_counted"] == 6 and a["size_spread_pct"] == pytest.approx(a["tem_size_spread_pct"])  # nulls filled
    assert sorted(a["label_fields_from_tem"]) == ["n_counted", "size_spread_pct"]
    b = lit.filter(pl.col("recipe_id") == "src:3").row(0, named=True)
    assert b["size_spread_pct"] == 9.0 and b["n_counted"] == 300 and b["label_fields_from_tem"] == []
    with pytest.raises(L.LabelError, match="precedence"):
        L.merge_labels(recipes, per_recipe, "both")


def test_tem_and_literature_shapes_share_one_spelling(inputs):
    per = pl.DataFrame({"recipe_id": ["src:3"], "usable": [True], "size_nm": [5.0], "size_spread_pct": [1.0],
                        "shape": ["four_pointed_star"], "n_particles": [40], "sample_ids": [["src:3"]]})
    merged = L.merge_labels(pl.read_parquet(inputs["recipes"]), per, "tem")
    row = merged.filter(pl.col("recipe_id") == "src:3").row(0, named=True)
    assert row["shape"] == row["tem_shape"] == "four_pointed_star"
    assert set(merged["literature_shape"]) <= set(SHAPE_CLASSES)
    bad = per.with_columns(pl.lit("four-pointed star").alias("shape"))  # a spelling is no class
    with pytest.raises(TableSchemaError, match="tem_shape: 1 value"):
        tables.validate_table(L.merge_labels(pl.read_parquet(inputs["recipes"]), bad, "tem"),
                              L.recipes_labelled_schema())


def test_image_without_sample_is_an_error(inputs):
    _write(pl.DataFrame({"image_id": ["a1", "a2", "b1", "c1"], "sample_id": ["A", None, "src:3", "C"]}),
           inputs["images"])
    with pytest.raises(L.LabelError, match="a2"):
        L.build_labels(inputs["particles"], inputs["shapes"], inputs["images"], inputs["recipes"])
