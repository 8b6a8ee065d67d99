"""Weak labels: the morphology inside each box, tested with ground-truth boxes (so the test
does not depend on a trained detector), plus drops, the ignore band and the COCO output."""

from __future__ import annotations

import io

import numpy as np
import pytest

from nanoforge.tem import coco
from nanoforge.tem.segmentation_scores import score_image_segmentation
from nanoforge.tem.simulate import simulate_one, _annotations
from nanoforge.tem.weak_labels import (
    DROP_REASONS,
    WeakLabelParams,
    dataset_subset,
    ignore_band,
    weak_label_images,
    weak_labels_for_image,
)


def boxes_of(anns):
    return np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                     for a in anns], float).reshape(-1, 4)


def to_annotations(inst, shape):
    return [coco.annotation_from_crop(a.crop, a.row0, a.col0, shape, 1, i + 1, score=a.score)
            for i, a in enumerate(inst)]


@pytest.fixture(scope="module")
def synthetic():
    """Three synthetic images (random, clustered and lattice arrangements) with their truth."""
    out = []
    for index, arrangement in enumerate(["random", "clustered", "lattice"]):
        img, p, particles, _ = simulate_one(
            7, "test", index,
            {"image_size": [256, 256], "size_px": [14, 24], "shapes": {"sphere": 1, "cube": 1, "hexagon": 1},
             "arrangement": {arrangement: 1.0}, "dose_e_per_px": [200, 400], "contrast": [1.0, 2.0]},
        )
        out.append((img, _annotations(particles, p, 1, 1)))
    return out


def test_ground_truth_boxes_recover_most_particles(synthetic):
    p = WeakLabelParams()
    tp = fp = fn = 0
    ious = []
    for img, gt in synthetic:
        assert len(gt) > 10
        inst, dropped = weak_labels_for_image(img, boxes_of(gt), np.ones(len(gt)), p)
        r = score_image_segmentation(to_annotations(inst, img.shape), gt)
        tp, fp, fn = tp + r["tp_0.5"], fp + r["fp_0.5"], fn + r["fn_0.5"]
        ious += r["matched_iou"]
        assert sum(dropped.values()) + len(inst) == len(gt)  # every box is kept or counted
    ap50 = tp / (tp + fp + fn)
    assert ap50 >= 0.85, ap50
    assert np.mean(ious) >= 0.75


def test_masks_do_not_share_pixels_and_stay_near_their_box(synthetic):
    img, gt = synthetic[2]  # lattice: many touching neighbours
    inst, _ = weak_labels_for_image(img, boxes_of(gt), np.ones(len(gt)), WeakLabelParams())
    count = np.zeros(img.shape, int)
    for a in inst:
        count[a.row0:a.row0 + a.crop.shape[0], a.col0:a.col0 + a.crop.shape[1]] += a.crop
        x0, y0, x1, y1 = a.box
        slack = 0.04 * max(x1 - x0, y1 - y0) + 2
        assert a.col0 >= x0 - slack and a.row0 >= y0 - slack
        assert a.col0 + a.crop.shape[1] <= x1 + slack and a.row0 + a.crop.shape[0] <= y1 + slack
    assert count.max() == 1


def test_bright_particles_on_dark_film_are_found():
    img = np.full((80, 80), 40, np.uint8)
    yy, xx = np.mgrid[:80, :80]
    disc = (yy - 40) ** 2 + (xx - 38) ** 2 <= 12 ** 2
    img[disc] = 200
    inst, dropped = weak_labels_for_image(img, np.array([[25.0, 27, 52, 54]]), np.array([0.9]), WeakLabelParams())
    assert len(inst) == 1, dropped
    a = inst[0]
    full = np.zeros(img.shape, bool)
    full[a.row0:a.row0 + a.crop.shape[0], a.col0:a.col0 + a.crop.shape[1]] = a.crop
    assert (full & disc).sum() / (full | disc).sum() > 0.9


def test_low_scores_and_implausible_boxes_are_dropped_and_counted():
    rng = np.random.default_rng(0)
    img = rng.normal(180, 3, (120, 120)).clip(0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:120, :120]
    img[(yy - 30) ** 2 + (xx - 30) ** 2 <= 10 ** 2] = 60
    boxes = np.array([
        [19.0, 19, 42, 42],    # the particle
        [19.0, 19, 42, 42],    # the same particle again, lower score: a duplicate
        [70.0, 70, 100, 100],  # empty film
        [15.0, 15, 45, 45],    # the particle, but with a low score
        [20.0, 20, 110, 110],  # a box far larger than the particle inside it
    ])
    scores = np.array([0.95, 0.9, 0.8, 0.2, 0.7])
    inst, dropped = weak_labels_for_image(img, boxes, scores, WeakLabelParams(min_score=0.5))
    assert len(inst) == 1 and inst[0].score == 0.95
    assert set(dropped) == set(DROP_REASONS)
    assert dropped["low_score"] == 1 and dropped["duplicate"] == 1
    assert sum(dropped.values()) == 4
    assert dropped["low_contrast"] + dropped["underfilled_box"] + dropped["box_mismatch"] + dropped["empty"] == 2


def test_ignore_band_straddles_the_boundary():
    crop = np.zeros((21, 21), bool)
    yy, xx = np.mgrid[:21, :21]
    crop[(yy - 10) ** 2 + (xx - 10) ** 2 <= 8 ** 2] = True
    band, r0, c0 = ignore_band(crop, 5, 5, (40, 40), WeakLabelParams(ignore_band_px=2, ignore_band_frac=0.0))
    full_mask = np.zeros((40, 40), bool)
    full_mask[5:26, 5:26] = crop
    full_band = np.zeros((40, 40), bool)
    full_band[r0:r0 + band.shape[0], c0:c0 + band.shape[1]] = band
    assert full_band[15, 15] == 0  # deep inside: not ignored
    assert full_band[15, 5 + 2] and full_band[15, 5 + 1]  # on the outline, both sides
    assert not full_band[0, 0]  # far outside
    assert full_band[full_mask].any() and full_band[~full_mask].any()
    # clipped at the image edge
    band, r0, c0 = ignore_band(crop, 0, 0, (21, 21), WeakLabelParams(ignore_band_px=3))
    assert r0 >= 0 and c0 >= 0 and r0 + band.shape[0] <= 21 and c0 + band.shape[1] <= 21


def test_document_has_masks_scores_ignore_bands_and_drop_counts(synthetic, tmp_path):
    from PIL import Image

    rows = []
    truth = {}
    for i, (img, gt) in enumerate(synthetic):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(img).save(path)
        key = f"synthetic_test/{i:06d}" if i < 2 else f"other/{i:06d}"
        rows.append({"image_id": key, "path": str(path)})
        truth[str(path)] = gt

    def detect(img):  # ground-truth boxes standing in for the detector, plus one junk box
        gt = next(g for im, g in synthetic if np.array_equal(im, img))
        b = np.vstack([boxes_of(gt), [[0, 0, 3, 3]]])
        return b, np.r_[np.full(len(gt), 0.9), 0.1]

    doc = weak_label_images(rows, detect, {"min_score": 0.5}, log=None)
    out = coco.write_coco(doc, tmp_path / "weak.json")
    back = coco.read_coco(out)
    assert len(back["images"]) == 3
    assert back["info"]["dropped"]["low_score"] == 3
    for img_entry in back["images"]:
        assert img_entry["seconds"] > 0 and img_entry["n_detections"] > 0
    for a in back["annotations"][:20]:
        assert 0 < a["score"] <= 1 and len(a["detection_bbox"]) == 4
        band = coco.decode_mask(a["ignore_segmentation"])
        mask = coco.decode_mask(a["segmentation"])
        assert band.shape == mask.shape and band.any()
    sub = dataset_subset(back, "synthetic_test")
    assert [coco.image_key(i) for i in sub["images"]] == ["synthetic_test/000000", "synthetic_test/000001"]
    assert sub["info"]["n_labels"] == len(sub["annotations"]) > 0


def test_weak_labels_record_the_detector_enlargement(synthetic, tmp_path):
    """A detector that looked at an image enlarged (third value of detect) leaves the factor in
    the image entry and the log line; one that did not (two values) records 1.0."""
    from PIL import Image

    img, gt = synthetic[0]
    path = tmp_path / "img.png"
    Image.fromarray(img).save(path)
    rows = [{"image_id": "a/enlarged", "path": str(path)}, {"image_id": "a/plain", "path": str(path)}]
    answers = iter([(boxes_of(gt), np.full(len(gt), 0.9), 2.5), (boxes_of(gt), np.full(len(gt), 0.9))])
    log = io.StringIO()
    doc = weak_label_images(rows, lambda _img: next(answers), {}, log=log)
    assert [e["detector_scale"] for e in doc["images"]] == [2.5, 1.0]
    lines = log.getvalue().splitlines()
    assert f"a/enlarged: {len(gt)} detections at 2.50x ->" in lines[0]
    assert f"a/plain: {len(gt)} detections ->" in lines[1]


def test_unknown_or_bad_settings_are_errors():
    with pytest.raises(ValueError, match="unknown weak_labels setting"):
        WeakLabelParams.from_config({"min_scor": 0.5})
    with pytest.raises(ValueError, match="threshold"):
        WeakLabelParams.from_config({"threshold": "magic"})
    assert WeakLabelParams.from_config({"threshold": "local"}).threshold == "local"


def test_a_detection_of_part_of_a_particle_is_a_duplicate():
    rng = np.random.default_rng(1)
    img = rng.normal(180, 3, (100, 100)).clip(0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:100, :100]
    img[(yy - 50) ** 2 + (xx - 50) ** 2 <= 16 ** 2] = 60
    boxes = np.array([[33.0, 33, 67, 67],   # the particle
                      [33.0, 33, 48, 67]])  # its left half, lower score
    scores = np.array([0.95, 0.9])
    p = WeakLabelParams(max_mask_iou=0.6, max_inside=1.0, resolve_overlaps=False)
    inst, dropped = weak_labels_for_image(img, boxes, scores, p)
    assert len(inst) == 2 and dropped["duplicate"] == 0  # IoU about 0.5: not caught by IoU 0.6
    inst, dropped = weak_labels_for_image(img, boxes, scores, WeakLabelParams(max_mask_iou=0.6, max_inside=0.8))
    assert len(inst) == 1 and inst[0].score == 0.95 and dropped["duplicate"] == 1


def test_a_particle_cut_by_the_frame_keeps_its_mask_to_the_edge():
    rng = np.random.default_rng(2)
    img = rng.normal(180, 3, (80, 80)).clip(0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:80, :80]
    img[(yy - 4) ** 2 + (xx - 40) ** 2 <= 14 ** 2] = 60  # centre 4 px below the top edge
    inst, dropped = weak_labels_for_image(img, np.array([[25.0, 0, 55, 19]]), np.array([0.9]), WeakLabelParams())
    assert len(inst) == 1, dropped
    a = inst[0]
    assert a.row0 == 0 and a.crop[0].sum() >= 20  # the mask reaches the frame along the cut


def test_sweep_scores_each_variant_on_cached_detections(synthetic):
    from nanoforge.tem.sweep import parse_variant, sweep

    calls = []

    def detect(img):  # the ground-truth boxes of the image, as a perfect detector would give
        calls.append(1)
        gt = next(g for im, g in synthetic if im is img)
        return boxes_of(gt), np.ones(len(gt))

    variants = [{}, parse_variant("min_score=1.5"), parse_variant("max_mask_iou=0.3, resolve_overlaps=false")]
    assert variants[2] == {"max_mask_iou": 0.3, "resolve_overlaps": False}
    table = sweep(synthetic, detect, {}, variants)
    assert len(calls) == len(synthetic)  # one detection per image, whatever the variants
    assert table["variant"].to_list() == ["(config)", "min_score=1.5", "max_mask_iou=0.3,resolve_overlaps=False"]
    assert table["ap50"][0] >= 0.85 and table["tp"][1] == 0 and table["ap50"][1] == 0.0
    n_truth = sum(len(g) for _, g in synthetic)
    assert all(tp + fn == n_truth for tp, fn in zip(table["tp"], table["fn"]))
    with pytest.raises(ValueError, match="unknown weak_labels setting 'max_iou'"):
        parse_variant("max_iou=0.3")
    with pytest.raises(ValueError, match="is not key=value"):
        parse_variant("max_mask_iou")


def test_watershed_cuts_touching_particles_but_not_rods_or_single_particles():
    from nanoforge.tem.measure import solidity
    from nanoforge.tem.weak_labels import watershed_pieces

    yy, xx = np.mgrid[:40, :60]

    def disc(cx, cy, r):
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r

    three = disc(12, 20, 6) | disc(24, 20, 6) | disc(36, 20, 6)
    pieces = watershed_pieces(three, 6, 30, 0.2)
    assert len(pieces) == 3 and all(100 <= q.sum() <= 125 for q in pieces)
    assert not np.logical_and(pieces[0], pieces[1]).any() and sum(q.sum() for q in pieces) == three.sum()
    rod = (abs(xx - 30) <= 20) & (abs(yy - 20) <= 5)
    assert solidity(rod) == 1.0 and watershed_pieces(rod, 5, 20, 0.2) == []
    assert watershed_pieces(disc(30, 20, 10), 10, 60, 0.2) == []
    assert watershed_pieces(three, 6, 200, 0.2) == []  # a piece smaller than min_area: no cut


def test_a_box_around_touching_particles_is_cut_into_them():
    """Ten isolated discs with their own boxes set the typical size; one box drawn around two
    touching discs gives one mask of both unless split_area_ratio is on (off by default)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:200, :260]
    img = np.full(yy.shape, 200.0)
    gt_masks, boxes = [], []
    for k in range(10):
        cx, cy = 20 + 24 * k, 30
        m = (xx - cx) ** 2 + (yy - cy) ** 2 <= 64
        gt_masks.append(m)
        boxes.append([cx - 9, cy - 9, cx + 10, cy + 10])
    pair = [(xx - 100) ** 2 + (yy - 120) ** 2 <= 64, (xx - 115) ** 2 + (yy - 120) ** 2 <= 64]
    gt_masks += pair
    boxes.append([90, 110, 125, 131])
    for m in gt_masks:
        img[m] = 80.0
    img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    gt = [coco.annotation_from_crop(m, 0, 0, img.shape, 1, i + 1) for i, m in enumerate(gt_masks)]
    boxes, scores = np.array(boxes, float), np.full(len(boxes), 0.9)

    off, _ = weak_labels_for_image(img, boxes, scores, WeakLabelParams())
    on, _ = weak_labels_for_image(img, boxes, scores, WeakLabelParams(split_area_ratio=1.8))
    r_off = score_image_segmentation(to_annotations(off, img.shape), gt)
    r_on = score_image_segmentation(to_annotations(on, img.shape), gt)
    assert (len(off), r_off["tp_0.5"], r_off["fp_0.5"]) == (11, 10, 1)
    assert (len(on), r_on["tp_0.5"], r_on["fp_0.5"], r_on["fn_0.5"]) == (12, 12, 0, 0)
    assert sorted(a.pieces for a in on)[-2:] == [2, 2] and sum(a.pieces > 1 for a in on) == 2
    # too few masks for a typical size: nothing is cut
    few, _ = weak_labels_for_image(img, boxes[-3:], scores[-3:], WeakLabelParams(split_area_ratio=1.8))
    assert len(few) == 3


def test_pieces_of_a_cut_mask_are_marked_in_the_document():
    yy, xx = np.mgrid[:120, :200]
    img = np.full(yy.shape, 200, np.uint8)
    boxes = []
    for k in range(8):
        img[(xx - 15 - 22 * k) ** 2 + (yy - 20) ** 2 <= 49] = 70
        boxes.append([15 + 22 * k - 8, 12, 15 + 22 * k + 9, 29])
    img[((xx - 60) ** 2 + (yy - 80) ** 2 <= 49) | ((xx - 73) ** 2 + (yy - 80) ** 2 <= 49)] = 70
    boxes.append([51, 71, 82, 90])
    doc = weak_label_images([{"image_id": "set/a", "path": "a.png"}],
                            lambda g: (np.array(boxes, float), np.full(len(boxes), 0.9)),
                            {"split_area_ratio": 1.8}, read=lambda path: img, log=io.StringIO())
    assert doc["images"][0]["split_pieces"] == 2
    assert sorted(a.get("split_pieces", 1) for a in doc["annotations"]) == [1] * 8 + [2, 2]
