"""Particles of known shape: masks for training the cluster-naming classifier, and particle
tables (the columns of ``particles.parquet`` that the shape stage reads, plus
``true_shape``) for tests and the benchmark.

Particles are drawn by :func:`nanoforge.tem.shapes.render_particle` with random size,
elongation, rotation, sub-pixel position, corner rounding and a little outline roughness,
so that a class covers the variety a segmentation mask shows. The distributions are in
:data:`ASPECT_RANGE`, :data:`ROUNDING_RANGE` and the arguments below; everything is drawn
from a seeded generator, so the same seed gives the same particles.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl

from nanoforge.tem.shapes import render_particle
from nanoforge.vocabulary import SHAPE_CLASSES

# length/width of each class (uniform in the range); classes not listed are isotropic
ASPECT_RANGE: dict[str, tuple[float, float]] = {
    "rod": (2.2, 6.0),
    "rectangle": (1.3, 2.0),
    "rhombus": (1.3, 2.0),
    "irregular": (1.0, 1.3),
}
# corner rounding (fraction of the inradius) of the faceted classes
ROUNDING_RANGE: dict[str, tuple[float, float]] = {
    "cube": (0.0, 0.3),
    "rectangle": (0.0, 0.3),
    "triangle": (0.0, 0.25),
    "hexagon": (0.0, 0.2),
    "rhombus": (0.0, 0.2),
    "rod": (0.6, 1.0),
}
JITTER_MAX = 0.02  # radial roughness of the outline (fraction of the radius)
# the naming classifier's training particles vary more than that: real "spheres" and
# "cubes" are a little elongated, and segmentation masks are rougher
TRAINING_ASPECT_RANGE: dict[str, tuple[float, float]] = {
    **ASPECT_RANGE,
    "sphere": (1.0, 1.15),
    "cube": (1.0, 1.1),
    "triangle": (1.0, 1.1),
    "hexagon": (1.0, 1.1),
    "flower": (1.0, 1.1),
    "four_pointed_star": (1.0, 1.08),
    "six_pointed_star": (1.0, 1.08),
}
TRAINING_JITTER_MAX = 0.03
DEFAULT_SIZE_PX = (16.0, 48.0)  # area-equivalent diameter range in pixels


def particle_specs(
    n: int,
    rng: np.random.Generator,
    shapes: list[str] | tuple[str, ...] = SHAPE_CLASSES,
    weights: list[float] | None = None,
    size_px: tuple[float, float] = DEFAULT_SIZE_PX,
    aspect_range: dict[str, tuple[float, float]] = ASPECT_RANGE,
    jitter_max: float = JITTER_MAX,
) -> list[dict]:
    """``n`` random particle specifications (shape, size_px, aspect, rotation_rad, rounding,
    jitter, offset) with shapes drawn from ``shapes`` (equal or given weights)."""
    shapes = list(shapes)
    p = None if weights is None else np.asarray(weights, float) / np.sum(weights)
    picks = rng.choice(len(shapes), size=n, p=p)
    sizes = rng.uniform(size_px[0], size_px[1], size=n)
    rot = rng.uniform(0, 2 * math.pi, size=n)
    u_aspect = rng.uniform(size=n)
    u_round = rng.uniform(size=n)
    jitter = rng.uniform(0, jitter_max, size=n)
    offsets = rng.uniform(-0.5, 0.5, size=(n, 2))
    specs = []
    for i in range(n):
        s = shapes[picks[i]]
        lo, hi = aspect_range.get(s, (1.0, 1.0))
        rlo, rhi = ROUNDING_RANGE.get(s, (0.0, 0.0))
        specs.append({
            "shape": s,
            "size_px": float(sizes[i]),
            "aspect": float(lo + (hi - lo) * u_aspect[i]) if s in aspect_range else None,
            "rotation_rad": float(rot[i]),
            "rounding": float(rlo + (rhi - rlo) * u_round[i]) if s in ROUNDING_RANGE else None,
            "jitter": float(jitter[i]),
            "offset": (float(offsets[i, 0]), float(offsets[i, 1])),
        })
    return specs


def render_specs(specs: list[dict], rng: np.random.Generator) -> list[np.ndarray]:
    """Boolean masks of the specified particles (``rng`` drives flower and irregular
    outlines and the roughness)."""
    return [
        render_particle(s["shape"], s["size_px"], s["aspect"], s["rotation_rad"], rng,
                        rounding=s["rounding"], jitter=s["jitter"], offset=s["offset"], pad=0)
        for s in specs
    ]


def training_masks(n_per_class: int, seed: int, shapes=SHAPE_CLASSES, size_px=DEFAULT_SIZE_PX):
    """Balanced masks of every shape class, for the naming classifier: (masks, shape names).
    They vary more than the particles of :func:`particle_specs`' defaults
    (:data:`TRAINING_ASPECT_RANGE`, :data:`TRAINING_JITTER_MAX`)."""
    rng = np.random.default_rng([seed, 1])
    specs = []
    for s in shapes:
        specs += particle_specs(n_per_class, rng, [s], size_px=size_px, aspect_range=TRAINING_ASPECT_RANGE,
                                jitter_max=TRAINING_JITTER_MAX)
    return render_specs(specs, rng), [s["shape"] for s in specs]


# ---------------------------------------------------------------------------------------
# particle tables
# ---------------------------------------------------------------------------------------

TABLE_SCHEMA = {
    "image_id": pl.Utf8,
    "particle_id": pl.Int64,
    "sample_id": pl.Utf8,
    "bbox_x": pl.Int64,
    "bbox_y": pl.Int64,
    "bbox_w": pl.Int64,
    "bbox_h": pl.Int64,
    "area_px": pl.Int64,
    "eq_diameter_nm": pl.Float64,
    "touches_border": pl.Boolean,
    "score": pl.Float64,
    "method": pl.Utf8,
    "mask_rle": pl.Struct({"size": pl.List(pl.Int64), "counts": pl.Utf8}),
    "true_shape": pl.Utf8,
}


def _table_chunk(args) -> pl.DataFrame:
    """Particles of images ``first_image .. first_image + n_images - 1`` (deterministic per
    image, so chunks can be made in any order or process)."""
    from nanoforge.tem.coco import encode_crop

    seed, first_image, n_images, per_image, image_px, nm_per_px, images_per_sample, mixtures, size_px = args
    rows = []
    for img in range(first_image, first_image + n_images):
        rng = np.random.default_rng([seed, 2, img])
        sample = img // images_per_sample
        mix = mixtures[sample % len(mixtures)]
        shapes, weights = list(mix), list(mix.values())
        # each sample has its own mean size (like a synthesis), 8 % spread within it
        srng = np.random.default_rng([seed, 3, sample])
        mean = srng.uniform(size_px[0] * 1.15, size_px[1] / 1.15)
        specs = particle_specs(per_image, rng, shapes, weights, size_px=(mean * 0.87, mean * 1.13))
        masks = render_specs(specs, rng)
        image_id = f"synthetic/img{img:06d}"
        for k, (spec, m) in enumerate(zip(specs, masks)):
            h, w = m.shape
            r0 = int(rng.integers(-h // 4, image_px - h + h // 4))
            c0 = int(rng.integers(-w // 4, image_px - w + w // 4))
            # clip to the image: particles on the edge are truncated, as in a micrograph
            rs, cs = max(0, -r0), max(0, -c0)
            re, ce = min(h, image_px - r0), min(w, image_px - c0)
            crop = m[rs:re, cs:ce]
            rows_any = np.flatnonzero(crop.any(1))
            cols_any = np.flatnonzero(crop.any(0))
            if rows_any.size == 0:
                continue
            crop = crop[rows_any[0] : rows_any[-1] + 1, cols_any[0] : cols_any[-1] + 1]
            top, left = r0 + rs + rows_any[0], c0 + cs + cols_any[0]
            area = int(crop.sum())
            touches = top == 0 or left == 0 or top + crop.shape[0] == image_px or left + crop.shape[1] == image_px
            rows.append({
                "image_id": image_id, "particle_id": k + 1, "sample_id": f"synthetic_s{sample:04d}",
                "bbox_x": int(left), "bbox_y": int(top), "bbox_w": crop.shape[1], "bbox_h": crop.shape[0],
                "area_px": area, "eq_diameter_nm": math.sqrt(4 * area / math.pi) * nm_per_px,
                "touches_border": bool(touches), "score": 1.0, "method": "synthetic",
                "mask_rle": encode_crop(crop, int(top), int(left), (image_px, image_px)),
                "true_shape": spec["shape"],
            })
    return pl.DataFrame(rows, schema=TABLE_SCHEMA)


DEFAULT_MIXTURES = (
    {"sphere": 0.8, "hexagon": 0.1, "irregular": 0.1},
    {"cube": 0.8, "rectangle": 0.1, "sphere": 0.1},
    {"rod": 0.7, "sphere": 0.3},
    {"triangle": 0.6, "hexagon": 0.3, "sphere": 0.1},
    {"hexagon": 0.8, "triangle": 0.1, "sphere": 0.1},
    {"rhombus": 0.5, "rectangle": 0.3, "cube": 0.2},
    {"four_pointed_star": 0.5, "six_pointed_star": 0.3, "flower": 0.2},
    {"flower": 0.5, "irregular": 0.5},
    {s: 1.0 for s in SHAPE_CLASSES},
)
"""Shape mixtures of the synthetic samples (sample k uses mixture k mod len)."""


def synthetic_particle_table(
    n_particles: int,
    seed: int = 0,
    per_image: int = 100,
    image_px: int = 1024,
    nm_per_px: float = 0.25,
    images_per_sample: int = 10,
    mixtures=DEFAULT_MIXTURES,
    size_px: tuple[float, float] = DEFAULT_SIZE_PX,
    workers: int = 1,
    chunk_images: int = 50,
) -> pl.DataFrame:
    """A particle table of ``n_particles`` rows (a few fewer where a particle fell off its
    image) on ``image_px``-square synthetic images, ``per_image`` particles each, grouped into
    samples of ``images_per_sample`` images whose shape mixtures cycle through ``mixtures``.
    ``true_shape`` holds each particle's class."""
    n_images = math.ceil(n_particles / per_image)
    tasks = []
    for first in range(0, n_images, chunk_images):
        tasks.append((seed, first, min(chunk_images, n_images - first), per_image, image_px, nm_per_px,
                      images_per_sample, [dict(m) for m in mixtures], size_px))
    if workers > 1 and len(tasks) > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            parts = list(pool.map(_table_chunk, tasks))
    else:
        parts = [_table_chunk(t) for t in tasks]
    df = pl.concat(parts) if parts else pl.DataFrame(schema=TABLE_SCHEMA)
    return df.head(n_particles)


def write_synthetic_table(path: str | Path, n_particles: int, seed: int = 0, workers: int = 1, **kw) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    synthetic_particle_table(n_particles, seed, workers=workers, **kw).write_parquet(tmp, row_group_size=50_000)
    tmp.replace(path)
    return path
