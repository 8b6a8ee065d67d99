"""Burned-in scale bars: find the bar, read its label, give nm per pixel (or a reason).

A scale bar is a long, thin, uniform rectangle of an extreme grey (black or white), on the
image or on a plain box, with a label such as ``50 nm`` beside it. :func:`read_scale_bar`
works on an 8-bit grey image in four steps:

1. *Bars.* For each polarity (pixels <= ``dark_level`` or >= ``light_level``), horizontal
   runs at least ``min_length_frac`` of the image width (and ``min_length_px``) are stacked
   over consecutive rows whose ends agree within ``end_tolerance_px``. A stack is a bar when
   it is at least ``min_thickness_px`` rows thick, ``min_aspect`` times longer than thick,
   and the rows just above and below it are mostly *not* of its colour (it stands out from
   its surroundings: the top margin of a white label box is not a bar). Its length is
   measured to a fraction of a pixel from the grey profile along it (partly covered end
   pixels count by their coverage). A bar touching the image frame is "cut by the crop".
2. *Label.* Near each bar, connected components of the bar's colour that look like glyphs
   (not the bar itself, not huge blobs) are grouped into text lines; the lines nearest the
   bar are cut out as clean black-on-white images (only the glyph pixels, so particles
   behind the text vanish), enlarged to a glyph height Tesseract reads well, and read by
   Tesseract OCR (``pytesseract``; Debian package ``tesseract-ocr``) as one line. Tesseract
   often reads µ as p: when it reads pm or µm, the glyph before the m is checked (a p has a
   closed bowl, a µ has none) and decides; Tesseract's doubt about the unit word then does
   not count, but when the two disagree the confidence is multiplied by
   ``UNIT_CONFLICT_FACTOR`` (0.8).
3. *Parse.* The text must contain a number and a length unit: pm, Å, nm, µm (also um, μm)
   or mm (a comma is a decimal point). The first line that parses is the label.
4. *Decide.* ``nm_per_px = value * unit / bar length``. The confidence is Tesseract's lowest
   word confidence (0..1; a word with µ or Å counts at least ``RARE_SYMBOL_CONF``, as
   Tesseract doubts these symbols even when right), times :func:`label_prior` (unusual
   values and pm, which OCR also makes of µm, count less), times a penalty when the bar's
   ends are ragged. Several labelled bars
   must agree within ``agree_tol`` (else: "two bars that disagree"); a reading below
   ``min_confidence`` or outside ``plausible_nm_per_px`` is returned with its reason and
   ``nm_per_px`` None, so the caller falls through to its next rule.

Every reading carries ``reason`` (empty when it calibrates) and the boxes of the bar and the
label, which :func:`ignore_mask` turns into the mask of pixels that are not specimen (they
are left out of segmentation). Nothing here guesses: no bar, an unreadable label, a cut bar
or disagreeing bars give ``nm_per_px`` None and say why.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shutil

import numpy as np
from scipy import ndimage

DEFAULTS = {
    "dark_level": 70,
    "light_level": 185,
    "min_length_px": 16,
    "min_length_frac": 0.04,
    "max_length_frac": 0.8,
    "min_thickness_px": 2,
    "max_thickness_frac": 0.25,  # of the bar's length
    "min_aspect": 4.0,
    "end_tolerance_px": 2,
    "glyph_height_px": 40,  # OCR input glyph height after enlargement
    "min_confidence": 0.6,
    "agree_tol": 0.02,
    "plausible_nm_per_px": [0.001, 10000.0],
    "max_bars": 4,  # bars per polarity read (longest first)
}

UNITS_NM = {"pm": 1e-3, "Å": 0.1, "nm": 1.0, "µm": 1e3, "mm": 1e6}
# what OCR may write for each unit (after lower-casing where safe)
_UNIT_RE = r"(pm|nm|[µμu]m|mm|Å|A)"
_LABEL_RE = re.compile(r"(\d+(?:[.,]\d+)?)\s*" + _UNIT_RE + r"(?![A-Za-z])")
RARE_SYMBOL_CONF = 0.7
UNIT_CONFLICT_FACTOR = 0.8  # Tesseract read p where the glyph has no bowl (or µ where it has one)


@dataclasses.dataclass
class Bar:
    """A bar candidate: rows r0..r1-1, columns c0..c1-1 (box), fractional length."""

    r0: int
    r1: int
    c0: int
    c1: int
    length_px: float
    polarity: str  # "dark" or "light"
    raggedness: float  # spread of the row ends (px)

    @property
    def thickness(self) -> int:
        return self.r1 - self.r0

    def cut(self, shape) -> bool:
        h, w = shape
        return self.c0 <= 0 or self.r0 <= 0 or self.c1 >= w or self.r1 >= h


@dataclasses.dataclass
class ScaleBarReading:
    """What :func:`read_scale_bar` found. ``nm_per_px`` is None unless the image is
    calibrated by its bar; ``reason`` then says why."""

    nm_per_px: float | None = None
    confidence: float = 0.0
    bar_length_px: float | None = None
    label: str | None = None  # the label text read (normalised, e.g. "200 nm")
    value_nm: float | None = None
    reason: str = ""
    bar_box: tuple[int, int, int, int] | None = None  # r0, r1, c0, c1
    label_box: tuple[int, int, int, int] | None = None
    boxes: list[tuple[int, int, int, int]] = dataclasses.field(default_factory=list)  # everything to mask
    n_bars: int = 0

    @property
    def found(self) -> bool:
        return self.bar_box is not None


# ---------------------------------------------------------------------------------------
# 1. bars
# ---------------------------------------------------------------------------------------


def _row_runs(mask: np.ndarray, min_len: int):
    """Horizontal runs of True of at least ``min_len``: arrays (row, start, end_exclusive)."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    rs, cs = np.nonzero(d == 1)
    _, ce = np.nonzero(d == -1)
    # starts and ends come in the same row-major order, one end per start
    keep = (ce - cs) >= min_len
    return rs[keep], cs[keep], ce[keep]


def _measure_length(gray: np.ndarray, bar: Bar) -> float:
    """Bar length with partly covered end pixels counted by their coverage."""
    h, w = gray.shape
    t = bar.thickness
    rows = slice(bar.r0 + (1 if t > 3 else 0), bar.r1 - (1 if t > 3 else 0))
    a, b = max(bar.c0 - 3, 0), min(bar.c1 + 3, w)
    prof = gray[rows, a:b].astype(float).mean(axis=0)
    fg = float(np.median(gray[rows, bar.c0:bar.c1]))
    around = []
    for r in (bar.r0 - 3, bar.r0 - 2, bar.r1 + 1, bar.r1 + 2):
        if 0 <= r < h:
            around.append(gray[r, bar.c0:bar.c1])
    bg = float(np.median(np.concatenate(around))) if around else (255.0 if bar.polarity == "dark" else 0.0)
    if abs(bg - fg) < 30:
        return float(bar.c1 - bar.c0)
    cov = np.clip((bg - prof) / (bg - fg), 0.0, 1.0)
    i0, i1 = bar.c0 - a, bar.c1 - a - 1  # first and last pixel of the runs
    length = max(i1 - i0 - 1, 0) + cov[i0] + cov[i1]
    # a partly covered pixel just outside (below the threshold) adds its coverage
    for j in (i0 - 1, i1 + 1):
        if 0 <= j < cov.size and 0.1 < cov[j] < 0.98:
            length += cov[j]
    return float(length)


def find_bars(gray: np.ndarray, cfg: dict | None = None) -> list[Bar]:
    """Bar candidates of both polarities, longest first (step 1 of the module docstring)."""
    c = {**DEFAULTS, **(cfg or {})}
    h, w = gray.shape
    min_len = max(int(c["min_length_px"]), int(round(c["min_length_frac"] * w)))
    max_len = c["max_length_frac"] * w
    tol = int(c["end_tolerance_px"])
    bars: list[Bar] = []
    levels = [("dark", lv) for lv in (c["dark_level"], c["dark_level"] // 3)] + \
        [("light", lv) for lv in (c["light_level"], (c["light_level"] + 2 * 255) // 3)]
    for polarity, level in levels:
        mask = gray <= level if polarity == "dark" else gray >= level
        rows, starts, ends = _row_runs(mask, min_len)
        if rows.size == 0:
            continue
        # chain runs of consecutive rows whose two ends agree within tol
        order = np.lexsort((starts, rows))
        rows, starts, ends = rows[order], starts[order], ends[order]
        by_row: dict[int, list[int]] = {}
        for i, r in enumerate(rows):
            by_row.setdefault(int(r), []).append(i)
        chain_of = -np.ones(rows.size, np.int64)
        chains: list[list[int]] = []
        for i, r in enumerate(rows):
            if chain_of[i] < 0:
                chain_of[i] = len(chains)
                chains.append([i])
            for j in by_row.get(int(r) + 1, []):
                if chain_of[j] < 0 and abs(starts[j] - starts[i]) <= tol and abs(ends[j] - ends[i]) <= tol:
                    chain_of[j] = chain_of[i]
                    chains[chain_of[i]].append(j)
                    break
        for ch in chains:
            t = len(ch)
            s, e = starts[ch], ends[ch]
            c0, c1 = int(np.median(s)), int(np.median(e))
            length = c1 - c0
            r0, r1 = int(rows[ch[0]]), int(rows[ch[-1]]) + 1
            if t < c["min_thickness_px"] or length > max_len or length < c["min_aspect"] * t \
                    or t > c["max_thickness_frac"] * length:
                continue
            # stands out: the rows just outside (2 px above, 2 px below) are mostly not of its colour
            if any(0 <= r < h and mask[r, c0:c1].mean() > 0.5 for r in (r0 - 2, r1 + 1)):
                continue
            bar = Bar(r0, r1, c0, c1, float(length), polarity, float(max(np.ptp(s), np.ptp(e))))
            if any(abs(b.r0 - r0) <= 1 and abs(b.c0 - c0) <= 2 and abs(b.c1 - c1) <= 2 for b in bars):
                continue  # the same bar at the other level
            bar.length_px = _measure_length(gray, bar)
            bars.append(bar)
    # the margin of a plain box right above or below a bar of the other colour is not a bar
    def box_margin(a: Bar) -> bool:
        return any(b.polarity != a.polarity and (0 <= b.r0 - a.r1 <= 2 or 0 <= a.r0 - b.r1 <= 2)
                   and b.c0 >= a.c0 - 1 and b.c1 <= a.c1 + 1 and b.length_px < a.length_px for b in bars)

    bars = [b for b in bars if not box_margin(b)]
    bars.sort(key=lambda b: -b.length_px)
    return bars


# ---------------------------------------------------------------------------------------
# 2.-3. label
# ---------------------------------------------------------------------------------------


def tesseract_available() -> bool:
    try:
        import pytesseract  # noqa: F401
    except ImportError:
        return False
    return shutil.which("tesseract") is not None


_NUMBER_LIKE = re.compile(r"(?<![A-Za-z])([0-9OoIil|]*[0-9][0-9OoIil|]*|[Iil|])(?=[.,]?[0-9]*\s*" + _UNIT_RE + r")")


def parse_label(text: str) -> tuple[float, str] | None:
    """``"200 nm"`` -> (200.0, "nm"); None when there is no number with a length unit.
    In the number before a unit, OCR's usual confusions are undone (I, l, i, | -> 1; O, o -> 0)."""
    t = text.replace("\n", " ").strip()
    t = _NUMBER_LIKE.sub(lambda m: m.group(1).translate(str.maketrans("OoIil|", "001111")), t)
    m = _LABEL_RE.search(t)
    if not m:
        return None
    num, unit = m.group(1).replace(",", "."), m.group(2)
    if unit in ("um", "μm", "µm"):
        unit = "µm"
    elif unit in ("Å", "A"):
        unit = "Å"
    try:
        value = float(num)
    except ValueError:
        return None
    if value <= 0:
        return None
    return value, unit


def label_prior(value: float, unit: str) -> float:
    """How usual a label is, as a factor on the confidence: 1 for a value of the 1-2-2.5-5
    series (1, 2, 2.5, 5, 10, 20, 25, 50, ..., 0.1, 0.2, 0.5); 0.75 for one other significant
    digit or 1.5 (300 nm, 0.15 µm: rare); 0.4 for anything else (a label such as 106 nm
    or 23 nm is far more often a misread 100 nm or 25 nm than a real label, so it never
    calibrates at the default ``min_confidence``). A further 0.75 for pm, which OCR also
    makes of µm."""
    mant = round(value / 10 ** math.floor(math.log10(value)), 6)
    if mant in (1, 2, 2.5, 5):
        prior = 1.0
    elif mant in (1.5, 3, 4, 6, 7, 8, 9):
        prior = 0.75
    else:
        prior = 0.4
    return prior * (0.75 if unit == "pm" else 1.0)


def _disk(r: int) -> np.ndarray:
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return x * x + y * y <= r * r


def _glyph_lines(tmask: np.ndarray):
    """Connected components of a text-colour mask grouped into text lines: a list of
    (r0, r1, c0, c1, component ids) and the label image.

    A glyph is a component drawn with strokes: its widest stroke (twice the largest
    inscribed radius) is at most ``0.45`` of its height, which leaves out particles and
    other filled blobs. Lines grow from the tallest glyphs; a glyph joins a line that its
    rows overlap and that is near horizontally. Small marks (a decimal point, the ring of
    Å) then join the line they sit in or just above."""
    # filled blobs wider than a stroke (particles behind or touching the text) are taken out
    blobs = ndimage.binary_opening(tmask, structure=_disk(4))
    tmask = tmask & ~ndimage.binary_dilation(blobs, iterations=1)
    lab, n = ndimage.label(tmask, structure=np.ones((3, 3)))
    if n == 0:
        return [], lab
    objs = ndimage.find_objects(lab)
    radius = ndimage.maximum(ndimage.distance_transform_edt(tmask), lab, index=np.arange(1, n + 1))
    glyphs, marks = [], []
    for k, sl in enumerate(objs, start=1):
        hh, ww = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
        g = [sl[0].start, sl[0].stop, sl[1].start, sl[1].stop, k]
        if hh < 6:
            marks.append(g)
        elif hh <= 150 and ww <= 3 * hh and 2 * radius[k - 1] <= 0.45 * hh + 1:
            glyphs.append(g)
    glyphs.sort(key=lambda g: -(g[1] - g[0]))
    lines = []  # [r0, r1, c0, c1, ids, seed height, seed r0, seed r1]
    for g in glyphs:
        gh = g[1] - g[0]
        for ln in lines:
            sh = ln[5]
            overlap = min(g[1], ln[7]) - max(g[0], ln[6])
            gap = max(g[2] - ln[3], ln[2] - g[3], 0)
            if overlap >= 0.5 * min(gh, sh) and gap <= 1.6 * sh and 0.3 * sh <= gh <= 1.3 * sh:
                ln[0], ln[1] = min(ln[0], g[0]), max(ln[1], g[1])
                ln[2], ln[3] = min(ln[2], g[2]), max(ln[3], g[3])
                ln[4].append(g[4])
                break
        else:
            lines.append([g[0], g[1], g[2], g[3], [g[4]], gh, g[0], g[1]])
    # pieces of one line split at a wide space ("200" and "nm") are joined
    lines.sort(key=lambda ln: ln[2])
    joined: list[list] = []
    for ln in lines:
        prev = joined[-1] if joined else None
        if prev is not None:
            hp, hl = prev[1] - prev[0], ln[1] - ln[0]
            overlap = min(prev[1], ln[1]) - max(prev[0], ln[0])
            if overlap >= 0.5 * min(hp, hl) and ln[2] - prev[3] <= 2.0 * max(hp, hl):
                prev[0], prev[1], prev[3] = min(prev[0], ln[0]), max(prev[1], ln[1]), max(prev[3], ln[3])
                prev[4].extend(ln[4])
                continue
        joined.append(ln)
    lines = [ln for ln in joined if len(ln[4]) >= 2]
    for m in marks + [g for g in glyphs if not any(g[4] in ln[4] for ln in lines)]:
        for ln in lines:
            lh = ln[1] - ln[0]
            if (m[1] - m[0]) <= 0.45 * lh and m[0] >= ln[0] - 0.45 * lh and m[1] <= ln[1] + 2 \
                    and m[2] >= ln[2] - 0.3 * lh and m[3] <= ln[3] + 0.3 * lh:
                ln[4].append(m[4])
                ln[0] = min(ln[0], m[0])
                break
    return [tuple(ln[:5]) for ln in lines], lab


def _ocr_line(win: np.ndarray, lab: np.ndarray, line, ink: float, bg: float, glyph_h: int,
              masked: bool = True) -> tuple[str, float]:
    """Tesseract on one text line: the grey pixels of its glyphs (and 1 px around them, for
    the anti-aliased edges) as dark text on white, everything else white (``masked``; else
    the whole grey box of the line, for glyphs that touch a particle), enlarged so the line
    is ``glyph_h`` px tall. Returns (text, lowest word confidence 0..1)."""
    import pytesseract
    from PIL import Image

    r0, r1, c0, c1, ids = line
    pad = max(4, (r1 - r0) // 2)
    sl = (slice(max(r0 - pad, 0), r1 + pad), slice(max(c0 - pad, 0), c1 + pad))
    keep = ndimage.binary_dilation(np.isin(lab[sl], ids), iterations=1) if masked else np.ones(lab[sl].shape, bool)
    # grey -> 0 at the ink, 255 at the background, whatever the polarity
    g = np.clip((win[sl].astype(float) - ink) / (bg - ink if abs(bg - ink) > 1 else 1.0), 0, 1) * 255
    img = np.where(keep, g, 255).astype(np.uint8)
    img = np.pad(img, 10, constant_values=255)
    scale = glyph_h / max(r1 - r0, 1)
    pil = Image.fromarray(img)
    if abs(scale - 1) > 0.1:
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.LANCZOS)
    data = pytesseract.image_to_data(pil, lang="eng", config="--psm 7", output_type=pytesseract.Output.DICT)
    words = [(t, float(cf)) for t, cf in zip(data["text"], data["conf"]) if str(t).strip() and float(cf) >= 0]
    return " ".join(t for t, _ in words), words


def _words_conf(words, skip_unit: bool = False) -> float:
    """Lowest word confidence (0..1). Tesseract is unsure of the rare symbols µ and Å even
    when it reads them right: a word with one counts at least RARE_SYMBOL_CONF;
    ``skip_unit``: a word that is only the unit (checked by its glyphs) does not count."""
    confs = []
    for t, cf in words:
        if skip_unit and re.fullmatch(r"[pµμu]m", t):
            continue
        confs.append(max(cf, 100 * RARE_SYMBOL_CONF) if any(ch in t for ch in "µμÅ") else cf)
    return min(confs, default=0.0) / 100.0


def _micro_or_pico(lab: np.ndarray, line, win: np.ndarray, ink: float, bg: float) -> str | None:
    """"µm" or "pm" from the glyph of the unit that reaches below the baseline: a p has a
    closed bowl (a hole), a µ has none. The glyph is cut at the grey half-way between ink and background (the text
    mask's wider tolerance can close a small bowl). None when the line's last glyphs do not
    look like that pair."""
    r0, r1, c0, c1, ids = line
    objs = ndimage.find_objects(lab)
    comps = [(objs[k - 1][1].start, objs[k - 1][0].stop, k) for k in ids if objs[k - 1] is not None
             and objs[k - 1][0].stop - objs[k - 1][0].start >= 0.3 * (r1 - r0)]
    if len(comps) < 3:
        return None
    # p and µ are the glyphs that reach below the baseline: the rightmost such one
    baseline = float(np.median([b for _, b, _ in comps]))
    low = sorted(c for c in comps if c[1] >= baseline + max(2.0, 0.15 * (r1 - r0)))
    if not low:
        return None
    k = low[-1][2]
    sl = objs[k - 1]
    # the glyph at the half-way grey, with what joins it there within an x-height to its
    # right (a thin join of stem and bowl may be missing from the text mask)
    xh = max(int(round(baseline - float(np.median([objs[c[2] - 1][0].start for c in comps])))), 3)
    box = (slice(sl[0].start, sl[0].stop), slice(sl[1].start, min(sl[1].start + xh + 2, win.shape[1])))
    half = np.abs(win[box].astype(float) - ink) < 0.5 * abs(bg - ink)
    cc, _ = ndimage.label(half)
    seeds = np.unique(cc[(lab[box] == k) & half])
    g = np.isin(cc, seeds[seeds > 0])
    holes = ndimage.binary_fill_holes(g) & ~g
    return "pm" if holes.any() else "µm"


def _plain_box(gray: np.ndarray, bar: Bar):
    """(r0, r1, c0, c1) of the plain box the bar sits on, or None: the connected region of
    the grey just above or below the bar (within 25 levels) around it, when that region is
    a filled rectangle (holes, i.e. bar and glyphs, filled) smaller than a quarter of the image."""
    h, w = gray.shape
    for r in (bar.r0 - 2, bar.r1 + 1):
        if not 0 <= r < h:
            continue
        seed_vals = gray[r, bar.c0 : bar.c1].astype(float)
        level = float(np.median(seed_vals))
        if np.mean(np.abs(seed_vals - level) <= 8) < 0.9:
            continue  # not plain
        R0, R1 = max(bar.r0 - 4 * max(bar.thickness, 10) - 60, 0), min(bar.r1 + 4 * max(bar.thickness, 10) + 60, h)
        C0, C1 = max(bar.c0 - int(bar.length_px) - 40, 0), min(bar.c1 + int(bar.length_px) + 40, w)
        region = np.abs(gray[R0:R1, C0:C1].astype(float) - level) <= 25
        region[bar.r0 - R0 : bar.r1 - R0, bar.c0 - C0 : bar.c1 - C0] = True
        lab, _ = ndimage.label(region)
        k = lab[r - R0, (bar.c0 + bar.c1) // 2 - C0]
        if k == 0:
            continue
        comp = ndimage.binary_fill_holes(lab == k)
        rr, cc = np.nonzero(comp)
        b = (int(rr.min()) + R0, int(rr.max()) + 1 + R0, int(cc.min()) + C0, int(cc.max()) + 1 + C0)
        area = (b[1] - b[0]) * (b[3] - b[2])
        if comp.sum() >= 0.9 * area and area <= 0.25 * h * w and b[3] - b[2] < 3 * bar.length_px + 60:
            return b
    return None


def read_label(gray: np.ndarray, bar: Bar, cfg: dict | None = None):
    """(label text, (value, unit), confidence, label box) of the text nearest ``bar``
    (confidence: Tesseract's lowest word confidence times :func:`label_prior`),
    or (None, None, 0, None) when no line near it reads as a length."""
    c = {**DEFAULTS, **(cfg or {})}
    h, w = gray.shape
    L, t = bar.length_px, bar.thickness
    reach_v = int(max(60, 4 * t, 0.6 * L))
    reach_h = int(max(100, 1.5 * L))
    R0, R1 = max(bar.r0 - reach_v, 0), min(bar.r1 + reach_v, h)
    C0, C1 = max(bar.c0 - reach_h, 0), min(bar.c1 + reach_h, w)
    ink = float(np.median(gray[bar.r0 : bar.r1, bar.c0 : bar.c1]))
    box = _plain_box(gray, bar)
    if box is not None:  # a bar on a plain box: its label is in the box
        R0, R1, C0, C1 = max(R0, box[0]), min(R1, box[1]), max(C0, box[2]), min(C1, box[3])
    win = gray[R0:R1, C0:C1].astype(np.int16)
    # text of the bar's colour: within half the bar's contrast with its surroundings
    near = [gray[r, bar.c0 : bar.c1] for r in (bar.r0 - 2, bar.r1 + 1) if 0 <= r < h]
    bg = float(np.median(np.concatenate(near))) if near else float(np.median(win))
    tol = min(60.0, 0.35 * abs(bg - ink))
    tmask = np.abs(win - ink) <= max(tol, 10.0)
    tmask[bar.r0 - R0 : bar.r1 - R0, bar.c0 - C0 : bar.c1 - C0] = False
    lines, lab = _glyph_lines(tmask)

    def dist(ln):
        dy = max(bar.r0 - R0 - ln[1], ln[0] - (bar.r1 - R0), 0)
        dx = max(bar.c0 - C0 - ln[3], ln[2] - (bar.c1 - C0), 0)
        return math.hypot(dx, dy)

    lines = [ln for ln in lines if dist(ln) <= max(1.5 * (ln[1] - ln[0]), 3 * t, 12)]
    lines.sort(key=dist)
    best = (None, None, 0.0, None)
    for ln in lines[:3]:
        # Tesseract's confidence depends on the glyph size it sees: up to three sizes, then
        # the whole grey box of the line (a glyph that touches a particle is not a glyph)
        # (there only the darkest greys, or the lightest for white text, stay: within 1.6 times
        # the text tolerance of the ink)
        gh = c["glyph_height_px"]
        soft = ink + math.copysign(1.6 * max(tol, 10.0), bg - ink)
        digits = False
        votes: dict[tuple, list[float]] = {}
        for k, (glyph_h, masked) in enumerate(((gh, True), (gh, False), (0.7 * gh, True), (1.4 * gh, True),
                                               (0.7 * gh, False))):
            if k == 2 and not digits:
                break  # two looks found no digit: not a label
            text, words = _ocr_line(win, lab, ln, ink, bg if masked else soft, int(glyph_h), masked)
            digits = digits or any(ch.isdigit() for ch in text)
            parsed = parse_label(text)
            if not parsed:
                continue
            seen = _micro_or_pico(lab, ln, win, ink, bg) if parsed[1] in ("pm", "µm") else None
            conf = _words_conf(words, skip_unit=seen is not None)
            if seen is not None and seen != parsed[1]:
                # Tesseract often reads µ as p: the glyph decides, with some doubt left
                parsed = (parsed[0], seen)
                conf *= UNIT_CONFLICT_FACTOR
            votes.setdefault(parsed, []).append((conf, masked))
            score = _vote_score(votes[parsed]) * label_prior(*parsed)
            if best[1] is None or score > best[2]:
                best = (text, parsed, score, (ln[0] + R0, ln[1] + R0, ln[2] + C0, ln[3] + C0))
            if best[2] >= c["min_confidence"]:
                return best
        if best[1] is not None:
            return best
    return best


def _vote_score(looks: list[tuple[float, bool]]) -> float:
    """Confidence of a label from the looks that read it, (confidence, masked) each:
    Tesseract's best word confidence, or, when both kinds of look (the masked glyphs and the
    grey box of the line: different pixels) read the same number and unit, at least
    0.5 + 0.1 per look (at most 0.8). Tesseract is often unsure of a short word it reads
    right, and the same misreading from different pixels is rarer."""
    best = max(cf for cf, _ in looks)
    if len({m for _, m in looks}) == 2:
        best = max(best, min(0.5 + 0.1 * len(looks), 0.8))
    return best


# ---------------------------------------------------------------------------------------
# 4. decide
# ---------------------------------------------------------------------------------------


def _pad(box, shape, pad=2):
    r0, r1, c0, c1 = box
    return (max(r0 - pad, 0), min(r1 + pad, shape[0]), max(c0 - pad, 0), min(c1 + pad, shape[1]))


def read_scale_bar(gray: np.ndarray, cfg: dict | None = None) -> ScaleBarReading:
    """Find and read the scale bar of an 8-bit grey image (see the module docstring)."""
    c = {**DEFAULTS, **(cfg or {})}
    gray = np.asarray(gray)
    if gray.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {gray.shape}")
    bars = find_bars(gray, c)
    if not bars:
        return ScaleBarReading(reason="no scale bar found")
    if not tesseract_available():
        raise RuntimeError("the tesseract OCR program (Debian package tesseract-ocr) or pytesseract is not "
                           "installed; run `make setup` (workflow/setup/install_tesseract.sh)")
    by_pol: dict[str, int] = {}
    read, unread, cut = [], [], []
    for bar in bars:
        by_pol[bar.polarity] = by_pol.get(bar.polarity, 0) + 1
        if by_pol[bar.polarity] > c["max_bars"]:
            continue
        text, parsed, conf, box = read_label(gray, bar, c)
        if parsed is None:
            (cut if bar.cut(gray.shape) else unread).append(bar)
            continue
        if bar.cut(gray.shape):
            cut.append((bar, text, parsed, conf, box))
            continue
        read.append((bar, text, parsed, conf, box))
    if not read:
        if cut and isinstance(cut[0], tuple):
            bar, text, parsed, conf, box = cut[0]
            return ScaleBarReading(reason=f"scale bar cut by the image edge (label {text.strip()!r})",
                                   bar_box=(bar.r0, bar.r1, bar.c0, bar.c1), label=text.strip(), label_box=box,
                                   bar_length_px=round(bar.length_px, 2), n_bars=len(bars),
                                   boxes=[_pad((bar.r0, bar.r1, bar.c0, bar.c1), gray.shape),
                                          _pad(box, gray.shape)])
        if unread:
            bar = unread[0]
            # without a label, only a bar that looks like a scale bar is masked: at least
            # 6 % of the width and in the top or bottom fifth (short dark or bright runs
            # between particles are otherwise taken for bars)
            h, w = gray.shape
            likely = bar.length_px >= 0.06 * w and (bar.r1 <= 0.2 * h or bar.r0 >= 0.8 * h)
            return ScaleBarReading(reason="bar found but no label read as a length near it",
                                   bar_box=(bar.r0, bar.r1, bar.c0, bar.c1), bar_length_px=round(bar.length_px, 2),
                                   n_bars=len(bars),
                                   boxes=[_pad((bar.r0, bar.r1, bar.c0, bar.c1), gray.shape)] if likely else [])
        return ScaleBarReading(reason="only bars cut by the image edge, no label read", n_bars=len(bars))
    results = []
    for bar, text, (value, unit), conf, box in read:
        nm = value * UNITS_NM[unit] / bar.length_px
        rag = 1.0 if bar.raggedness <= 1 else max(0.0, 1.0 - 0.15 * (bar.raggedness - 1))
        results.append(ScaleBarReading(
            nm_per_px=nm, confidence=round(conf * rag, 3), bar_length_px=round(bar.length_px, 2),
            label=f"{value:g} {unit}", value_nm=value * UNITS_NM[unit],
            bar_box=(bar.r0, bar.r1, bar.c0, bar.c1), label_box=box,
            boxes=[_pad((bar.r0, bar.r1, bar.c0, bar.c1), gray.shape), _pad(box, gray.shape)],
            n_bars=len(read)))
    best = max(results, key=lambda r: r.confidence)
    others = [r for r in results if r is not best]
    all_boxes = [b for r in results for b in r.boxes]
    if any(abs(r.nm_per_px / best.nm_per_px - 1) > c["agree_tol"] for r in others):
        labels = ", ".join(f"{r.label} = {r.bar_length_px:g} px" for r in results)
        return dataclasses.replace(best, nm_per_px=None, boxes=all_boxes,
                                   reason=f"{len(results)} scale bars that disagree ({labels})")
    best = dataclasses.replace(best, boxes=all_boxes, confidence=min(r.confidence for r in results))
    lo, hi = c["plausible_nm_per_px"]
    if not lo <= best.nm_per_px <= hi:
        return dataclasses.replace(best, nm_per_px=None, reason=(
            f"scale bar gives {best.nm_per_px:.4g} nm/px, outside the plausible range [{lo:g}, {hi:g}]"))
    if best.confidence < c["min_confidence"]:
        return dataclasses.replace(best, reason=(
            f"scale bar label {best.label!r} read with low confidence {best.confidence:.2f} "
            f"(< {c['min_confidence']})"), nm_per_px=None)
    return best


def ignore_mask(shape, reading: ScaleBarReading) -> np.ndarray | None:
    """Boolean mask of the bar and label boxes (pixels that are not specimen), or None."""
    if not reading.boxes:
        return None
    m = np.zeros(shape, bool)
    for r0, r1, c0, c1 in reading.boxes:
        m[r0:r1, c0:c1] = True
    return m


def write_ignore_mask(path, mask: np.ndarray) -> None:
    """Save an ignore mask as an 8-bit PNG (255 = not specimen)."""
    from PIL import Image

    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path)


def load_ignore_mask(row: dict, shape) -> np.ndarray | None:
    """The ignore mask of an images-table row (column ``ignore_mask``), or None."""
    path = row.get("ignore_mask")
    if not path:
        return None
    from PIL import Image

    with Image.open(path) as im:
        m = np.asarray(im.convert("L")) > 127
    if m.shape != tuple(shape):
        raise ValueError(f"ignore mask {path} is {m.shape[1]}x{m.shape[0]} px, its image "
                         f"{row.get('image_id')} is {shape[1]}x{shape[0]}")
    return m


def masked_fraction(mask: np.ndarray, crop: np.ndarray, row0: int, col0: int) -> float:
    """Share of an instance (boolean crop at row0, col0) that lies in ``mask``."""
    n = int(crop.sum())
    if n == 0:
        return 0.0
    sub = mask[row0 : row0 + crop.shape[0], col0 : col0 + crop.shape[1]]
    return float((sub & crop[: sub.shape[0], : sub.shape[1]]).sum()) / n


# ---------------------------------------------------------------------------------------
# overlays and the report figure
# ---------------------------------------------------------------------------------------


def describe(reading: ScaleBarReading) -> str:
    """One line: what was read and what came of it."""
    if reading.nm_per_px is not None:
        return (f"{reading.label} = {reading.bar_length_px:g} px -> {reading.nm_per_px:.4g} nm/px "
                f"(conf {reading.confidence:.2f})")
    return reading.reason


def overlay_image(gray: np.ndarray, reading: ScaleBarReading):
    """RGB PIL image: the grey image with the bar outlined in red (green when it calibrated)
    and the label box in blue, and the reading written along the top."""
    from PIL import Image, ImageDraw

    rgb = Image.fromarray(np.asarray(gray, np.uint8)).convert("RGB")
    h, w = gray.shape
    band = 18
    canvas = Image.new("RGB", (w, h + band), (255, 255, 255))
    canvas.paste(rgb, (0, band))
    draw = ImageDraw.Draw(canvas)
    colour = (0, 200, 0) if reading.nm_per_px is not None else (230, 0, 0)
    if reading.bar_box is not None:
        r0, r1, c0, c1 = reading.bar_box
        draw.rectangle([c0 - 2, r0 - 2 + band, c1 + 1, r1 + 1 + band], outline=colour, width=2)
    if reading.label_box is not None:
        r0, r1, c0, c1 = reading.label_box
        draw.rectangle([c0 - 2, r0 - 2 + band, c1 + 1, r1 + 1 + band], outline=(0, 90, 255), width=2)
    draw.text((3, 3), describe(reading)[:110], fill=(0, 0, 0))
    return canvas


def figure(path, images: list[tuple[str, np.ndarray]], readings: list[ScaleBarReading], ncols: int = 3):
    """Report figure: each image with its bar (green: calibrated, red: not) and label
    (blue) outlined and the reading in the title."""
    from nanoforge.plotting import pyplot, save_figure

    plt = pyplot()
    n = max(len(images), 1)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 4.4 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (name, gray), r in zip(axes.ravel(), images, readings):
        ax.imshow(gray, cmap="gray", vmin=0, vmax=255)
        colour = "lime" if r.nm_per_px is not None else "red"
        for box, col in ((r.bar_box, colour), (r.label_box, "deepskyblue")):
            if box is not None:
                r0, r1, c0, c1 = box
                ax.add_patch(plt.Rectangle((c0 - 2.5, r0 - 2.5), c1 - c0 + 4, r1 - r0 + 4, fill=False,
                                           edgecolor=col, linewidth=1.6))
        text = describe(r)
        ax.set_title(f"{name}\n{text[:60]}" + ("..." if len(text) > 60 else ""), fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def report_figure(path, images, cfg: dict | None = None, n_real: int = 4, n_synthetic: int = 2,
                  seed: int = 0) -> list[str]:
    """The report's scale-bar figure: up to ``n_real`` ingested images where a bar was found
    (images table rows with ``scale_bar_px``; one per dataset in turn, labelled ones first) and ``n_synthetic``
    synthetic images with a varied bar, each read again and drawn by :func:`figure`.
    Returns the titles shown."""
    from PIL import Image

    from nanoforge.tem.simulate import simulate_one

    rows = [r for r in images.iter_rows(named=True) if r.get("scale_bar_px") is not None]
    rows.sort(key=lambda r: (r.get("scale_bar_label") is None, r["image_id"]))
    # one image per dataset in turn, labelled ones first
    by_set: dict[str, list[dict]] = {}
    for r in rows:
        by_set.setdefault(r["dataset"], []).append(r)
    picked = []
    while len(picked) < n_real and any(by_set.values()):
        for rs in by_set.values():
            if rs and len(picked) < n_real:
                picked.append(rs.pop(0))
    shown, readings = [], []
    for r in picked:
        with Image.open(r["path"]) as im:
            gray = np.asarray(im.convert("L"))
        shown.append((r["image_id"], gray))
        readings.append(read_scale_bar(gray, cfg))
    sim = {"scale_bar_probability": 1.0, "scale_bar_style": "varied", "nm_per_px": [0.005, 30.0]}
    for i in range(n_synthetic):
        gray, p, _, bar = simulate_one(seed, "scalebar_figure", i, sim)
        shown.append((f"synthetic: {bar['label']}, true {p.nm_per_px:.4g} nm/px", gray))
        readings.append(read_scale_bar(gray, cfg))
    figure(path, shown, readings)
    return [t for t, _ in shown]
