"""Instance masks as COCO JSON with RLE masks: read, write, convert.

Every set of instance masks in nanoforge (ground truth, synthetic images, weak labels,
segmentation output) is a COCO "instances" document::

    {"info": {...},
     "images": [{"id": 1, "file_name": "emps_dev/065d8e352c.png", "width": W, "height": H,
                 "image_key": "emps_dev/065d8e352c", ...}],
     "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                      "segmentation": {"size": [H, W], "counts": "<compressed RLE>"},
                      "area": 123, "bbox": [x, y, w, h], "score": 0.97, ...}],
     "categories": [{"id": 1, "name": "nanoparticle"}]}

``image_key`` is nanoforge's string image id (``image_id`` of ``images.parquet``); documents
written by other tools (CVAT, labelme, Detectron2) without it get the file name without its
extension. Segmentations given as polygons or uncompressed RLE are converted to compressed
RLE on reading, so the rest of the code sees one form. ``score`` is present on predictions
(1.0 is assumed where missing).

Masks are handled as *crops*: a boolean array plus the row and column of its top-left
pixel in the full image. Encoding and decoding work directly between crops and RLE, so a
small particle on a large image never costs a full-image array.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage

CATEGORY = {"id": 1, "name": "nanoparticle", "supercategory": "particle"}


class CocoError(ValueError):
    """A COCO document is malformed; the message names the file and the entry."""


# ---------------------------------------------------------------------------------------
# RLE <-> counts
# ---------------------------------------------------------------------------------------


def compress_counts(counts: Iterable[int]) -> str:
    """Counts of an uncompressed RLE -> COCO's compressed string (as pycocotools writes)."""
    counts = [int(c) for c in counts]
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def decompress_counts(s: str | bytes) -> np.ndarray:
    """COCO's compressed RLE string -> counts (int64 array)."""
    if isinstance(s, bytes):
        s = s.decode("ascii")
    counts: list[int] = []
    p, n = 0, len(s)
    while p < n:
        x = k = 0
        more = True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return np.asarray(counts, dtype=np.int64)


def rle_counts(rle: dict) -> np.ndarray:
    c = rle["counts"]
    if isinstance(c, (str, bytes)):
        return decompress_counts(c)
    return np.asarray(c, dtype=np.int64)


# ---------------------------------------------------------------------------------------
# crops <-> RLE
# ---------------------------------------------------------------------------------------


def encode_crop(crop: np.ndarray, row0: int, col0: int, shape_hw: tuple[int, int]) -> dict:
    """Compressed RLE (``{"size": [H, W], "counts": str}``) of the full-image mask that is
    ``crop`` placed at (row0, col0) in an image of ``shape_hw``; the crop must lie inside."""
    h, w = int(shape_hw[0]), int(shape_hw[1])
    crop = np.asarray(crop, dtype=bool)
    if row0 < 0 or col0 < 0 or row0 + crop.shape[0] > h or col0 + crop.shape[1] > w:
        raise ValueError(f"crop {crop.shape} at ({row0}, {col0}) does not fit in image {h}x{w}")
    cc, rr = np.nonzero(crop.T)  # column-major order, as RLE counts run down the columns
    total = h * w
    if cc.size == 0:
        return {"size": [h, w], "counts": compress_counts([total])}
    idx = (cc + col0).astype(np.int64) * h + (rr + row0)
    breaks = np.flatnonzero(np.diff(idx) != 1)
    starts = np.concatenate([idx[:1], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks] + 1, idx[-1:] + 1])  # exclusive
    counts = np.empty(2 * starts.size + 1, dtype=np.int64)
    counts[0] = starts[0]
    counts[1:-1:2] = ends - starts
    counts[2:-1:2] = starts[1:] - ends[:-1]
    counts[-1] = total - ends[-1]
    if counts[-1] == 0:  # pycocotools writes no trailing empty run
        counts = counts[:-1]
    return {"size": [h, w], "counts": compress_counts(counts)}


def encode_mask(mask: np.ndarray) -> dict:
    """Compressed RLE of a full-image boolean mask (pycocotools' own encoder)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"]}


def decode_crop(rle: dict) -> tuple[np.ndarray, int, int]:
    """RLE -> (crop, row0, col0): the tight boolean crop around the mask's pixels.

    An empty mask gives a 0 x 0 crop at (0, 0)."""
    h, w = int(rle["size"][0]), int(rle["size"][1])
    counts = rle_counts(rle)
    if counts.sum() != h * w:
        raise CocoError(f"RLE counts sum to {int(counts.sum())}, not {h}x{w} = {h * w}")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    starts = bounds[1:-1:2]
    lengths = counts[1::2]
    keep = lengths > 0
    starts, lengths = starts[keep], lengths[keep]
    if starts.size == 0:
        return np.zeros((0, 0), bool), 0, 0
    total = int(lengths.sum())
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    idx = np.arange(total, dtype=np.int64) + offsets
    rows, cols = idx % h, idx // h
    r0, c0 = int(rows.min()), int(cols.min())
    crop = np.zeros((int(rows.max()) - r0 + 1, int(cols.max()) - c0 + 1), bool)
    crop[rows - r0, cols - c0] = True
    return crop, r0, c0


def decode_mask(rle: dict) -> np.ndarray:
    """RLE -> full-image boolean mask."""
    h, w = int(rle["size"][0]), int(rle["size"][1])
    crop, r0, c0 = decode_crop(rle)
    out = np.zeros((h, w), bool)
    out[r0 : r0 + crop.shape[0], c0 : c0 + crop.shape[1]] = crop
    return out


def _as_c_rle(rle: dict) -> dict:
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    elif not isinstance(counts, bytes):
        return mask_utils.frPyObjects(rle, *rle["size"])
    return {"size": list(rle["size"]), "counts": counts}


def rle_area(rle: dict) -> int:
    return int(rle_counts(rle)[1::2].sum())


def rle_bbox(rle: dict) -> list[float]:
    """[x, y, w, h] of the mask in pixels (COCO convention), zeros for an empty mask."""
    crop, r0, c0 = decode_crop(rle)
    if crop.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(c0), float(r0), float(crop.shape[1]), float(crop.shape[0])]


# ---------------------------------------------------------------------------------------
# label images <-> instances
# ---------------------------------------------------------------------------------------


def labels_to_crops(labels: np.ndarray) -> Iterator[tuple[int, np.ndarray, int, int]]:
    """Instance-label image (0 = background) -> (label, crop, row0, col0) per instance, in
    label order. Labels need not be consecutive."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"an instance-label image must be 2-D, got shape {labels.shape}")
    if labels.dtype.kind not in "ui":
        raise ValueError(f"an instance-label image must hold integers, got {labels.dtype}")
    if labels.size == 0 or labels.max() <= 0:
        return
    for i, sl in enumerate(ndimage.find_objects(labels.astype(np.int64, copy=False)), start=1):
        if sl is None:
            continue
        yield i, labels[sl] == i, sl[0].start, sl[1].start


def crops_to_labels(instances: Iterable[tuple[np.ndarray, int, int]], shape_hw) -> np.ndarray:
    """Paint instance crops into a label image (1, 2, ... in the given order; a later
    instance wins where masks overlap)."""
    out = np.zeros(shape_hw, dtype=np.int32)
    for k, (crop, r0, c0) in enumerate(instances, start=1):
        if crop.size == 0:
            continue
        view = out[r0 : r0 + crop.shape[0], c0 : c0 + crop.shape[1]]
        view[crop] = k
    return out


def annotation_from_crop(
    crop: np.ndarray,
    row0: int,
    col0: int,
    shape_hw: tuple[int, int],
    image_id: int,
    ann_id: int,
    score: float | None = None,
    **extra,
) -> dict:
    """One COCO annotation (RLE segmentation, area, bbox) for a mask crop."""
    crop = np.asarray(crop, dtype=bool)
    rows = np.flatnonzero(crop.any(axis=1))
    cols = np.flatnonzero(crop.any(axis=0))
    if rows.size == 0:
        raise ValueError(f"empty mask for annotation {ann_id} of image {image_id}")
    ann = {
        "id": int(ann_id),
        "image_id": int(image_id),
        "category_id": CATEGORY["id"],
        "iscrowd": 0,
        "segmentation": encode_crop(crop, row0, col0, shape_hw),
        "area": int(crop.sum()),
        "bbox": [float(col0 + cols[0]), float(row0 + rows[0]),
                 float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)],
    }
    if score is not None:
        ann["score"] = float(score)
    ann.update(extra)
    return ann


def labels_to_annotations(labels: np.ndarray, image_id: int, first_ann_id: int = 1) -> list[dict]:
    """Instance-label image -> COCO annotations (one per label value)."""
    anns = []
    for k, (_, crop, r0, c0) in enumerate(labels_to_crops(labels)):
        anns.append(annotation_from_crop(crop, r0, c0, labels.shape, image_id, first_ann_id + k))
    return anns


# ---------------------------------------------------------------------------------------
# documents
# ---------------------------------------------------------------------------------------


def new_document(info: dict | None = None) -> dict:
    return {"info": dict(info or {}), "images": [], "annotations": [], "categories": [dict(CATEGORY)]}


def image_entry(image_id: int, image_key: str, file_name: str, width: int, height: int, **extra) -> dict:
    entry = {"id": int(image_id), "file_name": file_name, "width": int(width), "height": int(height),
             "image_key": image_key}
    entry.update(extra)
    return entry


def image_key(entry: dict) -> str:
    """nanoforge's string id of a COCO image entry (see the module docstring)."""
    if entry.get("image_key"):
        return str(entry["image_key"])
    name = str(entry["file_name"])
    return name.rsplit(".", 1)[0] if "." in Path(name).name else name


def normalize_segmentation(seg, height: int, width: int) -> dict:
    """Polygon list, uncompressed RLE or compressed RLE -> compressed RLE dict."""
    if isinstance(seg, list):
        if not seg:
            raise CocoError("empty polygon list")
        rles = mask_utils.frPyObjects(seg, height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(seg, dict) and "counts" in seg and "size" in seg:
        if [int(v) for v in seg["size"]] != [height, width]:
            raise CocoError(f"RLE size {seg['size']} differs from the image size [{height}, {width}]")
        if isinstance(seg["counts"], list):
            rle = mask_utils.frPyObjects(seg, height, width)
        else:
            return {"size": [height, width], "counts": seg["counts"] if isinstance(seg["counts"], str)
                    else seg["counts"].decode("ascii")}
    else:
        raise CocoError(f"unsupported segmentation {type(seg).__name__}: expected polygons or RLE")
    counts = rle["counts"]
    return {"size": [height, width], "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def validate_document(doc: dict, where: str = "<document>") -> dict:
    """Check the structure of a COCO document and normalise segmentations to compressed
    RLE (in place). Raises CocoError naming ``where`` and the offending entry."""
    if not isinstance(doc, dict):
        raise CocoError(f"{where}: a COCO document must be a JSON object")
    for key in ("images", "annotations"):
        if not isinstance(doc.get(key), list):
            raise CocoError(f"{where}: missing list '{key}'")
    doc.setdefault("categories", [dict(CATEGORY)])
    doc.setdefault("info", {})
    sizes = {}
    keys = set()
    for i, img in enumerate(doc["images"]):
        for k in ("id", "file_name", "width", "height"):
            if k not in img:
                raise CocoError(f"{where}: images[{i}] has no '{k}'")
        if img["id"] in sizes:
            raise CocoError(f"{where}: images[{i}] repeats image id {img['id']}")
        key = image_key(img)
        if key in keys:
            raise CocoError(f"{where}: images[{i}] repeats image key {key!r}")
        keys.add(key)
        sizes[img["id"]] = (int(img["height"]), int(img["width"]))
    seen = set()
    for i, ann in enumerate(doc["annotations"]):
        for k in ("id", "image_id", "segmentation"):
            if k not in ann:
                raise CocoError(f"{where}: annotations[{i}] has no '{k}'")
        if ann["id"] in seen:
            raise CocoError(f"{where}: annotations[{i}] repeats annotation id {ann['id']}")
        seen.add(ann["id"])
        if ann["image_id"] not in sizes:
            raise CocoError(f"{where}: annotations[{i}] refers to unknown image id {ann['image_id']}")
        h, w = sizes[ann["image_id"]]
        try:
            ann["segmentation"] = normalize_segmentation(ann["segmentation"], h, w)
        except CocoError as exc:
            raise CocoError(f"{where}: annotations[{i}] (id {ann['id']}): {exc}") from None
        ann.setdefault("category_id", CATEGORY["id"])
        ann.setdefault("iscrowd", 0)
        if "area" not in ann:
            ann["area"] = rle_area(ann["segmentation"])
        if "bbox" not in ann:
            ann["bbox"] = rle_bbox(ann["segmentation"])
    return doc


def read_coco(path: str | Path) -> dict:
    """Read and validate a COCO JSON file (segmentations normalised to compressed RLE)."""
    path = Path(path)
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise CocoError(f"COCO file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise CocoError(f"{path} is not valid JSON: {exc}") from None
    return validate_document(doc, str(path))


def write_coco(doc: dict, path: str | Path) -> Path:
    """Write a COCO document (validated first) as compact JSON."""
    path = Path(path)
    validate_document(doc, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"), allow_nan=False)
    tmp.replace(path)
    return path


def annotations_by_image(doc: dict) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {img["id"]: [] for img in doc["images"]}
    for ann in doc["annotations"]:
        out[ann["image_id"]].append(ann)
    return out


def subset(doc: dict, keys: Iterable[str]) -> dict:
    """A document with only the images whose image_key is in ``keys`` (and their
    annotations)."""
    keys = set(keys)
    images = [img for img in doc["images"] if image_key(img) in keys]
    ids = {img["id"] for img in images}
    return {
        "info": dict(doc.get("info", {})),
        "images": images,
        "annotations": [a for a in doc["annotations"] if a["image_id"] in ids],
        "categories": doc.get("categories", [dict(CATEGORY)]),
    }


def mask_iou(dt: list[dict], gt: list[dict]) -> np.ndarray:
    """IoU matrix (len(dt) x len(gt)) between two lists of RLE segmentations."""
    if not dt or not gt:
        return np.zeros((len(dt), len(gt)))
    d = [_as_c_rle(a["segmentation"]) for a in dt]
    g = [_as_c_rle(a["segmentation"]) for a in gt]
    return np.asarray(mask_utils.iou(d, g, [0] * len(g)), dtype=float).reshape(len(dt), len(gt))


def eq_diameter_px(area_px) -> np.ndarray:
    return np.sqrt(4.0 * np.asarray(area_px, dtype=float) / math.pi)
