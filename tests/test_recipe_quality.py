"""The data-quality summary: counts on a hand-made table, the figure, and the two recipe
rules run by Snakemake on the real files."""

from __future__ import annotations

import json

import polars as pl
import pytest

from conftest import run_snakemake
from nanoforge import tables
from nanoforge.quality import plot_summary, summarize, write_summary
from nanoforge.recipes import RECIPES_SCHEMA, REJECTED_SCHEMA


def recipe(i, source, product, shape, flags=(), unknown=(), roles=("precursor", "ligand")):
    return {
        "recipe_id": f"{source}:{i}", "source": source, "source_row": i + 1, "source_id": None,
        "doi": None, "product": product, "injection_temp_c": 100.0, "reaction_temp_c": 200.0,
        "heating_rate_c_per_min": None, "time_min": 5.0,
        "reactants": [{"name": f"X{j}", "mmol": 1.0, "role": r} for j, r in enumerate(roles)],
        "size_nm": 5.0, "size_spread_pct": None, "shape": shape, "n_counted": None,
        "label_source": "literature", "measured_by_segmentation": None, "flags": list(flags),
        "unknown_chemicals": list(unknown),
    }


def rejected_row(i, source, reasons):
    return {"source": source, "source_row": i + 1, "source_id": None, "reason": reasons[0],
            "reasons": reasons, "message": "m", "raw": "{}"}


@pytest.fixture
def frames():
    recipes = pl.DataFrame([
        recipe(1, "a", "PbSe", "sphere", flags=["non_numeric_count"]),
        recipe(2, "a", "PbSe", "cube", flags=["non_numeric_count", "unknown_chemical"], unknown=["Goo"]),
        recipe(3, "a", "CdSe-1", "sphere", roles=("solvent",)),
        recipe(1, "b", "PbSe", "rod", flags=["missing_count"]),
    ], schema=tables.polars_schema(RECIPES_SCHEMA))
    rejected = pl.DataFrame([
        rejected_row(4, "a", ["non_numeric_size", "negative_amount"]),
        rejected_row(5, "a", ["non_numeric_size"]),
        rejected_row(2, "b", ["negative_amount"]),
        rejected_row(3, "c", ["missing_product"]),  # a source with nothing accepted
    ], schema=tables.polars_schema(REJECTED_SCHEMA))
    return recipes, rejected


def counts(summary, source, category):
    part = summary.filter((pl.col("source") == source) & (pl.col("category") == category))
    return dict(part.select("value", "count").iter_rows())


def test_summary_counts(frames):
    recipes, rejected = frames
    s = summarize(recipes, rejected)
    assert s.schema == pl.Schema({"source": pl.String, "category": pl.String, "value": pl.String, "count": pl.Int64})
    assert counts(s, "a", "rows") == {"read": 5, "accepted": 3, "rejected": 2}
    assert counts(s, "b", "rows") == {"read": 2, "accepted": 1, "rejected": 1}
    assert counts(s, "c", "rows") == {"read": 1, "accepted": 0, "rejected": 1}
    assert counts(s, "a", "product") == {"PbSe": 2, "CdSe-1": 1}
    assert counts(s, "a", "shape") == {"sphere": 2, "cube": 1}
    assert counts(s, "b", "label_source") == {"literature": 1}
    assert counts(s, "a", "rejection_reason") == {"non_numeric_size": 2}
    assert counts(s, "a", "rejection_reason_any") == {"non_numeric_size": 2, "negative_amount": 1}
    assert counts(s, "a", "flag") == {"non_numeric_count": 2, "unknown_chemical": 1}
    assert counts(s, "a", "unknown_chemical") == {"Goo": 1}
    assert counts(s, "a", "reactant_role") == {"precursor": 2, "ligand": 2, "solvent": 1}
    # sources in order of appearance, rows first, counts descending within a category
    assert list(dict.fromkeys(s["source"])) == ["a", "b", "c"]
    assert s.row(0) == ("a", "rows", "read", 5)
    prod = s.filter((pl.col("source") == "a") & (pl.col("category") == "product"))["count"].to_list()
    assert prod == sorted(prod, reverse=True)


def test_figure_is_written(frames, tmp_path):
    recipes, rejected = frames
    out = plot_summary(summarize(recipes, rejected), tmp_path / "fig" / "q.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_no_rejections_still_plots(frames, tmp_path):
    recipes, rejected = frames
    recipes.write_parquet(tmp_path / "r.parquet")
    rejected.head(0).write_parquet(tmp_path / "x.parquet")
    s = write_summary(tmp_path / "r.parquet", tmp_path / "x.parquet", tmp_path / "q.csv", tmp_path / "q.png")
    assert counts(s, "a", "rows") == {"read": 3, "accepted": 3, "rejected": 0}
    assert pl.read_csv(tmp_path / "q.csv").height == s.height
    assert (tmp_path / "q.png").stat().st_size > 20_000


def test_summary_refuses_a_table_off_schema(frames, tmp_path):
    recipes, rejected = frames
    recipes.drop("shape").write_parquet(tmp_path / "r.parquet")
    rejected.write_parquet(tmp_path / "x.parquet")
    with pytest.raises(tables.TableSchemaError, match="missing \\['shape'\\]"):
        write_summary(tmp_path / "r.parquet", tmp_path / "x.parquet", tmp_path / "q.csv", tmp_path / "q.png")


@pytest.mark.workflow
def test_workflow_builds_quality_summary(workdir):
    run_snakemake(workdir, "results/recipes/quality_summary.png")
    out = workdir / "results" / "recipes"
    recipes = pl.read_parquet(out / "recipes.parquet")
    rejected = pl.read_parquet(out / "rejected.parquet")
    tables.validate_table(recipes, RECIPES_SCHEMA)
    tables.validate_table(rejected, REJECTED_SCHEMA)
    summary = pl.read_csv(out / "quality_summary.csv")
    assert counts(summary, "raw_workbook", "rows")["read"] == 3508
    assert counts(summary, "processed_csv", "rows")["read"] == 3489
    for source in ("raw_workbook", "processed_csv"):
        rows = counts(summary, source, "rows")
        assert rows["read"] == rows["accepted"] + rows["rejected"]
        assert rows["accepted"] == recipes.filter(pl.col("source") == source).height
        assert sum(counts(summary, source, "rejection_reason").values()) == rows["rejected"]
        assert sum(counts(summary, source, "shape").values()) == rows["accepted"]
    assert (out / "quality_summary.png").read_bytes()[:4] == b"\x89PNG"
    log = (workdir / "results" / "logs" / "ingest_recipes.log").read_text()
    assert "raw_workbook (workbook" in log and "rows read" in log
    json.loads(rejected["raw"][0])
    # nothing to do on a second run
    again = run_snakemake(workdir, "results/recipes/quality_summary.png", "--dry-run")
    assert "Nothing to be done" in again.stdout + again.stderr
