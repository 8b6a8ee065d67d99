"""Conventions of the Snakemake ecosystem: the rule files are formatted by snakefmt (pinned in
requirements.txt), `snakemake --lint` finds nothing, the minimum Snakemake version is stated,
and .snakemake-workflow-catalog.yml states the supported deployment and the report."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO, SNAKEMAKE

SNAKEFILES = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]


def test_snakefmt_check():
    snakefmt = str(Path(sys.executable).with_name("snakefmt"))
    proc = subprocess.run([snakefmt, "--check", *map(str, SNAKEFILES)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, (
        "snakefmt would reformat (run `snakefmt Snakefile workflow/rules`):\n" + proc.stdout + proc.stderr)


def test_snakemake_lint():
    proc = subprocess.run([SNAKEMAKE, "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Congratulations, your workflow is in a good condition!" in out, out[-6000:]


def test_min_version_stated():
    assert re.search(r'^min_version\("9\.\d+"\)$', (REPO / "Snakefile").read_text(), re.M)


def test_workflow_catalog_file():
    spec = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    deployment = spec["usage"]["software-stack-deployment"]
    assert deployment["conda"] is True
    assert spec["usage"]["report"] is True
    # conda deployment is only claimed if every rule with a script names an existing env file
    for smk in SNAKEFILES[1:]:
        for block in re.split(r"\n(?=rule )", smk.read_text()):
            m = re.match(r"rule (\w+):", block.strip())
            if m and "script:" in block:
                env = re.search(r"\n    conda:\n        \"([^\"]+)\"", block)
                assert env and (smk.parent / env.group(1)).is_file(), f"{smk.name}: rule {m.group(1)} has no env file"
