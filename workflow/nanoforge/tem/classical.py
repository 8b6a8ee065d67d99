"""The classical baseline: global threshold + distance-transform watershed (scikit-image).

This is what most labs run today (ImageJ's "threshold, fill holes, watershed" recipe):

1. invert bright-field images so particles are bright (``dark_particles``);
2. optionally flatten uneven illumination by subtracting a wide Gaussian background
   (``background_sigma_frac`` times the shorter image side; 0 turns it off);
3. smooth with a Gaussian (``smooth_sigma`` px) and threshold (Otsu, Li, Yen, triangle, or a
   local threshold over ``local_block_frac`` of the image side);
4. clean the foreground: fill holes, open with a small disk, drop components below
   ``min_area_px``; steps 3-4 run twice, the second time with the smoothing scaled to the
   typical particle radius found by the first (``smooth_sigma_frac``);
5. split touching particles with a watershed on the distance transform; markers are its
   local maxima at least ``min_distance_frac`` times the typical particle radius apart
   (the median, over foreground components, of their largest inscribed radius), so one
   setting serves images of any magnification;
6. drop regions smaller than ``min_area_px`` or ``min_area_frac`` times the median region
   area (noise specks), or longer than ``max_aspect_ratio`` times their width (text lines);
   straight bars (scale bars: longer than that and nearly convex) are removed from the
   foreground before step 5, which would otherwise cut them into particle-sized pieces.
   The pixels of an image's ignore mask (scale bar and label found at ingestion, column
   ``ignore_mask`` of the images table) are taken out of the foreground first.

Each region's score is its solidity (area over convex-hull area): a convex blob is a
likely single particle, a concave one a merge or fragment. COCO AP ranks detections by it.
"""

from __future__ import annotations

import time

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import filters, morphology, segmentation
from skimage.feature import peak_local_max

from nanoforge.tem import coco
from nanoforge.tem.measure import solidity
from nanoforge.tem.scalebar import load_ignore_mask

DEFAULTS = {
    "dark_particles": True,
    "background_sigma_frac": 0.0,
    "smooth_sigma": 1.0,
    "smooth_sigma_frac": 0.12,
    "threshold": "otsu",
    "local_block_frac": 0.125,
    "min_area_px": 8,
    "min_area_frac": 0.1,
    "opening_radius": 1,
    "min_distance_frac": 0.6,
    "max_aspect_ratio": 8.0,
}


def _threshold(f: np.ndarray, method: str, block: int) -> np.ndarray:
    if method == "otsu":
        return f > filters.threshold_otsu(f)
    if method == "li":
        return f > filters.threshold_li(f)
    if method == "yen":
        return f > filters.threshold_yen(f)
    if method == "triangle":
        return f > filters.threshold_triangle(f)
    if method == "local":
        return f > filters.threshold_local(f, block_size=block | 1, offset=0)
    raise ValueError(f"unknown threshold method {method!r} (otsu, li, yen, triangle, local)")


def _prepare(img: np.ndarray, c: dict) -> np.ndarray:
    f = img.astype(np.float32)
    if f.max() > 1.0:
        f = f / 255.0
    if c["dark_particles"]:
        f = 1.0 - f
    if c["background_sigma_frac"] > 0:
        f = f - ndimage.gaussian_filter(f, c["background_sigma_frac"] * min(f.shape))
    return f


def _binary(f: np.ndarray, sigma: float, c: dict) -> np.ndarray:
    if sigma > 0:
        f = ndimage.gaussian_filter(f, sigma)
    fg = _threshold(f, c["threshold"], max(3, int(c["local_block_frac"] * min(f.shape))))
    fg = ndimage.binary_fill_holes(fg)
    if c["opening_radius"] > 0:
        fg = ndimage.binary_opening(fg, morphology.disk(c["opening_radius"]))
    return morphology.remove_small_objects(fg, max_size=max(int(c["min_area_px"]) - 1, 0))


def typical_radius(fg: np.ndarray) -> float:
    """Median over foreground components of their largest inscribed radius (px)."""
    cc, n = ndimage.label(fg)
    if n == 0:
        return 1.0
    dist = ndimage.distance_transform_edt(fg)
    return float(np.median(ndimage.maximum(dist, cc, index=np.arange(1, n + 1))))


def foreground(img: np.ndarray, cfg: dict | None = None) -> np.ndarray:
    """Boolean particle mask of an 8-bit (or float) grayscale image.

    Two passes: the first (``smooth_sigma``) estimates the typical particle radius r, the
    second smooths with max(``smooth_sigma``, ``smooth_sigma_frac`` * r), so noise on large
    particles is averaged out without merging small ones."""
    c = {**DEFAULTS, **(cfg or {})}
    f = _prepare(img, c)
    fg = _binary(f, c["smooth_sigma"], c)
    sigma = max(c["smooth_sigma"], c["smooth_sigma_frac"] * typical_radius(fg))
    if sigma > c["smooth_sigma"] + 0.25:
        fg = _binary(f, sigma, c)
    return fg


def split_touching(fg: np.ndarray, cfg: dict | None = None) -> np.ndarray:
    """Watershed on the distance transform of ``fg`` -> label image."""
    c = {**DEFAULTS, **(cfg or {})}
    if not fg.any():
        return np.zeros(fg.shape, np.int32)
    dist = ndimage.distance_transform_edt(fg)
    cc, n = ndimage.label(fg)
    typical = typical_radius(fg)
    min_distance = max(1, int(round(c["min_distance_frac"] * typical)))
    smooth = ndimage.gaussian_filter(dist, 0.5 + 0.1 * typical)
    peaks = peak_local_max(smooth, min_distance=min_distance, labels=cc, exclude_border=False)
    markers = np.zeros(fg.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    # every component gets at least one marker (peak_local_max can miss flat plateaus)
    has = np.zeros(n + 1, bool)
    has[cc[tuple(peaks.T)]] = True
    missing = np.flatnonzero(~has[1:]) + 1
    if missing.size:
        pos = ndimage.maximum_position(dist, cc, index=missing)
        rr, cl = np.asarray(pos, dtype=np.int64).reshape(-1, 2).T
        markers[rr, cl] = len(peaks) + np.arange(1, missing.size + 1)
    return segmentation.watershed(-smooth, markers, mask=fg).astype(np.int32)


def _aspect(rr: np.ndarray, cc: np.ndarray) -> float:
    """Length over width of a pixel set, from the spread of its coordinates."""
    if rr.size < 3:
        return 1.0
    ev = np.linalg.eigvalsh(np.cov(np.stack([rr, cc]).astype(float)))
    return float(np.sqrt(max(ev[1], 1 / 12) / max(ev[0], 1 / 12)))


def _shape_ok(crop: np.ndarray, min_area: int, max_aspect: float) -> tuple[bool, float]:
    """(keep?, solidity) of a region."""
    rr, cc = np.nonzero(crop)
    if rr.size < min_area or _aspect(rr, cc) > max_aspect:
        return False, 0.0
    return True, solidity(crop)


def _is_straight_bar(crop: np.ndarray, max_aspect: float) -> bool:
    """A long, nearly convex component: a scale bar or a line, not a chain of particles."""
    rr, cc = np.nonzero(crop)
    return _aspect(rr, cc) > max_aspect and solidity(crop) > 0.9


def segment_image(img: np.ndarray, cfg: dict | None = None,
                  ignore: np.ndarray | None = None) -> list[tuple[np.ndarray, int, int, float]]:
    """Instances of one image: a list of (crop, row0, col0, score). ``ignore``: boolean mask
    of pixels that are not specimen (scale bar and label), removed from the foreground."""
    c = {**DEFAULTS, **(cfg or {})}
    fg = foreground(img, c)
    if ignore is not None:
        fg &= ~ignore
    # straight bars (scale bars, frame lines) before the watershed would cut them in pieces
    cc, _ = ndimage.label(fg)
    for _, crop, r0, c0 in coco.labels_to_crops(cc):
        if _is_straight_bar(crop, float(c["max_aspect_ratio"])):
            fg[r0 : r0 + crop.shape[0], c0 : c0 + crop.shape[1]][crop] = False
    labels = split_touching(fg, c)
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas > 0]
    min_area = max(int(c["min_area_px"]), int(c["min_area_frac"] * np.median(areas)) if areas.size else 0)
    out = []
    for _, crop, r0, c0 in coco.labels_to_crops(labels):
        crop = ndimage.binary_fill_holes(crop)
        ok, score = _shape_ok(crop, min_area, float(c["max_aspect_ratio"]))
        if ok:
            out.append((crop, r0, c0, score))
    return out


def segment_images(images, cfg: dict | None = None, log=None, read=None) -> dict:
    """Segment every image of an images table (polars DataFrame with image_id, path, width,
    height) -> COCO document with a score per annotation and the seconds spent per image."""
    doc = coco.new_document({"description": "classical threshold + watershed", "method": "classical",
                             "parameters": {**DEFAULTS, **(cfg or {})}})
    next_ann = 1
    for i, row in enumerate(images.iter_rows(named=True), start=1):
        t0 = time.perf_counter()
        img = np.asarray(Image.open(row["path"]).convert("L")) if read is None else read(row["path"])
        inst = segment_image(img, cfg, ignore=load_ignore_mask(row, img.shape))
        seconds = time.perf_counter() - t0
        doc["images"].append(coco.image_entry(i, row["image_id"], row["path"], img.shape[1], img.shape[0],
                                              seconds=round(seconds, 4)))
        for crop, r0, c0, score in inst:
            doc["annotations"].append(coco.annotation_from_crop(crop, r0, c0, img.shape, i, next_ann, score=score))
            next_ann += 1
        if log is not None:
            print(f"{row['image_id']}: {len(inst)} particles in {seconds:.2f} s", file=log)
    return doc
