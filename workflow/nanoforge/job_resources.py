"""Memory that a job declares (Snakemake ``resources: mem_mb``), scaled with its input, so that
SLURM, which kills a job that exceeds its request, does not kill it.

Only headers are read here (no pixel data), so the rules can call these functions when a job
is scheduled. Before the inputs exist (a dry run) they give the base figure; Snakemake
evaluates them again once the inputs are there.

``ingest_tem`` holds one image at a time as float64 plus a few working copies (grey
conversion, percentile stretch, rounding). Measured peak memory of the ingestion of one image
(``max_rss``, ``python -m nanoforge.bench times --by rule``; a 16-bit TIFF or an 8-bit PNG):
36 Mpx (6000 x 6000) 1189 MB, 144 Mpx (12000 x 12000) 4485 MB (TIFF) and 4479 MB (PNG), i.e.
about 31 MB per megapixel above ~90 MB. The declaration adds headroom: 1000 MB + 35 MB per
megapixel of the largest image (144 Mpx: 6040 MB).
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

INGEST_BASE_MB = 1000
INGEST_MB_PER_MPX = 35

PILLOW_SUFFIXES = {".jpg", ".jpeg", ".bmp", ".gif"}
TIFF_SUFFIXES = {".tif", ".tiff"}
# Microscope formats whose headers need the full reader: their file size bounds the pixel
# count (at least 2 bytes per pixel in practice: 16-bit or wider).
RAW_SUFFIXES = {".dm3", ".dm4", ".emd", ".ser", ".h5", ".hdf5"}


def _png_pixels(fh) -> int:
    head = fh.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    width, height = struct.unpack(">II", head[16:24])
    return width * height


def _tiff_pixels(fh) -> int:
    """Largest width x height x samples over the TIFF's image directories (classic or BigTIFF)."""
    order = {b"II": "<", b"MM": ">"}.get(fh.read(2))
    if order is None:
        raise ValueError("not a TIFF file")
    (magic,) = struct.unpack(order + "H", fh.read(2))
    if magic == 42:
        (offset,) = struct.unpack(order + "I", fh.read(4))
        count_fmt, entry_fmt, next_fmt, entry_size = "H", "HHI4s", "I", 12
    elif magic == 43:
        fh.read(4)
        (offset,) = struct.unpack(order + "Q", fh.read(8))
        count_fmt, entry_fmt, next_fmt, entry_size = "Q", "HHQ8s", "Q", 20
    else:
        raise ValueError("not a TIFF file")
    value_fmt = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8
    largest, seen = 0, set()
    while offset and offset not in seen and len(seen) < 10_000:
        seen.add(offset)
        fh.seek(offset)
        (n,) = struct.unpack(order + count_fmt, fh.read(struct.calcsize(count_fmt)))
        tags = {}
        for _ in range(n):
            tag, typ, _count, value = struct.unpack(order + entry_fmt, fh.read(entry_size))
            if tag in (256, 257, 277) and typ in value_fmt:
                tags[tag] = struct.unpack_from(order + value_fmt[typ], value)[0]
        largest = max(largest, tags.get(256, 0) * tags.get(257, 0) * tags.get(277, 1))
        (offset,) = struct.unpack(order + next_fmt, fh.read(struct.calcsize(next_fmt)))
    return largest


def image_pixels(path: str | Path) -> int:
    """Pixel count (times samples per pixel for a TIFF) of the largest image in one file,
    from its header; 0 for a file that is not an image or cannot be read (ingestion rejects
    it with its reason). PNG and TIFF headers are read here (the Snakemake process may lack
    the imaging packages); JPEG, BMP and GIF through Pillow when it is installed, else their
    file size in bytes stands for the pixel count."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".png":
            with open(path, "rb") as fh:
                return _png_pixels(fh)
        if suffix in TIFF_SUFFIXES:
            with open(path, "rb") as fh:
                return _tiff_pixels(fh)
        if suffix in PILLOW_SUFFIXES:
            try:
                from PIL import Image
            except ImportError:
                return path.stat().st_size
            with Image.open(path) as im:
                return im.width * im.height
        if suffix in RAW_SUFFIXES:
            return path.stat().st_size // 2
    except (OSError, ValueError, struct.error):
        return 0
    return 0


def largest_image_mpx(paths) -> float:
    """Megapixels of the largest image among ``paths`` (files, or folders searched
    recursively); 0 when none exists yet."""
    largest = 0
    for p in map(Path, paths):
        files = p.rglob("*") if p.is_dir() else [p] if p.is_file() else []
        for f in files:
            if f.is_file():
                largest = max(largest, image_pixels(f))
    return largest / 1e6


def ingest_tem_mem_mb(paths) -> int:
    """mem_mb for ingesting the TEM dataset folders ``paths``."""
    return int(INGEST_BASE_MB + math.ceil(INGEST_MB_PER_MPX * largest_image_mpx(paths)))
