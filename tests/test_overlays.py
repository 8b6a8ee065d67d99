"""The default config evaluates the best synthesis run of each task and protocol (a first run
in under 45 minutes on 2 cores); the overlay config.paper.yaml restores the full comparison
(docs/run-time.md). Overlays merge as `snakemake --configfile` merges them."""

from __future__ import annotations

import pytest
import yaml

from conftest import REPO
from nanoforge.config import ConfigError, load_config, merge_overlay

# The best run of each task and protocol in README's tables (size: P and U extra trees on the
# chemicals table, G the vote on the recipe-level blocks; shape: extra trees).
BEST = {("size", "P"): "size_et_chem", ("size", "G"): "size_vote_recipe", ("size", "U"): "size_et_chem",
        ("shape", "P"): "shape_et_chem"}


def runs(cfg: dict) -> dict[str, dict]:
    return {r["name"]: r for r in cfg["synthesis"]["runs"]}


def test_default_runs_are_the_best_of_each_task_and_protocol():
    default = runs(load_config(REPO / "config.yaml"))
    for (task, protocol), name in BEST.items():
        assert name in default and protocol in default[name]["protocols"], (task, protocol, name)
        assert default[name]["task"] == task
    # only those (every other run is in config.paper.yaml), plus protocol G of each trained
    # size model (synthesis.final): its G residuals calibrate the model's intervals
    final = load_config(REPO / "config.yaml")["synthesis"]["final"]["runs"]
    extra = {("size", "G", name) for name in final if default[name]["task"] == "size"}
    triples = {(r["task"], p, r["name"]) for r in default.values() for p in r["protocols"]}
    assert triples == {(t, p, n) for (t, p), n in BEST.items()} | extra


def test_paper_overlay_holds_every_run_and_the_defaults_unchanged():
    default = load_config(REPO / "config.yaml")
    paper = load_config(REPO / "config.yaml", REPO / "config.paper.yaml")
    full = runs(paper)
    assert len(full) == 9 and {"size_rf_unimol", "size_vote_chem", "shape_et_chem_size"} <= set(full)
    for name, run in runs(default).items():
        assert set(run["protocols"]) <= set(full[name]["protocols"])
        assert {k: v for k, v in run.items() if k != "protocols"} == \
               {k: v for k, v in full[name].items() if k != "protocols"}, name
    # the overlay changes the run list only
    assert {k: v for k, v in paper.items() if k != "synthesis"} == {k: v for k, v in default.items() if k != "synthesis"}
    assert {k: v for k, v in paper["synthesis"].items() if k != "runs"} == \
           {k: v for k, v in default["synthesis"].items() if k != "runs"}


def test_merge_like_snakemake(tmp_path):
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert merge_overlay(base, {"a": {"c": [3]}, "e": 2}) == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(ConfigError, match="bad.yaml must be mappings"):
        load_config(REPO / "config.yaml", tmp_path / "bad.yaml")
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump({"synthesis": {"runz": []}}))
    with pytest.raises(ConfigError, match=r"unknown config key 'synthesis\.runz'"):
        load_config(REPO / "config.yaml", tmp_path / "typo.yaml")
