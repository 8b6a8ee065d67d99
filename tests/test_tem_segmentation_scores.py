"""Segmentation metrics: one-to-one matching, AP_t = TP/(TP+FP+FN), COCO mask AP, matched
IoU and size error on hand-made cases; the size and box checks; ground truth split by image."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from PIL import Image

from nanoforge.tem import coco
from nanoforge.tem.segmentation_scores import (
    box_iou,
    coco_mask_ap,
    detection_check,
    score_dataset_segmentation,
    score_image_segmentation,
    match,
    read_yolo_boxes,
    size_distribution_check,
)
from nanoforge.tem.groundtruth import groundtruth_document, holdout_ids, split_document


def test_matching_is_one_to_one_and_optimal():
    iou = np.array([[0.9, 0.6], [0.7, 0.0]])
    p, g = match(iou, 0.5)  # greedy would take (0,0) and leave pred 1 unmatched
    assert sorted(zip(p.tolist(), g.tolist())) == [(0, 1), (1, 0)]
    p, g = match(iou, 0.75)
    assert list(zip(p.tolist(), g.tolist())) == [(0, 0)]
    assert match(np.zeros((0, 3)), 0.5)[0].size == 0


def _square(r, c, s=10, shape=(60, 60)):
    m = np.zeros(shape, bool)
    m[r:r + s, c:c + s] = True
    return {"segmentation": coco.encode_mask(m), "area": int(m.sum()), "bbox": [c, r, s, s]}


def test_ap_counts_and_size_error():
    gt = [_square(0, 0), _square(20, 20), _square(40, 40)]
    pred = [_square(0, 0), _square(22, 20), _square(5, 45, s=6)]  # exact, shifted by 2 rows, false positive
    r = score_image_segmentation(pred, gt)
    assert (r["tp_0.5"], r["fp_0.5"], r["fn_0.5"]) == (2, 1, 1)
    assert r["ap_0.5"] == pytest.approx(2 / 4)
    assert sorted(r["matched_iou"]) == pytest.approx([80 / 120, 1.0])
    assert r["size_rel_error"] == pytest.approx([0.0, 0.0])
    assert score_image_segmentation(gt, gt)["ap_0.75"] == 1.0
    assert score_image_segmentation([], [])["ap_0.5"] == 1.0


def _docs():
    gt = coco.new_document()
    pred = coco.new_document()
    for i in (1, 2):
        gt["images"].append(coco.image_entry(i, f"s/{i}", f"{i}.png", 60, 60, split="holdout"))
        pred["images"].append(coco.image_entry(i + 10, f"s/{i}", f"{i}.png", 60, 60, seconds=0.036))
    k = 1
    for img, sq in ((1, (0, 0)), (1, (30, 30)), (2, (10, 10))):
        gt["annotations"].append({**_square(*sq), "id": k, "image_id": img})
        k += 1
    pred["annotations"] = [{**_square(0, 0), "id": 1, "image_id": 11, "score": 0.9},
                           {**_square(31, 30), "id": 2, "image_id": 11, "score": 0.8},
                           {**_square(45, 0, s=8), "id": 3, "image_id": 12, "score": 0.3}]
    return gt, pred


def test_dataset_summary_and_coco_ap():
    gt, pred = _docs()
    per, s = score_dataset_segmentation(pred, gt, None, "m", "s")
    assert per.height == 2
    assert (s["n_gt"], s["n_pred"], s["n_matched"]) == (3, 3, 2)
    assert s["ap50"] == pytest.approx(2 / 4)
    assert s["ap50_image_mean"] == pytest.approx((1.0 + 0.0) / 2)
    assert s["seconds_per_mpx"] == pytest.approx(0.072 / (2 * 3600 / 1e6))
    # COCO AP: both matches are ranked first, the false positive last; one of three missed
    assert 0.6 < s["coco_ap50"] < 0.7
    perfect = coco_mask_ap(gt, {**gt, "annotations": [{**a, "score": 1.0} for a in gt["annotations"]]},
                           ["s/1", "s/2"])
    assert perfect["coco_map"] == pytest.approx(1.0)
    with pytest.raises(KeyError, match="no prediction for image 's/2'"):
        score_dataset_segmentation(coco.subset(pred, ["s/1"]), gt, None, "m", "s")


def test_coco_ap_equals_pycocotools():
    """The vectorised COCO AP gives pycocotools' numbers on random overlapping masks."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from nanoforge.tem.segmentation_scores import coco_ap_from_ious

    rng = np.random.default_rng(0)
    gt, pred = coco.new_document(), coco.new_document()
    k = 1
    for img in range(1, 5):
        gt["images"].append(coco.image_entry(img, f"s/{img}", f"{img}.png", 80, 80))
        pred["images"].append(coco.image_entry(img, f"s/{img}", f"{img}.png", 80, 80))
        for _ in range(int(rng.integers(0, 12))):
            r, c, s = (*(int(v) for v in rng.integers(0, 60, 2)), int(rng.integers(4, 20)))
            gt["annotations"].append({**_square(r, c, s, (80, 80)), "id": k, "image_id": img, "iscrowd": 0,
                                      "category_id": 1})
            k += 1
        for _ in range(int(rng.integers(0, 15))):
            r, c, s = (*(int(v) for v in rng.integers(0, 60, 2)), int(rng.integers(4, 20)))
            pred["annotations"].append({**_square(r, c, s, (80, 80)), "id": k, "image_id": img,
                                        "category_id": 1, "score": float(rng.random())})
            k += 1
        for a in [a for a in gt["annotations"] if a["image_id"] == img][:4]:  # near-copies of truths
            crop, r0, c0 = coco.decode_crop(a["segmentation"])
            pred["annotations"].append({**_square(r0 + int(rng.integers(0, 3)), c0, crop.shape[0], (80, 80)),
                                        "id": k, "image_id": img, "category_id": 1, "score": float(rng.random())})
            k += 1
    with contextlib.redirect_stdout(io.StringIO()):
        api = COCO()
        api.dataset = {"images": gt["images"], "annotations": gt["annotations"], "categories": gt["categories"]}
        api.createIndex()
        ev = COCOeval(api, api.loadRes(pred["annotations"]), iouType="segm")
        ev.params.maxDets = [1, 10, 100]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    pred_by, gt_by = coco.annotations_by_image(pred), coco.annotations_by_image(gt)
    ours = coco_ap_from_ious([(coco.mask_iou(pred_by[i], gt_by[i]), [a["score"] for a in pred_by[i]])
                              for i in range(1, 5)], max_dets=100)
    assert np.nanmean(ours) == pytest.approx(ev.stats[0], abs=1e-9)
    assert ours[0] == pytest.approx(ev.stats[1], abs=1e-9) and ours[5] == pytest.approx(ev.stats[2], abs=1e-9)


def test_size_distribution_check():
    parts = pl.DataFrame({"image_id": ["a/1"] * 4 + ["a/2"], "eq_diameter_nm": [7.0, 8.0, 9.0, 30.0, 100.0],
                          "touches_border": [False, False, False, True, False]})
    ref = np.array([8.0, 8.0, 8.0, 8.0])
    ref[0], ref[-1] = 7.5, 8.5
    r = size_distribution_check(parts, ["a/1"], ref, "m", "a")
    assert r["n_particles"] == 3 and r["mean_d_nm"] == pytest.approx(8.0)
    assert r["cv_pct"] == pytest.approx(12.5) and r["mean_rel_diff_pct"] == pytest.approx(0.0)
    assert size_distribution_check(parts, ["a/1"], ref, "m", "a", exclude_border=False)["n_particles"] == 4


def test_yolo_boxes_and_detection_check(tmp_path):
    f = tmp_path / "b.txt"
    f.write_text("0 0.5 0.5 0.2 0.4\n\n0 0.1 0.1 0.1 0.1\n")
    boxes = read_yolo_boxes(f, 100, 50)
    assert np.allclose(boxes, [[40, 15, 60, 35], [5, 2.5, 15, 7.5]])
    assert box_iou(boxes[:1], boxes[:1])[0, 0] == pytest.approx(1.0)
    pred = {"x": np.array([[41, 15, 60, 35], [80, 40, 90, 50]], float)}
    r = detection_check(pred, {"x": boxes}, "m", "d")
    assert (r["tp"], r["box_recall_50"], r["box_precision_50"]) == (1, 0.5, 0.5)
    f.write_text("0 0.5 0.5\n")
    with pytest.raises(ValueError, match="line 1"):
        read_yolo_boxes(f, 10, 10)


def test_holdout_split_is_deterministic_by_image():
    ids = [f"d/{i}" for i in range(20)]
    a = holdout_ids(ids, 0.5, seed=0)
    assert len(a) == 10 and a == holdout_ids(list(reversed(ids)), 0.5, seed=0)
    assert a != holdout_ids(ids, 0.5, seed=1)
    assert holdout_ids(ids, 0.5, 0, explicit=["3", "d/4"]) == {"d/3", "d/4"}


def test_groundtruth_document_from_label_pngs(tmp_path):
    root = tmp_path / "ds"
    (root / "labels").mkdir(parents=True)
    lab = np.zeros((30, 40), np.uint16)
    lab[2:6, 2:6] = 1
    lab[10:20, 10:30] = 2
    Image.fromarray(lab).save(root / "labels" / "a.png")
    Image.fromarray(lab[:20]).save(root / "labels" / "c.png")
    images = pl.DataFrame({"image_id": ["ds/a", "ds/b"], "path": ["out/ds/a.png", "out/ds/b.png"],
                           "source_path": [str(root / "a.png"), str(root / "b.png")], "width": [40, 40],
                           "height": [30, 30], "nm_per_px": [None, None], "dataset": ["ds", "ds"]})
    spec = {"path": str(root), "ground_truth": {"format": "instance_png", "pattern": "labels/{stem}.png"},
            "holdout_fraction": 1.0}
    doc = groundtruth_document("ds", spec, images, 0, "out")
    assert [coco.image_key(i) for i in doc["images"]] == ["ds/a"]
    assert doc["info"]["unlabelled"] == ["ds/b"]  # listed, not silently dropped
    assert [a["area"] for a in doc["annotations"]] == [16, 200]
    assert doc["images"][0]["file_name"] == "ds/a.png" and doc["images"][0]["split"] == "holdout"
    assert split_document(doc, "train")["images"] == []
    bad = images.with_columns(pl.Series("source_path", [str(root / "c.png"), str(root / "b.png")]))
    with pytest.raises(ValueError, match="label image .*c.png is 40x20 but image"):
        groundtruth_document("ds", spec, bad, 0, "out")
