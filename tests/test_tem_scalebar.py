"""The scale-bar reader (nanoforge.tem.scalebar): bars found and labels read, bad input gives a
reason and never a calibration, ingestion uses it after metadata and sidecar, and the bar is
masked out of segmentation."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from PIL import Image, ImageDraw, ImageFont

from nanoforge.tem import scalebar as sb
from nanoforge.tem.simulate import scale_bar_font_path, simulate_one

SOPHON_NM_PER_PX = 0.8547  # 200 nm = 234 px, measured by hand


def film(h=300, w=400, seed=0, level=170.0, particles=12):
    """A noisy grey film with a few dark particles."""
    rng = np.random.default_rng(seed)
    img = rng.normal(level, 10, (h, w))
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(particles):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(6, 16)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(40, 90)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def draw_bar(pil, x, y, length, label, thick=6, ink=0, font="DejaVuSans.ttf", size=22, box=None, above=True):
    d = ImageDraw.Draw(pil)
    f = ImageFont.truetype(scale_bar_font_path(font), size)
    x0, y0, x1, y1 = f.getbbox(label)
    if box is not None:
        d.rectangle(box, fill=255 - ink)
    d.rectangle([x, y, x + length - 1, y + thick - 1], fill=ink)
    if label:
        ty = y - 6 - (y1 - y0) - y0 if above else y + thick + 6 - y0
        d.text((x + length / 2 - (x1 - x0) / 2 - x0, ty), label, fill=ink, font=f)
    return pil


def read(pil, **cfg):
    return sb.read_scale_bar(np.asarray(pil.convert("L")), cfg or None)


def test_parse_label_units_and_ocr_confusions():
    assert sb.parse_label("200 nm") == (200.0, "nm")
    assert sb.parse_label("0,5 µm") == (0.5, "µm")
    assert sb.parse_label("2 μm") == (2.0, "µm")
    assert sb.parse_label("5um") == (5.0, "µm")
    assert sb.parse_label("50 Å") == (50.0, "Å")
    assert sb.parse_label("500 pm") == (500.0, "pm")
    assert sb.parse_label("l00 nm") == (100.0, "nm")  # OCR's l for 1
    assert sb.parse_label("2O nm") == (20.0, "nm")  # and O for 0
    assert sb.parse_label("nm") is None
    assert sb.parse_label("Au NPs") is None
    assert sb.parse_label("0 nm") is None
    assert sb.label_prior(250, "nm") == sb.label_prior(0.5, "µm") == 1.0
    assert sb.label_prior(106, "nm") * 1.0 < sb.DEFAULTS["min_confidence"] < sb.label_prior(300, "nm")
    assert sb.label_prior(500, "pm") < 1.0


@pytest.mark.parametrize("ink,unit_label,nm,font", [
    (0, "100 nm", 100.0, "DejaVuSans.ttf"),
    (255, "2 µm", 2000.0, "DejaVuSans-Bold.ttf"),  # white on a black box
    (0, "50 Å", 5.0, "DejaVuSerif.ttf"),
    (0, "500 pm", 0.5, "DejaVuSerif-Bold.ttf"),  # a p, not a µ: the glyph's closed bowl says so
])
def test_reads_drawn_bars_within_2_percent(ink, unit_label, nm, font):
    pil = film(seed=int(nm))
    length = 137
    box = [250, 215, 395, 290] if ink == 255 else None
    draw_bar(pil, 255, 270, length, unit_label, ink=ink, font=font, box=box)
    r = read(pil)
    assert r.reason == "" and r.nm_per_px == pytest.approx(nm / length, rel=0.02), r
    assert r.bar_length_px == pytest.approx(length, abs=1)
    assert r.confidence >= 0.6 and r.label is not None
    mask = sb.ignore_mask((300, 400), r)
    assert mask[272, 260:390].all() and mask[250, 300] and not mask[100, 100]


def test_no_bar_gives_a_reason():
    r = read(film(seed=3))
    assert r.nm_per_px is None and r.reason == "no scale bar found" and not r.found
    assert sb.ignore_mask((300, 400), r) is None


def test_unreadable_label_gives_a_reason_and_masks_the_bar():
    pil = draw_bar(film(seed=4), 200, 250, 150, "", ink=0)
    ImageDraw.Draw(pil).text((230, 215), "~~", fill=0, font=ImageFont.truetype(scale_bar_font_path("DejaVuSans.ttf"), 22))
    r = read(pil)
    assert r.nm_per_px is None and "no label" in r.reason and r.found
    assert sb.ignore_mask((300, 400), r)[252, 210:340].all()


def test_two_bars_that_disagree_give_a_reason():
    pil = draw_bar(film(seed=5), 20, 270, 120, "100 nm", ink=0)
    draw_bar(pil, 250, 270, 120, "200 nm", ink=0)
    r = read(pil)
    assert r.nm_per_px is None and "disagree" in r.reason, r


def test_a_bar_cut_by_the_crop_gives_a_reason():
    pil = draw_bar(film(seed=6), 300, 270, 140, "100 nm", ink=0, size=16)  # runs off the right edge
    r = read(pil)
    assert r.nm_per_px is None and "cut by the image edge" in r.reason and r.label == "100 nm", r
    assert sb.ignore_mask((300, 400), r)[272, 310:399].all()  # still masked


def test_low_confidence_falls_through():
    pil = draw_bar(film(seed=7), 200, 270, 150, "100 nm", ink=0)
    r = read(pil, min_confidence=1.01)
    assert r.nm_per_px is None and "low confidence" in r.reason and r.label == "100 nm"


def test_sophon_example_from_its_bar_alone(shared_data):
    img = np.asarray(Image.open(shared_data / "tem" / "sophon_example" / "images" / "1-0001_16.png").convert("L"))
    r = sb.read_scale_bar(img)
    assert r.label == "200 nm" and r.nm_per_px == pytest.approx(SOPHON_NM_PER_PX, rel=0.02), r


def test_ingest_calibrates_from_the_bar_without_a_sidecar_entry(shared_data, tmp_path):
    from nanoforge.tem.ingest import SCALE_BAR_COLUMNS, ingest

    src = shared_data / "tem" / "sophon_example" / "images"
    side = {"entries": [{"image": "sophon/1-0001_16", "nm_per_px": 0.9, "sample_id": "s"}]}
    images, rejected = ingest({"sophon": {"path": str(src), "images": ["*.png"]}}, tmp_path / "out", None)
    assert rejected.height == 0
    row = images.row(0, named=True)
    assert set(SCALE_BAR_COLUMNS) <= set(images.columns)
    assert row["calibration_source"] == "scale_bar"
    assert row["nm_per_px"] == pytest.approx(SOPHON_NM_PER_PX, rel=0.02)
    assert row["scale_bar_px"] == pytest.approx(234, abs=1.5) and row["scale_bar_label"] == "200 nm"
    assert row["scale_bar_confidence"] >= 0.6 and row["scale_bar_reason"] is None
    mask = np.asarray(Image.open(row["ignore_mask"])) > 127
    assert mask.shape == (667, 1002) and mask[622, 50:270].all() and mask.mean() < 0.02
    # a sidecar entry comes first; the bar is still recorded and masked
    images, _ = ingest({"sophon": {"path": str(src), "images": ["*.png"]}}, tmp_path / "out2", side)
    row = images.row(0, named=True)
    assert row["calibration_source"] == "sidecar" and row["nm_per_px"] == 0.9
    assert row["scale_bar_label"] == "200 nm" and row["ignore_mask"]


def test_ingest_low_confidence_falls_through_with_the_reason(tmp_path):
    from nanoforge.tem.ingest import ingest

    root = tmp_path / "figs"
    root.mkdir()
    pil = draw_bar(film(seed=8, particles=0), 200, 270, 150, "100 nm", ink=0)
    ImageDraw.Draw(pil).rectangle([0, 0, 19, 9], fill=255)  # so that ingestion's stretch changes nothing
    pil.save(root / "a.png")
    strict = {"min_confidence": 1.01}
    images, rejected = ingest({"figs": {"path": str(root)}}, tmp_path / "o1", None, scale_bar=strict)
    assert images.height == 0 and "scale bar" in rejected["reason"][0] and "low confidence" in rejected["reason"][0]
    images, _ = ingest({"figs": {"path": str(root), "uncalibrated": "keep"}}, tmp_path / "o2", None, scale_bar=strict)
    row = images.row(0, named=True)
    assert row["nm_per_px"] is None and row["calibration_source"] is None and "low confidence" in row["scale_bar_reason"]
    images, _ = ingest({"figs": {"path": str(root)}}, tmp_path / "o3", None)
    row = images.row(0, named=True)
    assert row["calibration_source"] == "scale_bar" and row["nm_per_px"] == pytest.approx(100 / 150, rel=0.02)


def test_segmentation_leaves_the_masked_bar_out(tmp_path):
    from nanoforge.tem.classical import segment_images
    from nanoforge.tem.weak_labels import weak_label_images

    pil = draw_bar(film(seed=9), 200, 270, 150, "100 nm", ink=0, thick=10)
    img = np.asarray(pil)
    path = tmp_path / "a.png"
    pil.save(path)
    r = sb.read_scale_bar(img)
    mpath = tmp_path / "a.ignore.png"
    sb.write_ignore_mask(mpath, sb.ignore_mask(img.shape, r))
    plain = {"image_id": "x/a", "path": str(path), "width": 400, "height": 300}
    masked = {**plain, "ignore_mask": str(mpath)}
    # classical: thick enough bars are not cut into particles... unless masked out
    for row, expect_in_bar in ((plain, None), (masked, False)):
        doc = segment_images(pl.DataFrame([row]), {"max_aspect_ratio": 100.0})
        inside = [a for a in doc["annotations"] if a["bbox"][1] >= 255 and a["bbox"][0] >= 195]
        if expect_in_bar is None:
            assert inside, "the bar should be segmented when nothing masks it"
        else:
            assert not inside
    # weak labels: a detection on the bar is dropped as scale_bar

    def detect(gray):
        return np.array([[198.0, 266, 352, 283]]), np.array([0.99])

    doc = weak_label_images([masked], detect, {"min_score": 0.5}, log=None)
    assert not doc["annotations"] and doc["images"][0]["dropped"]["scale_bar"] + sum(
        v for k, v in doc["images"][0]["dropped"].items() if k != "scale_bar") == 1


def test_simulate_varied_bars_say_the_truth():
    cfg = {"scale_bar_probability": 1.0, "scale_bar_style": "varied", "nm_per_px": [0.005, 30.0],
           "image_size": [320, 320], "coverage": [0.02, 0.05]}
    looks = set()
    for i in range(10):
        img, p, _, bar = simulate_one(3, "scalebar_unit", i, cfg)
        assert bar is not None and bar["style"] == "varied"
        assert bar["length"] == round(bar["nm"] / p.nm_per_px)
        assert abs(bar["nm"] / bar["length"] / p.nm_per_px - 1) <= 0.5 / bar["length"] + 1e-9
        assert bar["length"] >= 0.12 * p.width
        looks.add((bar["font"], bar["unit"], bar["white"], bar["box"] is not None))
        r0, c0 = bar["row0"], bar["col0"]
        assert (img[r0 : r0 + bar["thick"], c0 : c0 + bar["length"]] == (255 if bar["white"] else 0)).all()
    assert len(looks) >= 7
    again, *_ = simulate_one(3, "scalebar_unit", 0, cfg)
    first, *_ = simulate_one(3, "scalebar_unit", 0, cfg)
    assert (again == first).all()
