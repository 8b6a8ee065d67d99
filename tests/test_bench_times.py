"""The per-stage time table printed at the end of `make run` (python -m nanoforge.bench times),
read from the benchmark file that every rule writes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nanoforge.bench.times import read_benchmarks, rule_stages, summarise

REPO = Path(__file__).resolve().parents[1]
# subprocesses import this checkout's library too
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")]))
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(root: Path, rel: str, seconds: float, rss, end: float) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:00\t{rss}\t1\t1\t1\t0\t0\t50\t{seconds}\n")
    os.utime(path, (end, end))


@pytest.fixture
def benchmarks(tmp_path) -> Path:
    root = tmp_path / "benchmarks"
    bench(root, "ingest_recipes.tsv", 30, 400.5, end=1000)
    bench(root, "recipe_quality.tsv", 10, "NA", end=1020)  # too short to sample memory
    bench(root, "evaluate_synthesis/P/size_et_chem.tsv", 100, 900, end=1200)
    bench(root, "evaluate_synthesis/G/size_et_chem.tsv", 200, 1200, end=1150)
    bench(root, "train_detector.tsv", 500, 3000, end=1600)
    return root


def test_every_rule_writes_a_benchmark_file():
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule )", smk.read_text()):
            m = re.match(r"rule (\w+):", block.strip())
            if m and m.group(1) != "all":
                assert re.search(r"\n    benchmark:\n        f\"\{BENCHMARKS\}/" + m.group(1) + r"[/.]", block), \
                    f"{smk.name}: rule {m.group(1)} writes no results/benchmarks/{m.group(1)}... file"


def test_stages_come_from_the_rule_files():
    stages = rule_stages()
    assert stages["ingest_recipes"] == "recipes"
    assert stages["evaluate_synthesis"] == "synthesis"
    assert stages["train_detector"] == "detector"


def test_table_by_stage_and_rule(benchmarks):
    jobs = read_benchmarks(benchmarks)
    assert jobs.height == 5
    by_stage = {r["stage"]: r for r in summarise(jobs).iter_rows(named=True)}
    syn = by_stage["synthesis"]
    assert (syn["jobs"], syn["job_s"], syn["longest_s"]) == (2, 300, 200)
    # G ran from 950 to 1150 and P from 1100 to 1200: 250 s elapsed, 300 s of jobs
    assert syn["elapsed_s"] == pytest.approx(250)
    assert syn["peak_mb"] == 1200
    rec = by_stage["recipes"]
    assert rec["jobs"] == 2 and rec["peak_mb"] == pytest.approx(400.5)
    by_rule = {r["rule"]: r for r in summarise(jobs, "rule").iter_rows(named=True)}
    assert by_rule["evaluate_synthesis"]["jobs"] == 2 and by_rule["recipe_quality"]["peak_mb"] is None
    # a rule that no rule file defines (removed since) is kept under "(other)"
    assert {r["stage"] for r in summarise(jobs, stages={}).iter_rows(named=True)} == {"(other)"}


def test_cli_prints_the_table_since_a_time(benchmarks):
    cmd = [sys.executable, "-m", "nanoforge.bench", "times", str(benchmarks)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=ENV).stdout
    assert re.search(r"^detector\s+1\s+0:08:20\s+0:08:20\s+0:08:20\s+0:08:20\s+3000$", out, re.M), out
    # the whole run: 5 jobs, 840 s of jobs, from 950 (first start, G) to 1600 (last end)
    assert re.search(r"^all\s+5\s+0:14:00\s+0:08:20\s+0:10:50\s+0:14:00\s+3000$", out, re.M), out
    recent = subprocess.run(cmd + ["--since", "1100"], capture_output=True, text=True, check=True, env=ENV).stdout
    assert "(3 jobs" in recent and "recipes" not in recent
    none = subprocess.run(cmd + ["--since", "5000"], capture_output=True, text=True, check=True, env=ENV).stdout
    assert none.startswith("no job ran since")


def test_bad_benchmark_files_are_named(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match=r"x\.tsv: not a Snakemake benchmark table"):
        read_benchmarks(tmp_path / "b")
    proc = subprocess.run([sys.executable, "-m", "nanoforge.bench", "times", str(tmp_path / "nothing")],
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode == 2 and "no benchmark folder" in proc.stderr
