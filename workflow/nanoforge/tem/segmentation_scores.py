"""Segmentation evaluation against ground truth (docs/architecture.md, "Segmentation metrics").

For every image with ground truth, predicted and true instances are matched one to one by
mask IoU (an optimal assignment that first maximises the number of pairs above the
threshold, then their IoU). At threshold t:

    AP_t = TP / (TP + FP + FN)

(the Cellpose/StarDist "average precision" the paper reports, 0.825 at t = 0.5 on its own
test set). Per method and dataset the module reports AP_0.5 and AP_0.75 pooled over the
dataset's images (sums of TP, FP, FN) and averaged per image, COCO mask AP (0.5:0.95, 0.5
and 0.75: pycocotools' COCOeval algorithm, vectorised; no cap on detections per image), the mean IoU of the pairs
matched at 0.5 and the median relative error of the area-equivalent diameter over those
pairs, plus seconds per megapixel when the prediction document records its time per image.

Two checks without masks:

- size distribution (``pbse_fig2b``): mean and coefficient of variation of the measured
  equivalent diameter (particles not touching the border) against a reference table
  (the paper's own 405 sizes, mean 7.68 nm, CV 9.8 %);
- detection (``yolo_boxes``): one-to-one matching of predicted and true boxes at box IoU
  >= 0.5; box recall and precision.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment

from nanoforge.tables import write_csv
from nanoforge.tem import coco

THRESHOLDS = (0.5, 0.75)


def match(iou: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching at threshold ``t``: (pred indices, gt indices) of matched pairs."""
    if iou.size == 0:
        return np.zeros(0, int), np.zeros(0, int)
    ok = iou >= t
    if not ok.any():
        return np.zeros(0, int), np.zeros(0, int)
    # only rows/cols with a candidate take part; cost prefers more pairs, then higher IoU
    rows = np.flatnonzero(ok.any(axis=1))
    cols = np.flatnonzero(ok.any(axis=0))
    sub_ok = ok[np.ix_(rows, cols)]
    sub_iou = iou[np.ix_(rows, cols)]
    cost = -(sub_ok * (1.0 + sub_iou))
    r, c = linear_sum_assignment(cost)
    keep = sub_ok[r, c]
    return rows[r[keep]], cols[c[keep]]


def score_image_segmentation(pred: list[dict], gt: list[dict], thresholds=THRESHOLDS) -> dict:
    """Segmentation scores of one image: counts and matched-pair statistics of the predicted
    instances ``pred`` against the true ones ``gt``."""
    iou = coco.mask_iou(pred, gt)
    out = {"n_gt": len(gt), "n_pred": len(pred)}
    for t in thresholds:
        pi, gi = match(iou, t)
        tp = len(pi)
        out[f"tp_{t:g}"] = tp
        out[f"fp_{t:g}"] = len(pred) - tp
        out[f"fn_{t:g}"] = len(gt) - tp
        denom = len(pred) + len(gt) - tp
        out[f"ap_{t:g}"] = tp / denom if denom else 1.0
        if t == 0.5:
            out["matched_iou"] = iou[pi, gi].tolist()
            dp = coco.eq_diameter_px([pred[i]["area"] for i in pi])
            dg = coco.eq_diameter_px([gt[i]["area"] for i in gi])
            out["size_rel_error"] = (np.abs(dp - dg) / dg).tolist()
    return out


COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
COCO_RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def coco_ap_from_ious(images: list[tuple[np.ndarray, np.ndarray]], max_dets: int | None = None) -> np.ndarray:
    """COCO average precision per IoU threshold (0.50:0.05:0.95), category "all sizes".

    ``images``: per image, (IoU matrix detections x truths, detection scores). This is
    pycocotools' COCOeval algorithm (greedy matching of detections in score order to the
    best still-unmatched truth at IoU >= t; precision made monotone; 101 recall points),
    vectorised over truths: pycocotools' pure-Python loop takes minutes on images with
    hundreds of particles. ``tests/test_tem_segmentation_scores.py`` checks it gives the same numbers.
    """
    n_t = len(COCO_IOU_THRESHOLDS)
    scores_all, tps_all = [], []
    n_gt = 0
    for ious, scores in images:
        ious = np.asarray(ious, float)
        scores = np.asarray(scores, float)
        n_gt += ious.shape[1]
        order = np.argsort(-scores, kind="mergesort")
        if max_dets is not None:
            order = order[:max_dets]
        ious, scores = ious[order], scores[order]
        tp = np.zeros((n_t, len(order)), bool)
        g_count = ious.shape[1]
        for ti, t in enumerate(COCO_IOU_THRESHOLDS):
            thr = min(t, 1 - 1e-10)
            free = np.ones(g_count, bool)
            for d in range(len(order)):
                if not g_count:
                    break
                cand = np.where(free & (ious[d] >= thr), ious[d], -1.0)
                g = g_count - 1 - int(np.argmax(cand[::-1]))  # the last of equal maxima, as pycocotools
                if cand[g] >= thr:
                    free[g] = False
                    tp[ti, d] = True
        scores_all.append(scores)
        tps_all.append(tp)
    out = np.full(n_t, np.nan)
    if n_gt == 0:
        return out
    scores = np.concatenate(scores_all) if scores_all else np.zeros(0)
    tps = np.concatenate(tps_all, axis=1) if tps_all else np.zeros((n_t, 0), bool)
    order = np.argsort(-scores, kind="mergesort")
    for ti in range(n_t):
        tp = np.cumsum(tps[ti, order])
        fp = np.cumsum(~tps[ti, order])
        rc = tp / n_gt
        pr = tp / (tp + fp + np.spacing(1))
        pr = np.maximum.accumulate(pr[::-1])[::-1] if pr.size else pr
        idx = np.searchsorted(rc, COCO_RECALL_POINTS, side="left")
        q = np.zeros(len(COCO_RECALL_POINTS))
        ok = idx < len(pr)
        q[ok] = pr[idx[ok]]
        out[ti] = q.mean()
    return out


def coco_mask_ap(gt_doc: dict, pred_doc: dict, keys: list[str], max_dets: int | None = None) -> dict:
    """COCO mask AP (0.5:0.95, 0.5 and 0.75) of ``pred_doc`` on the images ``keys`` of
    ``gt_doc``; ``max_dets`` caps the detections per image (default: no cap)."""
    gt_by, pred_by = coco.annotations_by_image(gt_doc), coco.annotations_by_image(pred_doc)
    gt_ids = {coco.image_key(i): i["id"] for i in gt_doc["images"]}
    pred_ids = {coco.image_key(i): i["id"] for i in pred_doc["images"]}
    per_image = []
    for k in keys:
        gt = gt_by[gt_ids[k]]
        dt = pred_by.get(pred_ids.get(k), [])
        per_image.append((coco.mask_iou(dt, gt), [float(a.get("score", 1.0)) for a in dt]))
    ap = coco_ap_from_ious(per_image, max_dets)
    pick = lambda t: float(ap[np.isclose(COCO_IOU_THRESHOLDS, t)][0])  # noqa: E731
    return {"coco_map": float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan"),
            "coco_ap50": pick(0.5), "coco_ap75": pick(0.75)}


def score_dataset_segmentation(pred_doc: dict, gt_doc: dict, keys: list[str] | None = None, method: str = "",
                               dataset: str = "", thresholds=THRESHOLDS) -> tuple[pl.DataFrame, dict]:
    """Segmentation scores of one method on one ground-truth set: per-image rows and the
    summary row."""
    gt_by = coco.annotations_by_image(gt_doc)
    gt_imgs = {coco.image_key(i): i for i in gt_doc["images"]}
    keys = list(gt_imgs) if keys is None else [k for k in keys if k in gt_imgs]
    pred_imgs = {coco.image_key(i): i for i in pred_doc["images"]}
    pred_by = coco.annotations_by_image(pred_doc)
    rows, ious, errs = [], [], []
    seconds, mpx = 0.0, 0.0
    timed = True
    for k in keys:
        g = gt_imgs[k]
        p = pred_imgs.get(k)
        if p is None:
            raise KeyError(f"method {method!r} has no prediction for image {k!r} of dataset {dataset!r}")
        r = score_image_segmentation(pred_by[p["id"]], gt_by[g["id"]], thresholds)
        ious += r.pop("matched_iou")
        errs += r.pop("size_rel_error")
        if "seconds" in p:
            seconds += float(p["seconds"])
        else:
            timed = False
        mpx += g["width"] * g["height"] / 1e6
        rows.append({"method": method, "dataset": dataset, "image_id": k, **r})
    per_image = pl.DataFrame(rows) if rows else pl.DataFrame()
    summary = {"method": method, "dataset": dataset, "n_images": len(keys)}
    if rows:
        summary["n_gt"] = int(per_image["n_gt"].sum())
        summary["n_pred"] = int(per_image["n_pred"].sum())
        for t in thresholds:
            tp, fp, fn = (int(per_image[f"{x}_{t:g}"].sum()) for x in ("tp", "fp", "fn"))
            summary[f"ap{round(t * 100)}"] = tp / (tp + fp + fn) if tp + fp + fn else 1.0
            summary[f"ap{round(t * 100)}_image_mean"] = float(per_image[f"ap_{t:g}"].mean())
        summary.update(coco_mask_ap(gt_doc, pred_doc, keys))
    summary["mean_matched_iou"] = float(np.mean(ious)) if ious else float("nan")
    summary["median_size_error"] = float(np.median(errs)) if errs else float("nan")
    summary["n_matched"] = len(ious)
    summary["seconds_per_mpx"] = seconds / mpx if timed and mpx > 0 else float("nan")
    return per_image, summary


# ---------------------------------------------------------------------------------------
# checks without masks
# ---------------------------------------------------------------------------------------


def size_distribution_check(particles: pl.DataFrame, image_ids: list[str], reference: np.ndarray,
                            method: str, dataset: str, exclude_border: bool = True) -> dict:
    """Mean and CV of the measured equivalent diameter against a reference sample."""
    sel = particles.filter(pl.col("image_id").is_in(image_ids))
    if exclude_border:
        sel = sel.filter(~pl.col("touches_border"))
    d = sel["eq_diameter_nm"].drop_nulls().to_numpy()
    ref = np.asarray(reference, float)
    mean, ref_mean = (float(d.mean()) if d.size else float("nan")), float(ref.mean())
    out = {
        "method": method, "dataset": dataset, "n_particles": int(d.size),
        "mean_d_nm": mean, "cv_pct": float(100 * d.std(ddof=1) / d.mean()) if d.size > 1 else float("nan"),
        "median_d_nm": float(np.median(d)) if d.size else float("nan"),
        "ref_n": int(ref.size), "ref_mean_d_nm": ref_mean, "ref_cv_pct": float(100 * ref.std(ddof=1) / ref_mean),
        "mean_rel_diff_pct": 100 * (mean - ref_mean) / ref_mean if d.size else float("nan"),
    }
    if d.size and ref.size:
        from scipy.stats import ks_2samp

        out["ks_statistic"] = float(ks_2samp(d, ref).statistic)
    return out


def read_yolo_boxes(path: str | Path, width: int, height: int) -> np.ndarray:
    """YOLO axis-aligned boxes (class cx cy w h, normalised) -> (n, 4) x0, y0, x1, y1 px."""
    rows = []
    for i, line in enumerate(Path(path).read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 5:
            raise ValueError(f"{path} line {i}: expected 'class cx cy w h', got {line!r}")
        cx, cy, w, h = (float(v) for v in parts[1:5])
        rows.append([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height])
    return np.asarray(rows, float).reshape(-1, 4)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def detection_check(pred_boxes: dict[str, np.ndarray], true_boxes: dict[str, np.ndarray], method: str,
                    dataset: str, t: float = 0.5) -> dict:
    tp = n_true = n_pred = 0
    for key, tb in true_boxes.items():
        pb = pred_boxes.get(key, np.zeros((0, 4)))
        pi, _ = match(box_iou(pb, tb), t)
        tp += len(pi)
        n_true += len(tb)
        n_pred += len(pb)
    return {"method": method, "dataset": dataset, "n_images": len(true_boxes), "n_boxes": n_true,
            "n_pred": n_pred, "tp": tp, "box_recall_50": tp / n_true if n_true else float("nan"),
            "box_precision_50": tp / n_pred if n_pred else float("nan")}


def particle_boxes(particles: pl.DataFrame) -> dict[str, np.ndarray]:
    out = {}
    for (key,), g in particles.group_by(["image_id"]):
        out[key] = np.stack([g["bbox_x"].to_numpy(), g["bbox_y"].to_numpy(),
                             (g["bbox_x"] + g["bbox_w"]).to_numpy(), (g["bbox_y"] + g["bbox_h"]).to_numpy()],
                            axis=1).astype(float)
    return out


# ---------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------


def _outline(mask_crop: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return mask_crop & ~ndimage.binary_erosion(mask_crop)


def overlay(image: np.ndarray, gt: list[dict], pred: list[dict], t: float = 0.5) -> np.ndarray:
    """RGB overlay: truth outlines green, matched predictions cyan, false positives red,
    missed truths (false negatives) yellow."""
    rgb = np.repeat(image[..., None], 3, axis=2).astype(np.uint8)
    iou = coco.mask_iou(pred, gt)
    pi, gi = match(iou, t)
    matched_p, matched_g = set(pi.tolist()), set(gi.tolist())
    colours = []
    for j, a in enumerate(gt):
        colours.append((a, (60, 220, 60) if j in matched_g else (255, 220, 0)))
    for i, a in enumerate(pred):
        colours.append((a, (0, 200, 255) if i in matched_p else (255, 40, 40)))
    for a, col in colours:
        crop, r0, c0 = coco.decode_crop(a["segmentation"])
        if crop.size == 0:
            continue
        edge = _outline(crop)
        rr, cc = np.nonzero(edge)
        rgb[rr + r0, cc + c0] = col
    return rgb


def overlay_figure(path: str | Path, panels: list[tuple[str, np.ndarray]], title: str = "") -> None:
    """Save a grid of overlay panels (title, RGB) as one PNG."""
    from nanoforge.plotting import pyplot, save_figure

    plt = pyplot()

    n = len(panels)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (name, img) in zip(axes.ravel(), panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title + "\ngreen: truth matched, cyan: prediction matched (IoU >= 0.5), "
                     "red: false positive, yellow: missed", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


# ---------------------------------------------------------------------------------------
# the whole evaluation (rule evaluate_segmentation)
# ---------------------------------------------------------------------------------------


def _read_gray(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def size_figure(path: str | Path, rows: list[dict], samples: dict[tuple[str, str], np.ndarray],
                references: dict[str, np.ndarray]) -> None:
    """Histograms of measured equivalent diameters against each reference."""
    from nanoforge.plotting import pyplot, save_figure

    plt = pyplot()

    datasets = list(references)
    fig, axes = plt.subplots(1, max(1, len(datasets)), figsize=(5.5 * max(1, len(datasets)), 4), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        ref = references[ds]
        allv = np.concatenate([ref] + [v for (m, d), v in samples.items() if d == ds and v.size])
        hi = float(np.percentile(allv, 99.5)) * 1.2 if allv.size else 1.0
        bins = np.linspace(0, hi, 40)
        ax.hist(ref, bins=bins, histtype="stepfilled", alpha=0.35, color="grey", density=True,
                label=f"reference (n={ref.size}, mean {ref.mean():.2f} nm)")
        for (m, d), v in samples.items():
            if d == ds and v.size:
                ax.hist(v, bins=bins, histtype="step", lw=1.6, density=True,
                        label=f"{m} (n={v.size}, mean {v.mean():.2f} nm)")
        ax.set_xlabel("equivalent diameter (nm)")
        ax.set_ylabel("density")
        ax.set_title(ds, fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def evaluate_segmentation(
    methods: list[str],
    predictions: dict[str, dict[str, str]],
    particles: dict[str, str],
    groundtruth: dict[str, tuple[str, str]],
    images_tables: list[str],
    datasets: dict[str, dict],
    out: dict[str, str],
    overlay_images: int = 2,
    exclude_border: bool = True,
    log=None,
) -> pl.DataFrame:
    """Evaluate every method on every ground-truth set and run the two checks.

    ``predictions[method][image_set]``: COCO file; ``groundtruth[dataset] = (coco file,
    image_set)``: real datasets evaluate their ``holdout`` images, a set without a ``split``
    field (synthetic hold-out) all of them. ``out`` names the output files: ``metrics``,
    ``per_image``, ``size_check``, ``detection_check``, ``size_figure`` and
    ``overlay_<dataset>`` for each ground-truth set. Returns the metrics table."""
    from nanoforge.tem.ingest import dataset_path

    images = pl.concat([pl.read_parquet(p) for p in images_tables], how="vertical_relaxed")
    paths = dict(zip(images["image_id"], images["path"]))
    preds = {m: {s: coco.read_coco(p) for s, p in sets.items()} for m, sets in predictions.items()}
    summaries, per_images = [], []
    for ds, (gt_path, image_set) in groundtruth.items():
        gt = coco.read_coco(gt_path)
        keys = [coco.image_key(i) for i in gt["images"] if i.get("split", "holdout") == "holdout"]
        panels = []
        shown = keys[:overlay_images]
        gt_by = coco.annotations_by_image(gt)
        gt_img = {coco.image_key(i): i for i in gt["images"]}
        for m in methods:
            per, s = score_dataset_segmentation(preds[m][image_set], gt, keys, m, ds)
            summaries.append(s)
            if per.height:
                per_images.append(per)
            if log is not None:
                print(f"{m} on {ds}: AP50 {s.get('ap50', float('nan')):.3f}, AP75 {s.get('ap75', float('nan')):.3f} "
                      f"over {s['n_images']} images", file=log)
            pdoc = preds[m][image_set]
            p_img = {coco.image_key(i): i for i in pdoc["images"]}
            p_by = coco.annotations_by_image(pdoc)
            for k in shown:
                ap = per.filter(pl.col("image_id") == k)["ap_0.5"].item()
                img = _read_gray(paths[k])
                panels.append((f"{m} | {k} | AP50 {ap:.2f}",
                               overlay(img, gt_by[gt_img[k]["id"]], p_by[p_img[k]["id"]])))
        overlay_figure(out[f"overlay_{ds}"], panels, title=f"{ds}: held-out images")
    metrics = pl.DataFrame(summaries)
    write_csv(metrics, out["metrics"])
    write_csv(pl.concat(per_images, how="diagonal_relaxed") if per_images else pl.DataFrame(), out["per_image"])

    size_rows, samples, refs = [], {}, {}
    box_rows = []
    parts = {m: pl.read_parquet(particles[m]) for m in methods}
    for ds, spec in datasets.items():
        root = dataset_path(ds, spec)
        ref_spec = spec.get("size_reference")
        if ref_spec:
            ref_tab = pl.read_csv(root / ref_spec["path"])
            if ref_spec["column"] not in ref_tab.columns:
                raise ValueError(f"{root / ref_spec['path']}: no column {ref_spec['column']!r} "
                                 f"(tem.datasets.{ds}.size_reference.column)")
            refs[ds] = ref_tab[ref_spec["column"]].drop_nulls().to_numpy().astype(float)
            ids = [f"{ds}/{stem}" for stem in ref_spec["images"]]
            for m in methods:
                row = size_distribution_check(parts[m], ids, refs[ds], m, ds, exclude_border)
                size_rows.append(row)
                sel = parts[m].filter(pl.col("image_id").is_in(ids))
                if exclude_border:
                    sel = sel.filter(~pl.col("touches_border"))
                samples[(m, ds)] = sel["eq_diameter_nm"].drop_nulls().to_numpy()
        box_spec = spec.get("boxes")
        if box_spec:
            truth = {}
            for r in images.filter(pl.col("dataset") == ds).iter_rows(named=True):
                stem = Path(r["source_path"]).stem
                f = root / box_spec["pattern"].format(stem=stem, name=Path(r["source_path"]).name)
                if not f.is_file():
                    if log is not None:
                        print(f"warning: {r['image_id']}: no box file {f}; not in the detection check", file=log)
                    continue
                truth[r["image_id"]] = read_yolo_boxes(f, r["width"], r["height"])
            for m in methods:
                pb = particle_boxes(parts[m].filter(pl.col("image_id").is_in(list(truth))))
                box_rows.append(detection_check(pb, truth, m, ds))
    write_csv(pl.DataFrame(size_rows), out["size_check"])
    write_csv(pl.DataFrame(box_rows), out["detection_check"])
    size_figure(out["size_figure"], size_rows, samples, refs)
    return metrics
