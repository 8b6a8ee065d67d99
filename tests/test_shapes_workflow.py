"""The shape stage in the workflow, on the tiny config: particles -> descriptors -> clusters
-> names -> sample labels -> recipes_labelled.parquet and the three report figures. Adding
a TEM image of a recipe's sample changes that recipe's label, and only the jobs downstream
of the image ingestion run again."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest
import tifffile
import yaml

from conftest import run_snakemake, write_config

pytestmark = pytest.mark.workflow

RECIPE = "raw_workbook:2"  # a PbSe recipe of the paper's workbook
TARGETS = [
    "results/recipes/recipes_labelled.parquet",
    "results/shapes/embedding.png",
    "results/shapes/gallery.png",
    "results/shapes/shares.png",
]
SIDECAR = {"image": "pbse_fig2b/5-0011", "nm_per_px": 0.260417, "sample_id": "PbSe_fig2b"}


def _job_counts(stdout: str) -> dict[str, int]:
    """Rule -> number of jobs from the 'Job stats' table of a (dry) run."""
    table = stdout.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)
            if m.group(1) not in ("job", "total")}


def _descendants(rulegraph_dot: str, start: str) -> set[str]:
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', rulegraph_dot, re.M))
    edges = re.findall(r"^\s*(\d+) -> (\d+)", rulegraph_dot, re.M)
    children: dict[str, set[str]] = {}
    for a, b in edges:
        children.setdefault(names[a], set()).add(names[b])
    out, todo = set(), [start]
    while todo:
        for c in children.get(todo.pop(), ()):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory, shared_data):
    from conftest import copy_inputs

    wd = tmp_path_factory.mktemp("shapes_wf")
    copy_inputs(shared_data, wd)
    (wd / "links.csv").write_text(f"sample_id,recipe_id\nPbSe_fig2b,{RECIPE}\n")
    # the TEM datasets come through the mirror rule from the shared data folder
    cfg = write_config(wd, {"download": {"mirrors": [str(shared_data / "tem")]},
                            "shapes": {"labels": {"sample_recipes": "links.csv"}}})
    assert SIDECAR in yaml.safe_load(cfg.read_text())["tem"]["sidecar"]["entries"]
    run_snakemake(wd, *TARGETS)
    return wd


def test_outputs_and_labels(shapes_run):
    wd = shapes_run
    for t in TARGETS:
        assert (wd / t).stat().st_size > 0, t
    samples = pl.read_parquet(wd / "results/shapes/sample_labels.parquet")
    pbse = samples.filter(pl.col("sample_id") == "PbSe_fig2b").row(0, named=True)
    assert pbse["recipe_id"] == RECIPE and pbse["recipe_match"] == "table" and pbse["usable"]
    assert pbse["n_images"] == 1 and pbse["n_border"] > 0 and pbse["n_particles"] > 100
    # the paper's own measurement of this image: mean D ~7.7 nm (its segmentation model)
    assert 5.0 < pbse["size_nm"] < 10.0
    rec = pl.read_parquet(wd / "results/recipes/recipes_labelled.parquet")
    assert rec.height == pl.read_parquet(wd / "results/recipes/recipes.parquet").height
    r = rec.filter(pl.col("recipe_id") == RECIPE).row(0, named=True)
    assert r["label_source"] == "tem" and r["size_nm"] == pytest.approx(pbse["size_nm"])
    assert r["n_counted"] == pbse["n_particles"] and r["literature_size_nm"] == 4.87
    assert (rec.filter(pl.col("recipe_id") != RECIPE)["label_source"] == "literature").all()
    clusters = pl.read_parquet(wd / "results/shapes/clusters.parquet")
    names = pl.read_csv(wd / "results/shapes/cluster_names.csv")
    assert set(clusters["cluster_id"].unique()) <= set(names["cluster_id"])
    particles = pl.read_parquet(wd / "results/particles/classical/particles.parquet")
    images = pl.read_parquet(wd / "results/tem/images.parquet")
    assert clusters.height == particles.join(images.select("image_id"), on="image_id", how="semi").height


def test_adding_an_image_relabels_its_recipe_and_reruns_only_downstream(shapes_run):
    wd = shapes_run
    before = pl.read_parquet(wd / "results/recipes/recipes_labelled.parquet").filter(pl.col("recipe_id") == RECIPE)
    recipes_mtime = (wd / "results/recipes/recipes.parquet").stat().st_mtime_ns
    # a second micrograph of the same sample (the first one mirrored) with its calibration
    folder = wd / "resources/tem/pbse_fig2b"
    folder.chmod(0o755)  # the mirrored copy keeps the read-only mode of the shared folder
    img = tifffile.imread(folder / "5-0011.tif")
    tifffile.imwrite(folder / "5-0012.tif", np.ascontiguousarray(img[:, ::-1]))
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    cfg["tem"]["sidecar"]["entries"].append(dict(SIDECAR, image="pbse_fig2b/5-0012"))
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    dry = run_snakemake(wd, *TARGETS, "--dry-run")
    jobs = _job_counts(dry.stdout)
    graph = run_snakemake(wd, *TARGETS, "--rulegraph").stdout
    downstream = _descendants(graph, "ingest_tem") | {"ingest_tem"}
    assert set(jobs) - {"all"} <= downstream, f"jobs outside the image's downstream: {set(jobs) - downstream}"
    for rule in ["ingest_tem", "shape_descriptors", "cluster_shapes", "name_shape_clusters", "sample_labels",
                 "label_recipes", "shape_shares_figure"]:
        assert rule in jobs, (rule, jobs)
    for rule in ["ingest_recipes", "download_recipe_dataset", "simulate_tem", "mirror_tem_dataset"]:
        assert rule not in jobs
    assert jobs.get("segment_classical") == 1  # the TEM image set only, not the synthetic one

    run_snakemake(wd, *TARGETS)
    assert (wd / "results/recipes/recipes.parquet").stat().st_mtime_ns == recipes_mtime
    after = pl.read_parquet(wd / "results/recipes/recipes_labelled.parquet").filter(pl.col("recipe_id") == RECIPE)
    assert after["tem_n_particles"][0] > before["tem_n_particles"][0]
    samples = pl.read_parquet(wd / "results/shapes/sample_labels.parquet")
    assert samples.filter(pl.col("sample_id") == "PbSe_fig2b")["n_images"][0] == 2
    assert "Nothing to be done" in run_snakemake(wd, *TARGETS, "--dry-run").stdout  # up to date
