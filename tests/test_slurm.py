"""The tiny test config through the SLURM profile on the real single-node cluster of
tests/slurm/start.sh: every job must go through sbatch, and the outputs must equal those
of a local run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

from conftest import REPO, copy_inputs, run_snakemake, write_config

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

START = REPO / "tests" / "slurm" / "start.sh"
LOCAL_PROFILE = REPO / "workflow" / "profiles" / "local"
SLURM_PROFILE = REPO / "workflow" / "profiles" / "slurm"

# Removed from resources/ so that the download rule runs too (from a local mirror).
DOWNLOADED = "shapes_list.txt"
TARGETS = [
    "results/recipes/recipes.parquet",
    "results/recipes/rejected.parquet",
    "results/recipes/quality_summary.csv",
    f"resources/recipes/{DOWNLOADED}",
]
PARQUET = ["results/recipes/recipes.parquet", "results/recipes/rejected.parquet"]
# Rules that must have run as SLURM jobs (rule `all` is a local rule).
SLURM_RULES = {"download_recipe_dataset", "ingest_recipes", "recipe_quality"}


def _node_state() -> str | None:
    if shutil.which("sinfo") is None:
        return None
    proc = subprocess.run(
        ["sinfo", "-h", "-n", "localhost", "-o", "%T"], capture_output=True, text=True, timeout=30
    )
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """The local SLURM cluster; started here when it is down and we are root."""
    up = ("idle", "mixed", "allocated", "completing")
    state = _node_state()
    if state not in up and os.geteuid() == 0 and shutil.which("apt-get"):
        proc = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            pytest.fail(
                f"tests/slurm/start.sh failed ({proc.returncode}):\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        state = _node_state()
    if state not in up:
        pytest.fail(
            f"the local SLURM cluster is not up (node 'localhost' state: {state!r}); "
            "run `bash tests/slurm/start.sh` as root first (make test and CI do)"
        )
    return state


def _prepare(path: Path, shared: Path) -> Path:
    path.mkdir()
    copy_inputs(shared, path)
    (path / "resources" / "recipes" / DOWNLOADED).unlink()
    # The file's address and checksum come from the default config.
    spec = yaml.safe_load((REPO / "config.yaml").read_text())["download"]["files"][DOWNLOADED]
    write_config(
        path, {"download": {"mirrors": [str(shared / "recipes")], "files": {DOWNLOADED: spec}}}
    )
    return path


def test_slurm_profile_matches_local_run(tmp_path, shared_data, slurm_cluster):
    local = _prepare(tmp_path / "local", shared_data)
    cluster = _prepare(tmp_path / "slurm", shared_data)

    run_snakemake(local, *TARGETS, "--profile", str(LOCAL_PROFILE), timeout=600)
    proc = run_snakemake(
        cluster,
        *TARGETS,
        "--profile", str(SLURM_PROFILE),
        # Keep the logs of successful jobs (deleted by default) to check them below, and
        # check the status sooner than the profile's first delay: the jobs take seconds.
        "--slurm-keep-successful-logs",
        "--slurm-init-seconds-before-status-checks", "3",
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    # The profile's squeue status check must be the one used (sacct hangs without accounting).
    assert "Falling back to 'sacct'" not in out, out[-3000:]

    # Every job of the DAG but `all` was submitted with sbatch: Snakemake says so, the
    # executor kept its log under .snakemake/slurm_logs/rule_<rule>/<jobid>.log, and
    # slurmctld still knows the job (MinJobAge=300) as COMPLETED in this working directory.
    logdir = cluster / ".snakemake" / "slurm_logs"
    submitted = {}  # rule -> (SLURM job id, log path)
    for jobid, log in re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)", out):
        log = Path(log)
        assert log.is_relative_to(logdir), f"SLURM log outside {logdir}: {log}"
        rule = log.relative_to(logdir).parts[0].removeprefix("rule_")
        submitted[rule] = (jobid, log)
    assert set(submitted) == SLURM_RULES, out[-3000:]
    for rule, (jobid, log) in submitted.items():
        assert log.is_file(), f"missing SLURM log {log}"
        assert log.name == f"{jobid}.log", log
        assert "--executor slurm-jobstep" in log.read_text(), log.read_text()[-2000:]
        info = subprocess.run(
            ["scontrol", "show", "job", jobid], capture_output=True, text=True, timeout=30
        )
        assert info.returncode == 0, f"scontrol does not know job {jobid}: {info.stderr}"
        assert "JobState=COMPLETED" in info.stdout, info.stdout
        assert f"WorkDir={cluster}" in info.stdout, info.stdout
        assert "Partition=main" in info.stdout, info.stdout

    # Same outputs as the local run.
    for rel in PARQUET:
        a = pl.read_parquet(local / rel)
        b = pl.read_parquet(cluster / rel)
        assert a.height > 0, f"{rel} is empty"
        assert_frame_equal(a, b)
    for rel in ("results/recipes/quality_summary.csv", f"resources/recipes/{DOWNLOADED}"):
        assert (local / rel).read_bytes() == (cluster / rel).read_bytes(), rel
    assert (cluster / "results/recipes/quality_summary.png").stat().st_size > 0
