"""The classical threshold + watershed baseline: splits touching particles of a clean image,
drops scale-bar-like lines and noise specks, and scores well on a real labelled image."""

from __future__ import annotations

import numpy as np
import polars as pl
from PIL import Image
from scipy import ndimage

from nanoforge.tem import coco
from nanoforge.tem.classical import segment_image, segment_images
from nanoforge.tem.segmentation_scores import score_image_segmentation
from nanoforge.tem.groundtruth import read_label_png


def _touching_discs():
    labels = np.zeros((160, 200), np.int32)
    yy, xx = np.mgrid[:160, :200]
    centres = [(40, 40), (40, 68), (40, 96), (100, 60), (110, 150), (128, 150)]  # rows of touching pairs
    for k, (cy, cx) in enumerate(centres, start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= 14**2] = k
    img = np.where(labels > 0, 70, 200).astype(float)
    img = ndimage.gaussian_filter(img, 1.0) + np.random.default_rng(0).normal(0, 6, img.shape)
    img[150:154, 10:110] = 0  # a scale bar: 100 x 4 px
    return np.clip(img, 0, 255).astype(np.uint8), labels


def test_touching_discs_are_split_and_the_scale_bar_dropped():
    img, labels = _touching_discs()
    inst = segment_image(img)
    pred = [{"segmentation": coco.encode_crop(c, r, k, img.shape), "area": int(c.sum())} for c, r, k, _ in inst]
    gt = coco.labels_to_annotations(labels, 1)
    res = score_image_segmentation(pred, gt)
    assert res["tp_0.5"] == 6 and res["fp_0.5"] == 0
    assert np.median(res["matched_iou"]) > 0.85
    assert all(0 < s <= 1 for *_, s in inst)


def test_blank_image_gives_no_particles():
    assert segment_image(np.full((64, 64), 180, np.uint8)) == []


def test_segment_images_records_time_and_keys(tmp_path):
    img, _ = _touching_discs()
    Image.fromarray(img).save(tmp_path / "a.png")
    table = pl.DataFrame({"image_id": ["set/a"], "path": [str(tmp_path / "a.png")]})
    doc = segment_images(table)
    assert coco.image_key(doc["images"][0]) == "set/a" and doc["images"][0]["seconds"] > 0
    assert len(doc["annotations"]) == 6 and all("score" in a for a in doc["annotations"])


def test_real_labelled_image(shared_data):
    """A sanity floor on the 323-particle Sophon example (the baseline, not a target)."""
    d = shared_data / "tem" / "sophon_example"
    img = np.asarray(Image.open(d / "images" / "1-0001_16.png").convert("L"))
    gt = coco.labels_to_annotations(read_label_png(d / "labels" / "1-0001_16_instances.png"), 1)
    inst = segment_image(img)
    pred = [{"segmentation": coco.encode_crop(c, r, k, img.shape), "area": int(c.sum())} for c, r, k, _ in inst]
    res = score_image_segmentation(pred, gt)
    assert res["ap_0.5"] > 0.5
