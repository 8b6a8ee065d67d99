"""Time and memory of a workflow run: ``python -m nanoforge.bench times [DIR] [options]``.

Every rule writes a Snakemake benchmark file, ``results/benchmarks/<rule>.tsv`` or
``results/benchmarks/<rule>/<wildcards>.tsv`` (columns ``s``, ``max_rss`` in MB, ``cpu_time``
and others; one row per repeat). A file is rewritten each time its job runs, and it is written
when the job ends, so its modification time is the job's end and ``mtime - s`` its start.

The table groups the jobs by stage (the rule file ``workflow/rules/<stage>.smk`` that defines
the rule) or by rule (``--by rule``): job count, summed job time, longest job, elapsed time
from the first job's start to the last job's end (jobs of a stage run side by side or
interleave with other stages, so elapsed and summed times differ), CPU time (all threads;
on a shared machine a steadier measure of the work than wall time), peak memory of one job.
``--since EPOCH`` keeps the jobs that ended after that time (``make run`` passes its start,
so the table shows that run only). The last line is the whole run's elapsed time.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import polars as pl

RULE_RE = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.M)
RULES_DIR = Path(__file__).resolve().parents[2] / "rules"


def read_benchmarks(root: str | Path, since: float | None = None) -> pl.DataFrame:
    """One row per benchmark file under ``root``: rule, job, seconds, cpu_s, max_rss_mb,
    start and end (epoch seconds). A file that is not a Snakemake benchmark table is an error
    naming it."""
    root = Path(root)
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        rel = path.relative_to(root)
        try:
            table = pl.read_csv(path, separator="\t", null_values=["NA", "-"], infer_schema_length=None)
        except Exception as exc:  # noqa: BLE001 (polars raises several kinds)
            raise ValueError(f"{path}: not a readable benchmark table ({exc})") from exc
        if "s" not in table.columns or table.height == 0:
            raise ValueError(f"{path}: not a Snakemake benchmark table (no column 's' or no row)")
        end = path.stat().st_mtime
        seconds = float(table["s"].cast(pl.Float64).sum())  # repeats run one after the other
        if since is not None and end < since:
            continue
        rss = table["max_rss"].cast(pl.Float64, strict=False).max() if "max_rss" in table.columns else None
        cpu = table["cpu_time"].cast(pl.Float64, strict=False).sum() if "cpu_time" in table.columns else None
        rows.append({"rule": rel.parts[0].removesuffix(".tsv"), "job": str(rel.with_suffix("")),
                     "seconds": seconds, "cpu_s": cpu, "max_rss_mb": rss, "start": end - seconds, "end": end})
    schema = {"rule": pl.Utf8, "job": pl.Utf8, "seconds": pl.Float64, "cpu_s": pl.Float64,
              "max_rss_mb": pl.Float64, "start": pl.Float64, "end": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def rule_stages(rules_dir: str | Path = RULES_DIR) -> dict[str, str]:
    """Rule name -> stage (the stem of the .smk file that defines it)."""
    stages = {}
    for smk in sorted(Path(rules_dir).glob("*.smk")):
        for name in RULE_RE.findall(smk.read_text()):
            stages[name] = smk.stem
    return stages


def summarise(jobs: pl.DataFrame, by: str = "stage", stages: dict[str, str] | None = None) -> pl.DataFrame:
    """Per stage (or rule): jobs, summed and longest job time, elapsed time, peak memory,
    longest first; times in seconds."""
    if by not in ("stage", "rule"):
        raise ValueError(f"by must be 'stage' or 'rule', not {by!r}")
    stages = rule_stages() if stages is None else stages
    jobs = jobs.with_columns(pl.col("rule").replace_strict(stages, default="(other)").alias("stage"))
    return (jobs.group_by(by)
            .agg(pl.len().alias("jobs"), pl.col("seconds").sum().alias("job_s"),
                 pl.col("seconds").max().alias("longest_s"), pl.col("cpu_s").sum().alias("cpu_s"),
                 (pl.col("end").max() - pl.col("start").min()).alias("elapsed_s"),
                 pl.col("max_rss_mb").max().alias("peak_mb"))
            .sort("job_s", descending=True))


def _hms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_table(table: pl.DataFrame, jobs: pl.DataFrame, by: str = "stage") -> str:
    head = f"{by:<26}{'jobs':>6}{'job time':>11}{'longest':>10}{'elapsed':>10}{'CPU time':>10}{'peak MB':>9}"
    lines = [head, "-" * len(head)]
    for r in table.iter_rows(named=True):
        peak = "-" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
        lines.append(f"{r[by]:<26}{r['jobs']:>6}{_hms(r['job_s']):>11}{_hms(r['longest_s']):>10}"
                     f"{_hms(r['elapsed_s']):>10}{_hms(r['cpu_s']):>10}{peak:>9}")
    lines.append("-" * len(head))
    total_peak = jobs["max_rss_mb"].max()
    lines.append(f"{'all':<26}{jobs.height:>6}{_hms(jobs['seconds'].sum()):>11}{_hms(jobs['seconds'].max()):>10}"
                 f"{_hms(jobs['end'].max() - jobs['start'].min()):>10}{_hms(jobs['cpu_s'].sum()):>10}"
                 f"{'-' if total_peak is None else format(total_peak, '.0f'):>9}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nanoforge.bench times", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", nargs="?", default="results/benchmarks", help="benchmark folder (default: %(default)s)")
    ap.add_argument("--by", choices=["stage", "rule"], default="stage")
    ap.add_argument("--since", type=float, default=None, help="only jobs that ended after this time (epoch seconds)")
    ap.add_argument("--rules", default=str(RULES_DIR), help="folder of the rule files (default: this checkout's)")
    args = ap.parse_args(argv)
    root = Path(args.dir)
    if not root.is_dir():
        print(f"{root}: no benchmark folder (run the workflow first)", file=sys.stderr)
        return 2
    try:
        jobs = read_benchmarks(root, since=args.since)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if jobs.height == 0:
        when = "" if args.since is None else f" since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(args.since))}"
        print(f"no job ran{when} (every output was up to date); all jobs: python -m nanoforge.bench times {root}")
        return 0
    print(f"Time per {args.by} ({jobs.height} jobs, from {root}; h:mm:ss; job time: the jobs' wall times added up)")
    print(format_table(summarise(jobs, args.by, rule_stages(args.rules)), jobs, args.by))
    return 0


if __name__ == "__main__":
    sys.exit(main())
