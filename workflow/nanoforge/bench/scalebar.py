"""Scale-bar reader benchmark: ``python -m nanoforge.bench scalebar [--n 200] [--split S]
[--pool DIR --overlays DIR]``.

Synthetic part: ``--n`` images of ``simulate_tem`` with a varied scale bar each
(:data:`SIMULATE`), split ``--split`` (``scalebar_test`` by default; thresholds were chosen on
``scalebar_tune``), read by :func:`nanoforge.tem.scalebar.read_scale_bar` and compared with the
image's true nm/px. Prints how many are calibrated within 2 %, how many fall through (by
reason), and how many are calibrated wrongly by more than 2 % and more than 5 % (silently
wrong: a calibration returned, not a reason).

Pool part (``--pool``): every image of a folder (e.g. the unlabelled figure crops of
``emps_pool/images``) is read; prints how many have a bar found, a label read and a
calibration, and writes an overlay PNG per image (bar and label outlined, the reading in the
title) to ``--overlays`` and a CSV of the readings.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl

from nanoforge.tables import write_csv

SIMULATE = {"scale_bar_probability": 1.0, "scale_bar_style": "varied", "nm_per_px": [0.005, 30.0]}


def _reason_kind(reason: str) -> str:
    for key in ("no scale bar", "no label", "low confidence", "disagree", "cut by", "plausible"):
        if key in reason:
            return key
    return reason


def _synthetic_one(args):
    from nanoforge.tem.scalebar import read_scale_bar
    from nanoforge.tem.simulate import simulate_one

    seed, split, i, cfg = args
    img, p, _, bar = simulate_one(seed, split, i, SIMULATE)
    r = read_scale_bar(img, cfg)
    return {"index": i, "true_nm_per_px": p.nm_per_px, "drawn_label": bar["label"] if bar else None,
            "font": bar["font"] if bar else None, "font_px": bar["font_px"] if bar else None,
            "nm_per_px": r.nm_per_px, "label": r.label, "bar_px": r.bar_length_px,
            "true_bar_px": bar["length"] if bar else None, "confidence": r.confidence, "reason": r.reason}


def synthetic(n: int, split: str, seed: int, cfg: dict | None, workers: int) -> list[dict]:
    tasks = [(seed, split, i, cfg) for i in range(n)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as ex:
            return list(ex.map(_synthetic_one, tasks))
    return [_synthetic_one(t) for t in tasks]


def summarise(rows: list[dict]) -> dict:
    n = len(rows)
    err = [abs(r["nm_per_px"] / r["true_nm_per_px"] - 1) if r["nm_per_px"] else None for r in rows]
    within = sum(e is not None and e <= 0.02 for e in err)
    off2 = sum(e is not None and 0.02 < e <= 0.05 for e in err)
    off5 = sum(e is not None and e > 0.05 for e in err)
    fell = collections.Counter(_reason_kind(r["reason"]) for r, e in zip(rows, err) if e is None)
    return {"n": n, "within_2pct": within, "wrong_2_5pct": off2, "wrong_over_5pct": off5,
            "fell_through": sum(fell.values()), "reasons": dict(fell)}


def pool(folder: Path, overlays: Path | None, cfg: dict | None) -> list[dict]:
    from PIL import Image

    from nanoforge.tem.scalebar import overlay_image, read_scale_bar

    rows = []
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff"))
    if overlays is not None:
        overlays.mkdir(parents=True, exist_ok=True)
    for f in files:
        with Image.open(f) as im:
            gray = np.asarray(im.convert("L"))
        r = read_scale_bar(gray, cfg)
        rows.append({"image": f.name, "bar_found": r.found, "label": r.label, "bar_px": r.bar_length_px,
                     "nm_per_px": r.nm_per_px, "confidence": r.confidence, "reason": r.reason})
        if overlays is not None:
            overlay_image(gray, r).save(overlays / f"{f.stem}.png")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nanoforge.bench scalebar", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="synthetic images (0: none)")
    ap.add_argument("--split", default="scalebar_test")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--min-confidence", type=float, default=None)
    ap.add_argument("--out", type=Path, default=None, help="CSV of the per-image readings")
    ap.add_argument("--pool", type=Path, default=None, help="folder of real images to read")
    ap.add_argument("--overlays", type=Path, default=None, help="folder for the pool's overlay PNGs")
    a = ap.parse_args(argv)
    cfg = {"min_confidence": a.min_confidence} if a.min_confidence is not None else None
    rows: list[dict] = []
    if a.n > 0:
        t0 = time.perf_counter()
        rows = synthetic(a.n, a.split, a.seed, cfg, a.workers)
        s = summarise(rows)
        sec = time.perf_counter() - t0
        print(f"synthetic ({a.split}, seed {a.seed}): {s['n']} images, {sec / s['n']:.2f} s each")
        print(f"  within 2 %: {s['within_2pct']} ({100 * s['within_2pct'] / s['n']:.1f} %)")
        print(f"  fell through with a reason: {s['fell_through']} ({100 * s['fell_through'] / s['n']:.1f} %): "
              + ", ".join(f"{k} {v}" for k, v in sorted(s["reasons"].items(), key=lambda kv: -kv[1])))
        print(f"  calibrated, off by 2-5 %: {s['wrong_2_5pct']}; off by more than 5 % (silently wrong): "
              f"{s['wrong_over_5pct']}")
        for r in rows:
            if r["nm_per_px"] and abs(r["nm_per_px"] / r["true_nm_per_px"] - 1) > 0.02:
                print(f"    #{r['index']}: drawn {r['drawn_label']!r} {r['true_bar_px']} px, read {r['label']!r} "
                      f"{r['bar_px']} px, confidence {r['confidence']:.2f}")
    if a.pool is not None:
        prow = pool(a.pool, a.overlays, cfg)
        n = len(prow)
        found = sum(r["bar_found"] for r in prow)
        read = sum(r["label"] is not None for r in prow)
        cal = sum(r["nm_per_px"] is not None for r in prow)
        print(f"pool {a.pool}: {n} images; bar found {found}, label read {read}, calibrated {cal}")
        why = collections.Counter(_reason_kind(r["reason"]) for r in prow if r["nm_per_px"] is None)
        print("  not calibrated: " + ", ".join(f"{k} {v}" for k, v in why.most_common()))
        rows = rows + [{"pool": 1, **r} for r in prow]
    if a.out is not None and rows:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted({k for r in rows for k in r})
        write_csv(pl.from_dicts([{k: r.get(k) for k in keys} for r in rows], infer_schema_length=None), a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
