"""Ground truth of the labelled TEM datasets as COCO documents, split by image.

A dataset's ``ground_truth`` in config says where its instance masks are:

- ``{format: instance_png, pattern: "labels/{stem}.png"}``: one integer label image per
  image (0 = background, each other value one particle), ``{stem}`` being the image file's
  name without extension;
- ``{format: coco, path: "annotations.json"}``: a COCO document (RLE or polygons, e.g. from
  CVAT or labelme) whose ``file_name`` matches the image file's name.

Only ingested images (``images.parquet``) are labelled; an image without a label file is
listed in the document's ``info.unlabelled`` and in the log, never silently dropped from the
count. Each image entry carries ``split``: ``holdout`` or ``train``. The split is by image and
deterministic: the ``holdout`` list of the dataset (file stems) if given, else the first
``round(holdout_fraction * n)`` images ranked by sha256 of ``"<seed>:<image_id>"``. Training
code (the detector) reads ``<dataset>_train.json``; evaluation uses only ``holdout`` images.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from nanoforge.tem import coco
from nanoforge.tem.ingest import dataset_path


def holdout_ids(image_ids: list[str], fraction: float, seed: int, explicit: list[str] | None = None) -> set[str]:
    if explicit:
        wanted = set(explicit)
        return {i for i in image_ids if i.split("/", 1)[-1] in wanted or i in wanted}
    ranked = sorted(image_ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    return set(ranked[: int(round(fraction * len(ranked)))])


def read_label_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        arr = np.asarray(im)
    if arr.ndim == 3:  # an RGB(A) label image: each colour is one instance
        rgb = arr[..., :3].astype(np.int64)
        flat = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
        _, inv = np.unique(flat, return_inverse=True)
        arr = inv.reshape(flat.shape)
        arr[flat == 0] = 0
    return arr


def groundtruth_document(name: str, spec: dict, images: pl.DataFrame, seed: int, images_root: str | Path,
                         log=sys.stderr) -> dict:
    """COCO document of dataset ``name``'s ground truth for its ingested images."""
    gt = spec["ground_truth"]
    root = dataset_path(name, spec)
    images_root = Path(images_root)
    rows = images.filter(pl.col("dataset") == name).sort("image_id")
    holdout = holdout_ids(rows["image_id"].to_list(), float(spec.get("holdout_fraction", 1.0)), seed,
                          spec.get("holdout"))
    doc = coco.new_document({"description": f"ground truth of TEM dataset {name}", "dataset": name,
                             "format": gt["format"], "unlabelled": []})
    source = None
    if gt["format"] == "coco":
        source = coco.read_coco(root / gt["path"])
        src_by_name = {Path(i["file_name"]).name: i for i in source["images"]}
        src_anns = coco.annotations_by_image(source)
    next_ann = 1
    for k, row in enumerate(rows.iter_rows(named=True), start=1):
        src = Path(row["source_path"])
        h, w = int(row["height"]), int(row["width"])
        anns = []
        if gt["format"] == "instance_png":
            label_path = root / gt["pattern"].format(stem=src.stem, name=src.name)
            if not label_path.is_file():
                doc["info"]["unlabelled"].append(row["image_id"])
                print(f"warning: {row['image_id']}: no label file {label_path}", file=log)
                continue
            labels = read_label_png(label_path)
            if labels.shape != (h, w):
                raise ValueError(f"label image {label_path} is {labels.shape[1]}x{labels.shape[0]} but image "
                                 f"{src} is {w}x{h}")
            anns = coco.labels_to_annotations(labels, k, next_ann)
        elif gt["format"] == "coco":
            entry = src_by_name.get(src.name)
            if entry is None:
                doc["info"]["unlabelled"].append(row["image_id"])
                print(f"warning: {row['image_id']}: not in {root / gt['path']}", file=log)
                continue
            if (int(entry["height"]), int(entry["width"])) != (h, w):
                raise ValueError(f"{root / gt['path']}: {src.name} is {entry['width']}x{entry['height']} there "
                                 f"but the image is {w}x{h}")
            for j, a in enumerate(src_anns[entry["id"]]):
                anns.append({**a, "id": next_ann + j, "image_id": k, "category_id": 1})
        else:
            raise ValueError(f"dataset {name}: unknown ground_truth format {gt['format']!r}")
        split = "holdout" if row["image_id"] in holdout else "train"
        file_name = str(Path(row["path"]).relative_to(images_root)) if Path(row["path"]).is_relative_to(
            images_root) else row["path"]
        doc["images"].append(coco.image_entry(k, row["image_id"], file_name, w, h, split=split,
                                              nm_per_px=row["nm_per_px"]))
        doc["annotations"].extend(anns)
        next_ann += len(anns)
        print(f"{row['image_id']}: {len(anns)} instances ({split})", file=log)
    return doc


def split_document(doc: dict, split: str) -> dict:
    keys = [coco.image_key(i) for i in doc["images"] if i.get("split") == split]
    out = coco.subset(doc, keys)
    out["info"]["split"] = split
    return out
