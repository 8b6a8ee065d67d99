"""TEM image ingestion: microscope files -> normalised 8-bit grayscale PNGs + images.parquet.

Readers
-------
- TIFF (8/16/32-bit, float, palette, RGB; ImageJ, DigitalMicrograph, JEOL SightX, Olympus
  SIS flavours) through rosettasciio's TIFF reader, with tifffile for palette colour maps
  and resolution tags;
- PNG, JPEG, BMP, GIF through Pillow (palette and RGB converted to luminance, alpha dropped);
- Gatan DigitalMicrograph ``.dm3``/``.dm4``, Velox/NCEM ``.emd`` (HDF5, needs h5py) and FEI TIA
  ``.ser`` through rosettasciio. An FEI ``.emi`` file only holds metadata for its
  ``<name>_<n>.ser`` files, which carry both the data and the calibration: the ``.ser`` is
  read and the ``.emi`` is listed among the rejected files with that reason.

A file with several signals gives its largest 2-D image (an Olympus thumbnail is skipped);
an image stack (a navigation axis, e.g. Velox frames over time) is reduced to the mean of its
frames or its first frame (``stack``), and ``n_frames`` records how many there were.

Calibration (nm per pixel), in order
------------------------------------
1. ``metadata``: the file's own pixel size: rosettasciio axis scales with a length unit, an
   ImageJ ``unit`` with the resolution tag, or a TIFF resolution tag in centimetres. A
   resolution in *inches* is a print/display resolution (72 dpi and the like) and is never
   read as a pixel size; a scale of 1 without a unit means "uncalibrated".
2. ``sidecar``: a row of the sidecar table (``image``, ``nm_per_px``, ``sample_id`` and
   optionally ``calibration_source``, e.g. ``scale_bar`` for a pixel size measured by hand
   from the burned-in scale bar). ``image`` is the image id (``<dataset>/<stem>``), the
   dataset-relative path or the file name.
3. ``scale_bar``: the burned-in scale bar, found and read by :mod:`nanoforge.tem.scalebar`
   (bar length in px, label such as ``200 nm``), when its confidence reaches
   ``tem.scale_bar.min_confidence``; otherwise the reason is logged and recorded
   (``scale_bar_reason``) and the next rule applies.
4. ``config``: the dataset's ``nm_per_px`` in the config.
5. otherwise the image is rejected ("no pixel size ..."), unless the dataset says
   ``uncalibrated: keep`` (evaluation sets whose pixel size is unknown, e.g. figure crops):
   then it is kept with ``nm_per_px`` and ``calibration_source`` null, and sizes in nm are
   null downstream.

The scale-bar reader looks at every image (``tem.scale_bar.read``), also those calibrated
by rules 1-2: what it finds is recorded (``scale_bar_px``, ``scale_bar_label``,
``scale_bar_confidence``), and the bar and label boxes are written as an ignore mask
``<images_dir>/<image_id>.ignore.png`` (``ignore_mask``), which segmentation leaves out.

Normalisation
-------------
Values are mapped linearly from the ``low_pct``..``high_pct`` percentiles to 0..255 and saved
as an 8-bit grayscale PNG ``<images_dir>/<image_id>.png`` (the ``path`` column); TEM bright
field keeps its polarity (particles dark). ``sha256`` is that of the source file.

Nothing disappears: every file matched by a dataset's globs ends in ``images.parquet`` or
in ``rejected_images.parquet`` with its reason (empty, unreadable/corrupt, not an image, no
2-D image, too small, constant, non-finite values, no calibration, duplicate of another
image, a file name holding an unsafe character).

Names
-----
``image_id`` and ``sample_id`` reach tables and CSV files, so they must not hold an unsafe
character (NUL and other controls, bidirectional and zero-width characters:
:mod:`nanoforge.text`): a file whose dataset-relative path holds one is rejected with that
reason (its ``source_path`` in the rejected table has the character escaped, ``\\u202e``);
such a character in a dataset name, a dataset's ``sample_id`` or a sidecar row is an error
naming the config key or the sidecar row.

The two tables' contracts are ``workflow/schemas/images.schema.yaml`` and
``rejected_images.schema.yaml`` (:data:`IMAGES_SCHEMA`, :data:`REJECTED_IMAGES_SCHEMA`);
:func:`ingest` checks the tables it returns and the scripts write them with
:func:`nanoforge.tables.write_table`, which checks them again.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from nanoforge import tables
from nanoforge.download import sha256sum
from nanoforge.text import escape_unsafe, unsafe_message

IMAGES_SCHEMA = tables.load_table_schema("images")  # workflow/schemas/images.schema.yaml
REJECTED_IMAGES_SCHEMA = tables.load_table_schema("rejected_images")
# What the scale-bar reader found (nanoforge.tem.scalebar), for every image it looked at:
# the bar's length (px), the label read, the reading's confidence (0..1), why it did not
# calibrate the image (null when it did or when nothing was found to say), and the PNG of
# the pixels that are not specimen (bar and label; 255 = ignore) that segmentation leaves out.
# Optional, nullable columns of images.schema.yaml.
SCALE_BAR_COLUMNS = ("scale_bar_px", "scale_bar_label", "scale_bar_confidence", "scale_bar_reason", "ignore_mask")
CALIBRATION_SOURCES = tuple(v for v in IMAGES_SCHEMA["properties"]["calibration_source"]["enum"] if v)

# length units -> nanometres
UNIT_NM = {
    "nm": 1.0, "nanometer": 1.0, "nanometre": 1.0,
    "µm": 1e3, "μm": 1e3, "um": 1e3, "micron": 1e3, "microns": 1e3, "micrometer": 1e3, "\\u00b5m": 1e3,
    "mm": 1e6, "cm": 1e7, "m": 1e9,
    "pm": 1e-3, "å": 0.1, "a": 0.1, "angstrom": 0.1, "ang": 0.1,
}
SUFFIX_FORMAT = {
    ".tif": "tiff", ".tiff": "tiff", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".bmp": "bmp",
    ".gif": "gif", ".dm3": "dm3", ".dm4": "dm4", ".emd": "emd", ".ser": "ser", ".emi": "emi",
}


class ImageReadError(ValueError):
    """The file cannot be used; the message is the reason recorded in the rejected table."""


@dataclasses.dataclass
class RawImage:
    data: np.ndarray  # 2-D float64
    nm_per_px: float | None
    calibration_note: str
    source_format: str
    source_dtype: str
    n_frames: int = 1


def unit_to_nm(unit) -> float | None:
    if unit is None:
        return None
    key = str(unit).strip().lower()
    return UNIT_NM.get(key) or UNIT_NM.get(str(unit).strip())


# ---------------------------------------------------------------------------------------
# readers
# ---------------------------------------------------------------------------------------


def _to_gray(data: np.ndarray) -> np.ndarray:
    """Structured RGB(A) or trailing-channel RGB(A) arrays -> luminance (float64)."""
    if data.dtype.names:  # rosettasciio's rgb8/rgba8 structured dtypes
        names = data.dtype.names
        if {"R", "G", "B"} <= set(names):
            return 0.299 * data["R"].astype(float) + 0.587 * data["G"].astype(float) + 0.114 * data["B"].astype(float)
        raise ImageReadError(f"unsupported structured pixel type {data.dtype}")
    if np.iscomplexobj(data):
        data = np.abs(data)
    data = np.asarray(data, dtype=np.float64)
    return data


def _signal_scale(axes: list[dict]) -> tuple[float | None, str]:
    """nm/px from the two signal axes of a rosettasciio signal."""
    sig = [a for a in axes if not a.get("navigate", False)][-2:]
    if len(sig) != 2:
        return None, "no two signal axes"
    vals = []
    for a in sig:
        factor = unit_to_nm(a.get("units"))
        scale = float(a.get("scale", 1.0) or 1.0)
        if factor is None:
            return None, f"axis unit {a.get('units')!r} is not a length"
        vals.append(scale * factor)
    if not all(v > 0 and math.isfinite(v) for v in vals):
        return None, "non-positive pixel size"
    if abs(vals[0] - vals[1]) > 0.01 * max(vals):
        note = f"non-square pixels {vals[0]:.6g} x {vals[1]:.6g} nm, mean used"
    else:
        note = f"axes {sig[-1].get('scale')} {sig[-1].get('units')}"
    return float(np.mean(vals)), note


def _reduce_stack(data: np.ndarray, axes: list[dict], stack: str) -> tuple[np.ndarray, int]:
    nav = [i for i, a in enumerate(axes) if a.get("navigate", False)]
    if data.ndim == 2:
        return data, 1
    if data.ndim >= 3 and len(nav) == data.ndim - 2:
        frames = int(np.prod([data.shape[i] for i in nav]))
        flat = data.reshape((frames,) + data.shape[-2:])
        if stack == "first":
            return flat[0], frames
        return flat.astype(np.float64).mean(axis=0), frames
    raise ImageReadError(f"data of shape {data.shape} is not a 2-D image or an image stack")


def _pick_signal(signals: list[dict], stack: str) -> tuple[np.ndarray, list[dict], int]:
    best = None
    for s in signals:
        data = s.get("data")
        axes = s.get("axes", [])
        if data is None:
            continue
        sig_axes = [a for a in axes if not a.get("navigate", False)]
        if data.ndim < 2 or len(sig_axes) < 2 and not data.dtype.names:
            continue
        img, frames = _reduce_stack(np.asarray(data), axes, stack) if not data.dtype.names else (np.asarray(data), 1)
        if img.ndim != 2:
            continue
        area = img.shape[0] * img.shape[1]
        gray = not data.dtype.names
        key = (gray, area)  # prefer grayscale (the measurement) over an RGB thumbnail
        if best is None or key > best[0]:
            best = (key, img, axes, frames)
    if best is None:
        raise ImageReadError("no 2-D image in the file (spectrum, diffraction or empty signal list)")
    return best[1], best[2], best[3]


def _tiff_tag_scale(path: Path) -> tuple[float | None, str, np.ndarray | None]:
    """(nm/px from ImageJ unit or a cm/mm resolution tag, note, palette colour map)."""
    import tifffile

    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        cmap = None
        if page.photometric == tifffile.PHOTOMETRIC.PALETTE and page.colormap is not None:
            cmap = np.asarray(page.colormap, dtype=np.float64)
        xres = page.tags.get("XResolution")
        unit_tag = page.tags.get("ResolutionUnit")
        ij = tf.imagej_metadata or {}
        if xres is None:
            return None, "no resolution tag", cmap
        num, den = xres.value
        px_per_unit = num / den if den else 0.0
        if px_per_unit <= 0:
            return None, "resolution tag is zero", cmap
        if ij.get("unit"):
            factor = unit_to_nm(ij["unit"])
            if factor is None:
                return None, f"ImageJ unit {ij['unit']!r} is not a length", cmap
            return factor / px_per_unit, f"ImageJ unit {ij['unit']} at {px_per_unit:.6g} px/unit", cmap
        unit = int(unit_tag.value) if unit_tag is not None else 2
        per_unit_nm = {3: 1e7, 4: 1e6, 5: 1e3}.get(unit)  # 3 cm; 4 mm and 5 µm (TIFF extensions)
        if per_unit_nm is None:
            return None, "resolution in inches (a display resolution, not a pixel size)", cmap
        return per_unit_nm / px_per_unit, f"resolution tag {px_per_unit:.6g} px per unit {unit}", cmap


def _read_tiff(path: Path, stack: str) -> RawImage:
    from rsciio import tiff as rs_tiff

    signals = rs_tiff.file_reader(str(path))
    img, axes, frames = _pick_signal(signals, stack)
    dtype = str(img.dtype)
    tag_nm, tag_note, cmap = _tiff_tag_scale(path)
    if cmap is not None and img.ndim == 2 and not img.dtype.names:
        idx = np.clip(img.astype(np.int64), 0, cmap.shape[1] - 1)
        rgb = cmap[:, idx]  # 3 x H x W
        img = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
        dtype = f"palette {dtype}"
    nm, note = _signal_scale(axes)
    if nm is None and tag_nm is not None:
        nm, note = tag_nm, tag_note
    elif nm is None:
        note = f"{note}; {tag_note}"
    return RawImage(_to_gray(img), nm, note, "tiff", dtype, frames)


def _read_pillow(path: Path, fmt: str) -> RawImage:
    with Image.open(path) as im:
        im.load()
        mode = im.mode
        if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            data = np.asarray(im).astype(np.float64)
        else:
            data = np.asarray(im.convert("L"), dtype=np.float64) if mode not in ("L",) else np.asarray(im, np.float64)
    return RawImage(data, None, "no pixel size in " + fmt.upper(), fmt, mode)


def _read_rsciio(path: Path, fmt: str, stack: str) -> RawImage:
    if fmt in ("dm3", "dm4"):
        from rsciio import digitalmicrograph as reader
    elif fmt == "emd":
        from rsciio import emd as reader
    elif fmt == "ser":
        from rsciio import tia as reader
    else:  # pragma: no cover
        raise AssertionError(fmt)
    signals = reader.file_reader(str(path))
    img, axes, frames = _pick_signal(signals, stack)
    nm, note = _signal_scale(axes)
    return RawImage(_to_gray(img), nm, note, fmt, str(img.dtype), frames)


def read_microscope_file(path: str | Path, stack: str = "mean") -> RawImage:
    """Read one image file. Raises ImageReadError with the reason it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError("not a file")
    if path.stat().st_size == 0:
        raise ImageReadError("empty file (0 bytes)")
    fmt = SUFFIX_FORMAT.get(path.suffix.lower())
    if fmt is None:
        raise ImageReadError(f"unsupported file type {path.suffix!r} (supported: {', '.join(sorted(SUFFIX_FORMAT))})")
    if fmt == "emi":
        raise ImageReadError("not an image: an FEI TIA .emi file holds metadata only; its image data and "
                             "calibration are read from the matching <name>_<n>.ser file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "tiff":
                raw = _read_tiff(path, stack)
            elif fmt in ("png", "jpeg", "bmp", "gif"):
                raw = _read_pillow(path, fmt)
            else:
                raw = _read_rsciio(path, fmt, stack)
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError("unreadable: too large to load") from None
    except Exception as exc:  # any reader failure means a corrupt or foreign file
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageReadError(f"unreadable or corrupt {fmt.upper()} file: {type(exc).__name__}: {msg[:200]}") from None
    return raw


def check_image(raw: RawImage, min_size_px: int) -> None:
    d = raw.data
    if d.ndim != 2:
        raise ImageReadError(f"not a 2-D image (shape {d.shape})")
    if min(d.shape) < min_size_px:
        raise ImageReadError(f"too small: {d.shape[1]}x{d.shape[0]} px (minimum side {min_size_px} px)")
    if not np.isfinite(d).all():
        raise ImageReadError(f"{int((~np.isfinite(d)).sum())} non-finite pixel values (NaN or inf)")
    if float(d.max()) == float(d.min()):
        raise ImageReadError(f"constant image (every pixel is {float(d.min()):g})")


def normalise(data: np.ndarray, low_pct: float = 0.1, high_pct: float = 99.9) -> np.ndarray:
    """Float image -> uint8 by a linear stretch between two percentiles."""
    lo, hi = np.percentile(data, [low_pct, high_pct])
    if hi <= lo:
        lo, hi = float(data.min()), float(data.max())
    out = (data - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------


def dataset_path(name: str, spec: dict) -> Path:
    return Path(spec.get("path") or f"resources/tem/{name}")


def list_dataset_files(name: str, spec: dict) -> list[Path]:
    """Files matched by the dataset's globs (sorted, unique)."""
    root = dataset_path(name, spec)
    if not root.is_dir():
        raise FileNotFoundError(f"TEM dataset {name!r}: folder {root} not found")
    found = set()
    for pattern in spec.get("images") or ["*"]:
        for p in root.glob(pattern):
            if p.is_file():
                found.add(p)
    return sorted(found)


def _image_ids(name: str, root: Path, files: list[Path]) -> dict[Path, str]:
    """``<dataset>/<stem>``; where stems collide, the relative path with its suffix."""
    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem] = stems.get(f.stem, 0) + 1
    out = {}
    for f in files:
        if stems[f.stem] == 1:
            key = f.stem
        else:
            key = str(f.relative_to(root)).replace(os.sep, "_").replace(".", "_")
        out[f] = f"{name}/{key}"
    return out


def load_sidecar(sidecar: dict | None) -> list[dict]:
    """Sidecar rows from config: inline ``entries`` and CSV ``files`` (image, nm_per_px,
    sample_id[, calibration_source])."""
    rows = []
    sidecar = sidecar or {}
    for i, e in enumerate(sidecar.get("entries") or []):
        rows.append({**e, "_where": f"tem.sidecar.entries[{i}]"})
    for f in sidecar.get("files") or []:
        try:
            df = pl.read_csv(f, infer_schema_length=0)
        except FileNotFoundError:
            raise FileNotFoundError(f"sidecar table {f} not found (tem.sidecar.files)") from None
        missing = {"image", "nm_per_px"} - set(df.columns)
        if missing:
            raise ValueError(f"sidecar table {f}: missing column(s) {sorted(missing)}; "
                             "expected image, nm_per_px, sample_id")
        for j, r in enumerate(df.iter_rows(named=True)):
            rows.append({**r, "_where": f"{f} row {j + 2}"})
    out = []
    for r in rows:
        try:
            nm = float(r["nm_per_px"]) if r.get("nm_per_px") not in (None, "") else None
        except ValueError:
            raise ValueError(f"{r['_where']}: nm_per_px {r['nm_per_px']!r} is not a number") from None
        if nm is not None and not (nm > 0 and math.isfinite(nm)):
            raise ValueError(f"{r['_where']}: nm_per_px must be a positive number, got {nm}")
        src = r.get("calibration_source") or "sidecar"
        if src not in CALIBRATION_SOURCES:
            raise ValueError(f"{r['_where']}: calibration_source {src!r} is not one of {CALIBRATION_SOURCES}")
        for key in ("image", "sample_id"):
            problem = unsafe_message(r.get(key))
            if problem:
                raise ValueError(f"{r['_where']}: {key} {problem}; remove the character")
        out.append({"image": str(r["image"]), "nm_per_px": nm, "sample_id": r.get("sample_id") or None,
                    "calibration_source": src, "_where": r["_where"]})
    return out


def _match_sidecar(rows: list[dict], image_id: str, rel: str, filename: str) -> dict | None:
    hits = [r for r in rows if r["image"] in (image_id, rel, filename, image_id.split("/", 1)[-1])]
    return hits[0] if hits else None


def ingest(
    datasets: dict[str, dict],
    images_dir: str | Path,
    sidecar: dict | None = None,
    stack: str = "mean",
    low_pct: float = 0.1,
    high_pct: float = 99.9,
    min_size_px: int = 16,
    plausible_nm_per_px: tuple[float, float] = (1e-3, 1e4),
    scale_bar: dict | None = None,
    log=sys.stderr,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Ingest every dataset; return (images, rejected) tables and write the PNGs.
    ``scale_bar``: settings of the scale-bar reader (``read``: false turns it off; the other
    keys are :data:`nanoforge.tem.scalebar.DEFAULTS`)."""
    from nanoforge.tem import scalebar

    images_dir = Path(images_dir)
    bar_cfg = {"plausible_nm_per_px": list(plausible_nm_per_px), **(scale_bar or {})}
    read_bars = bool(bar_cfg.pop("read", True))
    side = load_sidecar(sidecar)
    used_side = set()
    rows, rejected = [], []
    seen_sha: dict[str, str] = {}
    for name, spec in datasets.items():
        for what, value in (("the dataset name", name), ("sample_id", spec.get("sample_id"))):
            problem = unsafe_message(value)
            if problem:
                raise ValueError(f"config tem.datasets.{escape_unsafe(name)}: {what} {problem}; remove the character")
        root = dataset_path(name, spec)
        files = list_dataset_files(name, spec)
        if not files:
            print(f"warning: TEM dataset {name!r}: no files match {spec.get('images')} in {root}", file=log)
        ids = _image_ids(name, root, files)
        for f in files:
            size = f.stat().st_size
            digest = sha256sum(f) if size else None

            def reject(reason, digest=digest, f=f, size=size):
                rejected.append({"source_path": escape_unsafe(str(f)), "dataset": name, "reason": reason,
                                 "sha256": digest, "size_bytes": size})
                print(f"rejected {escape_unsafe(str(f))}: {reason}", file=log)

            problem = unsafe_message(str(f.relative_to(root)))
            if problem:
                reject(f"file name {problem}: the image id would carry it; rename the file")
                continue
            try:
                raw = read_microscope_file(f, stack=stack)
                check_image(raw, min_size_px)
            except ImageReadError as exc:
                reject(str(exc))
                continue
            if digest in seen_sha:
                reject(f"duplicate of image {seen_sha[digest]} (same sha256)")
                continue
            image_id = ids[f]
            rel = str(f.relative_to(root))
            entry = _match_sidecar(side, image_id, f"{name}/{rel}", f.name)
            nm, source = None, None
            if raw.nm_per_px is not None:
                lo, hi = plausible_nm_per_px
                if lo <= raw.nm_per_px <= hi:
                    nm, source = raw.nm_per_px, "metadata"
                else:
                    print(f"warning: {f}: metadata pixel size {raw.nm_per_px:g} nm outside plausible range "
                          f"[{lo:g}, {hi:g}] nm, ignored", file=log)
            if nm is None and entry is not None and entry["nm_per_px"] is not None:
                nm, source = entry["nm_per_px"], entry["calibration_source"]
            gray = normalise(raw.data, low_pct, high_pct)
            bar = scalebar.read_scale_bar(gray, bar_cfg) if read_bars else scalebar.ScaleBarReading()
            if bar.found or bar.reason != "no scale bar found":
                used = " (used)" if nm is None and bar.nm_per_px is not None else ""
                print(f"scale bar {f}: {bar.label or '-'} over {bar.bar_length_px} px, confidence "
                      f"{bar.confidence:.2f}{used}{': ' + bar.reason if bar.reason else ''}", file=log)
            if nm is None and bar.nm_per_px is not None:
                nm, source = bar.nm_per_px, "scale_bar"
            if nm is None and spec.get("nm_per_px"):
                nm, source = float(spec["nm_per_px"]), "config"
            if entry is not None:
                used_side.add(entry["_where"])
            if nm is None and spec.get("uncalibrated", "reject") != "keep":
                why = f"; scale bar: {bar.reason}" if read_bars else ""
                reject(f"no pixel size: none in the file's metadata ({raw.calibration_note}), no sidecar entry, "
                       f"no nm_per_px for dataset {name!r} in config{why}")
                continue
            out = images_dir / f"{image_id}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(gray).save(out)
            mask = scalebar.ignore_mask(gray.shape, bar)
            mask_path = None
            if mask is not None:
                mask_path = str(images_dir / f"{image_id}.ignore.png")
                scalebar.write_ignore_mask(mask_path, mask)
            seen_sha[digest] = image_id
            sample = (entry or {}).get("sample_id") or spec.get("sample_id") or name
            rows.append({
                "image_id": image_id, "path": str(out), "sha256": digest,
                "width": int(raw.data.shape[1]), "height": int(raw.data.shape[0]),
                "nm_per_px": nm, "calibration_source": source, "sample_id": str(sample),
                "dataset": name, "source_path": str(f), "source_format": raw.source_format,
                "source_dtype": raw.source_dtype, "n_frames": int(raw.n_frames),
                "scale_bar_px": bar.bar_length_px, "scale_bar_label": bar.label,
                "scale_bar_confidence": bar.confidence if bar.label else None,
                "scale_bar_reason": (bar.reason or None) if source != "scale_bar" else None,
                "ignore_mask": mask_path,
            })
            print(f"ok {f} -> {image_id} ({raw.data.shape[1]}x{raw.data.shape[0]}, "
                  f"{nm if nm is not None else 'uncalibrated'} nm/px, {source})", file=log)
    for r in side:
        if r["_where"] not in used_side:
            print(f"warning: sidecar entry {r['_where']} (image {r['image']!r}) matches no ingested file", file=log)
    images = tables.frame(rows, IMAGES_SCHEMA)
    rej = tables.frame(rejected, REJECTED_IMAGES_SCHEMA)
    tables.validate_table(images, IMAGES_SCHEMA)
    tables.validate_table(rej, REJECTED_IMAGES_SCHEMA)
    return images, rej


def images_table_for_coco(doc: dict, images_root: str | Path, dataset: str, sample_id: str | None = None,
                          calibration_source: str = "metadata") -> pl.DataFrame:
    """An images table (same contract) for a COCO document whose image entries carry
    ``nm_per_px`` (e.g. the synthetic images)."""
    from nanoforge.tem.coco import image_key

    images_root = Path(images_root)
    rows = []
    for img in doc["images"]:
        p = images_root / img["file_name"]
        nm = img.get("nm_per_px")
        rows.append({
            "image_id": image_key(img), "path": str(p), "sha256": sha256sum(p),
            "width": int(img["width"]), "height": int(img["height"]),
            "nm_per_px": float(nm) if nm is not None else None,
            "calibration_source": calibration_source if nm is not None else None,
            "sample_id": sample_id or dataset, "dataset": dataset, "source_path": str(p),
            "source_format": p.suffix.lstrip(".").lower(), "source_dtype": "uint8", "n_frames": 1,
        })
    df = tables.frame(rows, IMAGES_SCHEMA)
    tables.validate_table(df, IMAGES_SCHEMA)
    return df
