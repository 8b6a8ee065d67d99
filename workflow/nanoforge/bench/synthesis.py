"""Synthesis benchmark: ``python -m nanoforge.bench synthesis [options]``.

Prints the comparison table of the synthesis harness: every run under every protocol (mean
± standard deviation over validation splits) next to the paper's published numbers and the
anchors re-run when the protocols were set up (source ``re-run``), and whether the targets
of the baselines are met. It reads the metrics of a finished workflow run
(``results/synthesis/<protocol>/<run>/metrics.csv``), so run the workflow first, in its
working directory::

    snakemake --cores 2 results/synthesis/comparison.csv
    python -m nanoforge.bench synthesis

Under protocol G it also prints where the error of the best size run comes from: the recipe
families with the largest shares of its summed absolute error (``--families``). Under
protocol U it prints every size run's MAE on each held-out product, next to the paper
transformer's MAE on that product where the paper held it out.

``--evaluate`` instead runs the harness here, in this process, from the feature table
(``results/features/recipe_features.parquet``) and the config, without Snakemake (slow: it
fits every run); ``--runs``/``--protocols`` restrict it. With ``--g-partitions N`` it also
evaluates every G run on N other partitions of the recipe families into folds
(``protocols.G.partition_seed`` 1..N) and prints the figure on each, with their mean and
standard deviation next to the standard (GroupKFold) partition's: how much a G figure owes
to which families happen to share a fold. For example::

    python -m nanoforge.bench synthesis --evaluate --config config.yaml config.paper.yaml \\
        --runs size_vote_chem --protocols G --g-partitions 8

(``size_vote_chem`` and the other baselines of the paper comparison are runs of the overlay
``config.paper.yaml``; the default config.yaml holds the best run of each task and protocol.)

``--config FILE [OVERLAY ...]`` merges each overlay key by key into the config, as Snakemake's
``--configfile`` does (e.g. ``config.yaml config.gpu.yaml``: the paper-size transformer);
``--jobs N`` evaluates N outer splits at once in separate processes; ``--save DIR`` writes each
evaluated run's ``DIR/<protocol>/<run>/metrics.csv`` and ``predictions.parquet``, the layout
the default mode reads (``--results DIR``).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import polars as pl

from nanoforge.tables import write_csv

# Targets of the baselines (issue "featurized recipes, baselines and the harness").
TARGETS = [
    ("P", "size", "size_rf_unimol", "mae_nm", 1.631 - 0.1, 1.631 + 0.1,
     "random forest on the Uni-Mol features within 0.1 nm of the paper's 1.631"),
    ("P", "size", None, "mae_nm", None, 1.50, "best size baseline MAE <= 1.50 nm"),
    ("G", "size", None, "mae_nm", None, 2.6, "best size baseline under G MAE <= 2.6 nm"),
    ("P", "shape", None, "accuracy", 0.86, None, "shape without the measured size: accuracy >= 0.86"),
]


def _metric_files(root: Path) -> list[Path]:
    return sorted(root.glob("*/*/metrics.csv"))


def _read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, schema_overrides={"fold": pl.String, "params": pl.String})


def check_targets(table: pl.DataFrame) -> list[str]:
    lines = []
    ours = table.filter(pl.col("source") == "this workflow")
    for protocol, task, run, metric, lo, hi, text in TARGETS:
        sub = ours.filter((pl.col("protocol") == protocol) & (pl.col("task") == task))
        if task == "shape":
            sub = sub.filter(~pl.col("with_size"))
        if run is not None:
            sub = sub.filter(pl.col("entry").str.starts_with(run + " "))
        sub = sub.drop_nulls(metric)
        if sub.height == 0:
            lines.append(f"  [not run] {text}")
            continue
        best = sub.sort(metric, descending=metric == "accuracy").row(0, named=True)
        value = best[metric]
        ok = (lo is None or value >= lo) and (hi is None or value <= hi)
        lines.append(f"  [{'met' if ok else 'NOT met'}] {text}: {value:.3f} ({best['entry']})")
    return lines


def best_size_run(tables: list[pl.DataFrame], protocol: str) -> str | None:
    """The size run with the lowest mean MAE under ``protocol`` among the runs' metrics
    tables, or None if none ran."""
    means = [t.filter((pl.col("fold") == "mean") & (pl.col("protocol") == protocol)).select("run", "mae_nm")
             for t in tables if "mae_nm" in t.columns]  # size runs' tables have MAE columns
    means = [m for m in means if m.height]
    return pl.concat(means).sort("mae_nm").row(0)[0] if means else None


def family_report(predictions: pl.DataFrame, run: str, top: int) -> list[str]:
    """The ``top`` recipe families of ``run``'s out-of-fold size ``predictions`` under G,
    largest share of its absolute error first."""
    from nanoforge.synthesis.metrics import family_breakdown

    fam = family_breakdown(predictions)
    lines = [f"Protocol G, {run}: error by recipe family ({fam.height} families held out; "
             f"MAE averaged over families {fam['mae_nm'].mean():.3f} nm)",
             f"  {'family':<44} {'rows':>5} {'row share':>9} {'MAE nm':>7} {'bias nm':>8} {'error share':>11}"]
    for r in fam.head(top).iter_rows(named=True):
        lines.append(f"  {r['family'][:44]:<44} {r['n']:>5} {r['row_share']:>9.1%} {r['mae_nm']:>7.3f} "
                     f"{r['bias_nm']:>+8.3f} {r['error_share']:>11.1%}")
    lines.append("  (bias: truth minus prediction, mean over the family's rows)")
    return lines


def product_report(tables: list[pl.DataFrame]) -> list[str]:
    """Size MAE (nm) of every size run under U on each held-out product (one row per product,
    one column per run), with the paper transformer's MAE on the products it held out; no
    lines when no size run was evaluated under U."""
    from nanoforge.synthesis.compare import PAPER_U_MAE_NM
    from nanoforge.synthesis.metrics import SUMMARY_FOLDS

    per_run, rows = {}, {}
    for t in tables:
        if "mae_nm" not in t.columns:
            continue  # a shape run
        folds = t.filter((pl.col("protocol") == "U") & ~pl.col("fold").is_in(SUMMARY_FOLDS))
        if folds.height:
            per_run[folds["run"][0]] = dict(zip(folds["fold"], folds["mae_nm"]))
            rows.update(zip(folds["fold"], folds["n_val"]))
    if not per_run:
        return []
    runs = sorted(per_run)
    products = list(dict.fromkeys(p for r in runs for p in per_run[r]))
    width = max(12, *(len(r) for r in runs))
    lines = ["Protocol U: size MAE (nm) by held-out product",
             f"  {'product':<14} {'rows':>5} " + " ".join(f"{r:>{width}}" for r in runs) + f" {'paper transformer':>17}"]
    for product in products:
        cells = [f"{per_run[r][product]:>{width}.3f}" if product in per_run[r] else f"{'-':>{width}}" for r in runs]
        paper = PAPER_U_MAE_NM.get(product)
        lines.append(f"  {product[:14]:<14} {rows[product]:>5} " + " ".join(cells) + f" {paper if paper is not None else '-':>17}")
    return lines


def partition_report(figures: dict[str, dict]) -> list[str]:
    """One row per partition of protocol G (``standard`` = GroupKFold, then the drawn
    seeds), one column per run, each cell the run's figure on that partition
    (``figures[run][partition]``: mean MAE over folds for size runs, mean accuracy for shape
    runs), then the mean and standard deviation over the drawn partitions (the standard one
    excluded)."""
    import numpy as np

    runs = sorted(figures)
    if not runs:
        return []
    parts = list(dict.fromkeys(p for r in runs for p in figures[r]))
    width = max(12, *(len(r) for r in runs))
    lines = ["Protocol G on other partitions of the recipe families (size runs: MAE nm, "
             "shape runs: accuracy; mean over folds)",
             f"  {'partition':<12} " + " ".join(f"{r:>{width}}" for r in runs)]
    for part in parts:
        cells = [f"{figures[r][part]:>{width}.3f}" if part in figures[r] else f"{'-':>{width}}" for r in runs]
        lines.append(f"  {part:<12} " + " ".join(cells))
    drawn = {r: [v for p, v in figures[r].items() if p != "standard"] for r in runs}
    for name, fn in (("mean drawn", np.mean), ("std drawn", np.std)):
        cells = [f"{fn(drawn[r]):>{width}.3f}" if drawn[r] else f"{'-':>{width}}" for r in runs]
        lines.append(f"  {name:<12} " + " ".join(cells))
    return lines


def _run_figure(metrics: pl.DataFrame, task: str) -> float:
    """A run's headline figure: mean MAE (nm) over folds for size, mean accuracy for shape."""
    return float(metrics.filter(pl.col("fold") == "mean")["mae_nm" if task == "size" else "accuracy"][0])


def cross_validate_partitions(design: pl.DataFrame, syn: dict, run: dict, n: int, **kwargs) -> dict[str, float]:
    """``run``'s figure under protocol G on family partitions ``partition_seed`` 1..n
    (``kwargs``: those of ``cross_validate_run``), keyed ``seed <k>``; the harness's timing per
    partition goes to stderr."""
    from nanoforge.synthesis.harness import cross_validate_run

    figures = {}
    for seed in range(1, n + 1):
        t0 = time.time()
        drawn = copy.deepcopy(syn)
        drawn["protocols"]["G"]["partition_seed"] = seed
        res = cross_validate_run(design, drawn, run, "G", **kwargs)
        figures[f"seed {seed}"] = _run_figure(res.metrics, run["task"])
        print(f"G {run['name']} partition {seed}: {figures[f'seed {seed}']:.3f}, {time.time() - t0:.0f} s",
              file=sys.stderr)
    return figures


def load_inputs(config_files: list[str], features: str):
    """The config (``config_files[0]`` with the others merged in as overlays, validated), the
    feature table and the fold table of the synthesis section (None where it names none)."""
    from nanoforge.config import load_config
    from nanoforge.synthesis.stage import read_fold_table

    cfg = load_config(*config_files)
    folds = read_fold_table(cfg["synthesis"]["folds"]) if cfg["synthesis"]["folds"] else None
    return cfg, pl.read_parquet(features), folds


def main(argv: list[str] | None = None) -> int:
    from nanoforge.synthesis import compare

    ap = argparse.ArgumentParser(prog="python -m nanoforge.bench synthesis", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results/synthesis", help="folder of the harness's results")
    ap.add_argument("--evaluate", action="store_true", help="run the harness here instead of reading results")
    ap.add_argument("--config", nargs="+", default=["config.yaml"],
                    help="config for --evaluate, then overlays merged into it (e.g. config.yaml config.paper.yaml)")
    ap.add_argument("--features", default="results/features/recipe_features.parquet",
                    help="feature table for --evaluate")
    ap.add_argument("--runs", nargs="*", help="--evaluate: only these runs")
    ap.add_argument("--protocols", nargs="*", help="--evaluate: only these protocols")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=1, help="--evaluate: outer splits evaluated at once (processes)")
    ap.add_argument("--save", help="--evaluate: write <save>/<protocol>/<run>/metrics.csv and predictions.parquet")
    ap.add_argument("--families", type=int, default=5,
                    help="recipe families to list for the best size run under G (0: none)")
    ap.add_argument("--g-partitions", type=int, default=0, metavar="N",
                    help="--evaluate: also evaluate each G run on N other family partitions")
    args = ap.parse_args(argv)
    if args.g_partitions and not args.evaluate:
        ap.error("--g-partitions needs --evaluate (it fits the runs on each partition)")
    partitions: dict[str, dict] = {}  # G run -> partition -> figure (--g-partitions)

    if args.evaluate:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(message)s")  # the harness's line per split

        from nanoforge.synthesis.harness import cross_validate_run

        cfg, design, folds = load_inputs(args.config, args.features)
        syn = cfg["synthesis"]
        tables, predictions = [], {}
        for run in syn["runs"]:
            if args.runs and run["name"] not in args.runs:
                continue
            for protocol in run["protocols"]:
                if args.protocols and protocol not in args.protocols:
                    continue
                t0 = time.time()
                res = cross_validate_run(design, syn, run, protocol, seed=cfg["seed"], threads=args.threads,
                                         fold_table=folds, jobs=args.jobs)
                tables.append(res.metrics)
                if args.save:
                    where = Path(args.save) / protocol / run["name"]
                    where.mkdir(parents=True, exist_ok=True)
                    write_csv(res.metrics, where / "metrics.csv")
                    res.predictions.write_parquet(where / "predictions.parquet")
                if protocol == "G" and run["task"] == "size":
                    predictions[run["name"]] = res.predictions
                print(f"{protocol} {run['name']}: {time.time() - t0:.0f} s", file=sys.stderr)
                if protocol == "G" and args.g_partitions:
                    partitions[run["name"]] = {"standard": _run_figure(res.metrics, run["task"]),
                                               **cross_validate_partitions(design, syn, run, args.g_partitions,
                                                                           seed=cfg["seed"], threads=args.threads,
                                                                           fold_table=folds, jobs=args.jobs)}
    else:
        root = Path(args.results)
        files = _metric_files(root)
        if not files:
            print(f"no metrics under {root}/<protocol>/<run>/metrics.csv: run the workflow first "
                  "(snakemake --cores 2 results/synthesis/comparison.csv) or pass --evaluate",
                  file=sys.stderr)
            return 1
        tables = [_read(p) for p in files]
    table = compare.comparison_table(tables)
    print(compare.format_text(table))
    print("\nTargets:")
    print("\n".join(check_targets(table)))
    run = best_size_run(tables, "G") if args.families > 0 else None
    if run is not None:
        if not args.evaluate:
            predictions = {run: pl.read_parquet(root / "G" / run / "predictions.parquet")}
        print()
        print("\n".join(family_report(predictions[run], run, args.families)))
    products = product_report(tables)
    if products:
        print()
        print("\n".join(products))
    if partitions:
        print()
        print("\n".join(partition_report(partitions)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
