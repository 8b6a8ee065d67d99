"""Workflow behaviour users rely on: rebuilding one target after a parameter change runs only
what that target needs, a second run with nothing changed does nothing, and the Snakemake
report holds the data-quality figure with its caption."""

from __future__ import annotations

import re

import polars as pl
import pytest
import yaml

from conftest import run_snakemake

pytestmark = pytest.mark.workflow

QUALITY = "results/recipes/quality_summary.png"
RECIPES = "results/recipes/recipes.parquet"
REJECTED = "results/recipes/rejected.parquet"


def planned_jobs(workdir, *targets) -> dict[str, int]:
    """Rule -> job count that a dry run of ``targets`` plans."""
    proc = run_snakemake(workdir, *targets, "--dry-run", "--quiet", "rules")
    jobs = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        m = re.fullmatch(r"\s*([A-Za-z_]\w*)\s+(\d+)\s*", line)
        if m and m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


def test_one_target_after_one_parameter_change(workdir):
    run_snakemake(workdir, QUALITY)
    assert planned_jobs(workdir, QUALITY) == {}, "nothing changed, nothing to do"
    before = pl.read_parquet(workdir / REJECTED).height
    quality_mtime = (workdir / QUALITY).stat().st_mtime

    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["recipes"]["bounds"] = {"size_nm": [0.1, 50]}
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))

    # The changed parameter belongs to ingest_recipes: the target needs only that job.
    assert planned_jobs(workdir, RECIPES) == {"ingest_recipes": 1}
    run_snakemake(workdir, RECIPES)
    assert pl.read_parquet(workdir / REJECTED).height > before
    assert (workdir / QUALITY).stat().st_mtime == quality_mtime, "a job outside the target ran"
    # ...and the summary downstream is now out of date, so the full build would redo it.
    assert planned_jobs(workdir, QUALITY) == {"recipe_quality": 1}


def test_report_holds_quality_figure_and_caption(workdir):
    run_snakemake(workdir, QUALITY)
    run_snakemake(workdir, "--report", "results/report.html", QUALITY)
    html = (workdir / "results" / "report.html").read_text(errors="replace")
    assert "quality_summary.png" in html
    assert "Data quality of the recipe sources" in html, "caption missing from the report"
    assert "data:image/png;charset=utf8;filename=quality_summary.png;base64,iVBOR" in html, "figure not embedded"
