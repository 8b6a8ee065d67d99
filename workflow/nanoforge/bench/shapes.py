"""Benchmark of the shape stage: ``python -m nanoforge.bench shapes [options]``.

For each size (default 10k, 100k and 1.2M particles) a synthetic particle table of known
shapes is made once (:func:`nanoforge.shapes.synthetic.synthetic_particle_table`: 1024 px
images of 100 particles, samples of 10 images with different shape mixtures, all 11 shape
classes; cached under ``--cache-dir``; its making is not timed). Then, in a fresh process,
the stage runs end to end as the workflow runs it: descriptor extraction streamed over the
table (``--workers`` threads), clustering (UMAP + HDBSCAN fitted on a stratified sample of
``--n-fit`` particles, every other particle assigned in batches) and cluster naming (the
classifier trained on synthetic particles, then the votes), each writing its Parquet table.

Printed per size: wall time of each step and in total (numba compilation included, cached
after the first run on a machine), peak resident memory of the process (sampled every 0.1 s,
and the kernel's maximum RSS), the adjusted Rand index of the clusters and of the named
shapes against the true shapes, and per shape class the naming accuracy (recall: share of
the class's particles whose cluster carries its name; noise counts as wrong) and purity
(precision: share of the particles named so that truly are).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

DEFAULT_SIZES = [10_000, 100_000, 1_200_000]
TARGET_CLASSES = ["sphere", "cube", "rod", "triangle", "hexagon"]


def _rss_tree(pid: int) -> int:
    import psutil

    try:
        p = psutil.Process(pid)
        return p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
    except psutil.Error:
        return 0


def _table_path(cache: Path, n: int, seed: int) -> Path:
    return cache / f"synthetic_{n}_seed{seed}.parquet"


def ensure_table(cache: Path, n: int, seed: int, workers: int) -> tuple[Path, float | None]:
    from nanoforge.shapes.synthetic import write_synthetic_table

    path = _table_path(cache, n, seed)
    if path.exists():
        return path, None
    t0 = time.perf_counter()
    write_synthetic_table(path, n, seed=seed, workers=workers)
    return path, time.perf_counter() - t0


def run_one(table: str, out_dir: str, workers: int, n_fit: int, seed: int, n_per_class: int) -> dict:
    """The measured part (runs in its own process)."""
    import numpy as np
    import polars as pl
    from sklearn.metrics import adjusted_rand_score

    from nanoforge.shapes.cluster import ClusterParams, cluster_shapes
    from nanoforge.shapes.descriptors import extract_descriptors
    from nanoforge.shapes.naming import name_clusters_from_files, naming_accuracy

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t = {}
    t0 = time.perf_counter()
    desc_summary = extract_descriptors(table, out / "descriptors.parquet", workers=workers)
    t["descriptors_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    params = ClusterParams(n_fit=n_fit, seed=seed)
    summary = cluster_shapes(out / "descriptors.parquet", out / "clusters.parquet", params, images=None,
                             stratify_by="image_id")
    t["cluster_s"] = time.perf_counter() - t1
    t["fit_s"], t["assign_s"] = summary.get("fit_s"), summary.get("assign_s")
    t2 = time.perf_counter()
    mapping, shapes = name_clusters_from_files(out / "clusters.parquet", out / "descriptors.parquet",
                                               {"n_per_class": n_per_class}, None, seed)
    shapes.write_parquet(out / "particle_shapes.parquet")
    t["naming_s"] = time.perf_counter() - t2
    t["total_s"] = time.perf_counter() - t0
    # evaluation (not timed)
    truth = pl.scan_parquet(table).select("image_id", "particle_id", "true_shape").collect()
    j = shapes.join(truth, on=["image_id", "particle_id"], how="left", maintain_order="left")
    y, c, named = j["true_shape"].to_numpy(), j["cluster_id"].to_numpy(), j["shape"].to_numpy()
    acc = naming_accuracy(y, named)
    purity = {s: float(np.mean(y[named == s] == s)) for s in sorted(set(y.tolist())) if (named == s).any()}
    return {
        "particles": desc_summary["rows"],
        "descriptor_status": desc_summary["status"],
        "timings": {k: (round(v, 1) if v is not None else None) for k, v in t.items()},
        "clusters": summary.get("clusters"),
        "fitted": summary.get("fitted"),
        "noise_share": round(summary.get("noise", 0) / max(1, summary.get("clustered", 1)), 4),
        "ari_clusters": round(float(adjusted_rand_score(y, c)), 4),
        "ari_named": round(float(adjusted_rand_score(y, named)), 4),
        "accuracy": {k: round(v, 4) for k, v in acc.items()},
        "purity": {k: round(v, 4) for k, v in purity.items()},
        "maxrss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def measure(table: Path, out_dir: Path, args) -> dict:
    """Run :func:`run_one` in a fresh process, sampling its memory."""
    result_file = out_dir / "result.json"
    cmd = [sys.executable, "-m", "nanoforge.bench.shapes", "--run-one", str(table), "--out-dir", str(out_dir),
           "--workers", str(args.workers), "--n-fit", str(args.n_fit), "--seed", str(args.seed),
           "--n-per-class", str(args.n_per_class)]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]) + os.pathsep
               + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _rss_tree(proc.pid))
            stop.wait(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    rc = proc.wait()
    stop.set()
    th.join()
    wall = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"benchmark run failed ({rc}): {' '.join(cmd)}")
    res = json.loads(result_file.read_text())
    res["process_wall_s"] = round(wall, 1)
    res["peak_rss_gb"] = round(max(peak / 2**30, res["maxrss_gb"]), 2)
    return res


def _print(n: int, gen_s, res: dict) -> None:
    t = res["timings"]
    print(f"\n== {res['particles']:,} particles (synthetic, 11 shape classes)"
          + (f"; table made in {gen_s:.0f} s (not timed below)" if gen_s else "; table from cache"))
    print(f"wall time  descriptors {t['descriptors_s']:.1f} s | clustering {t['cluster_s']:.1f} s "
          f"(fit {t['fit_s']} s on {res['fitted']:,}, assign {t['assign_s']} s) | naming {t['naming_s']:.1f} s"
          f" | end to end {t['total_s']:.1f} s = {t['total_s'] / 60:.2f} min (process {res['process_wall_s']} s)")
    print(f"peak memory {res['peak_rss_gb']:.2f} GB (sampled RSS; kernel max RSS {res['maxrss_gb']:.2f} GB)")
    print(f"clusters {res['clusters']}, noise {res['noise_share']:.1%}; ARI clusters vs true shape "
          f"{res['ari_clusters']:.3f}, ARI named shape vs true shape {res['ari_named']:.3f}")
    print(f"{'class':<20}{'accuracy':>10}{'purity':>10}")
    for s, a in res["accuracy"].items():
        mark = "  (target >= 0.90)" if s in TARGET_CLASSES else ""
        print(f"{s:<20}{a:>10.3f}{res['purity'].get(s, float('nan')):>10.3f}{mark}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nanoforge.bench shapes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                    help="comma-separated particle counts (default %(default)s)")
    ap.add_argument("--workers", type=int, default=2, help="descriptor threads / table-making processes")
    ap.add_argument("--n-fit", type=int, default=30000, help="particles UMAP/HDBSCAN are fitted on")
    ap.add_argument("--n-per-class", type=int, default=300, help="synthetic particles per class for the naming classifier")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", default="results/bench/shapes", help="where tables and outputs go")
    ap.add_argument("--run-one", help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run_one:
        res = run_one(args.run_one, args.out_dir, args.workers, args.n_fit, args.seed, args.n_per_class)
        (Path(args.out_dir) / "result.json").write_text(json.dumps(res))
        return 0
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(f"shape-stage benchmark: sizes {sizes}, {args.workers} workers, n_fit {args.n_fit}, "
          f"{os.cpu_count()} CPUs visible, load average {os.getloadavg()[0]:.1f}")
    results = {}
    for n in sizes:
        table, gen_s = ensure_table(cache, n, args.seed, args.workers)
        res = measure(table, cache / f"run_{n}", args)
        results[n] = res
        _print(n, gen_s, res)
    (cache / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nresults written to {cache / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
