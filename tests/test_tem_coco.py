"""COCO documents with RLE masks: the crop encoder/decoder agrees with pycocotools, label
images convert to instances, malformed documents are refused with the entry named."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from nanoforge.tem import coco


def _random_masks(n=400, seed=0):
    rng = np.random.default_rng(seed)
    for k in range(n):
        h, w = (int(v) for v in rng.integers(1, 50, 2))
        m = rng.random((h, w)) < rng.random()
        if k % 5 == 0:
            m[:] = False
        if k % 7 == 0:
            m[:] = True
        yield m


def test_encode_crop_matches_pycocotools():
    for m in _random_masks():
        ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if rows.size:
            got = coco.encode_crop(m[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], rows[0], cols[0], m.shape)
        else:
            got = coco.encode_crop(np.zeros((0, 0), bool), 0, 0, m.shape)
        assert got["counts"] == ref["counts"].decode()
        assert got["size"] == [int(v) for v in ref["size"]]


def test_decode_crop_round_trip_and_area():
    for m in _random_masks(seed=1):
        rle = coco.encode_mask(m)
        crop, r0, c0 = coco.decode_crop(rle)
        full = np.zeros(m.shape, bool)
        full[r0:r0 + crop.shape[0], c0:c0 + crop.shape[1]] = crop
        assert np.array_equal(full, m)
        assert np.array_equal(coco.decode_mask(rle), m)
        assert coco.rle_area(rle) == m.sum()
        if m.any():
            assert coco.rle_bbox(rle) == [float(v) for v in mask_utils.toBbox(coco._as_c_rle(rle))]


def test_counts_compression_round_trip_with_large_runs():
    counts = [0, 5, 1_000_000, 3, 17, 123_456_789, 2]
    assert coco.decompress_counts(coco.compress_counts(counts)).tolist() == counts


def test_encode_crop_refuses_crops_outside_the_image():
    with pytest.raises(ValueError, match="does not fit"):
        coco.encode_crop(np.ones((3, 3), bool), 8, 0, (10, 10))


def test_label_image_to_annotations():
    labels = np.zeros((20, 30), np.uint16)
    labels[2:5, 3:9] = 7  # labels need not be consecutive
    labels[10:18, 20:25] = 300
    anns = coco.labels_to_annotations(labels, image_id=4, first_ann_id=11)
    assert [a["id"] for a in anns] == [11, 12]
    assert [a["area"] for a in anns] == [18, 40]
    assert anns[0]["bbox"] == [3.0, 2.0, 6.0, 3.0]
    assert anns[1]["bbox"] == [20.0, 10.0, 5.0, 8.0]
    back = coco.crops_to_labels([coco.decode_crop(a["segmentation"]) for a in anns], labels.shape)
    assert np.array_equal(back > 0, labels > 0)


def _doc():
    doc = coco.new_document()
    doc["images"].append(coco.image_entry(1, "set/a", "set/a.png", 30, 20))
    m = np.zeros((20, 30), bool)
    m[5:10, 5:15] = True
    doc["annotations"].append(coco.annotation_from_crop(m[5:10, 5:15], 5, 5, (20, 30), 1, 1, score=0.5))
    return doc


def test_write_read_round_trip(tmp_path):
    path = coco.write_coco(_doc(), tmp_path / "x.json")
    doc = coco.read_coco(path)
    assert coco.image_key(doc["images"][0]) == "set/a"
    assert doc["annotations"][0]["area"] == 50 and doc["annotations"][0]["score"] == 0.5


def test_polygons_and_uncompressed_rle_are_normalised(tmp_path):
    doc = {
        "images": [{"id": 3, "file_name": "b.png", "width": 30, "height": 20}],
        "annotations": [
            {"id": 1, "image_id": 3, "segmentation": [[5, 5, 15, 5, 15, 10, 5, 10]]},
            {"id": 2, "image_id": 3, "segmentation": {"size": [20, 30], "counts": [100, 10, 490]}},
        ],
    }
    (tmp_path / "p.json").write_text(json.dumps(doc))
    got = coco.read_coco(tmp_path / "p.json")
    assert coco.image_key(got["images"][0]) == "b"  # no image_key: the file name's stem
    for a in got["annotations"]:
        assert isinstance(a["segmentation"]["counts"], str)
        assert a["area"] > 0 and len(a["bbox"]) == 4
    assert got["annotations"][1]["area"] == 10


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d.pop("images"), "missing list 'images'"),
    (lambda d: d["annotations"][0].update(image_id=99), r"annotations\[0\] refers to unknown image id 99"),
    (lambda d: d["annotations"].append(dict(d["annotations"][0])), "repeats annotation id 1"),
    (lambda d: d["annotations"][0]["segmentation"].update(size=[21, 30]), r"annotations\[0\].*RLE size"),
    (lambda d: d["images"][0].pop("width"), r"images\[0\] has no 'width'"),
    (lambda d: d["annotations"][0].update(segmentation="oops"), "unsupported segmentation"),
])
def test_malformed_documents_name_the_entry(tmp_path, mutate, message):
    doc = _doc()
    mutate(doc)
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(coco.CocoError, match=message):
        coco.read_coco(tmp_path / "bad.json")


def test_not_json_and_missing_file(tmp_path):
    (tmp_path / "t.json").write_text("{not json")
    with pytest.raises(coco.CocoError, match="not valid JSON"):
        coco.read_coco(tmp_path / "t.json")
    with pytest.raises(coco.CocoError, match="not found"):
        coco.read_coco(tmp_path / "missing.json")


def test_mask_iou_and_subset():
    a = np.zeros((10, 10), bool)
    a[0:4, 0:4] = True
    b = np.zeros((10, 10), bool)
    b[2:6, 0:4] = True
    da = [{"segmentation": coco.encode_mask(a)}]
    db = [{"segmentation": coco.encode_mask(b)}, {"segmentation": coco.encode_mask(a)}]
    iou = coco.mask_iou(da, db)
    assert iou.shape == (1, 2)
    assert iou[0, 0] == pytest.approx(8 / 24) and iou[0, 1] == pytest.approx(1.0)
    doc = _doc()
    doc["images"].append(coco.image_entry(2, "set/b", "set/b.png", 30, 20))
    sub = coco.subset(doc, ["set/b"])
    assert [i["id"] for i in sub["images"]] == [2] and sub["annotations"] == []
