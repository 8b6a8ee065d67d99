"""Weak-label settings sweep: ``python -m nanoforge.bench weak_labels_sweep [options]``.

Draws ``--n`` synthetic images of split ``--split`` (default ``tune``: a split name the
workflow never uses, so these images are neither detector training nor hold-out images) with
the workflow's simulator settings and seed, runs the trained detector of a finished workflow
run in ``--workdir`` once per image, and prints AP50 of the weak labels for each
``--variant`` (comma-separated ``key=value`` settings of config ``weak_labels`` on top of the
config's; the config's own settings are always the first row)::

    python -m nanoforge.bench weak_labels_sweep --variant max_mask_iou=0.6,max_inside=1.0 \\
        --variant max_mask_iou=0.3 --variant min_score=0.6

The images and their ground truth are written to ``WORKDIR/results/bench/weak_labels_sweep/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nanoforge.bench weak_labels_sweep",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default=".", help="the workflow's working directory (default: .)")
    ap.add_argument("--config", default=None, help="its config file (default: WORKDIR/config.yaml)")
    ap.add_argument("--split", default="tune", help="synthetic split name (default: tune)")
    ap.add_argument("--n", type=int, default=30, help="images (default 30)")
    ap.add_argument("--variant", action="append", default=[], help="key=value[,key=value...] (repeatable)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--device", default="cpu", help="detector device: cpu (default), cuda or auto")
    args = ap.parse_args(argv)

    from nanoforge.config import load_config, simulation_settings, split_weak_label_config
    from nanoforge.tem import coco
    from nanoforge.tem.simulate import simulate_split
    from nanoforge.tem.sweep import parse_variant, sweep

    workdir = Path(args.workdir)
    cfg = load_config(args.config or workdir / "config.yaml")
    if args.split in cfg["simulate"]["splits"]:
        print(f"split {args.split!r} is one the workflow draws (simulate.splits); choose another name",
              file=sys.stderr)
        return 2
    try:
        variants = [{}] + [parse_variant(v) for v in args.variant]
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    model_dir = workdir / "results" / "detector"
    if not (model_dir / "model_final.pth").is_file():
        print(f"no trained detector in {model_dir}: run the workflow first "
              "(snakemake results/detector/model_final.pth)", file=sys.stderr)
        return 2

    import torch
    from PIL import Image

    from nanoforge.tem.detector import ParticleDetector

    torch.set_num_threads(args.threads)
    out = workdir / "results" / "bench" / "weak_labels_sweep" / args.split
    sim = simulation_settings(cfg["simulate"])
    doc = simulate_split(out, args.split, args.n, int(cfg["seed"]), sim, workers=args.threads)
    coco.write_coco(doc, out / "annotations.json")
    by_image = coco.annotations_by_image(doc)
    images = [(np.asarray(Image.open(out / "images" / im["file_name"]).convert("L")), by_image[im["id"]])
              for im in doc["images"]]

    wl, overrides = split_weak_label_config(cfg["weak_labels"])
    det = ParticleDetector.from_output(model_dir, device=args.device, overrides=overrides or None)
    table = sweep(images, det.detect, wl, variants, log=sys.stderr)
    n_truth = sum(len(g) for _, g in images)
    print(f"weak labels on {len(images)} synthetic '{args.split}' images ({n_truth} particles), "
          f"detector {model_dir}")
    for r in table.iter_rows(named=True):
        print(f"{r['ap50']:8.4f} {r['ap50_image_mean']:8.4f} tp {r['tp']:6d} fp {r['fp']:6d} fn {r['fn']:6d}  "
              f"{r['variant']}")
    print("columns: AP50 pooled, AP50 mean over images, counts at IoU 0.5, variant")
    return 0
