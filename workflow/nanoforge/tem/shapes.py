"""Particle shapes of the recipe dataset as polygons and boolean masks.

The shape classes are :data:`nanoforge.vocabulary.SHAPE_CLASSES` (the paper's 11: sphere,
cube, rod, triangle, hexagon, rhombus, rectangle, four_pointed_star, six_pointed_star,
flower and irregular); any spelling the vocabulary accepts ("flower shape", "Six-pointed
star", ...) names a class here too.

Every shape is built as a closed polygon (smooth shapes with enough vertices that the
outline is smooth at the requested size) and rasterised by a vectorised even-odd scanline fill
(a pixel belongs to the particle when its centre is inside the outline). That makes a
particle a few tens of microseconds of work whatever its size.

Conventions
-----------
- ``size_px`` is the *area-equivalent diameter* in pixels: the outline is scaled so that its
  area is ``pi * size_px**2 / 4``. This is the quantity that ``measure_particles`` reports as
  ``eq_diameter_nm`` (times nm/px), so a generated size distribution can be compared
  directly with a measured one.
- ``aspect`` is the length/width ratio of the particle before rotation (x is the long
  axis). ``None`` takes the shape's typical value from :data:`DEFAULT_ASPECT` (e.g. 3.5 for
  rods, 1 for spheres). For a rhombus it is the ratio of its diagonals.
- ``rotation_rad`` turns the particle counter-clockwise as seen on the image (x to the
  right, y down the rows).
- ``rng`` (a :class:`numpy.random.Generator`) drives the random parts of the outline: the
  petal count of a flower, the outline of an irregular particle and, with ``jitter > 0``,
  a small radial roughness of any outline. Shapes without a random part ignore it.
- ``rounding`` rounds the corners of the convex polygonal shapes (cube, rectangle, rod,
  triangle, hexagon, rhombus) with arcs whose radius is this fraction of the inradius:
  0 gives sharp corners, 1 for a rod gives hemispherical caps. ``None`` takes
  :data:`DEFAULT_ROUNDING`.
"""

from __future__ import annotations

import math

import numpy as np

from nanoforge.vocabulary import shape_class

DEFAULT_ASPECT: dict[str, float] = {
    "sphere": 1.0,
    "cube": 1.0,
    "rod": 3.5,
    "triangle": 1.0,
    "hexagon": 1.0,
    "rhombus": 1.6,
    "rectangle": 1.6,
    "four_pointed_star": 1.0,
    "six_pointed_star": 1.0,
    "flower": 1.0,
    "irregular": 1.0,
}

DEFAULT_ROUNDING: dict[str, float] = {
    "cube": 0.15,
    "rectangle": 0.12,
    "rod": 1.0,
    "triangle": 0.12,
    "hexagon": 0.08,
    "rhombus": 0.08,
}

# Inner/outer radius of the star polygons (a regular hexagram has 1/sqrt(3) = 0.577).
STAR_INNER_RATIO = {"four_pointed_star": 0.42, "six_pointed_star": 0.55}


def _regular_polygon(n: int, phase: float = 0.0) -> np.ndarray:
    t = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _star(points: int, inner: float) -> np.ndarray:
    t = np.pi / 2 + np.pi * np.arange(2 * points) / points
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _radial(r_of_t, n: int) -> np.ndarray:
    t = 2 * np.pi * np.arange(n) / n
    r = r_of_t(t)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _signed_area(v: np.ndarray) -> float:
    x, y = v[:, 0], v[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _round_convex(v: np.ndarray, fraction: float, arc_points: int) -> np.ndarray:
    """Round the corners of a convex polygon (counter-clockwise vertices) with arcs of
    radius ``fraction`` times its inradius about the centroid."""
    if fraction <= 0:
        return v
    edges = np.roll(v, -1, axis=0) - v
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)  # outward for CCW order
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    centre = v.mean(axis=0)
    inradius = float(np.min(np.einsum("ij,ij->i", v - centre, normals)))
    rho = min(fraction, 1.0) * inradius
    n_in = np.roll(normals, 1, axis=0)  # normal of the edge arriving at each vertex
    n_out = normals
    inset = v - rho * (n_in + n_out) / (1.0 + np.einsum("ij,ij->i", n_in, n_out))[:, None]
    a0 = np.arctan2(n_in[:, 1], n_in[:, 0])
    a1 = np.arctan2(n_out[:, 1], n_out[:, 0])
    sweep = np.mod(a1 - a0, 2 * np.pi)
    s = np.linspace(0.0, 1.0, arc_points)
    ang = a0[:, None] + sweep[:, None] * s[None, :]
    pts = inset[:, None, :] + rho * np.stack([np.cos(ang), np.sin(ang)], axis=2)
    return pts.reshape(-1, 2)


def particle_outline(
    shape: str,
    size_px: float,
    aspect: float | None = None,
    rotation_rad: float = 0.0,
    rng: np.random.Generator | None = None,
    *,
    rounding: float | None = None,
    jitter: float = 0.0,
) -> np.ndarray:
    """Vertices (N, 2) as (x, y) in pixels of a particle centred on the origin.

    See the module docstring for the meaning of the arguments. The outline is
    counter-clockwise in (x, y) and its area is exactly ``pi * size_px**2 / 4``.
    """
    shape = shape_class(shape)
    if not size_px > 0:
        raise ValueError(f"size_px must be positive, got {size_px}")
    aspect = DEFAULT_ASPECT[shape] if aspect is None else float(aspect)
    if not aspect >= 1.0:
        raise ValueError(f"aspect must be >= 1 (length/width), got {aspect}")
    rounding = DEFAULT_ROUNDING.get(shape, 0.0) if rounding is None else float(rounding)
    if rng is None:
        rng = np.random.default_rng(0)
    # enough vertices that a vertex spacing is about a pixel on smooth parts
    n_smooth = int(np.clip(math.pi * size_px * max(1.0, math.sqrt(aspect)), 24, 720))
    arc_points = int(np.clip(size_px / 4, 3, 24))
    stretch = True  # stretch x by aspect after building (False where aspect is built in)

    if shape == "sphere":
        v = _radial(lambda t: np.ones_like(t), n_smooth)
    elif shape in ("cube", "rectangle", "rod"):
        a = aspect if shape != "cube" else 1.0
        hx, hy = a, 1.0
        v = np.array([[hx, -hy], [hx, hy], [-hx, hy], [-hx, -hy]], float)
        v = _round_convex(v, rounding, arc_points if shape != "rod" else max(arc_points, 12))
        stretch = shape == "cube"
    elif shape == "triangle":
        v = _round_convex(_regular_polygon(3, np.pi / 2), rounding, arc_points)
    elif shape == "hexagon":
        v = _round_convex(_regular_polygon(6, 0.0), rounding, arc_points)
    elif shape == "rhombus":
        v = np.array([[aspect, 0.0], [0.0, 1.0], [-aspect, 0.0], [0.0, -1.0]])
        v = _round_convex(v, rounding, arc_points)
        stretch = False
    elif shape in STAR_INNER_RATIO:
        points = 4 if shape == "four_pointed_star" else 6
        v = _star(points, STAR_INNER_RATIO[shape])
    elif shape == "flower":
        petals = int(rng.integers(5, 9))
        depth = float(rng.uniform(0.15, 0.3))
        phase = float(rng.uniform(0, 2 * np.pi))
        v = _radial(lambda t: 1.0 + depth * np.cos(petals * t + phase), max(n_smooth, 16 * petals))
    elif shape == "irregular":
        k = np.arange(2, 7)
        amp = rng.uniform(0.05, 0.22, size=k.size) / (k / 2.0)
        ph = rng.uniform(0, 2 * np.pi, size=k.size)

        def r_of_t(t):
            r = 1.0 + (amp[None, :] * np.cos(k[None, :] * t[:, None] + ph[None, :])).sum(axis=1)
            return np.maximum(r, 0.35)

        v = _radial(r_of_t, n_smooth)
    else:  # pragma: no cover - shape_class guarantees a class
        raise AssertionError(shape)

    if jitter > 0:
        # smooth radial roughness: low-pass filtered noise around the outline
        noise = rng.normal(0.0, 1.0, size=len(v))
        kernel = np.ones(5) / 5
        noise = np.convolve(np.concatenate([noise[-2:], noise, noise[:2]]), kernel, "valid")
        v = v * (1.0 + jitter * noise)[:, None]
    if stretch and aspect != 1.0:
        v = v * np.array([math.sqrt(aspect), 1.0 / math.sqrt(aspect)])
    area = _signed_area(v)
    if area < 0:
        v, area = v[::-1], -area
    v = v * math.sqrt((math.pi * size_px**2 / 4.0) / area)
    if rotation_rad:
        c, s = math.cos(rotation_rad), math.sin(rotation_rad)
        # counter-clockwise on screen (y down) is clockwise in (x, y): rotate by -angle
        v = v @ np.array([[c, -s], [s, c]])
    return v


def fill_polygon(xs: np.ndarray, ys: np.ndarray, shape_hw: tuple[int, int]):
    """Boolean crop of the pixels whose centres lie inside the polygon (xs, ys), by the
    even-odd rule, vectorised over rows and edges.

    Returns ``(crop, row0, col0)``: the crop covers rows ``row0 .. row0 + crop.shape[0]`` and
    columns ``col0 ..`` of an image of ``shape_hw``; it is empty (0 x 0) when the polygon
    misses the image.
    """
    h, w = shape_hw
    r0 = max(int(math.ceil(ys.min())), 0)
    r1 = min(int(math.floor(ys.max())), h - 1)
    c0 = max(int(math.ceil(xs.min())), 0)
    c1 = min(int(math.floor(xs.max())), w - 1)
    if r1 < r0 or c1 < c0:
        return np.zeros((0, 0), bool), r0, c0
    rows = np.arange(r0, r1 + 1, dtype=float)
    x0, y0 = xs, ys
    x1, y1 = np.roll(xs, -1), np.roll(ys, -1)
    lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
    crosses = (rows[:, None] >= lo[None, :]) & (rows[:, None] < hi[None, :])
    ri, ei = np.nonzero(crosses)
    t = (rows[ri] - y0[ei]) / (y1[ei] - y0[ei])
    xi = x0[ei] + t * (x1[ei] - x0[ei])
    ncols = c1 - c0 + 1
    # a pixel centre c is inside when an odd number of crossings lie at x <= c
    pos = np.clip(np.ceil(xi).astype(np.int64) - c0, 0, ncols)
    counts = np.zeros((rows.size, ncols + 1), np.int32)
    np.add.at(counts, (ri, pos), 1)
    crop = (np.cumsum(counts[:, :ncols], axis=1) & 1).astype(bool)
    return crop, r0, c0


def rasterize(vertices: np.ndarray, centre_xy: tuple[float, float], shape_hw: tuple[int, int]):
    """Rows and columns of the pixels (of an image of ``shape_hw``) whose centres lie inside
    the outline ``vertices`` placed at ``centre_xy`` (pixel coordinates, pixel centres at
    integers). Pixels outside the image are clipped."""
    crop, r0, c0 = fill_polygon(vertices[:, 0] + centre_xy[0], vertices[:, 1] + centre_xy[1], shape_hw)
    rr, cc = np.nonzero(crop)
    return rr + r0, cc + c0


def render_particle(
    shape: str,
    size_px: float,
    aspect: float | None = None,
    rotation_rad: float = 0.0,
    rng: np.random.Generator | None = None,
    *,
    rounding: float | None = None,
    jitter: float = 0.0,
    offset: tuple[float, float] = (0.0, 0.0),
    pad: int = 1,
) -> np.ndarray:
    """Boolean mask of one particle, centred in a tight square array.

    The particle's centre is at the array centre ``((n - 1) / 2, (n - 1) / 2)`` plus
    ``offset`` = (dy, dx) in pixels (sub-pixel placement); ``pad`` empty pixels are kept on
    every side. See the module docstring for the other arguments.

    >>> m = render_particle("sphere", 20)
    >>> abs(m.sum() - 3.14159 * 100) < 15
    True
    """
    v = particle_outline(shape, size_px, aspect, rotation_rad, rng, rounding=rounding, jitter=jitter)
    half = float(np.abs(v).max()) + max(abs(offset[0]), abs(offset[1]))
    n = 2 * int(math.ceil(half)) + 1 + 2 * pad
    c = (n - 1) / 2.0
    mask = np.zeros((n, n), dtype=bool)
    crop, r0, c0 = fill_polygon(v[:, 0] + c + offset[1], v[:, 1] + c + offset[0], (n, n))
    mask[r0 : r0 + crop.shape[0], c0 : c0 + crop.shape[1]] = crop
    return mask
