"""Per-particle measurements from instance masks: ``particles.parquet``.

One row per instance of a COCO document (any method: ground truth, classical, weak labels,
Mask R-CNN), with the image's calibration from an images table. The contract is
``workflow/schemas/particles.schema.yaml`` (:data:`PARTICLES_SCHEMA`, checked by
:func:`measure_document` and again when the table is written). Columns (the contract of
docs/architecture.md first):

- ``image_id``, ``particle_id`` (the annotation id), ``bbox_x``, ``bbox_y``, ``bbox_w``,
  ``bbox_h`` (pixels, COCO convention: top-left corner and size);
- ``area_px``; ``area_nm2``; ``eq_diameter_nm`` (diameter of the disc of the same area);
- ``feret_max_nm`` / ``feret_min_nm``: largest and smallest caliper width, on the convex
  hull of the pixel centres plus one pixel (the width of a pixel), which is unbiased for
  discs and axis-aligned squares;
- ``aspect_ratio`` = feret_max / feret_min;
- ``circularity`` = 4 pi area / perimeter^2 with the Crofton perimeter estimate (isotropic;
  about 1 for digital discs of any size), clipped to [0, 1];
- ``solidity`` = area / pixels in the convex hull of the pixel centres (Pick's theorem);
- ``touches_border``: the mask reaches the image's edge (a truncated particle);
- ``score`` (1.0 when the document has none), ``method``, ``mask_rle`` (a struct ``size``,
  ``counts``: the COCO compressed RLE).

Extra columns: ``dataset``, ``sample_id``, ``nm_per_px``, ``eq_diameter_px``,
``feret_max_px``, ``feret_min_px`` and ``perimeter_px``. For an uncalibrated image (``nm_per_px``
null) the nm columns are null and the pixel columns still hold.

Each mask is decoded to its own bounding-box crop straight from the RLE
(:func:`nanoforge.tem.coco.decode_crop`), so the cost is proportional to the particle, not to
the image.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import polars as pl
from scipy import ndimage
from skimage.measure import perimeter_crofton

from nanoforge import tables
from nanoforge.tem import coco

PARTICLES_SCHEMA = tables.load_table_schema("particles")  # workflow/schemas/particles.schema.yaml


def convex_hull_points(xy: np.ndarray) -> np.ndarray:
    """Convex hull vertices (k, 2) of integer points (x, y), in order."""
    pts = np.ascontiguousarray(xy, dtype=np.int32).reshape(-1, 1, 2)
    if len(pts) <= 2:
        return np.unique(pts.reshape(-1, 2), axis=0).astype(np.float64)
    return cv2.convexHull(pts).reshape(-1, 2).astype(np.float64)


def hull_pixel_count(hull: np.ndarray, n_pixels: int) -> float:
    """Number of integer points inside or on a lattice polygon (Pick's theorem)."""
    if len(hull) < 3:
        if len(hull) == 2:
            d = np.abs(hull[1] - hull[0]).astype(int)
            return float(max(math.gcd(int(d[0]), int(d[1])) + 1, n_pixels))
        return float(max(1, n_pixels))
    nxt = np.roll(hull, -1, axis=0)
    area2 = abs(float(np.sum(hull[:, 0] * nxt[:, 1] - nxt[:, 0] * hull[:, 1])))
    d = np.abs(nxt - hull).astype(np.int64)
    boundary = int(np.gcd(d[:, 0], d[:, 1]).sum())
    return max(area2 / 2 + boundary / 2 + 1, float(n_pixels))


def solidity(mask: np.ndarray) -> float:
    """Mask area / pixels whose centres lie in the convex hull of its pixel centres (Pick);
    1.0 for an empty mask."""
    rr, cc = np.nonzero(mask)
    if not rr.size:
        return 1.0
    hull = convex_hull_points(np.stack([cc, rr], axis=1).astype(np.float64))
    return float(min(1.0, rr.size / hull_pixel_count(hull, rr.size)))


def feret_diameters(hull: np.ndarray) -> tuple[float, float]:
    """(max, min) caliper diameters of a convex polygon (vertices in order)."""
    k = len(hull)
    if k == 1:
        return 0.0, 0.0
    diff = hull[:, None, :] - hull[None, :, :]
    dmax = float(np.sqrt((diff**2).sum(-1)).max())
    if k == 2:
        return dmax, 0.0
    edges = np.roll(hull, -1, axis=0) - hull
    lengths = np.linalg.norm(edges, axis=1)
    ok = lengths > 0
    normals = np.stack([-edges[ok, 1], edges[ok, 0]], axis=1) / lengths[ok, None]
    # distance of every vertex to every edge's line; the width across that edge is the largest
    dist = np.abs(np.einsum("ekd,ed->ek", hull[None, :, :] - hull[ok][:, None, :], normals))
    return dmax, float(dist.max(axis=1).min())


def particle_features(crop: np.ndarray) -> dict:
    """Pixel-unit shape features of one mask crop."""
    crop = np.asarray(crop, dtype=bool)
    area = int(crop.sum())
    boundary = crop & ~ndimage.binary_erosion(crop)
    rr, cc = np.nonzero(boundary)
    hull = convex_hull_points(np.stack([cc, rr], axis=1))
    fmax, fmin = feret_diameters(hull)
    fmax, fmin = fmax + 1.0, fmin + 1.0
    solidity = area / hull_pixel_count(hull, area)
    per = float(perimeter_crofton(np.pad(crop, 1), directions=4)) if area > 1 else 4.0
    circ = 4 * math.pi * area / per**2 if per > 0 else 0.0
    return {
        "area_px": area,
        "eq_diameter_px": math.sqrt(4 * area / math.pi),
        "feret_max_px": fmax,
        "feret_min_px": fmin,
        "aspect_ratio": fmax / fmin if fmin > 0 else float("nan"),
        "circularity": min(1.0, circ),
        "solidity": min(1.0, solidity),
        "perimeter_px": per,
    }


def measure_document(doc: dict, images: pl.DataFrame, method: str, strict: bool = True) -> pl.DataFrame:
    """Measure every annotation of ``doc``; calibration from ``images`` (by image id).

    With ``strict``, an image of the document missing from ``images`` is an error naming it;
    otherwise its particles get null calibration."""
    calib = {r["image_id"]: r for r in images.select("image_id", "nm_per_px", "dataset", "sample_id")
             .iter_rows(named=True)}
    by_image = coco.annotations_by_image(doc)
    rows = []
    for img in doc["images"]:
        key = coco.image_key(img)
        info = calib.get(key)
        if info is None and strict:
            raise KeyError(f"image {key!r} of the masks is not in the images table; ingest it first")
        info = info or {"nm_per_px": None, "dataset": key.split("/", 1)[0], "sample_id": None}
        nm = info["nm_per_px"]
        h, w = int(img["height"]), int(img["width"])
        for ann in by_image[img["id"]]:
            rle = ann["segmentation"]
            crop, r0, c0 = coco.decode_crop(rle)
            if crop.size == 0:
                continue
            f = particle_features(crop)
            touches = r0 == 0 or c0 == 0 or r0 + crop.shape[0] == h or c0 + crop.shape[1] == w
            rows.append({
                "image_id": key, "particle_id": int(ann["id"]),
                "bbox_x": c0, "bbox_y": r0, "bbox_w": crop.shape[1], "bbox_h": crop.shape[0],
                "area_px": f["area_px"],
                "area_nm2": f["area_px"] * nm**2 if nm else None,
                "eq_diameter_nm": f["eq_diameter_px"] * nm if nm else None,
                "feret_max_nm": f["feret_max_px"] * nm if nm else None,
                "feret_min_nm": f["feret_min_px"] * nm if nm else None,
                "aspect_ratio": f["aspect_ratio"], "circularity": f["circularity"], "solidity": f["solidity"],
                "touches_border": bool(touches), "score": float(ann.get("score", 1.0)), "method": method,
                "mask_rle": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"]},
                "dataset": info["dataset"], "sample_id": info["sample_id"], "nm_per_px": nm,
                "eq_diameter_px": f["eq_diameter_px"], "feret_max_px": f["feret_max_px"],
                "feret_min_px": f["feret_min_px"], "perimeter_px": f["perimeter_px"],
            })
    df = tables.frame(rows, PARTICLES_SCHEMA)
    tables.validate_table(df, PARTICLES_SCHEMA)
    return df
