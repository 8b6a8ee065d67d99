"""Config validation: defaults come from the schema; wrong types and unknown keys stop the
run with a message that names the key."""

from __future__ import annotations


import pytest
import yaml

from conftest import REPO, run_snakemake
from nanoforge.config import ConfigError, load_config, validate_config
from nanoforge.synthesis.protocols import ProtocolSettings


def test_default_config_is_valid_and_defaults_are_filled():
    cfg = load_config(REPO / "config.yaml")
    assert cfg["seed"] == 0
    # not written in config.yaml: filled from the schema
    assert cfg["recipes"]["bounds"]["temp_c"] == [-100, 500]


def test_empty_config_gets_all_defaults():
    cfg = validate_config({})
    assert cfg["recipes"]["sources"][0]["format"] == "workbook"
    assert cfg["download"]["mirrors"] == []


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"unknown config key 'recipes\.sourcez'"):
        validate_config({"recipes": {"sourcez": []}})


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"config key 'seed'.*not of type 'integer'"):
        validate_config({"seed": "zero"})


def test_inner_repeats_is_checked_and_not_filled_in():
    with pytest.raises(ConfigError, match=r"config key 'synthesis\.inner\.repeats': 0 is less than the minimum of 1"):
        validate_config({"synthesis": {"inner": {"repeats": 0}}})
    # absent stays absent (the harness reads it as 1), so existing evaluations keep their params
    assert "repeats" not in validate_config({})["synthesis"]["inner"]


def test_g_partition_seed_is_checked_and_not_filled_in():
    with pytest.raises(ConfigError, match=r"synthesis\.protocols\.G\.partition_seed"):
        validate_config({"synthesis": {"protocols": {"G": {"partition_seed": -1}}}})
    assert "partition_seed" not in validate_config({})["synthesis"]["protocols"]["G"]
    cfg = validate_config({"synthesis": {"protocols": {"G": {"partition_seed": 3}}}})
    assert ProtocolSettings.from_config(cfg["synthesis"], "size").partition_seed == 3
    assert ProtocolSettings.from_config(validate_config({})["synthesis"], "size").partition_seed is None


def test_nested_list_item_error_names_index():
    bad = {"recipes": {"sources": [{"name": "x", "path": "p", "format": "docx"}]}}
    with pytest.raises(ConfigError, match=r"recipes\.sources\[0\]\.format"):
        validate_config(bad)


def test_bad_checksum_pattern_is_named():
    bad = {"download": {"files": {"a.csv": {"url": "http://x", "sha256": "abc"}}}}
    with pytest.raises(ConfigError, match=r"download\.files\.a\.csv\.sha256"):
        validate_config(bad)


def test_missing_or_broken_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


@pytest.mark.workflow
def test_snakemake_stops_on_bad_config_naming_the_key(workdir):
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["recipes"]["colour"] = "blue"
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(workdir, "-n", check=False)
    assert proc.returncode != 0
    assert "unknown config key 'recipes.colour'" in proc.stdout + proc.stderr


def test_weak_label_config_splits_into_morphology_and_detector_overrides():
    from nanoforge.config import split_weak_label_config

    morph, over = split_weak_label_config({"min_score": 0.5, "test_scales": [1.0, 1.5], "adaptive_scale_target": 0})
    assert morph == {"min_score": 0.5}
    assert over == {"NANOFORGE.TEST_SCALES": (1.0, 1.5), "NANOFORGE.ADAPTIVE_SCALE_TARGET": 0.0}
    assert split_weak_label_config({"min_score": 0.5, "test_scales": None, "adaptive_scale_target": None}) == (
        {"min_score": 0.5}, {})
