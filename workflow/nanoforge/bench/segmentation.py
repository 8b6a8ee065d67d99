"""Segmentation benchmark: ``python -m nanoforge.bench segmentation [--dir results/segmentation/evaluation]``.

Prints, per method and data set, AP50, AP75, mean matched IoU, median size error and the
segmentation time in seconds per megapixel (as measured by the workflow run that wrote
``metrics.csv``), then the size-distribution and box-detection checks. Run
``snakemake --cores 2 results/segmentation/evaluation/metrics.csv`` first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl


def _fmt(v, spec=".3f"):
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return format(v, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nanoforge.bench segmentation", description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="results/segmentation/evaluation", help="folder holding metrics.csv")
    args = ap.parse_args(argv)
    d = Path(args.dir)
    if not (d / "metrics.csv").is_file():
        print(f"{d / 'metrics.csv'} not found: run `snakemake --cores 2 {d / 'metrics.csv'}` first", file=sys.stderr)
        return 2
    m = pl.read_csv(d / "metrics.csv").sort("dataset", "method")
    head = f"{'method':<14}{'dataset':<20}{'images':>7}{'truths':>8}{'AP50':>8}{'AP75':>8}{'mIoU':>8}" \
           f"{'size err':>10}{'COCO mAP':>10}{'s/MP':>8}"
    print(head)
    print("-" * len(head))
    for r in m.iter_rows(named=True):
        print(f"{r['method']:<14}{r['dataset']:<20}{r['n_images']:>7}{r.get('n_gt') or 0:>8}{_fmt(r.get('ap50')):>8}"
              f"{_fmt(r.get('ap75')):>8}{_fmt(r['mean_matched_iou']):>8}{_fmt(r['median_size_error'], '.1%'):>10}"
              f"{_fmt(r.get('coco_map')):>10}{_fmt(r['seconds_per_mpx'], '.2f'):>8}")
    for name, cols in (("size_check.csv", ["method", "dataset", "n_particles", "mean_d_nm", "cv_pct", "ref_mean_d_nm",
                                           "ref_cv_pct", "mean_rel_diff_pct"]),
                       ("detection_check.csv", ["method", "dataset", "n_boxes", "n_pred", "box_recall_50",
                                                "box_precision_50"])):
        f = d / name
        if f.is_file() and f.stat().st_size > 0:
            t = pl.read_csv(f)
            if t.height:
                print(f"\n{name}:")
                with pl.Config(tbl_rows=100, tbl_cols=20, tbl_width_chars=200, float_precision=3):
                    print(t.select([c for c in cols if c in t.columns]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
