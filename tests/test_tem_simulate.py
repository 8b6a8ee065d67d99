"""Synthetic TEM images: deterministic by seed, ground truth exactly the rendered particles,
overlaps bounded, particles darker than the film, sizes as drawn, COCO output valid."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
from PIL import Image

from nanoforge.tem import coco
from nanoforge.tem.ingest import images_table_for_coco
from nanoforge.tem.measure import measure_document
from nanoforge.tem.simulate import (
    FIGURE_PRESETS,
    _annotations,
    real_vs_synthetic_figure,
    sample_params,
    simulate_one,
    simulate_split,
)

SMALL = {"image_size": [192, 192], "size_px": [10, 24]}


def test_same_seed_same_image_other_index_other_image():
    a_img, a_p, a_parts, _ = simulate_one(3, "train", 5, SMALL)
    b_img, b_p, b_parts, _ = simulate_one(3, "train", 5, SMALL)
    c_img, *_ = simulate_one(3, "train", 6, SMALL)
    d_img, *_ = simulate_one(4, "train", 5, SMALL)
    assert np.array_equal(a_img, b_img) and a_p == b_p
    assert [p.crop.tobytes() for p in a_parts] == [p.crop.tobytes() for p in b_parts]
    assert not np.array_equal(a_img, c_img) and not np.array_equal(a_img, d_img)


@pytest.mark.parametrize("arrangement", ["random", "clustered", "lattice"])
def test_ground_truth_is_exact_and_overlap_bounded(arrangement):
    rng = np.random.default_rng(0)
    p = dataclasses.replace(sample_params(rng, SMALL), arrangement=arrangement, overlap_max=0.1,
                            coverage=0.3, scale_bar=False, shapes={"sphere": 1.0, "cube": 1.0},
                            aspect={"sphere": 1.0, "cube": 1.0})
    img, p, parts, _ = simulate_one(0, "t", 0, SMALL, params=dataclasses.asdict(p))
    assert img.dtype == np.uint8 and img.shape == (192, 192)
    assert len(parts) > 10
    anns = _annotations(parts, p, 1, 1)
    assert len(anns) == len(parts)
    masks = [coco.decode_mask(a["segmentation"]) for a in anns]
    for part, m in zip(parts, masks):
        full = np.zeros((p.height + 2 * 200, p.width + 2 * 200), bool)
        full[part.row0 + 200:part.row0 + 200 + part.crop.shape[0],
             part.col0 + 200:part.col0 + 200 + part.crop.shape[1]] = part.crop
        assert np.array_equal(m, full[200:200 + p.height, 200:200 + p.width])
    # overlaps never exceed overlap_max of the smaller particle
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            inter = np.logical_and(masks[i], masks[j]).sum()
            if inter:
                full_i, full_j = parts[i].crop.sum(), parts[j].crop.sum()
                assert inter <= 0.1 * min(full_i, full_j) + 1
    union = np.any(masks, axis=0)
    assert img[union].mean() < img[~union].mean() - 10  # bright field: particles dark


def test_sizes_follow_the_drawn_distribution():
    rng = np.random.default_rng(1)
    p = sample_params(rng, SMALL)
    params = dict(shapes={"sphere": 1.0}, aspect={"sphere": 1.0}, size_px=20.0, size_cv=0.1, coverage=0.15,
                  arrangement="random", overlap_max=0.0, scale_bar=False, nm_per_px=0.5, height=256, width=256)
    img, p, parts, _ = simulate_one(0, "sizes", 0, SMALL, params=params)
    doc = coco.new_document()
    doc["images"].append(coco.image_entry(1, "s/0", "0.png", p.width, p.height, nm_per_px=p.nm_per_px))
    doc["annotations"] = _annotations(parts, p, 1, 1)
    table = pl.DataFrame({"image_id": ["s/0"], "nm_per_px": [0.5], "dataset": ["s"], "sample_id": ["s"]})
    m = measure_document(doc, table, "truth").filter(~pl.col("touches_border"))
    drawn = np.array([a["size_px"] for a in doc["annotations"] if not a["truncated"]])
    assert m.height == drawn.size > 20
    # measured equivalent diameters equal the drawn sizes (pixelisation only)
    assert np.allclose(np.sort(m["eq_diameter_px"].to_numpy()), np.sort(drawn), rtol=0.08)
    assert abs(drawn.mean() - 20.0) < 2.0 and 0.04 < drawn.std() / drawn.mean() < 0.18
    assert m["eq_diameter_nm"].mean() == pytest.approx(m["eq_diameter_px"].mean() * 0.5)


def test_scale_bar_area_stays_free_and_is_drawn():
    params = dict(scale_bar=True, coverage=0.5, arrangement="random", nm_per_px=1.0)
    img, p, parts, bar = simulate_one(2, "bar", 0, {"image_size": [256, 256], "size_px": [8, 12]}, params=params)
    assert bar is not None and bar["label"].endswith("nm")
    r0, c0 = bar["row0"], bar["col0"]
    region = img[r0:r0 + bar["thick"], c0:c0 + bar["length"]]
    assert (region == (255 if bar["white"] else 0)).all()
    for part in parts:  # no particle overlaps the bar itself
        rows = range(part.row0, part.row0 + part.crop.shape[0])
        cols = range(part.col0, part.col0 + part.crop.shape[1])
        if set(rows) & set(range(r0, r0 + bar["thick"])) and set(cols) & set(range(c0, c0 + bar["length"])):
            sub = part.crop[max(r0 - part.row0, 0):r0 + bar["thick"] - part.row0,
                            max(c0 - part.col0, 0):c0 + bar["length"] - part.col0]
            assert not sub.any()
    assert bar["nm"] == pytest.approx(bar["length"] * p.nm_per_px, rel=0.15)


def test_simulate_split_writes_valid_coco_and_images_table(tmp_path):
    doc = simulate_split(tmp_path, "holdout", 3, seed=7, cfg=SMALL)
    path = coco.write_coco(doc, tmp_path / "annotations.json")
    back = coco.read_coco(path)
    assert [coco.image_key(i) for i in back["images"]] == [f"synthetic_holdout/{i:06d}" for i in range(3)]
    assert len({a["id"] for a in back["annotations"]}) == len(back["annotations"]) > 0
    for img in back["images"]:
        arr = np.asarray(Image.open(tmp_path / "images" / img["file_name"]))
        assert arr.shape == (192, 192) and arr.dtype == np.uint8
        assert img["nm_per_px"] > 0
    table = images_table_for_coco(back, tmp_path / "images", "synthetic_holdout")
    assert table.height == 3 and table["calibration_source"].to_list() == ["metadata"] * 3
    # the same split again gives byte-identical images (parallel workers too)
    again = simulate_split(tmp_path / "again", "holdout", 3, seed=7, cfg=SMALL, workers=2)
    for img in back["images"]:
        a = (tmp_path / "images" / img["file_name"]).read_bytes()
        b = (tmp_path / "again" / "images" / img["file_name"]).read_bytes()
        assert a == b
    assert [a["segmentation"] for a in again["annotations"]] == [a["segmentation"] for a in back["annotations"]]


def test_every_shape_class_can_be_simulated():
    for shape in ("rod", "triangle", "six_pointed_star", "flower", "irregular", "rhombus"):
        img, p, parts, _ = simulate_one(0, shape, 0, {**SMALL, "shapes": {shape: 1.0}, "mixed_fraction": 0.0})
        assert parts and {q.shape for q in parts} == {shape}


def test_real_vs_synthetic_figure(tmp_path):
    real = [("a", np.full((64, 80), 200, np.uint8))]
    used = real_vs_synthetic_figure(tmp_path / "f.png", real, seed=0)
    assert used == [list(FIGURE_PRESETS)[0]]
    assert (tmp_path / "f.png").stat().st_size > 1000

