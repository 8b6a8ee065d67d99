"""The workflow as a Snakemake module of another project (docs/module.md): the example there
runs as written, on the tiny config, with the other project's folder as working directory."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from conftest import REPO, SNAKEMAKE

pytestmark = pytest.mark.workflow


def outer_snakefile() -> str:
    """The example Snakefile of docs/module.md, pointed at this checkout."""
    doc = (REPO / "docs" / "module.md").read_text()
    block = re.search(r"```snakemake\n(.*?)```", doc, re.S)
    assert block, "docs/module.md has no ```snakemake example"
    assert "path/to/nanoforge/Snakefile" in block.group(1)
    return block.group(1).replace("path/to/nanoforge/Snakefile", str(REPO / "Snakefile"))


def snakemake(workdir, *args):
    proc = subprocess.run([SNAKEMAKE, "--cores", "2", *args], cwd=workdir, capture_output=True, text=True,
                          timeout=300, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
    return proc.stdout + proc.stderr


def test_module_example_runs(workdir):
    (workdir / "config").mkdir()
    (workdir / "config.yaml").rename(workdir / "config" / "nanoforge.yaml")
    (workdir / "Snakefile").write_text(outer_snakefile())
    out = snakemake(workdir)
    assert "nanoforge_ingest_recipes" in out
    for name in ("recipes.parquet", "rejected.parquet", "quality_summary.png"):
        assert (workdir / "results" / "recipes" / name).is_file(), name
    assert (workdir / "results" / "benchmarks" / "ingest_recipes.tsv").is_file()
    # Files of the workflow itself (the chemicals table, the Detectron2 config) are found
    # relative to nanoforge's Snakefile, not to the other project's folder.
    plan = snakemake(workdir, "-n", "results/features/recipe_features.parquet", "results/detector/model_final.pth")
    assert str(REPO / "resources" / "chemicals.csv") in plan
    assert str(REPO / "workflow" / "configs" / "detectron2") in plan
