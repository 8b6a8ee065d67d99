"""Synthetic bright-field TEM images of nanocrystals with exact instance ground truth.

An image is made the way a bright-field micrograph forms, in five steps:

1. *Specimen.* Particles of the dataset's shape classes (:mod:`nanoforge.tem.shapes`) are
   placed on the support film: uniformly at random, in aggregates (each new particle touches
   or slightly overlaps one already placed) or in a jittered hexagonal monolayer with
   vacancies and empty regions (a self-assembled superlattice, as in the paper's PbSe
   image). Sizes follow a log-normal distribution around the image's mean with its
   coefficient of variation; orientations are uniform. Overlap between two particles is
   bounded by a per-image fraction of the smaller one.
2. *Mass-thickness contrast.* Each particle has a projected-thickness profile: a dome
   (sphere, rod, flower, irregular: the exact projection of a ball or cylinder, from the
   distance transform) or a plate (cube and the faceted shapes, flat with a short edge
   ramp). The phase ``phi`` is the sum of the film's and every particle's thickness over a
   contrast length; transmitted intensity is ``illumination * exp(-phi)``, so overlaps are
   darker, bigger particles darker, and a few particles in Bragg condition much darker
   (diffraction contrast). The amorphous-carbon film adds fine-grained speckle plus slow
   thickness variations.
3. *Uneven illumination.* A beam fall-off about a random centre and a linear gradient.
4. *Optics.* Defocus blur (Gaussian) and a Fresnel fringe (unsharp-mask term that gives the
   bright halo outside a particle seen in under-focused images).
5. *Detection.* Poisson shot noise at the image's dose (electrons per pixel), a slight
   detector blur, gain/offset and 8-bit quantisation; optionally a burned-in scale bar with
   its label (its area is kept free of particles and carries no annotation).

Ground truth is the full projected outline of every particle (clipped to the image); where
two particles overlap, the pixels belong to both masks, as the electrons cross both.
Everything random comes from ``numpy.random.default_rng([seed, split code, image index])``,
so an image depends only on the seed, its split and its index.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from nanoforge.tem import coco
from nanoforge.tem.shapes import fill_polygon, particle_outline
from nanoforge.vocabulary import SHAPE_CLASSES, shape_class

PLATE_SHAPES = {"cube", "triangle", "hexagon", "rhombus", "rectangle", "four_pointed_star", "six_pointed_star"}

# Aspect-ratio range per shape (length / width, before rotation); each image draws its own
# mean in this range and particles scatter 8 % around it.
ASPECT_RANGE = {
    "sphere": (1.0, 1.12),
    "cube": (1.0, 1.0),
    "rod": (2.0, 6.0),
    "triangle": (1.0, 1.08),
    "hexagon": (1.0, 1.1),
    "rhombus": (1.3, 2.0),
    "rectangle": (1.25, 2.2),
    "four_pointed_star": (1.0, 1.1),
    "six_pointed_star": (1.0, 1.05),
    "flower": (1.0, 1.1),
    "irregular": (1.0, 1.4),
}

DEFAULTS = {
    "image_size": [512, 512],
    "nm_per_px": [0.15, 2.0],
    "shapes": {s: 1.0 for s in SHAPE_CLASSES},
    "mixed_fraction": 0.2,
    "size_px": [8, 70],
    "size_cv": [0.04, 0.2],
    "coverage": [0.04, 0.45],
    "arrangement": {"random": 0.45, "clustered": 0.3, "lattice": 0.25},
    "overlap_max": 0.15,
    "contrast": [0.3, 3.0],
    "diffraction_fraction": [0.0, 0.3],
    "dose_e_per_px": [15, 1000],
    "defocus_sigma_px": [0.4, 1.8],
    "fresnel": [0.0, 0.6],
    "carbon_texture": [0.01, 0.06],
    "particle_texture": [0.02, 0.15],
    "illumination": [0.0, 0.35],
    "scale_bar_probability": 0.5,
    "scale_bar_style": "plain",
}


@dataclasses.dataclass
class ImageParams:
    """Everything that defines one synthetic image (drawn by :func:`sample_params`)."""

    height: int
    width: int
    nm_per_px: float
    shapes: dict[str, float]  # shape -> share of the particles
    aspect: dict[str, float]  # shape -> mean aspect ratio
    size_px: float  # mean area-equivalent diameter
    size_cv: float
    coverage: float  # projected area fraction aimed for
    arrangement: str  # random, clustered or lattice
    overlap_max: float  # largest overlap, as a fraction of the smaller particle
    lattice_gap: float  # lattice spacing / diameter - 1
    contrast: float  # phase at the centre of a mean-sized particle
    diffraction_fraction: float
    dose_e_per_px: float
    defocus_sigma_px: float
    fresnel: float
    carbon_texture: float
    particle_texture: float  # relative amplitude of grain/strain mottling inside particles
    illumination: float
    scale_bar: bool
    background_level: float = 0.8  # grey level of the bare film in [0, 1]
    scale_bar_style: str = "plain"  # plain (one look) or varied (fonts, sizes, places, colours, units)


def _uniform(rng, lo_hi, log=False):
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    if log:
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return float(rng.uniform(lo, hi))


def _choice(rng, weights: dict[str, float]) -> str:
    names = [k for k, v in weights.items() if v > 0]
    p = np.array([weights[k] for k in names], float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def sample_params(rng: np.random.Generator, cfg: dict | None = None) -> ImageParams:
    """Draw the parameters of one image from the ranges in ``cfg`` (``simulate`` config)."""
    c = dict(DEFAULTS)
    c.update(cfg or {})
    shape_weights = {shape_class(k): float(v) for k, v in c["shapes"].items()}
    main = _choice(rng, shape_weights)
    shares = {main: 1.0}
    if rng.random() < c["mixed_fraction"]:
        others = {k: v for k, v in shape_weights.items() if k != main and v > 0}
        for _ in range(int(rng.integers(1, 3))):
            if others:
                o = _choice(rng, others)
                others.pop(o)
                shares[o] = float(rng.uniform(0.15, 0.6))
    aspect = {s: _uniform(rng, ASPECT_RANGE[s]) for s in shares}
    arrangement = _choice(rng, c["arrangement"])
    h, w = int(c["image_size"][0]), int(c["image_size"][1])
    return ImageParams(
        height=h,
        width=w,
        nm_per_px=_uniform(rng, c["nm_per_px"], log=True),
        shapes=shares,
        aspect=aspect,
        size_px=_uniform(rng, c["size_px"], log=True),
        size_cv=_uniform(rng, c["size_cv"]),
        coverage=_uniform(rng, c["coverage"]),
        arrangement=arrangement,
        overlap_max=float(rng.uniform(0.0, c["overlap_max"])),
        lattice_gap=float(rng.uniform(0.08, 0.4)),
        contrast=_uniform(rng, c["contrast"], log=True),
        diffraction_fraction=_uniform(rng, c["diffraction_fraction"]),
        dose_e_per_px=_uniform(rng, c["dose_e_per_px"], log=True),
        defocus_sigma_px=_uniform(rng, c["defocus_sigma_px"]),
        fresnel=_uniform(rng, c["fresnel"]),
        carbon_texture=_uniform(rng, c["carbon_texture"]),
        particle_texture=_uniform(rng, c["particle_texture"]),
        illumination=_uniform(rng, c["illumination"]),
        scale_bar=bool(rng.random() < c["scale_bar_probability"]),
        background_level=float(rng.uniform(0.65, 0.88)),
        scale_bar_style=str(c["scale_bar_style"]),
    )


# ---------------------------------------------------------------------------------------
# specimen
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Particle:
    shape: str
    size_px: float
    aspect: float
    rotation_rad: float
    cx: float
    cy: float
    crop: np.ndarray  # full (unclipped) mask crop
    row0: int
    col0: int
    weight: float  # contrast multiplier (diffraction, per-particle scatter)
    plate_thickness: float  # plate thickness / size (plates only)


def _particle_crop(vertices: np.ndarray, cx: float, cy: float):
    """Unclipped mask crop of an outline centred at (cx, cy); crop origin may be negative."""
    x0 = int(math.floor(cx + vertices[:, 0].min())) - 1
    y0 = int(math.floor(cy + vertices[:, 1].min())) - 1
    x1 = int(math.ceil(cx + vertices[:, 0].max())) + 1
    y1 = int(math.ceil(cy + vertices[:, 1].max())) + 1
    crop, r0, c0 = fill_polygon(vertices[:, 0] + cx - x0, vertices[:, 1] + cy - y0, (y1 - y0 + 1, x1 - x0 + 1))
    full = np.zeros((y1 - y0 + 1, x1 - x0 + 1), bool)
    full[r0 : r0 + crop.shape[0], c0 : c0 + crop.shape[1]] = crop
    return full, y0, x0


def _clip(crop, r0, c0, h, w):
    """Part of a crop inside an h x w image: (sub-crop, row0, col0) or None."""
    rs, cs = max(0, -r0), max(0, -c0)
    re, ce = min(crop.shape[0], h - r0), min(crop.shape[1], w - c0)
    if re <= rs or ce <= cs:
        return None
    sub = crop[rs:re, cs:ce]
    return sub, r0 + rs, c0 + cs


def _scale_bar_box(p: ImageParams, rng) -> tuple[dict, tuple[int, int, int, int]] | None:
    """Where the scale bar goes and what it says: (spec, (r0, r1, c0, c1) box to keep free)."""
    if not p.scale_bar:
        return None
    if p.scale_bar_style == "varied":
        return _varied_scale_bar(p, rng)
    if p.scale_bar_style != "plain":
        raise ValueError(f"simulate.scale_bar_style {p.scale_bar_style!r} is not plain or varied")
    target_nm = 0.2 * p.width * p.nm_per_px
    nice = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000]
    nm = min(nice, key=lambda v: abs(math.log(v / target_nm)))
    length = max(int(round(nm / p.nm_per_px)), 8)
    thick = max(2, int(round(p.height * 0.012)))
    font_px = max(10, int(round(p.height * 0.045)))
    margin = int(round(p.width * 0.04))
    left = bool(rng.random() < 0.5)
    c0 = margin if left else p.width - margin - length
    r1 = p.height - margin
    r0 = r1 - thick
    box = (max(r0 - font_px - 8, 0), min(r1 + 4, p.height), max(c0 - 4, 0), min(c0 + length + 4, p.width))
    label = f"{nm} nm" if nm < 1000 else f"{nm // 1000} µm"
    return {"length": length, "thick": thick, "row0": r0, "col0": c0, "font_px": font_px, "label": label,
            "nm": nm, "white": bool(rng.random() < 0.4)}, box


# Fonts of the varied scale-bar labels: the DejaVu and STIX fonts that ship with matplotlib.
SCALE_BAR_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf",
                   "DejaVuSerif-Bold.ttf", "DejaVuSansMono.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf")
# label unit -> (nm per unit, ways of writing it)
SCALE_BAR_UNITS = {"pm": (1e-3, ["pm"]), "Å": (0.1, ["Å"]), "nm": (1.0, ["nm"]),
                   "µm": (1e3, ["µm", "μm", "um"])}
NICE_VALUES = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500)


def scale_bar_font_path(name: str) -> str:
    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name)


def _varied_scale_bar(p: ImageParams, rng):
    """A scale bar of varied look: font, size, thickness, corner, colour, optional box,
    label above/below/beside, unit (pm, Å, nm, µm written three ways), label value from the
    1-2-5 series; the bar is round(value / nm_per_px) px long."""
    target_nm = float(rng.uniform(0.12, 0.35)) * p.width * p.nm_per_px
    options = []
    for unit, (per, _) in SCALE_BAR_UNITS.items():
        for v in NICE_VALUES:
            nm = v * per
            length = nm / p.nm_per_px
            if 0.12 * p.width <= length <= 0.45 * p.width and (unit != "µm" or v < 100) \
                    and (unit != "Å" or v <= 100) and (unit != "pm" or v >= 50):
                options.append((abs(math.log(nm / target_nm)), unit, v))
    if not options:
        return None
    options.sort()
    # mostly the nearest value; sometimes the next (an Å label for a few nm, 0.5 µm as 500 nm)
    _, unit, value = options[min(int(rng.integers(0, 3)) if len(options) > 1 else 0, len(options) - 1)]
    written = SCALE_BAR_UNITS[unit][1][int(rng.integers(len(SCALE_BAR_UNITS[unit][1])))]
    label = f"{value}{' ' if rng.random() < 0.8 else ''}{written}"
    nm = value * SCALE_BAR_UNITS[unit][0]
    length = int(round(nm / p.nm_per_px))
    thick = int(rng.integers(2, max(4, int(p.height * 0.025)) + 1))
    font_px = int(rng.integers(max(11, int(p.height * 0.025)), max(14, int(p.height * 0.07)) + 1))
    font = scale_bar_font_path(SCALE_BAR_FONTS[int(rng.integers(len(SCALE_BAR_FONTS)))])
    pil_font = ImageFont.truetype(font, font_px)
    x0, y0, x1, y1 = pil_font.getbbox(label)
    tw, th = x1 - x0, y1 - y0
    place = ["above", "below", "right"][int(rng.choice(3, p=[0.5, 0.3, 0.2]))]
    gap = int(rng.integers(2, max(3, font_px // 3) + 1))
    # layout relative to the bar's top-left corner (0, 0)
    if place == "right":
        tx, ty = length + gap + 2, thick / 2 - th / 2
    else:
        tx = length / 2 - tw / 2 if rng.random() < 0.7 else 0
        ty = -gap - th if place == "above" else thick + gap
    g_r0, g_r1 = min(0, ty), max(thick, ty + th)
    g_c0, g_c1 = min(0, tx), max(length, tx + tw)
    pad = int(rng.integers(3, 10))
    boxed = bool(rng.random() < 0.4)
    margin = int(rng.integers(2 if boxed else 6, max(8, int(0.05 * p.width))))
    top = bool(rng.random() < 0.25)
    left = bool(rng.random() < 0.5)
    gw, gh = g_c1 - g_c0 + 2 * pad, g_r1 - g_r0 + 2 * pad
    if gw > p.width - 2 * margin or gh > p.height - 2 * margin:
        return None
    ox = margin + pad - g_c0 if left else p.width - margin - pad - g_c1
    oy = margin + pad - g_r0 if top else p.height - margin - pad - g_r1
    ox, oy = int(round(ox)), int(round(oy))
    # on the bright film of a bright-field image an unboxed bar is black; on a box, either
    white = boxed and bool(rng.random() < 0.5)
    box = (int(oy + g_r0 - pad), int(math.ceil(oy + g_r1 + pad)), int(ox + g_c0 - pad), int(math.ceil(ox + g_c1 + pad)))
    spec = {"style": "varied", "length": length, "thick": thick, "row0": oy, "col0": ox, "font_px": font_px,
            "font": Path(font).name, "label": label, "nm": nm, "unit": unit, "white": white,
            "text_xy": (ox + tx - x0, oy + ty - y0), "box": box if boxed else None}
    keep = (max(box[0], 0), min(box[1], p.height), max(box[2], 0), min(box[3], p.width))
    return spec, keep


def _draw_varied_scale_bar(pil: Image.Image, spec: dict) -> None:
    draw = ImageDraw.Draw(pil)
    fg = 255 if spec["white"] else 0
    if spec["box"] is not None:
        r0, r1, c0, c1 = spec["box"]
        draw.rectangle([c0, r0, c1 - 1, r1 - 1], fill=255 - fg)
    r0, c0 = spec["row0"], spec["col0"]
    draw.rectangle([c0, r0, c0 + spec["length"] - 1, r0 + spec["thick"] - 1], fill=fg)
    font = ImageFont.truetype(scale_bar_font_path(spec["font"]), spec["font_px"])
    draw.text(spec["text_xy"], spec["label"], fill=fg, font=font)


def _draw_sizes(rng, p: ImageParams, n: int) -> np.ndarray:
    sigma = math.sqrt(math.log(1 + p.size_cv**2))
    mu = math.log(p.size_px) - sigma**2 / 2
    return np.clip(rng.lognormal(mu, sigma, size=n), 3.0, None)


def _candidate(rng, p: ImageParams, shapes: list[str], probs: np.ndarray, size: float, cx, cy):
    shape = shapes[int(rng.choice(len(shapes), p=probs))]
    aspect = 1.0 if shape == "cube" else max(1.0, p.aspect[shape] * float(rng.normal(1.0, 0.08)))
    rot = float(rng.uniform(0, 2 * math.pi))
    v = particle_outline(shape, size, aspect, rot, rng, jitter=float(rng.uniform(0, 0.02)))
    crop, r0, c0 = _particle_crop(v, cx, cy)
    weight = float(rng.lognormal(0.0, 0.12))
    if rng.random() < p.diffraction_fraction:
        weight *= float(rng.uniform(1.6, 3.0))
    plate = 1.0 if shape == "cube" else float(rng.uniform(0.35, 0.8))
    return Particle(shape, float(size), float(aspect), rot, float(cx), float(cy), crop, r0, c0, weight, plate)


def place_particles(p: ImageParams, rng: np.random.Generator, reserved=None) -> list[Particle]:
    """Place particles on an image of ``p``'s size; ``reserved`` (r0, r1, c0, c1) stays free."""
    h, w = p.height, p.width
    occ = np.zeros((h, w), np.int32)  # 0 free, -1 reserved, k = particle k-1 (last painted)
    if reserved is not None:
        r0, r1, c0, c1 = reserved
        occ[r0:r1, c0:c1] = -1
    shapes = list(p.shapes)
    probs = np.array([p.shapes[s] for s in shapes], float)
    probs /= probs.sum()
    mean_area = math.pi * p.size_px**2 / 4 * (1 + p.size_cv**2)
    target = max(1, int(round(p.coverage * h * w / mean_area)))
    placed: list[Particle] = []
    areas: list[int] = []

    def try_place(part: Particle) -> bool:
        clipped = _clip(part.crop, part.row0, part.col0, h, w)
        if clipped is None:
            return False
        sub, r0, c0 = clipped
        if sub.sum() < 0.3 * part.crop.sum():
            return False
        region = occ[r0 : r0 + sub.shape[0], c0 : c0 + sub.shape[1]]
        hits = region[sub]
        hits = hits[hits != 0]
        if hits.size:
            if (hits < 0).any():
                return False
            if p.overlap_max <= 0:
                return False
            ids, counts = np.unique(hits, return_counts=True)
            own = part.crop.sum()
            for i, n in zip(ids, counts):
                if n > p.overlap_max * min(own, areas[i - 1]):
                    return False
        region[sub] = len(placed) + 1
        placed.append(part)
        areas.append(int(part.crop.sum()))
        return True

    sizes = _draw_sizes(rng, p, 4 * target + 50)
    k = 0
    if p.arrangement == "lattice":
        spacing = p.size_px * (1.0 + p.lattice_gap)
        theta = rng.uniform(0, math.pi / 3)
        # smooth random domain: where the monolayer is (holes and an edge, as in real films)
        field = ndimage.gaussian_filter(rng.normal(size=(h // 8 + 1, w // 8 + 1)), 4.0)
        field = (field - field.mean()) / (field.std() + 1e-9)
        keep_q = float(np.clip(p.coverage / 0.6, 0.2, 1.0))
        thresh = np.quantile(field, 1 - keep_q)
        e1 = spacing * np.array([math.cos(theta), math.sin(theta)])
        e2 = spacing * np.array([math.cos(theta + math.pi / 3), math.sin(theta + math.pi / 3)])
        n = int(math.ceil(1.3 * max(h, w) / spacing)) + 2
        ii, jj = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1))
        pts = ii.reshape(-1, 1) * e1 + jj.reshape(-1, 1) * e2 + np.array([w / 2, h / 2])
        pts += rng.normal(0, 0.05 * p.size_px, size=pts.shape)
        inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
        pts = pts[inside]
        fv = field[(pts[:, 1] // 8).astype(int), (pts[:, 0] // 8).astype(int)]
        pts = pts[(fv >= thresh) & (rng.random(len(pts)) > 0.04)]
        sizes = _draw_sizes(rng, p, len(pts) + 1)
        for (x, y), s in zip(pts, sizes):
            try_place(_candidate(rng, p, shapes, probs, s, x, y))
        return placed

    attempts = 0
    max_attempts = 30 * target + 200
    while len(placed) < target and attempts < max_attempts:
        attempts += 1
        s = sizes[k % len(sizes)]
        if p.arrangement == "clustered" and placed and rng.random() < 0.85:
            nb = placed[int(rng.integers(len(placed)))]
            ang = rng.uniform(0, 2 * math.pi)
            dist = 0.5 * (nb.size_px + s) * float(rng.uniform(0.85, 1.1))
            cx, cy = nb.cx + dist * math.cos(ang), nb.cy + dist * math.sin(ang)
        else:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        if try_place(_candidate(rng, p, shapes, probs, s, cx, cy)):
            k += 1
    return placed


# ---------------------------------------------------------------------------------------
# image formation
# ---------------------------------------------------------------------------------------


def _thickness(part: Particle) -> np.ndarray:
    """Projected thickness (pixels) over the particle's crop."""
    d = ndimage.distance_transform_edt(np.pad(part.crop, 1))[1:-1, 1:-1] - 0.5
    d = np.clip(d, 0, None)
    if part.shape in PLATE_SHAPES:
        ramp = max(1.0, 0.06 * part.size_px)
        return np.minimum(1.0, (d + 0.5) / ramp) * part.plate_thickness * part.size_px * part.crop
    dmax = max(float(d.max()), 0.5)
    u = np.clip(1.0 - d / dmax, 0.0, 1.0)
    return 2.0 * dmax * np.sqrt(np.clip(1.0 - u**2, 0.0, None)) * part.crop


def _smooth_noise(rng, shape, sigma):
    f = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), sigma)
    return f / (f.std() + 1e-9)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def render_image(p: ImageParams, rng: np.random.Generator):
    """Simulate one image. Returns (uint8 image, list of Particle, scale-bar spec or None)."""
    h, w = p.height, p.width
    bar = _scale_bar_box(p, rng)
    particles = place_particles(p, rng, reserved=bar[1] if bar else None)

    # mass-thickness phase: film (with slow variations) + particles
    ref = max(p.size_px, 1.0)  # thickness of a mean-sized sphere's centre
    phi = np.zeros((h, w), np.float32)
    for part in particles:
        t = _thickness(part) * (p.contrast * part.weight / ref)
        clipped = _clip(t, part.row0, part.col0, h, w)
        if clipped is None:
            continue
        sub, r0, c0 = clipped
        phi[r0 : r0 + sub.shape[0], c0 : c0 + sub.shape[1]] += sub
    # a little internal texture in the particles (strain, facets, thickness steps)
    phi *= np.clip(1.0 + p.particle_texture * _smooth_noise(rng, (h, w), max(1.0, p.size_px / 8)), 0.3, None)
    film = p.carbon_texture * (_smooth_noise(rng, (h, w), float(rng.uniform(0.6, 1.3)))
                               + 0.7 * _smooth_noise(rng, (h, w), float(rng.uniform(15, 60))))
    phi += film

    # uneven illumination
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = rng.uniform(-0.3, 1.3) * h, rng.uniform(-0.3, 1.3) * w
    r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / float(h * h + w * w)
    gx, gy = rng.normal(0, 0.5, 2)
    illum = 1.0 - p.illumination * (r2 / max(float(r2.max()), 1e-9)) \
        + 0.3 * p.illumination * (gx * (xx / w - 0.5) + gy * (yy / h - 0.5))
    intensity = illum * np.exp(-phi)

    # optics: defocus blur and a Fresnel fringe
    blurred = ndimage.gaussian_filter(intensity, p.defocus_sigma_px)
    if p.fresnel > 0:
        wide = ndimage.gaussian_filter(intensity, p.defocus_sigma_px * 2.5 + 1.0)
        blurred = blurred + p.fresnel * (blurred - wide)
    blurred = np.clip(blurred, 0.0, None)

    # detection: shot noise, detector blur, gain and offset, 8 bits
    counts = rng.poisson(blurred * p.dose_e_per_px).astype(np.float32) / p.dose_e_per_px
    counts = ndimage.gaussian_filter(counts, 0.5)
    bright = float(np.percentile(counts, 99.0)) + 1e-6
    img = counts / bright * p.background_level * 255.0 / max(float(np.median(illum)), 1e-3) * 1.05
    img = np.clip(img + rng.normal(0, 1.0), 0, 255).astype(np.uint8)

    spec = None
    if bar and bar[0].get("style") == "varied":
        spec = bar[0]
        pil = Image.fromarray(img)
        _draw_varied_scale_bar(pil, spec)
        img = np.asarray(pil)
    elif bar:
        spec, _ = bar
        pil = Image.fromarray(img)
        draw = ImageDraw.Draw(pil)
        fg = 255 if spec["white"] else 0
        r0, c0 = spec["row0"], spec["col0"]
        draw.rectangle([c0, r0, c0 + spec["length"] - 1, r0 + spec["thick"] - 1], fill=fg)
        font = _font(spec["font_px"])
        tw = draw.textlength(spec["label"], font=font)
        draw.text((c0 + spec["length"] / 2 - tw / 2, r0 - spec["font_px"] - 4), spec["label"], fill=fg, font=font)
        img = np.asarray(pil)
    return img, particles, spec


# ---------------------------------------------------------------------------------------
# data sets
# ---------------------------------------------------------------------------------------


def split_code(split: str) -> int:
    return zlib.crc32(split.encode()) & 0x7FFFFFFF


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), split_code(split), int(index)])


def simulate_one(seed: int, split: str, index: int, cfg: dict | None = None, params: dict | None = None):
    """One image of a split: (uint8 image, ImageParams, particles, scale-bar spec).
    ``params`` overrides drawn parameters (e.g. to mimic a given real image)."""
    rng = image_rng(seed, split, index)
    p = sample_params(rng, cfg)
    if params:
        p = dataclasses.replace(p, **params)
    img, particles, bar = render_image(p, rng)
    return img, p, particles, bar


def _annotations(particles, p: ImageParams, image_id: int, first_ann: int) -> list[dict]:
    anns = []
    for part in particles:
        clipped = _clip(part.crop, part.row0, part.col0, p.height, p.width)
        if clipped is None:
            continue
        sub, r0, c0 = clipped
        if not sub.any():
            continue
        truncated = bool(sub.sum() < part.crop.sum())
        anns.append(coco.annotation_from_crop(
            sub, r0, c0, (p.height, p.width), image_id, first_ann + len(anns),
            shape=part.shape, size_px=round(part.size_px, 3), size_nm=round(part.size_px * p.nm_per_px, 4),
            aspect=round(part.aspect, 4), rotation_rad=round(part.rotation_rad % (2 * math.pi), 4),
            truncated=truncated,
        ))
    return anns


def _simulate_task(args):
    seed, split, index, cfg = args
    img, p, particles, bar = simulate_one(seed, split, index, cfg)
    anns = _annotations(particles, p, index + 1, 1)
    return index, img, p, anns, bar


def simulate_split(
    out_dir: str | Path,
    split: str,
    n_images: int,
    seed: int,
    cfg: dict | None = None,
    workers: int = 1,
    log=None,
) -> dict:
    """Write ``n_images`` images of ``split`` to ``out_dir/images/NNNNNN.png`` and return the
    COCO document (file names relative to ``out_dir/images``; image keys
    ``synthetic_<split>/NNNNNN``; extra fields record each image's and particle's
    parameters)."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    doc = coco.new_document({"description": f"nanoforge synthetic TEM, split {split}", "seed": int(seed),
                             "split": split})
    tasks = [(seed, split, i, cfg) for i in range(n_images)]
    if workers > 1 and n_images > 1:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            results = list(ex.map(_simulate_task, tasks, chunksize=max(1, n_images // (4 * workers))))
    else:
        results = [_simulate_task(t) for t in tasks]
    next_ann = 1
    for index, img, p, anns, bar in sorted(results, key=lambda r: r[0]):
        name = f"{index:06d}.png"
        Image.fromarray(img).save(out_dir / "images" / name)
        doc["images"].append(coco.image_entry(
            index + 1, f"synthetic_{split}/{index:06d}", name, p.width, p.height,
            nm_per_px=p.nm_per_px, shapes=p.shapes, arrangement=p.arrangement,
            mean_size_px=round(p.size_px, 3), size_cv=round(p.size_cv, 4), contrast=round(p.contrast, 4),
            dose_e_per_px=round(p.dose_e_per_px, 2), defocus_sigma_px=round(p.defocus_sigma_px, 3),
            fresnel=round(p.fresnel, 3), scale_bar=bar["label"] if bar else None,
        ))
        for a in anns:
            a["id"] = next_ann
            next_ann += 1
            doc["annotations"].append(a)
        if log is not None:
            print(f"{split}/{name}: {len(anns)} particles, {p.arrangement}, shapes {sorted(p.shapes)}, "
                  f"size {p.size_px:.1f} px, dose {p.dose_e_per_px:.0f} e/px", file=log)
    return doc


# ---------------------------------------------------------------------------------------
# the real-vs-synthetic figure
# ---------------------------------------------------------------------------------------

# Fixed parameters for look-alikes of typical real images (used by the report figure; the
# training images draw theirs from the config ranges).
FIGURE_PRESETS: dict[str, dict] = {
    "PbSe-like monolayer": dict(shapes={"sphere": 1.0}, aspect={"sphere": 1.03}, size_px=29.5, size_cv=0.1,
                                coverage=0.55, arrangement="lattice", lattice_gap=0.25, contrast=0.55,
                                diffraction_fraction=0.08, dose_e_per_px=25, defocus_sigma_px=1.0, fresnel=0.5,
                                carbon_texture=0.05, illumination=0.1, overlap_max=0.05, nm_per_px=0.260417),
    "clustered spheres": dict(shapes={"sphere": 1.0}, aspect={"sphere": 1.08}, size_px=58, size_cv=0.12,
                              coverage=0.45, arrangement="clustered", contrast=1.3, diffraction_fraction=0.15,
                              dose_e_per_px=400, defocus_sigma_px=1.0, fresnel=0.35, carbon_texture=0.02,
                              particle_texture=0.15,
                              illumination=0.15, overlap_max=0.03, nm_per_px=0.5),
    "cubes": dict(shapes={"cube": 1.0}, aspect={"cube": 1.0}, size_px=30, size_cv=0.15, coverage=0.25,
                  arrangement="clustered", contrast=0.8, diffraction_fraction=0.3, dose_e_per_px=300,
                  defocus_sigma_px=0.8, fresnel=0.2, carbon_texture=0.04, illumination=0.1, overlap_max=0.02,
                  nm_per_px=0.6),
    "rods": dict(shapes={"rod": 1.0}, aspect={"rod": 4.5}, size_px=22, size_cv=0.12, coverage=0.08,
                 arrangement="clustered", contrast=1.0, diffraction_fraction=0.2, dose_e_per_px=800,
                 defocus_sigma_px=0.8, fresnel=0.2, carbon_texture=0.02, illumination=0.1, overlap_max=0.08,
                 nm_per_px=0.9),
}


def figure_synthetic(preset: str, height: int, width: int, seed: int) -> np.ndarray:
    params = dict(FIGURE_PRESETS[preset], height=int(height), width=int(width), scale_bar=True)
    img, _, _, _ = simulate_one(seed, f"figure_{preset}", 0, params=params)
    return img


def real_vs_synthetic_figure(path: str | Path, real: list[tuple[str, np.ndarray]], seed: int) -> list[str]:
    """Two rows: real images on top, below each a synthetic look-alike made with a preset of
    :data:`FIGURE_PRESETS` (in order, cycling) at the same size. Returns the presets used."""
    from nanoforge.plotting import pyplot, save_figure

    plt = pyplot()

    names = list(FIGURE_PRESETS)
    n = max(len(real), 1)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 8.6), squeeze=False)
    used = []
    for j in range(n):
        preset = names[j % len(names)]
        used.append(preset)
        if j < len(real):
            title, img = real[j]
            h, w = img.shape[:2]
            axes[0, j].imshow(img, cmap="gray", vmin=0, vmax=255)
            axes[0, j].set_title(f"real: {title}", fontsize=9)
        else:
            h, w = 512, 512
        axes[1, j].imshow(figure_synthetic(preset, h, w, seed), cmap="gray", vmin=0, vmax=255)
        axes[1, j].set_title(f"synthetic: {preset}", fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    return used
