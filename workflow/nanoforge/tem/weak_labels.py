"""Weak labels: detector boxes + morphological segmentation inside each box.

The paper's first labelling stage, made explicit. For every detected box (score >=
``min_score``), on a window around the box (the box plus a margin):

1. *Denoise*: Gaussian smoothing with sigma proportional to the box size (or a median
   filter), so shot noise and carbon speckle do not fragment the mask.
2. *Polarity*: particles are darker than the film in bright-field TEM. With ``polarity:
   auto`` each image is decided by a majority vote over its boxes (the box's central half
   against a ring around it), so bright particles on a dark background (dark-field/HAADF)
   work too.
3. *Threshold*: Otsu on the window (``threshold: otsu``) or a local (adaptive) threshold
   (``threshold: local``) whose block is a fraction of the box size.
4. *Restrict to the box*: foreground outside the box (grown by ``box_slack`` of its size)
   belongs to neighbours; this is what separates touching particles.
5. *Morphology*: closing, hole filling, opening (disk radii proportional to the box size).
6. *Keep the component that belongs to the box*: the connected component holding most of
   the pixels of the box's central ellipse.
7. *Plausibility*: the mask is dropped (and counted, by reason) when it fills too little or
   too much of its box, when its own bounding box disagrees with the detection (box IoU
   below ``min_box_iou``), when it is smaller than ``min_area_px``, or when it duplicates a
   higher-scoring mask (mask IoU above ``max_mask_iou``, or more than ``max_inside`` of its
   area inside that mask: a detection of part of a particle). Low-confidence boxes are counted
   as ``low_score``.
8. *Merged particles* (optional, ``split_area_ratio`` > 0; 1.8 is the tuned value): a mask much larger than the image's
   typical mask (area above ``split_area_ratio`` times the median mask area of the image) and
   clearly not convex (solidity below ``split_max_solidity``) is a box drawn around several
   touching particles; it is cut by a distance-transform watershed whose markers are the
   maxima of the distance map that stand ``split_h_frac`` of the typical particle radius
   above their surroundings. The cut is kept only when every piece holds at least
   ``split_min_piece`` of the typical area; each piece then carries the detection's box and
   score. This runs before the duplicate test, so a piece that another detection already
   covers is dropped there.
9. *Overlaps*: a pixel claimed by two kept masks goes to the instance whose box centre is
   nearer (distance scaled by box size), so instances do not share pixels.
10. *Scale bar*: a mask lying more than half inside the image's ignore mask (the scale bar
   and its label found at ingestion, column ``ignore_mask`` of the images table) is dropped
   (``scale_bar``).

Each kept instance also carries an *ignore band*: the pixels between a dilation and an
erosion of its mask by ``ignore_band_px`` (at least 1 px; or ``ignore_band_frac`` of the
equivalent diameter when larger). The boundary of a weak label is its least reliable part;
a model trained on weak labels should not be penalised there.

Output: a COCO document (:mod:`nanoforge.tem.coco`) per image set. Each annotation has the
usual ``segmentation`` (compressed RLE), ``bbox``, ``area`` and ``score`` (the detector's),
plus

- ``ignore_segmentation``: compressed RLE (same image size) of the ignore band;
- ``detection_bbox``: the detector's box ``[x, y, w, h]``;
- ``split_pieces``: only on pieces of a cut mask (step 8), the number of pieces.

Each image entry has ``seconds`` (detection + masks), ``dropped`` (counts by reason) and
``split_pieces`` (weak labels that are pieces of a cut mask); ``info.dropped`` sums the drops
over the document.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Callable, Iterable

import numpy as np
from scipy import ndimage
from skimage import filters

from nanoforge.tem import coco
from nanoforge.tem.measure import solidity
from nanoforge.tem.scalebar import load_ignore_mask, masked_fraction

DROP_REASONS = ("low_score", "empty", "low_contrast", "too_small", "underfilled_box", "box_mismatch", "duplicate",
                "scale_bar")


@dataclass
class WeakLabelParams:
    """Settings of the morphological step (the ``weak_labels`` config section)."""

    min_score: float = 0.5
    margin_frac: float = 0.3  # window = box + this fraction of its larger side on each side
    denoise: str = "gaussian"  # gaussian | median | none
    denoise_sigma_frac: float = 0.03  # sigma (gaussian) or radius (median) / smaller box side
    threshold: str = "otsu"  # otsu | local
    local_block_frac: float = 1.0  # local: block size / larger box side
    polarity: str = "auto"  # auto | dark | bright
    box_slack_frac: float = 0.04  # foreground allowed this far outside the box (fraction of size)
    closing_frac: float = 0.06  # closing disk radius / smaller box side
    opening_frac: float = 0.08  # opening disk radius / smaller box side
    min_area_px: int = 6
    min_fill: float = 0.25  # mask area / box area
    min_separation: float = 1.8  # (median in mask - median of film) / robust std of film
    min_box_iou: float = 0.5  # IoU of the mask's own box with the detection box
    max_mask_iou: float = 0.4  # a mask overlapping a better one more than this is a duplicate
    max_inside: float = 0.8  # ... or lying this much (fraction of its area) inside a better one
    resolve_overlaps: bool = True
    ignore_band_px: int = 1
    ignore_band_frac: float = 0.05  # of the equivalent diameter
    split_area_ratio: float = 0.0  # cut masks larger than this x the image's median mask area (0 = off)
    split_max_solidity: float = 0.95  # ... and less convex than this
    split_h_frac: float = 0.1  # watershed markers: maxima this x the typical radius high
    split_min_piece: float = 0.3  # every piece at least this x the median mask area
    split_min_masks: int = 8  # the image needs this many masks for a typical size

    @classmethod
    def from_config(cls, cfg: dict | None) -> "WeakLabelParams":
        cfg = dict(cfg or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"unknown weak_labels setting(s) {unknown}; known: {sorted(known)}")
        p = cls(**cfg)
        if p.denoise not in ("gaussian", "median", "none"):
            raise ValueError(f"weak_labels.denoise must be gaussian, median or none, not {p.denoise!r}")
        if p.threshold not in ("otsu", "local", "midpoint"):
            raise ValueError(f"weak_labels.threshold must be otsu, local or midpoint, not {p.threshold!r}")
        if p.polarity not in ("auto", "dark", "bright"):
            raise ValueError(f"weak_labels.polarity must be auto, dark or bright, not {p.polarity!r}")
        return p


@dataclass
class Instance:
    crop: np.ndarray  # bool
    row0: int
    col0: int
    score: float
    box: np.ndarray  # x0, y0, x1, y1 (detector)
    ignore: np.ndarray | None = None  # bool crop (same frame as ``ignore_row0/col0``)
    ignore_row0: int = 0
    ignore_col0: int = 0
    pieces: int = 1  # > 1: one piece of a mask cut by split_merged


def _disk(r: int) -> np.ndarray:
    r = int(r)
    if r <= 0:
        return np.ones((1, 1), bool)
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return x * x + y * y <= r * r + r * 0.5


def _box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def box_polarity(img: np.ndarray, box) -> float:
    """Median of the box's central half minus the median of a ring around the box: negative
    for a dark particle on a brighter film."""
    h, w = img.shape
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = max(1.0, x1 - x0), max(1.0, y1 - y0)
    cx0, cx1 = int(max(0, x0 + bw / 4)), int(min(w, math.ceil(x1 - bw / 4)))
    cy0, cy1 = int(max(0, y0 + bh / 4)), int(min(h, math.ceil(y1 - bh / 4)))
    m = max(2, int(0.25 * max(bw, bh)))
    r0, r1 = max(0, int(y0) - m), min(h, int(math.ceil(y1)) + m)
    c0, c1 = max(0, int(x0) - m), min(w, int(math.ceil(x1)) + m)
    if cy1 <= cy0 or cx1 <= cx0 or r1 <= r0 or c1 <= c0:
        return 0.0
    win = img[r0:r1, c0:c1]
    yy, xx = np.mgrid[r0:r1, c0:c1]
    ring = (xx < x0) | (xx >= x1) | (yy < y0) | (yy >= y1)
    if ring.sum() < 4:
        return 0.0
    return float(np.median(img[cy0:cy1, cx0:cx1])) - float(np.median(win[ring]))


def image_polarity(img: np.ndarray, boxes: np.ndarray) -> str:
    """``dark`` or ``bright`` particles, by majority over the boxes (bright field, i.e. dark
    particles, on a tie or without boxes)."""
    votes = [np.sign(box_polarity(img, b)) for b in boxes]
    return "bright" if sum(v > 0 for v in votes) > sum(v < 0 for v in votes) else "dark"


def _edge_padded(op, fg: np.ndarray, r: int) -> np.ndarray:
    """A binary closing or opening with disk radius ``r`` that treats the window's edge as
    continuing the pixels on it: a particle cut by the image frame keeps its mask up to the
    frame (with a zero border the erosion would pull it back, and the measurement would not
    see that the particle is truncated)."""
    pad = r + 1
    out = op(np.pad(fg, pad, mode="edge"), structure=_disk(r))
    return out[pad:-pad, pad:-pad]


def mask_in_box(img: np.ndarray, box, p: WeakLabelParams) -> tuple[np.ndarray | None, int, int, str]:
    """Segment the particle of one detection box. Returns (crop, row0, col0, reason):
    crop None and a drop reason when no plausible mask is found, else reason ''."""
    h, w = img.shape
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = max(1.0, x1 - x0), max(1.0, y1 - y0)
    small, large = min(bw, bh), max(bw, bh)
    m = p.margin_frac * large + 2
    wr0, wc0 = max(0, int(math.floor(y0 - m))), max(0, int(math.floor(x0 - m)))
    wr1, wc1 = min(h, int(math.ceil(y1 + m))), min(w, int(math.ceil(x1 + m)))
    if wr1 - wr0 < 3 or wc1 - wc0 < 3:
        return None, 0, 0, "too_small"
    win = img[wr0:wr1, wc0:wc1].astype(np.float32)

    # 1. denoise
    s = p.denoise_sigma_frac * small
    if p.denoise == "gaussian" and s > 0.3:
        win = ndimage.gaussian_filter(win, s)
    elif p.denoise == "median" and s >= 0.5:
        win = ndimage.median_filter(win, footprint=_disk(max(1, int(round(s)))))

    # box and central ellipse in window coordinates
    yy, xx = np.mgrid[wr0:wr1, wc0:wc1]
    cx, cy = (x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5
    ell = ((xx - cx) / (bw / 4 + 0.5)) ** 2 + ((yy - cy) / (bh / 4 + 0.5)) ** 2 <= 1.0
    slack = p.box_slack_frac * large + 1
    in_box = (xx >= x0 - slack) & (xx < x1 + slack) & (yy >= y0 - slack) & (yy < y1 + slack)

    # 2. polarity (decided per image by weak_labels_for_image when ``auto``)
    dark = p.polarity != "bright"
    if p.polarity == "auto":
        dark = box_polarity(img, box) <= 0
    f = -win if dark else win
    inner = float(np.median(f[ell])) if ell.any() else float(f.mean())
    outer = float(np.median(f[~in_box])) if (~in_box).sum() >= 8 else inner

    # 3. threshold
    if float(f.max()) == float(f.min()):
        return None, 0, 0, "empty"
    if p.threshold == "otsu":
        fg = f > filters.threshold_otsu(f)
    elif p.threshold == "midpoint":
        fg = f > (inner + outer) / 2
    else:
        block = max(3, int(p.local_block_frac * large) | 1)
        fg = f > filters.threshold_local(f, block_size=block, method="gaussian")

    background = ~fg  # the film side of the threshold, over the whole window
    # 4. restrict to the box, 5. morphology
    fg &= in_box
    rc = int(round(p.closing_frac * small))
    ro = int(round(p.opening_frac * small))
    if rc > 0:
        fg = _edge_padded(ndimage.binary_closing, fg, rc) & in_box
    fg = ndimage.binary_fill_holes(fg)
    if ro > 0:
        fg = _edge_padded(ndimage.binary_opening, fg, ro)

    # 6. the component that belongs to the box
    lab, n = ndimage.label(fg)
    if n == 0:
        return None, 0, 0, "empty"
    votes = np.bincount(lab[ell], minlength=n + 1)[1:] if ell.any() else np.zeros(n)
    if votes.max() <= 0:
        # no component reaches the centre: take the largest inside the box
        votes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    k = int(np.argmax(votes)) + 1
    mask = ndimage.binary_fill_holes(lab == k)

    # contrast: the mask must stand out from the film side of the threshold in the window
    # (robust statistics; a threshold through pure noise gives about 2)
    film = f[background & ~mask]
    if film.size >= 4:
        med = float(np.median(film))
        mad = 1.4826 * float(np.median(np.abs(film - med))) + 1e-6
        sep = (float(np.median(f[mask])) - med) / mad
        if sep < p.min_separation:
            return None, 0, 0, "low_contrast"

    # 7. plausibility
    area = int(mask.sum())
    if area < p.min_area_px:
        return None, 0, 0, "too_small"
    fill = area / (bw * bh)
    if fill < p.min_fill:
        return None, 0, 0, "underfilled_box"
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    mbox = (wc0 + cols[0], wr0 + rows[0], wc0 + cols[-1] + 1, wr0 + rows[-1] + 1)
    if _box_iou(mbox, (x0, y0, x1, y1)) < p.min_box_iou:
        return None, 0, 0, "box_mismatch"
    crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return crop, wr0 + int(rows[0]), wc0 + int(cols[0]), ""


def watershed_pieces(mask: np.ndarray, radius: float, min_area: float, h_frac: float) -> list[np.ndarray]:
    """Cut a mask of touching particles of typical radius ``radius`` (px) by a watershed on its
    distance map; markers are the regional maxima at least ``h_frac * radius`` high. Returns
    the pieces (bool arrays, the mask's frame), or ``[]`` when there is nothing to cut or a
    piece would be smaller than ``min_area`` px."""
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    pad = np.pad(np.asarray(mask, bool), 1)
    dist = ndimage.distance_transform_edt(pad)
    dist = ndimage.gaussian_filter(dist, 0.5) * pad  # pixel steps would make false maxima
    peaks, n = ndimage.label(h_maxima(dist, max(0.5, h_frac * radius)))
    if n < 2:
        return []
    lab = watershed(-dist, peaks, mask=pad)[1:-1, 1:-1]
    pieces = [lab == k for k in range(1, n + 1)]
    if any(q.sum() < min_area for q in pieces):
        return []
    return pieces


def split_merged(inst: list[Instance], p: WeakLabelParams) -> list[Instance]:
    """Cut masks that hold several touching particles (module docstring, step 8): the
    instances with pieces in place of a cut mask (same order otherwise)."""
    if p.split_area_ratio <= 0 or len(inst) < max(2, p.split_min_masks):
        return inst
    areas = np.array([a.crop.sum() for a in inst], float)
    typical = float(np.median(areas))
    radius = math.sqrt(typical / math.pi)
    out: list[Instance] = []
    for a, area in zip(inst, areas):
        pieces = []
        if area > p.split_area_ratio * typical and solidity(a.crop) < p.split_max_solidity:
            pieces = watershed_pieces(a.crop, radius, p.split_min_piece * typical, p.split_h_frac)
        if not pieces:
            out.append(a)
            continue
        out += [_trimmed(replace(a, pieces=len(pieces)), q) for q in pieces]
    return out


def _trimmed(a: Instance, crop: np.ndarray) -> Instance:
    """``a`` with ``crop`` (a non-empty mask in ``a``'s frame) cut to its bounding box."""
    rows = np.flatnonzero(crop.any(axis=1))
    cols = np.flatnonzero(crop.any(axis=0))
    a.crop = crop[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    a.row0 += int(rows[0])
    a.col0 += int(cols[0])
    return a


def _paste_overlaps(inst: list[Instance]) -> np.ndarray:
    """Pairwise intersection (pixels) of the instances' masks (dense matrix, zero where the
    crops do not meet)."""
    n = len(inst)
    inter_px = np.zeros((n, n))
    for i in range(n):
        a = inst[i]
        for j in range(i + 1, n):
            b = inst[j]
            r0, c0 = max(a.row0, b.row0), max(a.col0, b.col0)
            r1 = min(a.row0 + a.crop.shape[0], b.row0 + b.crop.shape[0])
            c1 = min(a.col0 + a.crop.shape[1], b.col0 + b.crop.shape[1])
            if r1 <= r0 or c1 <= c0:
                continue
            inter = int((a.crop[r0 - a.row0 : r1 - a.row0, c0 - a.col0 : c1 - a.col0]
                         & b.crop[r0 - b.row0 : r1 - b.row0, c0 - b.col0 : c1 - b.col0]).sum())
            inter_px[i, j] = inter_px[j, i] = inter
    return inter_px


def _resolve_overlaps(inst: list[Instance], shape) -> list[Instance]:
    """Give each pixel claimed by several masks to the instance with the nearest box centre
    (in units of the box's half size)."""
    if len(inst) < 2:
        return inst
    h, w = shape
    count = np.zeros(shape, np.int16)
    for a in inst:
        count[a.row0 : a.row0 + a.crop.shape[0], a.col0 : a.col0 + a.crop.shape[1]] += a.crop
    if count.max() <= 1:
        return inst
    best = np.full(shape, np.inf, np.float32)
    owner = np.full(shape, -1, np.int32)
    for i, a in enumerate(inst):
        sl = (slice(a.row0, a.row0 + a.crop.shape[0]), slice(a.col0, a.col0 + a.crop.shape[1]))
        yy, xx = np.mgrid[sl]
        x0, y0, x1, y1 = a.box
        d = np.hypot((xx + 0.5 - (x0 + x1) / 2) / max(1.0, (x1 - x0) / 2),
                     (yy + 0.5 - (y0 + y1) / 2) / max(1.0, (y1 - y0) / 2)).astype(np.float32)
        d[~a.crop] = np.inf
        better = d < best[sl]
        best[sl][better] = d[better]
        owner[sl][better] = i
    out = []
    for i, a in enumerate(inst):
        sl = (slice(a.row0, a.row0 + a.crop.shape[0]), slice(a.col0, a.col0 + a.crop.shape[1]))
        crop = a.crop & (owner[sl] == i)
        if not crop.any():
            continue
        lab, n = ndimage.label(crop)
        if n > 1:  # keep the largest piece
            sizes = np.bincount(lab.ravel())[1:]
            crop = lab == (int(np.argmax(sizes)) + 1)
        out.append(_trimmed(a, crop))
    return out


def ignore_band(crop: np.ndarray, row0: int, col0: int, shape, p: WeakLabelParams):
    """(band crop, row0, col0): dilation minus erosion of the mask, clipped to the image."""
    d = math.sqrt(4 * crop.sum() / math.pi)
    r = max(1, int(p.ignore_band_px), int(round(p.ignore_band_frac * d)))
    padded = np.pad(crop, r)
    dil = ndimage.binary_dilation(padded, structure=_disk(r))
    ero = ndimage.binary_erosion(padded, structure=_disk(r))
    band = dil & ~ero
    r0, c0 = row0 - r, col0 - r
    h, w = shape
    top, left = max(0, -r0), max(0, -c0)
    bottom = min(band.shape[0], h - r0)
    right = min(band.shape[1], w - c0)
    return band[top:bottom, left:right], r0 + top, c0 + left


def weak_labels_for_image(img: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
                          p: WeakLabelParams) -> tuple[list[Instance], dict[str, int]]:
    """Instances of one image from its detections (boxes x0,y0,x1,y1; scores), plus the
    number of detections dropped per reason."""
    img = np.asarray(img)
    if img.ndim == 3:
        img = img[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    dropped = {r: 0 for r in DROP_REASONS}
    scores = np.asarray(scores, float)
    if p.polarity == "auto":
        p = replace(p, polarity=image_polarity(img, boxes[scores >= p.min_score]))
    order = np.argsort(-scores, kind="stable")
    inst: list[Instance] = []
    for i in order:
        if scores[i] < p.min_score:
            dropped["low_score"] += 1
            continue
        crop, r0, c0, reason = mask_in_box(img, boxes[i], p)
        if crop is None:
            dropped[reason] += 1
            continue
        inst.append(Instance(crop, r0, c0, float(scores[i]), np.asarray(boxes[i], float)))
    inst = split_merged(inst, p)
    # duplicates: a mask overlapping a higher-scoring kept mask too much (inst is by score)
    if len(inst) > 1:
        inter = _paste_overlaps(inst)
        area = np.array([a.crop.sum() for a in inst], float)
        iou = inter / np.maximum(area[:, None] + area[None, :] - inter, 1.0)
        inside = inter / area[:, None]  # row i: the fraction of mask i inside mask j
        keep = []
        for i in range(len(inst)):
            if any(iou[i, j] > p.max_mask_iou or inside[i, j] > p.max_inside for j in keep):
                dropped["duplicate"] += 1
            else:
                keep.append(i)
        inst = [inst[i] for i in keep]
    if p.resolve_overlaps:
        before = len(inst)
        inst = _resolve_overlaps(inst, img.shape)
        dropped["empty"] += before - len(inst)
    kept = []
    for a in inst:
        if a.crop.sum() < p.min_area_px:
            dropped["too_small"] += 1
            continue
        a.ignore, a.ignore_row0, a.ignore_col0 = ignore_band(a.crop, a.row0, a.col0, img.shape, p)
        kept.append(a)
    return kept, dropped


def weak_label_images(
    images: Iterable[dict],
    detect: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    params: WeakLabelParams | dict | None = None,
    read: Callable[[str], np.ndarray] | None = None,
    log=sys.stderr,
    info: dict | None = None,
) -> dict:
    """Weak labels of a set of images -> COCO document (see the module docstring).

    ``images``: rows with ``image_id``, ``path`` (e.g. ``images.parquet`` rows);
    ``detect(gray) -> (boxes, scores)`` or ``(boxes, scores, scale)``, ``scale`` being the
    enlargement the detector looked at the image with (recorded per image as
    ``detector_scale`` and in the log); ``read(path) -> 2-D array`` (default: Pillow, L)."""
    p = params if isinstance(params, WeakLabelParams) else WeakLabelParams.from_config(params)
    if read is None:
        from PIL import Image

        def read(path):
            with Image.open(path) as im:
                return np.asarray(im.convert("L"))

    doc = coco.new_document({"description": "weak labels: detector boxes + morphology inside each box",
                             "method": "weak_labels", "parameters": asdict(p), **(info or {})})
    totals = {r: 0 for r in DROP_REASONS}
    next_ann = 1
    for k, row in enumerate(images, start=1):
        t0 = time.perf_counter()
        img = read(row["path"])
        boxes, scores, *rest = detect(img)
        scale = float(rest[0]) if rest else 1.0
        inst, dropped = weak_labels_for_image(img, np.asarray(boxes, float).reshape(-1, 4),
                                              np.asarray(scores, float).reshape(-1), p)
        ignore = load_ignore_mask(row, img.shape[:2])
        if ignore is not None:  # scale bar and label: not particles
            kept = [a for a in inst if masked_fraction(ignore, a.crop, a.row0, a.col0) <= 0.5]
            dropped["scale_bar"] = len(inst) - len(kept)
            inst = kept
        seconds = time.perf_counter() - t0
        h, w = img.shape[:2]
        n_pieces = sum(a.pieces > 1 for a in inst)
        doc["images"].append(coco.image_entry(k, row["image_id"], str(row["path"]), w, h,
                                              seconds=round(seconds, 4), n_detections=int(len(scores)),
                                              detector_scale=round(scale, 3), dropped=dropped,
                                              split_pieces=n_pieces))
        for a in inst:
            x0, y0, x1, y1 = (float(v) for v in a.box)
            doc["annotations"].append(coco.annotation_from_crop(
                a.crop, a.row0, a.col0, (h, w), k, next_ann, score=a.score,
                ignore_segmentation=coco.encode_crop(a.ignore, a.ignore_row0, a.ignore_col0, (h, w)),
                detection_bbox=[round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                **({"split_pieces": a.pieces} if a.pieces > 1 else {}),
            ))
            next_ann += 1
        for r, n in dropped.items():
            totals[r] += n
        if log is not None:
            drops = ", ".join(f"{r} {n}" for r, n in dropped.items() if n) or "none"
            enlarged = f" at {scale:.2f}x" if scale != 1.0 else ""
            cut = f", {n_pieces} from cut masks" if n_pieces else ""
            print(f"{row['image_id']}: {len(scores)} detections{enlarged} -> {len(inst)} weak labels{cut} "
                  f"(dropped: {drops}) in {seconds:.2f} s", file=log)
    doc["info"]["dropped"] = totals
    if log is not None:
        print(f"total: {len(doc['annotations'])} weak labels; dropped {totals}", file=log)
    return doc


def dataset_subset(doc: dict, dataset: str) -> dict:
    """The images of one TEM dataset (image keys ``<dataset>/<stem>``) and their labels."""
    keys = [coco.image_key(i) for i in doc["images"] if coco.image_key(i).split("/", 1)[0] == dataset]
    out = coco.subset(doc, keys)
    out["info"]["dataset"] = dataset
    by = coco.annotations_by_image(out)
    out["info"]["dropped"] = {r: sum(int(i.get("dropped", {}).get(r, 0)) for i in out["images"]) for r in DROP_REASONS}
    out["info"]["n_labels"] = sum(len(v) for v in by.values())
    return out
