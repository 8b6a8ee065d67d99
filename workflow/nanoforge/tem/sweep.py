"""Choosing weak-label settings on images that are not evaluated: a sweep over
:class:`nanoforge.tem.weak_labels.WeakLabelParams` variants on one set of images with
ground truth, with the detector run once per image (its boxes and scores are cached, so each
variant costs only the morphology).

Used by ``python -m nanoforge.bench weak_labels_sweep`` on a synthetic ``tune`` split (drawn
with the workflow's simulator and seed, so neither the detector's training images nor the
hold-out images). The weak-label defaults ``max_mask_iou`` and ``max_inside`` were chosen this
way.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Callable

import numpy as np
import polars as pl

from nanoforge.tem import coco
from nanoforge.tem.segmentation_scores import score_image_segmentation
from nanoforge.tem.weak_labels import WeakLabelParams, weak_labels_for_image


def parse_variant(text: str) -> dict:
    """``"max_mask_iou=0.4,max_inside=0.8"`` -> ``{"max_mask_iou": 0.4, "max_inside": 0.8}``
    (values typed like the dataclass field); ``""`` -> ``{}`` (the base settings)."""
    kinds = {f.name: f.type for f in fields(WeakLabelParams)}
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ValueError(f"variant {text!r}: {part!r} is not key=value")
        key, value = (s.strip() for s in part.split("=", 1))
        if key not in kinds:
            raise ValueError(f"variant {text!r}: unknown weak_labels setting {key!r}; known: {sorted(kinds)}")
        kind = str(kinds[key])
        if kind == "bool":
            out[key] = value.lower() in ("1", "true", "yes")
        elif kind == "int":
            out[key] = int(value)
        elif kind == "float":
            out[key] = float(value)
        else:
            out[key] = value
    return out


def sweep(images: list[tuple[np.ndarray, list[dict]]], detect: Callable[[np.ndarray], tuple],
          base: dict, variants: list[dict], log=None) -> pl.DataFrame:
    """AP50 (pooled TP / (TP + FP + FN)), the mean per-image AP50 and the counts of each
    variant (``base`` updated by the variant) over ``images`` (gray image, ground-truth COCO
    annotations). ``detect(image) -> (boxes, scores)`` runs once per image (a third value,
    the detector's enlargement, is not needed here)."""
    dets = []
    for k, (img, _) in enumerate(images, start=1):
        boxes, scores, *_ = detect(img)
        dets.append((np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float).reshape(-1)))
        if log is not None:
            print(f"detected image {k}/{len(images)}: {len(dets[-1][1])} boxes", file=log, flush=True)
    rows = []
    for v in variants:
        p = WeakLabelParams.from_config({**base, **v})
        tp = fp = fn = 0
        per_image = []
        for (img, gt), (boxes, scores) in zip(images, dets):
            inst, _ = weak_labels_for_image(img, boxes, scores, p)
            pred = [coco.annotation_from_crop(a.crop, a.row0, a.col0, img.shape[:2], 1, i + 1, score=a.score)
                    for i, a in enumerate(inst)]
            r = score_image_segmentation(pred, gt)
            tp, fp, fn = tp + r["tp_0.5"], fp + r["fp_0.5"], fn + r["fn_0.5"]
            per_image.append(r["ap_0.5"])
        rows.append({"variant": ",".join(f"{k}={val}" for k, val in v.items()) or "(config)",
                     "ap50": tp / (tp + fp + fn) if tp + fp + fn else 1.0,
                     "ap50_image_mean": float(np.mean(per_image)) if per_image else float("nan"),
                     "tp": tp, "fp": fp, "fn": fn})
        if log is not None:
            print(f"{rows[-1]['variant']}: AP50 {rows[-1]['ap50']:.4f}", file=log, flush=True)
    return pl.DataFrame(rows)
