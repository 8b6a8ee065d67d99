"""The synthesis stage end to end on the tiny config: recipes -> features (with the Uni-Mol
block, copied from a mirror folder) -> runs under P, G and U -> predictions, metrics,
figures, the comparison table in the Snakemake report, and the benchmark command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import polars as pl
import pytest

from conftest import REPO, run_snakemake, write_config

pytestmark = pytest.mark.workflow

SYN = "results/synthesis"


@pytest.fixture(scope="module")
def synthesis_run(tmp_path_factory, shared_data):
    from conftest import copy_inputs

    wd = tmp_path_factory.mktemp("synthesis")
    copy_inputs(shared_data, wd)
    for folder in ("predict", "sweeps", "designs"):  # the shipped examples
        shutil.copytree(REPO / folder, wd / folder)
    request = wd / "designs" / "example.yaml"  # fewer candidates: the plumbing, quickly
    request.write_text(request.read_text().replace("candidates: 1000", "candidates: 100"))
    write_config(wd, {
        "download": {"mirrors": [str(shared_data / "recipes")]},
        "synthesis": {
            "unimol": {"sha256": "3d22c6d05c2e95e9a0009453bd53d0c2ffacd64c1d3a2b368a7e13a28a7a913b"},
            "featurize": {"blocks": ["cond", "amt", "prod", "pool", "bag", "chem", "uni"], "morgan_bits": 8},
            "feature_sets": {"chem": ["cond", "amt", "prod", "pool", "chem", "bag"], "unimol": ["cond", "amt", "uni"]},
            "models": {
                "et": {"params": {"n_estimators": 4, "max_features": 0.3, "log_target": True},
                       "grid": {"family_weight_power": [0, 0.5], "feature_blocks": [None, ["cond", "amt", "prod"]]}},
                "rf": {"params": {"n_estimators": 3, "max_features": 0.1}},
            },
            "runs": [
                {"name": "size_et_chem", "task": "size", "model": "et", "features": "chem", "protocols": ["P", "G", "U"]},
                {"name": "size_rf_unimol", "task": "size", "model": "rf", "features": "unimol", "protocols": ["P"]},
                {"name": "shape_et_chem", "task": "shape", "model": "et", "features": "chem", "protocols": ["P"]},
            ],
        },
    })
    targets = [f"{SYN}/comparison.csv", f"{SYN}/comparison.html", "results/features/chemicals_coverage.csv",
               f"{SYN}/P/size_et_chem/parity.png", f"{SYN}/G/size_et_chem/parity.png",
               f"{SYN}/U/size_et_chem/parity.png", f"{SYN}/P/size_rf_unimol/parity.png",
               f"{SYN}/P/shape_et_chem/confusion.png", "results/models/size_et_chem",
               "results/models/shape_et_chem", "results/predictions/example.parquet",
               "results/sweeps/example.parquet", "results/sweeps/example.png", "results/designs/example.csv"]
    run_snakemake(wd, *targets, timeout=600)
    return wd, targets


def test_outputs(synthesis_run):
    wd, targets = synthesis_run
    for t in targets:
        assert (wd / t).exists() and (wd / t).stat().st_size > 0, t
    assert (wd / "resources/recipes/unimol_descriptors.parquet").is_file()  # copied from the mirror
    feats = pl.read_parquet(wd / "results/features/recipe_features.parquet")
    assert feats.height > 3000 and set(feats["source"]) == {"processed_csv"}
    assert any(c.startswith("uni__") for c in feats.columns)
    columns = pl.read_csv(wd / "results/features/feature_columns.csv")
    assert columns.height == feats.width and set(columns["kind"]) == {"key", "feature"}
    coverage = pl.read_csv(wd / "results/features/chemicals_coverage.csv")
    assert (coverage["status"] == "not_in_table").sum() == 0

    pred = pl.read_parquet(wd / f"{SYN}/P/size_et_chem/predictions.parquet")
    assert pred.height == 617 and pred["recipe_id"].n_unique() == 617
    assert sorted(pred["fold"].unique()) == ["0", "1", "2", "3", "4"]
    m = pl.read_csv(wd / f"{SYN}/P/size_et_chem/metrics.csv", schema_overrides={"fold": pl.String})
    assert m["fold"].to_list() == ["0", "1", "2", "3", "4", "mean", "std"]
    mean = m.filter(pl.col("fold") == "mean").row(0, named=True)
    assert 0.5 < mean["mae_nm"] < 5 and mean["r2"] > 0
    chosen = [json.loads(p) for p in m.filter(~pl.col("fold").is_in(["mean", "std"]))["params"]]
    assert all("feature_blocks" in p for p in chosen)  # the inner split chose a feature set too
    u = pl.read_parquet(wd / f"{SYN}/U/size_et_chem/predictions.parquet")
    assert set(u["product"]) == {"Ni"} and set(u["fold"]) == {"Ni"}
    shape = pl.read_parquet(wd / f"{SYN}/P/shape_et_chem/predictions.parquet")
    assert {"shape_true", "shape_pred"} <= set(shape.columns)

    comp = pl.read_csv(wd / f"{SYN}/comparison.csv")
    ours = comp.filter(pl.col("source") == "this workflow")
    assert ours.height == 5  # 3 + 1 + 1 (run, protocol) pairs
    assert comp.filter(pl.col("source") == "paper").height >= 3
    assert "paper random forest" in (wd / f"{SYN}/comparison.html").read_text()


def test_report_and_benchmark(synthesis_run):
    wd, targets = synthesis_run
    run_snakemake(wd, *targets, "--report", str(wd / "report.html"), timeout=300)
    report = (wd / "report.html").read_text(errors="replace")
    assert "comparison.html" in report and "Synthesis models" in report
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow"))
    proc = subprocess.run([sys.executable, "-m", "nanoforge.bench", "synthesis", "--results", str(wd / SYN)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "size_et_chem (et on chem)" in proc.stdout and "paper random forest" in proc.stdout
    assert "Targets:" in proc.stdout
    assert "Protocol G, size_et_chem: error by recipe family" in proc.stdout  # the only G size run
    assert "PbSe|OA+ODE+OLA+PbO+Se+TOP" in proc.stdout  # a third of G's validation rows
    ni = next(line for line in proc.stdout.splitlines() if line.split()[:1] == ["Ni"])
    assert "Protocol U: size MAE (nm) by held-out product" in proc.stdout and ni.split()[-1] == "2.01"
    missing = subprocess.run([sys.executable, "-m", "nanoforge.bench", "synthesis", "--results", str(wd / "nothing")],
                             capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 1 and "run the workflow first" in missing.stderr
    # G on other family partitions: the harness refitted in the working directory
    drawn = subprocess.run([sys.executable, "-m", "nanoforge.bench", "synthesis", "--evaluate", "--runs",
                            "size_et_chem", "--protocols", "G", "--g-partitions", "2", "--families", "0"],
                           capture_output=True, text=True, env=env, timeout=300, cwd=wd)
    assert drawn.returncode == 0, drawn.stderr
    lines = drawn.stdout.split("Protocol G on other partitions of the recipe families")[1].splitlines()
    figures = {" ".join(line.split()[:-1]): float(line.split()[-1]) for line in lines[2:7]}
    assert list(figures) == ["standard", "seed 1", "seed 2", "mean drawn", "std drawn"]
    standard = pl.read_csv(wd / f"{SYN}/G/size_et_chem/metrics.csv", schema_overrides={"fold": pl.String})
    assert figures["standard"] == pytest.approx(standard.filter(pl.col("fold") == "mean")["mae_nm"][0], abs=5e-4)
    assert len({figures["standard"], figures["seed 1"], figures["seed 2"]}) == 3
    assert figures["mean drawn"] == pytest.approx((figures["seed 1"] + figures["seed 2"]) / 2, abs=1e-3)
    wrong = subprocess.run([sys.executable, "-m", "nanoforge.bench", "synthesis", "--g-partitions", "2"],
                           capture_output=True, text=True, env=env, timeout=120, cwd=wd)
    assert wrong.returncode == 2 and "--g-partitions needs --evaluate" in wrong.stderr


def test_a_missing_unimol_file_is_a_clear_error(tmp_path, shared_data):
    from conftest import copy_inputs

    copy_inputs(shared_data, tmp_path)
    write_config(tmp_path, {"synthesis": {"featurize": {"blocks": ["cond", "uni"]}}})
    proc = run_snakemake(tmp_path, "resources/recipes/unimol_descriptors.parquet", check=False, timeout=300)
    assert proc.returncode != 0
    log = (tmp_path / "results/logs/unimol_descriptors.log").read_text()
    assert "none of the mirror folders" in log and "Uni-Mol" in log


def test_trained_models_predictions_and_sweep(synthesis_run, monkeypatch, capsys):
    """results/models/<run>/ with its card (the harness's figures, interval coverage), the
    example predictions (the new ligand out of domain) and sweep, and the command line."""
    wd, _ = synthesis_run
    card = json.loads((wd / "results/models/size_et_chem/card.json").read_text())
    g = pl.read_csv(wd / f"{SYN}/G/size_et_chem/metrics.csv", schema_overrides={"fold": pl.String})
    assert card["cross_validation"]["G"]["mae_nm"] == pytest.approx(g.filter(pl.col("fold") == "mean")["mae_nm"][0], abs=1e-4)
    assert set(card["interval"]["coverage"]) == {"P", "G", "U"}
    assert 0.7 < card["interval"]["coverage"]["G"]["coverage"] < 0.9
    assert json.loads((wd / "results/models/shape_et_chem/card.json").read_text())["cross_validation"]["P"]["accuracy"] > 0.3
    pred = pl.read_parquet(wd / "results/predictions/example.parquet")
    assert pred["recipe_id"].to_list() == ["pbse_hot_injection", "pbse_longer_hotter", "pbse_new_ligand"]
    assert pred["in_domain"].to_list()[2] is False and "2-hexyldecanoic acid" in pred["domain_reason"][2]
    assert (pred["size_lo_nm"] < pred["size_pred_nm"]).all() and pred["neighbour_ids"].list.len().min() == 5
    probs = [c for c in pred.columns if c.startswith("p_")]
    assert len(probs) >= 5 and pred.select(pl.sum_horizontal(probs)).to_series().to_list() == pytest.approx([1.0] * 3)
    sweep = pl.read_parquet(wd / "results/sweeps/example.parquet")
    assert sweep.height == 36 and {"mmol:OA", "reaction_temp_c"} <= set(sweep.columns)
    from nanoforge.predict import main

    design = pl.read_csv(wd / "results/designs/example.csv")
    assert design.height == 10 and design["score"].is_sorted(descending=True) and (design["product"] == "PbSe").all()
    assert {"p_size", "p_shape", "size_pred_nm", "size_lo_nm", "reactants", "based_on"} <= set(design.columns)
    bad = wd / "bad.yaml"
    bad.write_text("recipes:\n  - {id: r1, product: Unobtainium9, reagents: [{name: PbO, mmol: -1}], "
                   "reaction_temp_c: 150, time_min: 5}\n")
    monkeypatch.chdir(wd)  # the command's default model folders: results/models/*
    assert main([str(bad), "--out", "x.parquet"]) == 2
    err = capsys.readouterr().err
    for text in ("recipe 'r1': unknown product 'Unobtainium9'", "recipe 'r1': injection_temp_c is missing",
                 "recipe 'r1': reagents[PbO].mmol is negative"):
        assert text in err
    assert main(["predict/example.yaml", "--out", "y.parquet"]) == 0
    assert pl.read_parquet(wd / "y.parquet").equals(pred)
    assert "OUT OF DOMAIN" in capsys.readouterr().out
