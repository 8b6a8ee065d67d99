"""Trained synthesis models (nanoforge.synthesis.final, persist): saved without pickle,
reloaded in a fresh process with identical predictions, tampered files refused, other
package versions or other training data warned about, unseen chemicals out of domain."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import polars as pl
import pytest
import yaml

from conftest import REPO, TINY_CONFIG
from nanoforge.chemicals import DEFAULT_PATH
from nanoforge.download import sha256sum
from nanoforge.config import validate_config
from nanoforge.synthesis import persist
from nanoforge.synthesis.final import (DataMismatchWarning, check_final_runs, interval_coverage, load_model,
                                       train_final)
from nanoforge.synthesis.runs import HarnessError


def tiny_cfg() -> dict:
    cfg = validate_config(yaml.safe_load(TINY_CONFIG.read_text()))["synthesis"]
    cfg["runs"].append({"name": "shape_et_chem", "task": "shape", "model": "et", "features": "chem",
                        "protocols": ["P"]})
    return cfg


def fake_harness(recipes: pl.DataFrame, scale: float = 0.2) -> dict:
    """Out-of-fold predictions of a model that is off by a log-normal factor."""
    sub = recipes.filter(pl.col("size_nm") <= 20)
    rng = np.random.default_rng(0)
    pred = sub.select("recipe_id", pl.Series("fold", [str(i % 5) for i in range(sub.height)]),
                      pl.col("size_nm").alias("size_true_nm"),
                      (pl.col("size_nm") * np.exp(rng.normal(0, scale, sub.height))).alias("size_pred_nm"))
    metrics = pl.DataFrame({"fold": ["0", "mean", "std"], "mae_nm": [1.5, 1.5, 0.1], "rmse_nm": [2.0, 2.0, 0.1],
                            "r2": [0.6, 0.6, 0.05]})
    return {"G": {"metrics": metrics, "predictions": pred}, "P": {"metrics": metrics, "predictions": pred}}


@pytest.fixture(scope="module")
def recipes(processed_recipes):
    return processed_recipes.head(900)


@pytest.fixture(scope="module")
def saved(recipes, tmp_path_factory):
    cfg = tiny_cfg()
    data = tmp_path_factory.mktemp("data") / "recipes.parquet"
    recipes.write_parquet(data)
    model = train_final(recipes, cfg, "size_et_chem", DEFAULT_PATH, harness=fake_harness(recipes),
                        data_sha256=sha256sum(data))
    folder = tmp_path_factory.mktemp("models") / "size_et_chem"
    model.save(folder)
    return model, folder, data


def test_card_and_files(saved, recipes):
    model, folder, _ = saved
    card = json.loads((folder / "card.json").read_text())
    assert card["training_data"]["rows"] == recipes.filter(pl.col("size_nm") <= 20).height
    assert card["cross_validation"]["G"]["mae_nm"] == 1.5 and card["feature_names"][0] == "cond__injection_temp_c"
    assert card["versions"]["scikit-learn"] and card["params"]["family_weight_power"] in (0, 0.5)
    cov = card["interval"]["coverage"]["G"]
    assert 0.7 < cov["coverage"] < 0.9 and cov["n"] == model.calibration.height
    assert "coverage under G" in (folder / "card.md").read_text()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["files"]["model"]["format"] == "skops"
    assert not any(p.suffix in (".pkl", ".pickle", ".joblib") for p in folder.iterdir())


def test_reload_in_a_fresh_process_gives_identical_predictions(saved, recipes, tmp_path):
    model, folder, _ = saved
    query = recipes[[0, 5, 400]]
    query.write_parquet(tmp_path / "q.parquet")
    here = model.predict(query)
    code = ("import sys, polars as pl; from nanoforge.synthesis.final import load_model; "
            "load_model(sys.argv[1]).predict(pl.read_parquet(sys.argv[2])).write_parquet(sys.argv[3])")
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow"))
    proc = subprocess.run([sys.executable, "-c", code, str(folder), str(tmp_path / "q.parquet"),
                           str(tmp_path / "out.parquet")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    there = pl.read_parquet(tmp_path / "out.parquet")
    assert there.equals(here)
    assert (here["size_lo_nm"] < here["size_pred_nm"]).all() and (here["size_pred_nm"] < here["size_hi_nm"]).all()
    assert here["in_domain"][0] and here["neighbour_ids"][0][0] == query["recipe_id"][0]  # itself, distance 0


def test_a_tampered_file_is_refused(saved, tmp_path):
    _, folder, _ = saved
    copy = tmp_path / "m"
    shutil.copytree(folder, copy)
    data = bytearray((copy / "model.skops").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.skops").write_bytes(bytes(data))
    with pytest.raises(persist.ModelFileError, match="changed after the model was saved"):
        load_model(copy)


def test_an_untrusted_type_is_refused_even_with_a_matching_manifest(saved, tmp_path):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    _, folder, _ = saved
    copy = tmp_path / "m"
    shutil.copytree(folder, copy)
    (copy / "model.skops").write_bytes(sio.dumps(FunctionTransformer(func=os.system)))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["model"]["sha256"] = sha256sum(copy / "model.skops")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(persist.ModelFileError, match=r"not trusted: \[.*system"):
        load_model(copy)


def test_a_manifest_path_outside_the_model_folder_is_refused(saved, tmp_path):
    _, folder, _ = saved
    copy = tmp_path / "m"
    shutil.copytree(folder, copy)
    outside = tmp_path / "elsewhere.skops"
    shutil.copyfile(copy / "model.skops", outside)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["model"]["path"] = "../elsewhere.skops"  # its sha256 still matches
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(persist.ModelFileError, match="not a plain file name"):
        load_model(copy)


def test_other_versions_or_data_warn(saved, tmp_path, recipes):
    _, folder, data = saved
    copy = tmp_path / "m"
    shutil.copytree(folder, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["versions"]["scikit-learn"] = "0.0.1"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(persist.ModelVersionWarning, match=r"scikit-learn 0\.0\.1 \(saved\)"):
        load_model(copy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(folder, data=data)  # same data, same versions: silent
    other = tmp_path / "other.parquet"
    recipes.head(10).write_parquet(other)
    with pytest.warns(DataMismatchWarning, match="retrain"):
        load_model(folder, data=other)


def test_unseen_and_rare_chemicals_are_out_of_domain(saved, recipes):
    model, _, _ = saved
    row = recipes[:1]
    reactants = row["reactants"][0].to_list() + [{"name": "Unobtainium", "mmol": 1.0, "role": "other"}]
    odd = row.with_columns(pl.Series("reactants", [reactants], dtype=row.schema["reactants"]),
                           pl.lit("q:1").alias("recipe_id"))
    far = row.with_columns(pl.lit(1e6).alias("time_min"), pl.lit("q:2").alias("recipe_id"))
    out = model.predict(pl.concat([odd, far]))
    assert out["in_domain"].to_list() == [False, False]
    assert "Unobtainium" in out["domain_reason"][0]
    assert "log_time_min 13.82 outside the training range" in out["domain_reason"][1]


def test_shape_model_and_final_runs():
    cfg = tiny_cfg()
    with pytest.raises(HarnessError, match="with_size"):
        check_final_runs({**cfg, "final": {"runs": ["shape_et_chem_size"]}})
    with pytest.raises(HarnessError, match="no run named 'nope'"):
        check_final_runs({**cfg, "final": {"runs": ["nope"]}})
    tf = {**cfg, "models": {**cfg["models"], "tf": {"kind": "transformer", "params": {}}},
          "runs": [*cfg["runs"], {"name": "size_tf", "task": "size", "model": "tf", "features": "chem",
                                  "protocols": ["P", "G"]}]}
    with pytest.raises(HarnessError, match="cannot be saved yet"):
        check_final_runs({**tf, "final": {"runs": ["size_tf"]}})


def test_interval_coverage_calibrates_on_other_rows():
    rng = np.random.default_rng(1)
    n = 2000
    true = np.exp(rng.normal(2, 0.3, n))
    pred = true * np.exp(rng.normal(0, 0.25, n))
    frame = pl.DataFrame({"recipe_id": [f"r{i}" for i in range(n)], "fold": [str(i % 5) for i in range(n)],
                          "size_true_nm": true, "size_pred_nm": pred})
    cov = interval_coverage(frame, frame, 0.8)
    assert cov["coverage"] == pytest.approx(0.8, abs=0.03) and set(cov["per_fold"]) == {"0", "1", "2", "3", "4"}
    # calibrated on residuals half as large: the intervals are too narrow and the coverage shows it
    tight = frame.with_columns(size_pred_nm=pl.col("size_true_nm") * np.exp(rng.normal(0, 0.12, n)))
    assert interval_coverage(frame, tight, 0.8)["coverage"] < 0.6


def test_design_ranks_candidates_by_the_probability_of_the_target_size(saved, recipes):
    from nanoforge.synthesis.design import candidates, hit_probability, pool_for, rank

    model, _, _ = saved
    # by hand: median 10 nm, residuals ln(0.9), 0, ln(1.2) -> sizes 9, 10, 12
    p = hit_probability(np.array([10.0, 20.0]), np.log([0.9, 1.0, 1.2]), 9.8, 0.5)
    assert p.tolist() == pytest.approx([1 / 3, 0.0])
    pool, borrowed = pool_for(recipes, "PbSe", model)
    assert borrowed is None and set(pool["product"]) == {"PbSe"}
    cands = candidates(pool, "PbSe", 40, seed=1)
    assert cands.height == 40 and cands["based_on"].is_in(pool["recipe_id"].implode()).all()
    assert cands["reaction_temp_c"].is_between(pool["reaction_temp_c"].min(), pool["reaction_temp_c"].max()).all()
    assert (cands["injection_temp_c"] <= cands["reaction_temp_c"]).all()
    ranked = rank(cands, model, 6.5)
    assert ranked["rank"].to_list() == list(range(1, 41)) and ranked["score"].is_sorted(descending=True)
    assert ranked["p_size"].max() > 0
    # the candidate predicted nearest to the target is among the best
    nearest = ranked.with_columns((pl.col("size_pred_nm") - 6.5).abs().alias("off")).sort("off")["rank"][0]
    assert nearest <= 10
    other, borrowed = pool_for(recipes, "PbSeTe", model)  # no recipe makes it: borrowed, flagged
    assert borrowed and other.height > 0 and "PbSe" in borrowed.split(",")


def test_processed_csv_input_without_labels(shared_data, tmp_path):
    from nanoforge.chemicals import ChemicalTable
    from nanoforge.synthesis.query import RecipeInputError, read_recipes

    src = shared_data / "recipes"
    rows = pl.read_csv(src / "recipes_processed.csv", infer_schema=False).head(2)
    rows.with_columns(pl.lit(None, pl.String).alias("Y1"), pl.lit(None, pl.String).alias("Y3")).write_csv(tmp_path / "q.csv")
    table = ChemicalTable.read(DEFAULT_PATH)
    got = read_recipes(tmp_path / "q.csv", table, src / "chemical_abbreviations.xlsx", src / "shapes_list.txt")
    assert got.height == 2 and got["size_nm"].null_count() == 2 and got["reactants"].list.len().min() > 0
    rows.with_columns(pl.lit("-5").alias("A1")).write_csv(tmp_path / "bad.csv")
    with pytest.raises(RecipeInputError, match=r"bad\.csv: row 2"):
        read_recipes(tmp_path / "bad.csv", table, src / "chemical_abbreviations.xlsx", src / "shapes_list.txt")
