"""The local and SLURM profiles parse, hold the settings the workflow relies on, and
Snakemake accepts them (a dry run on the tiny config; Snakemake rejects unknown keys)."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import REPO, run_snakemake

PROFILES = REPO / "workflow" / "profiles"


def _load(name: str) -> dict:
    with open(PROFILES / name / "config.yaml") as fh:
        profile = yaml.safe_load(fh)
    assert isinstance(profile, dict), f"profile {name} is not a mapping"
    return profile


def _resources(profile: dict) -> dict:
    entries = profile.get("default-resources", [])
    assert isinstance(entries, list), "default-resources must be a list of NAME=VALUE"
    return dict(entry.split("=", 1) for entry in entries)


def test_local_profile_settings():
    profile = _load("local")
    assert "executor" not in profile
    assert profile["rerun-incomplete"] is True
    assert profile["keep-going"] is False
    res = _resources(profile)
    assert int(res["mem_mb"]) > 0 and int(res["runtime"]) > 0


def test_slurm_profile_settings():
    profile = _load("slurm")
    assert profile["executor"] == "slurm"
    # Without an accounting database the executor's default sacct check never returns.
    assert profile["slurm-status-command"] == "squeue"
    assert profile["rerun-incomplete"] is True
    assert int(profile["jobs"]) >= 1
    assert int(profile["latency-wait"]) >= 10
    res = _resources(profile)
    assert res["slurm_partition"]
    assert int(res["mem_mb"]) > 0 and int(res["runtime"]) > 0
    # A default cpus_per_task would override every rule's threads in sbatch --cpus-per-task.
    assert "cpus_per_task" not in res
    # squeue forgets a finished job after MinJobAge (300 s on the test cluster); the
    # executor falls back to sacct unless MinJobAge >= 3 x the first status-check delay.
    assert 3 * int(profile.get("slurm-init-seconds-before-status-checks", 40)) <= 300
    # No GPU request by default: the test cluster (and many CPU partitions) have no GPUs.
    assert "gpu" not in res and "gres" not in res and "set-resources" not in profile


@pytest.mark.workflow
@pytest.mark.parametrize("name", ["local", "slurm"])
def test_snakemake_accepts_profile(workdir, name):
    proc = run_snakemake(workdir, "-n", "--profile", str(PROFILES / name), timeout=300)
    out = proc.stdout + proc.stderr
    assert "This was a dry-run" in out, out[-3000:]
    assert re.search(r"^ingest_recipes\s+1$", out, re.M), out[-3000:]
    # The profile's default resources reach the jobs (rule `all` declares none).
    all_job = out[out.index("rule all:"):]
    assert "runtime=30" in all_job, all_job[:1000]
    if name == "slurm":
        assert "slurm_partition=main" in all_job, all_job[:1000]
