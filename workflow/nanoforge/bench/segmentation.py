"""Segmentation benchmark: ``python -m nanoforge.bench segmentation [options]``.

Two modes, both printing per method and dataset AP50, AP75 (TP / (TP + FP + FN), pooled
over the images, as in :mod:`nanoforge.tem.segmentation_scores`), the mean IoU of the pairs matched at
0.5, the median relative error of the equivalent diameter over those pairs and seconds per
megapixel, then the size-distribution check (mean equivalent diameter of the particles not
touching the border against a ``size_reference``, e.g. the paper's PbSe image):

- default, ``[--dir results/segmentation/evaluation]``: the figures the workflow run wrote
  (``metrics.csv``, ``size_check.csv``, ``detection_check.csv``; times as measured by that
  run). Run ``snakemake --cores 2 results/segmentation/evaluation/metrics.csv`` first.
- ``--run [--workdir DIR] [--config FILE]``: runs each method again, timed now on this
  machine (reading, detection and masks; one process, ``--threads`` torch threads), on the
  held-out images of every ground-truth set of a finished workflow run in ``DIR`` (the real
  datasets' ``holdout`` split from ``results/tem/groundtruth/<dataset>.json`` and the
  synthetic ``holdout`` split). Methods: ``classical`` (config ``segmentation.classical``)
  and ``weak_labels`` (the detector in ``results/detector/`` plus config ``weak_labels``)::

    python -m nanoforge.bench segmentation --run --config config.yaml
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

METHODS = ("classical", "weak_labels")


def _fmt(v, spec=".3f"):
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return format(v, spec)


def report(d: Path) -> int:
    """Print the metrics a workflow run wrote into ``d`` (``metrics.csv`` and the checks)."""
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


def _read_gray(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def _method(name: str, cfg: dict, workdir: Path, device: str):
    """A callable image -> list of (crop, row0, col0, score) for method ``name``."""
    if name == "classical":
        from nanoforge.tem.classical import segment_image

        c = cfg["segmentation"]["classical"]
        return lambda img: segment_image(img, c)
    if name == "weak_labels":
        from nanoforge.tem.detector import ParticleDetector
        from nanoforge.config import split_weak_label_config
        from nanoforge.tem.weak_labels import WeakLabelParams, weak_labels_for_image

        wl, overrides = split_weak_label_config(cfg["weak_labels"])
        model_dir = workdir / "results" / "detector"
        if not (model_dir / "model_final.pth").is_file():
            raise SystemExit(f"no trained detector in {model_dir}: run the workflow first "
                             "(snakemake results/detector/model_final.pth)")
        det = ParticleDetector.from_output(model_dir, device=device, overrides=overrides or None)
        p = WeakLabelParams.from_config(wl)

        def run(img):
            d = det.predict(img)
            inst, _ = weak_labels_for_image(img, d.boxes, d.scores, p)
            return [(a.crop, a.row0, a.col0, a.score) for a in inst]

        return run
    raise SystemExit(f"unknown method {name!r}; available: {', '.join(METHODS)}")


def _predict(run, keys: list[str], paths: dict[str, str], method: str) -> dict:
    from nanoforge.tem import coco

    doc = coco.new_document({"method": method})
    next_ann = 1
    for i, key in enumerate(keys, start=1):
        t0 = time.perf_counter()
        img = _read_gray(paths[key])
        inst = run(img)
        seconds = time.perf_counter() - t0
        doc["images"].append(coco.image_entry(i, key, paths[key], img.shape[1], img.shape[0], seconds=seconds))
        for crop, r0, c0, score in inst:
            doc["annotations"].append(coco.annotation_from_crop(crop, r0, c0, img.shape, i, next_ann, score=score))
            next_ann += 1
    return doc


def ground_truth_sets(cfg: dict, workdir: Path, only: list[str] | None) -> dict[str, tuple[dict, list[str]]]:
    """dataset -> (COCO ground truth, held-out image keys)."""
    from nanoforge.tem import coco

    out = {}
    for ds, spec in cfg["tem"]["datasets"].items():
        if not spec.get("ground_truth") or (only and ds not in only):
            continue
        path = workdir / "results" / "tem" / "groundtruth" / f"{ds}.json"
        if not path.is_file():
            raise SystemExit(f"missing {path}: run the workflow first")
        doc = coco.read_coco(path)
        out[ds] = (doc, [coco.image_key(i) for i in doc["images"] if i.get("split") == "holdout"])
    syn = workdir / "results" / "tem" / "synthetic" / "holdout" / "annotations.json"
    if syn.is_file() and (not only or "synthetic_holdout" in only):
        doc = coco.read_coco(syn)
        out["synthetic_holdout"] = (doc, [coco.image_key(i) for i in doc["images"]])
    return out


def fmt(v, digits=3) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nanoforge.bench segmentation", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="results/segmentation/evaluation",
                    help="folder holding the workflow's metrics.csv (default mode)")
    ap.add_argument("--run", action="store_true", help="run and time the methods now instead")
    ap.add_argument("--workdir", default=".", help="the workflow's working directory (default: .)")
    ap.add_argument("--config", default=None, help="its config file (default: WORKDIR/config.yaml)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--datasets", default="", help="comma-separated subset (default: every ground-truth set)")
    ap.add_argument("--max-images", type=int, default=0, help="at most this many held-out images per dataset")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--device", default="cpu", help="detector device: cpu (default), cuda or auto")
    args = ap.parse_args(argv)
    if not args.run:
        return report(Path(args.dir))

    import torch

    from nanoforge.config import load_config
    from nanoforge.tem.segmentation_scores import score_dataset_segmentation, size_distribution_check
    from nanoforge.tem.ingest import dataset_path
    from nanoforge.tem.measure import measure_document

    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    cfg = load_config(args.config or workdir / "config.yaml")
    tables = [workdir / "results" / "tem" / "images.parquet",
              workdir / "results" / "tem" / "synthetic" / "holdout" / "images.parquet"]
    images = pl.concat([pl.read_parquet(t) for t in tables if t.is_file()], how="vertical_relaxed")
    paths = {k: str(p if Path(p).is_absolute() else workdir / p) for k, p in zip(images["image_id"], images["path"])}
    only = [d for d in args.datasets.split(",") if d] or None
    sets = ground_truth_sets(cfg, workdir, only)
    methods = [m for m in args.methods.split(",") if m]
    runners = {m: _method(m, cfg, workdir, args.device) for m in methods}

    rows = []
    for ds, (gt, keys) in sets.items():
        keys = keys[: args.max_images] if args.max_images else keys
        for m in methods:
            doc = _predict(runners[m], keys, paths, m)
            _, s = score_dataset_segmentation(doc, gt, keys, m, ds)
            rows.append(s)
            print(f"... {m} on {ds}: {len(keys)} images", file=sys.stderr)

    size_rows = []
    for ds, spec in cfg["tem"]["datasets"].items():
        ref = spec.get("size_reference")
        if not ref or (only and ds not in only):
            continue
        ref_path = workdir / dataset_path(ds, spec) / ref["path"]
        reference = pl.read_csv(ref_path)[ref["column"]].drop_nulls().to_numpy().astype(float)
        ids = [f"{ds}/{stem}" for stem in ref["images"] if f"{ds}/{stem}" in paths]
        for m in methods:
            doc = _predict(runners[m], ids, paths, m)
            parts = measure_document(doc, images, m)
            size_rows.append(size_distribution_check(parts, ids, reference, m, ds))

    print(f"\nSegmentation benchmark ({workdir.resolve()}), held-out images only; "
          f"{args.threads} torch thread(s), device {args.device}\n")
    head = f"{'method':<12} {'dataset':<18} {'images':>6} {'n_gt':>6} {'AP50':>6} {'AP75':>6} " \
           f"{'mIoU':>6} {'med size err':>12} {'s/MPx':>7}"
    print(head)
    print("-" * len(head))
    for s in sorted(rows, key=lambda r: (r["dataset"], r["method"])):
        print(f"{s['method']:<12} {s['dataset']:<18} {s['n_images']:>6} {s.get('n_gt', 0):>6} "
              f"{fmt(s.get('ap50')):>6} {fmt(s.get('ap75')):>6} {fmt(s['mean_matched_iou']):>6} "
              f"{fmt(s['median_size_error']):>12} {fmt(s['seconds_per_mpx'], 2):>7}")
    if size_rows:
        print("\nSize distribution (particles not touching the border)")
        head = f"{'method':<12} {'dataset':<12} {'n':>5} {'mean D nm':>10} {'CV %':>6} {'ref mean':>9} " \
               f"{'ref CV %':>8} {'diff %':>7}"
        print(head)
        print("-" * len(head))
        for r in size_rows:
            print(f"{r['method']:<12} {r['dataset']:<12} {r['n_particles']:>5} {fmt(r['mean_d_nm'], 2):>10} "
                  f"{fmt(r['cv_pct'], 1):>6} {fmt(r['ref_mean_d_nm'], 2):>9} {fmt(r['ref_cv_pct'], 1):>8} "
                  f"{fmt(r['mean_rel_diff_pct'], 1):>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
