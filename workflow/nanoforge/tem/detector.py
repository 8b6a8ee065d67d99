"""Particle detector: Detectron2 Faster R-CNN trained from scratch on TEM images.

The model is built from a Detectron2 config file kept in the repository
(``workflow/configs/detectron2/*.yaml``), never from scattered arguments. That file holds the
architecture (ResNet + FPN with BatchNorm or GroupNorm: no pretrained weights can be
downloaded here, and the model zoo's FrozenBN diverges without pretrained statistics), the
solver and, under ``NANOFORGE:``, this module's data settings (training crop size, scale
jitter, test scales, intensity normalisation). The workflow config may override a few keys
(iterations, batch, crop size) through ``overrides`` (a mapping of Detectron2 config keys to
values), and chooses the device (``auto``: the GPU when one is present).

Training data are COCO documents (:mod:`nanoforge.tem.coco`): the synthetic images of
:mod:`nanoforge.tem.simulate` plus any labelled images listed in config, each restricted to
a given list of image keys (so an image that is evaluated is never trained on). Each set is
registered in Detectron2's ``DatasetCatalog``.

Images are read as grayscale (RGB figures are converted by luminance), stretched between
two percentiles to 0..255 and fed to the network as one channel, in training and inference
alike. Training crops random windows of ``NANOFORGE.CROP_SIZE`` pixels after a random
rescale in ``NANOFORGE.SCALE_RANGE`` (log-uniform), with flips, 90-degree rotations and
brightness/contrast/gamma jitter.

Training behaviour is added through hooks of Detectron2's ``DefaultTrainer`` (checkpointing
every ``SOLVER.CHECKPOINT_PERIOD`` iterations, keeping the last ``CHECKPOINTS_TO_KEEP`` and
the final one, over all runs that wrote into the folder; a JSON metrics log).
Checkpoints live in ``<output_dir>/checkpoints/<fingerprint>/``, where the fingerprint
hashes the config (all but the iteration count) and the training images: a killed run with
the same config resumes from its newest readable checkpoint (a truncated or unsafe one is
moved aside to ``*.unreadable`` and logged), a raised ``SOLVER.MAX_ITER`` continues from it,
a lowered one trains afresh; any other change starts afresh in a new folder. The metrics
log is cut at the resumed iteration, so its iterations keep increasing.

Config files and checkpoints are read without running code from them
(:mod:`nanoforge.safe_io`: safe YAML, ``torch.load(weights_only=True)``), also inside
Detectron2's checkpointer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from nanoforge.safe_io import SafeLoadError, UnreadableFileError, load_yaml_safely
from nanoforge.safe_torch import load_torch_state
from nanoforge.tem import coco

LOG = logging.getLogger("nanoforge.detector")

REPO_CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "detectron2"
DEFAULT_CONFIG = REPO_CONFIG_DIR / "faster_rcnn_R18_FPN_scratch.yaml"


class DetectorError(RuntimeError):
    """A problem with the detector's config, data or checkpoint; the message says which."""


def _d2():
    """Import Detectron2 with a clear message when it is missing."""
    try:
        import detectron2
    except ImportError as exc:  # pragma: no cover - exercised only without detectron2
        raise DetectorError(
            "detectron2 is not installed: run `make setup` or "
            "`bash workflow/setup/install_detectron2.sh .venv/bin/python`"
        ) from exc
    return detectron2


# ---------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------


def add_nanoforge_config(cfg) -> None:
    """Add the ``NANOFORGE`` node (this module's data settings) with its defaults."""
    from detectron2.config import CfgNode as CN

    cfg.NANOFORGE = CN()
    cfg.NANOFORGE.CROP_SIZE = 256  # training crop (pixels, square)
    cfg.NANOFORGE.SCALE_RANGE = (0.5, 2.0)  # random rescale before cropping (log-uniform)
    cfg.NANOFORGE.ROTATE_90 = True  # random 90-degree rotations
    cfg.NANOFORGE.VERTICAL_FLIP = True
    cfg.NANOFORGE.CONTRAST_RANGE = (0.7, 1.3)
    cfg.NANOFORGE.BRIGHTNESS_RANGE = (-20.0, 20.0)  # grey levels
    cfg.NANOFORGE.GAMMA_RANGE = (0.8, 1.25)
    cfg.NANOFORGE.NORMALIZE_PERCENTILES = (0.5, 99.5)
    cfg.NANOFORGE.MIN_BOX_SIZE = 2.0  # drop training boxes smaller than this after cropping (px)
    cfg.NANOFORGE.TEST_SCALES = (1.0,)  # inference scales; detections are merged by NMS
    # Small particles: when the median size of the confident detections is below this many
    # pixels, detect again on the image enlarged by target / median (at most MAX) and keep
    # that result (0 = off). FPN's finest level (stride 4) misses particles of a few pixels.
    cfg.NANOFORGE.ADAPTIVE_SCALE_TARGET = 0.0
    cfg.NANOFORGE.ADAPTIVE_SCALE_MAX = 3.0
    cfg.NANOFORGE.ADAPTIVE_SCALE_MIN_GAIN = 1.3  # rescale only when the factor is at least this
    cfg.NANOFORGE.ADAPTIVE_SCALE_MIN_SCORE = 0.5  # detections that define the median size
    # Training sees what inference will see: with this probability, a training image whose
    # median particle is small enough to be enlarged at inference is enlarged the same way
    # (times a log-uniform factor in 0.8-1.25) instead of drawing from SCALE_RANGE.
    cfg.NANOFORGE.ADAPTIVE_SCALE_TRAIN_PROB = 0.0
    cfg.NANOFORGE.CHECKPOINTS_TO_KEEP = 2


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is usable, else ``cpu``; other values are checked."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DetectorError(f"device {device!r} requested but no CUDA GPU is available (use 'auto' or 'cpu')")
    if device != "cpu" and not device.startswith("cuda"):
        raise DetectorError(f"unknown device {device!r}: use auto, cpu or cuda[:N]")
    return device


def read_config_file(path: str | Path, _chain: tuple = ()) -> dict:
    """A Detectron2 YAML config file as a dict, with its ``_BASE_`` file(s) merged underneath
    (paths relative to the file; a list is merged in order), as Detectron2 reads it but
    through :func:`nanoforge.safe_io.load_yaml_safely`: a Python tag is refused
    (:class:`DetectorError` naming the file), never executed."""
    path = Path(path).expanduser()
    if path.resolve() in _chain:
        raise DetectorError(f"{path}: _BASE_ includes itself ({' -> '.join(str(p) for p in _chain)})")
    if not path.is_file():
        raise DetectorError(f"detector config file not found: {path}"
                            + (f" (the _BASE_ of {_chain[-1]})" if _chain else ""))
    try:
        data = load_yaml_safely(path)
    except SafeLoadError as exc:
        raise DetectorError(str(exc)) from exc
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise DetectorError(f"{path}: a Detectron2 config must be a mapping, found {type(data).__name__}")
    bases = data.pop("_BASE_", None)
    if bases is None:
        return data
    merged: dict = {}
    for base in [bases] if isinstance(bases, str) else list(bases):
        if not isinstance(base, str) or base.startswith(("http://", "https://")):
            raise DetectorError(f"{path}: _BASE_ must name local YAML files, found {base!r}")
        base_path = Path(base).expanduser()
        if not base_path.is_absolute():
            base_path = path.parent / base_path
        _merge_into(read_config_file(base_path, _chain + (path.resolve(),)), merged, path)
    _merge_into(data, merged, path)
    return merged


def _merge_into(a: dict, b: dict, path: Path) -> None:
    """Merge mapping ``a`` into ``b`` in place (values of ``a`` win; sub-mappings merge)."""
    for key, value in a.items():
        if isinstance(value, dict) and key in b:
            if not isinstance(b[key], dict):
                raise DetectorError(f"{path}: cannot merge the mapping {key} into its _BASE_'s non-mapping value")
            _merge_into(value, b[key], path)
        else:
            b[key] = value


def load_config(
    config_file: str | Path = DEFAULT_CONFIG,
    overrides: dict | None = None,
    device: str = "auto",
    seed: int | None = None,
):
    """The Detectron2 config of the detector: defaults + NANOFORGE node + ``config_file`` +
    ``overrides`` (``{"SOLVER.MAX_ITER": 100, ...}``) + the resolved device and seed."""
    _d2()
    from detectron2.config import get_cfg

    config_file = Path(config_file)
    cfg = get_cfg()
    add_nanoforge_config(cfg)
    loaded = type(cfg)(read_config_file(config_file))
    version = loaded.get("VERSION", cfg.VERSION)
    if version != cfg.VERSION:
        raise DetectorError(f"{config_file}: Detectron2 config VERSION {version}; this detector reads "
                            f"VERSION {cfg.VERSION} files")
    try:
        cfg.merge_from_other_cfg(loaded)
    except (KeyError, AssertionError, ValueError) as exc:
        raise DetectorError(f"{config_file}: invalid Detectron2 config: {exc}") from exc
    if overrides:
        opts: list = []
        for key, value in overrides.items():
            opts += [key, value]
        try:
            cfg.merge_from_list(opts)
        except (KeyError, AssertionError, ValueError) as exc:
            raise DetectorError(f"detector override {overrides}: {exc}") from exc
    cfg.MODEL.DEVICE = resolve_device(device)
    if seed is not None:
        cfg.SEED = int(seed)
    if cfg.MODEL.WEIGHTS:
        raise DetectorError(
            f"{config_file}: MODEL.WEIGHTS must be empty (models are trained from scratch here; "
            "no pretrained weights can be downloaded)"
        )
    channels = len(cfg.MODEL.PIXEL_MEAN)
    if channels != 1 or len(cfg.MODEL.PIXEL_STD) != 1:
        raise DetectorError(f"{config_file}: PIXEL_MEAN/PIXEL_STD must have one value (grayscale input)")
    cfg.freeze()
    return cfg


# ---------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------


def to_gray(arr: np.ndarray) -> np.ndarray:
    """An image array (2-D, or H x W x 3/4) -> 2-D float32 grayscale."""
    arr = np.asarray(arr)
    if arr.ndim == 3:
        if arr.shape[2] in (3, 4):
            arr = arr[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        elif arr.shape[2] == 1:
            arr = arr[..., 0]
    if arr.ndim != 2:
        raise DetectorError(f"expected a 2-D grayscale or RGB image, got shape {arr.shape}")
    return arr.astype(np.float32)


def normalize_image(gray: np.ndarray, percentiles: Sequence[float] = (0.5, 99.5)) -> np.ndarray:
    """Linear stretch between two percentiles to uint8 0..255 (the network's input scale)."""
    gray = to_gray(gray)
    lo, hi = np.percentile(gray, [float(percentiles[0]), float(percentiles[1])])
    if hi <= lo:
        lo, hi = float(gray.min()), float(gray.max())
    if hi <= lo:
        return np.full(gray.shape, 128, np.uint8)
    out = (gray - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def read_gray(path: str | Path) -> np.ndarray:
    """Read an image file as 2-D float32 grayscale (PNG/JPEG/TIFF via Pillow)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.mode == "P":
                im = im.convert("RGB")
            arr = np.asarray(im)
    except (OSError, ValueError) as exc:
        raise DetectorError(f"cannot read image {path}: {exc}") from exc
    return to_gray(arr)


@lru_cache(maxsize=512)
def _normalized_cached(path: str, percentiles: tuple) -> np.ndarray:
    out = normalize_image(read_gray(path), percentiles)
    out.flags.writeable = False  # shared between iterations: never modified in place
    return out


# ---------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------


@dataclass
class TrainSet:
    """One training image set: a COCO document, the folder its file names are relative to,
    and (optionally) the image keys to use (``None``: all of its images)."""

    name: str
    annotations: str | Path | dict
    image_root: str | Path
    image_keys: list[str] | None = None
    repeat: int = 1  # how often each image appears per pass (balances small labelled sets)

    def document(self) -> dict:
        doc = self.annotations if isinstance(self.annotations, dict) else coco.read_coco(self.annotations)
        keys = {coco.image_key(img) for img in doc["images"]}
        if self.image_keys is not None:
            missing = sorted(set(self.image_keys) - keys)
            if missing:
                raise DetectorError(f"training set {self.name!r}: image keys not in its annotations: {missing[:5]}")
            keys = set(self.image_keys)
        return coco.subset(doc, keys)


def dataset_dicts(doc: dict, image_root: str | Path, name: str = "dataset") -> list[dict]:
    """COCO document -> Detectron2 dataset dicts (boxes only, class 0 = particle)."""
    from detectron2.structures import BoxMode

    image_root = Path(image_root)
    by_image = coco.annotations_by_image(doc)
    out = []
    for img in doc["images"]:
        path = image_root / img["file_name"]
        if not path.is_file():
            raise DetectorError(f"training set {name!r}: image file not found: {path}")
        annos = []
        for a in by_image[img["id"]]:
            x, y, w, h = (float(v) for v in a["bbox"])
            if w <= 0 or h <= 0:
                continue
            annos.append({"bbox": [x, y, w, h], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0,
                          "iscrowd": int(a.get("iscrowd", 0))})
        out.append({"file_name": str(path), "image_key": coco.image_key(img), "height": int(img["height"]),
                    "width": int(img["width"]), "image_id": f"{name}:{img['id']}", "annotations": annos})
    return out


def register_train_sets(sets: Sequence[TrainSet]) -> list[str]:
    """Register each set in Detectron2's DatasetCatalog (replacing a same-named one); returns
    the registered names."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    names = []
    for s in sets:
        doc = s.document()
        dicts = dataset_dicts(doc, s.image_root, s.name) * max(1, int(s.repeat))
        reg = f"nanoforge_{s.name}"
        if reg in DatasetCatalog.list():
            DatasetCatalog.remove(reg)
            MetadataCatalog.remove(reg)
        DatasetCatalog.register(reg, lambda d=dicts: d)
        MetadataCatalog.get(reg).set(thing_classes=["particle"])
        names.append(reg)
    return names


# ---------------------------------------------------------------------------------------
# training-time mapping and augmentation
# ---------------------------------------------------------------------------------------


def adaptive_enlargement(boxes: np.ndarray, c) -> float | None:
    """The enlargement that brings the median of ``boxes`` (x0, y0, x1, y1; size = sqrt of
    the area) to ``c.ADAPTIVE_SCALE_TARGET`` pixels, at most ``c.ADAPTIVE_SCALE_MAX``; None
    when it is off, there are fewer than 3 boxes, or the gain is below
    ``c.ADAPTIVE_SCALE_MIN_GAIN`` (``c``: the NANOFORGE config node)."""
    if c.ADAPTIVE_SCALE_TARGET <= 0 or len(boxes) < 3:
        return None
    size = float(np.median(np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None)
                                   * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))))
    if size <= 0:
        return None
    s = min(float(c.ADAPTIVE_SCALE_MAX), float(c.ADAPTIVE_SCALE_TARGET) / size)
    return s if s >= float(c.ADAPTIVE_SCALE_MIN_GAIN) else None


class ParticleMapper:
    """Dataset dict -> model input (grayscale tensor + box instances), with augmentation."""

    def __init__(self, cfg, is_train: bool = True):
        import detectron2.data.transforms as T

        self.cfg = cfg.NANOFORGE
        self.is_train = is_train
        self.percentiles = tuple(float(p) for p in self.cfg.NORMALIZE_PERCENTILES)
        self._T = T

    def _train_scale(self, rng: np.random.Generator, boxes: np.ndarray) -> float:
        """The rescale factor of one training sample: SCALE_RANGE (log-uniform), or, with
        probability ADAPTIVE_SCALE_TRAIN_PROB, the enlargement inference would apply to an
        image with these particles (:func:`adaptive_enlargement`, as at inference)."""
        c = self.cfg
        lo, hi = (float(v) for v in c.SCALE_RANGE)
        s = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        p = float(c.ADAPTIVE_SCALE_TRAIN_PROB)
        if p > 0 and rng.random() < p:
            a = adaptive_enlargement(boxes, c)
            if a is not None:
                s = a * math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
        return s

    def _augmentations(self, rng: np.random.Generator, h: int, w: int, boxes: np.ndarray):
        T = self._T
        c = self.cfg
        s = self._train_scale(rng, boxes)
        nh, nw = max(8, int(round(h * s))), max(8, int(round(w * s)))
        tfms = [T.ResizeTransform(h, w, nh, nw)]
        crop = int(c.CROP_SIZE)
        ch, cw = min(crop, nh), min(crop, nw)
        y0 = int(rng.integers(0, nh - ch + 1))
        x0 = int(rng.integers(0, nw - cw + 1))
        tfms.append(T.CropTransform(x0, y0, cw, ch))
        if rng.random() < 0.5:
            tfms.append(T.HFlipTransform(cw))
        if c.VERTICAL_FLIP and rng.random() < 0.5:
            tfms.append(T.VFlipTransform(ch))
        return T.TransformList(tfms), (ch, cw), bool(c.ROTATE_90 and rng.random() < 0.5)

    def _intensity(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.cfg
        x = img.astype(np.float32) / 255.0
        g = math.exp(rng.uniform(math.log(c.GAMMA_RANGE[0]), math.log(c.GAMMA_RANGE[1])))
        x = np.power(np.clip(x, 0, 1), g)
        a = rng.uniform(*c.CONTRAST_RANGE)
        b = rng.uniform(*c.BRIGHTNESS_RANGE) / 255.0
        x = (x - x.mean()) * a + x.mean() + b
        return np.clip(x * 255.0, 0, 255).astype(np.float32)

    def __call__(self, d: dict) -> dict:
        from detectron2.structures import Boxes, BoxMode, Instances

        img = _normalized_cached(d["file_name"], self.percentiles)
        if img.shape != (d["height"], d["width"]):
            raise DetectorError(
                f"{d['file_name']}: image is {img.shape[1]}x{img.shape[0]} but its annotations say "
                f"{d['width']}x{d['height']}"
            )
        boxes = np.array(
            [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]
             if not a.get("iscrowd", 0)],
            dtype=np.float64,
        ).reshape(-1, 4)
        out = {"height": img.shape[0], "width": img.shape[1], "image_id": d["image_id"]}
        if self.is_train:
            seed = int(np.random.randint(0, 2**31 - 1))  # from the global RNG, seeded per run
            rng = np.random.default_rng(seed)
            tfm, (h, w), rot = self._augmentations(rng, *img.shape, boxes)
            img = tfm.apply_image(img)
            boxes = tfm.apply_box(boxes) if len(boxes) else boxes
            if rot:  # 90-degree rotation (counter-clockwise), exact for boxes
                img = np.ascontiguousarray(np.rot90(img))
                x0, y0, x1, y1 = boxes.T if len(boxes) else (np.empty(0),) * 4
                boxes = np.stack([y0, w - x1, y1, w - x0], axis=1) if len(boxes) else boxes
                h, w = w, h
            img = self._intensity(img, rng)
            if len(boxes):
                boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
                boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
                size = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
                boxes = boxes[size >= float(self.cfg.MIN_BOX_SIZE)]
            inst = Instances((h, w))
            inst.gt_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4))
            inst.gt_classes = torch.zeros(len(boxes), dtype=torch.int64)
            out["instances"] = inst
        out["image"] = torch.as_tensor(np.ascontiguousarray(img, dtype=np.float32)[None])
        return out


# ---------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _checkpointer_class():
    from detectron2.checkpoint import DetectionCheckpointer

    class SafeCheckpointer(DetectionCheckpointer):
        """Detectron2's checkpointer reading every file with
        :func:`nanoforge.safe_torch.load_torch_state` (``weights_only=True``, whatever the file
        name: Detectron2 itself would unpickle a ``.pkl``)."""

        def _load_file(self, filename):
            try:
                data = load_torch_state(filename)
            except (SafeLoadError, FileNotFoundError) as exc:
                raise DetectorError(str(exc)) from exc
            return data if "model" in data else {"model": data}

    return SafeCheckpointer


CHECKPOINT_NAME = re.compile(r"model_(\d{7})\.pth")


def _periodic_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """``(iteration, file)`` of the periodic checkpoints ``model_NNNNNNN.pth`` in ``ckpt_dir``,
    oldest first (``model_final.pth`` is not among them)."""
    found = [(int(m.group(1)), f) for f in ckpt_dir.glob("model_*.pth") if (m := CHECKPOINT_NAME.fullmatch(f.name))]
    return sorted(found)


def prune_checkpoints(ckpt_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` latest periodic checkpoints of ``ckpt_dir`` (by iteration,
    whichever run wrote them); ``model_final.pth`` is always kept. Returns the deleted files."""
    periodic = _periodic_checkpoints(Path(ckpt_dir))
    doomed = [f for _, f in periodic[: max(0, len(periodic) - max(1, int(keep)))]]
    for f in doomed:
        f.unlink(missing_ok=True)
        LOG.info("deleted old checkpoint %s (keeping the last %d and the final one)", f, keep)
    return doomed


def _readable_iteration(path: Path) -> int | None:
    """The iteration stored in checkpoint ``path``, or None when it cannot be read safely: the
    file is then moved aside to ``<name>.unreadable`` and the reason logged."""
    try:
        iteration = load_torch_state(path).get("iteration")
        if not isinstance(iteration, int) or iteration < 0:
            raise UnreadableFileError(f"{path}: no training iteration stored in it (not a training checkpoint)")
        return iteration
    except SafeLoadError as exc:
        aside = path.with_name(path.name + ".unreadable")
        path.replace(aside)
        LOG.warning("skipped checkpoint %s (moved aside to %s): %s", path, aside.name, exc)
        return None


def newest_readable_checkpoint(ckpt_dir: str | Path) -> tuple[Path, int] | None:
    """The newest checkpoint of ``ckpt_dir`` that can be read (``(file, iteration)``), or None.
    ``model_final.pth`` holds its iteration inside; a periodic checkpoint newer than it is
    preferred. Files that cannot be read safely are skipped, moved aside and logged
    (:func:`_readable_iteration`), so a corrupt last checkpoint never blocks training."""
    ckpt_dir = Path(ckpt_dir)
    final = ckpt_dir / "model_final.pth"
    final_iter = _readable_iteration(final) if final.is_file() else None
    for it, f in reversed(_periodic_checkpoints(ckpt_dir)):
        if final_iter is not None and it <= final_iter:
            break
        stored = _readable_iteration(f)
        if stored is not None:
            return f, stored
    return (final, final_iter) if final_iter is not None else None


def truncate_metrics(path: Path, start_iter: int) -> None:
    """Keep the lines of the JSON-lines metrics log ``path`` logged before ``start_iter`` (a
    resumed run logs the later iterations again), so that iterations stay increasing;
    unparseable lines (a run killed while writing) are dropped."""
    if not path.is_file():
        return
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
            ok = int(row["iteration"]) < start_iter
        except (ValueError, KeyError, TypeError):
            ok = False
        if ok:
            kept.append(line)
        else:
            dropped += bool(line.strip())
    if dropped:
        LOG.info("%s: dropped %d line(s) logged at or after iteration %d (or unreadable)", path, dropped, start_iter)
        path.write_text("".join(line + "\n" for line in kept))


def _trainer_class():
    from detectron2.engine import DefaultTrainer, hooks
    from detectron2.data import build_detection_train_loader, get_detection_dataset_dicts
    from detectron2.data.samplers import TrainingSampler
    from detectron2.utils.events import CommonMetricPrinter, JSONWriter

    class PruningCheckpointer(hooks.PeriodicCheckpointer):
        """Periodic checkpoints; after each, only the last ``keep`` (over all runs that wrote
        into the folder, resumed ones included) and the final one remain."""

        def __init__(self, checkpointer, period: int, keep: int):
            super().__init__(checkpointer, period)
            self.keep = int(keep)

        def step(self, iteration: int, **kwargs) -> None:
            super().step(iteration, **kwargs)
            if (int(iteration) + 1) % self.period == 0:
                prune_checkpoints(self.checkpointer.save_dir, self.keep)

    class DetectorTrainer(DefaultTrainer):
        """DefaultTrainer with nanoforge's data mapping, writers, safe checkpoint loading and
        checkpoint policy."""

        @classmethod
        def build_train_loader(cls, cfg):
            dicts = get_detection_dataset_dicts(list(cfg.DATASETS.TRAIN), filter_empty=False)
            return build_detection_train_loader(
                dicts,
                mapper=ParticleMapper(cfg, is_train=True),
                sampler=TrainingSampler(len(dicts), shuffle=True, seed=cfg.SEED),
                total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
                aspect_ratio_grouping=False,
                num_workers=cfg.DATALOADER.NUM_WORKERS,
            )

        def build_writers(self):
            return [CommonMetricPrinter(self.max_iter),
                    JSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"))]

        def build_hooks(self):
            # DefaultTrainer.__init__ made a DetectionCheckpointer just before calling this:
            # the same checkpointables, read safely (resume_or_load uses self.checkpointer).
            old = self.checkpointer
            self.checkpointer = _checkpointer_class()(old.model, old.save_dir, **old.checkpointables)
            out = []
            for h in super().build_hooks():
                if isinstance(h, hooks.PeriodicCheckpointer):
                    h = PruningCheckpointer(self.checkpointer, self.cfg.SOLVER.CHECKPOINT_PERIOD,
                                            keep=int(self.cfg.NANOFORGE.CHECKPOINTS_TO_KEEP))
                elif isinstance(h, hooks.EvalHook):
                    continue  # evaluation is its own workflow step
                out.append(h)
            return out

    return DetectorTrainer


def fingerprint(cfg, sets: Sequence[TrainSet]) -> str:
    """Hash of the training config and images: the checkpoint folder's name. The iteration
    count is left out, so that raising ``SOLVER.MAX_ITER`` continues the same training from
    its last checkpoint (the cosine schedule is then stretched to the new length: the
    learning rate rises again, a warm restart) instead of starting over."""
    c = cfg.clone()
    c.defrost()
    c.OUTPUT_DIR = ""
    c.SOLVER.MAX_ITER = 0
    c.DATASETS.TRAIN = ()
    h = hashlib.sha256(c.dump().encode())
    for s in sets:
        doc = s.document()
        h.update(s.name.encode())
        h.update(str(int(s.repeat)).encode())
        for img in doc["images"]:
            h.update(coco.image_key(img).encode())
        h.update(str(len(doc["annotations"])).encode())
    return h.hexdigest()[:16]


def train_detector(
    train_sets: Sequence[TrainSet],
    output_dir: str | Path,
    config_file: str | Path = DEFAULT_CONFIG,
    overrides: dict | None = None,
    device: str = "auto",
    seed: int = 0,
    threads: int | None = None,
    resume: bool = True,
) -> dict:
    """Train the detector; returns a summary dict. Writes into ``output_dir``:
    ``model_final.pth`` (weights only), ``config.yaml`` (the full Detectron2 config to rebuild
    the model), ``metrics.json`` (one JSON line per logged iteration) and, while training,
    ``checkpoints/<fingerprint>/`` (resumable state: the last ``CHECKPOINTS_TO_KEEP`` checkpoints and the final one).
    With ``resume``, training continues from the newest readable checkpoint there
    (:func:`newest_readable_checkpoint`); without, that folder is emptied first."""
    _d2()
    from detectron2.utils.env import seed_all_rng
    from detectron2.utils.logger import setup_logger

    if not train_sets:
        raise DetectorError("no training images: give at least one training set")
    if threads:
        torch.set_num_threads(int(threads))
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    setup_logger(output=None, name="detectron2")
    base = load_config(config_file, overrides, device, seed)
    names = register_train_sets(train_sets)
    n_images = {s.name: len(s.document()["images"]) for s in train_sets}
    if sum(n_images.values()) == 0:
        raise DetectorError(f"the training sets hold no images: {n_images}")
    fp = fingerprint(base, train_sets)
    ckpt_dir = output_dir / "checkpoints" / fp
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    cfg = base.clone()
    cfg.defrost()
    cfg.DATASETS.TRAIN = tuple(names)
    cfg.DATASETS.TEST = ()
    cfg.OUTPUT_DIR = str(ckpt_dir)
    cfg.freeze()

    found = newest_readable_checkpoint(ckpt_dir) if resume else None
    if found is not None and found[1] >= cfg.SOLVER.MAX_ITER:
        LOG.info("%s holds a longer training (%d iterations) than asked (%d): training afresh",
                 ckpt_dir, found[1] + 1, cfg.SOLVER.MAX_ITER)
        found = None
    if found is None:  # training afresh: nothing of an earlier run is kept but unreadable files
        for f in ckpt_dir.iterdir():
            if not f.name.endswith(".unreadable"):
                f.unlink()
    else:  # resume from the newest readable checkpoint, whatever last_checkpoint says
        (ckpt_dir / "last_checkpoint").write_text(found[0].name)
        prune_checkpoints(ckpt_dir, int(cfg.NANOFORGE.CHECKPOINTS_TO_KEEP))
    trainer = _trainer_class()(cfg)
    trainer.resume_or_load(resume=found is not None)
    start_iter = trainer.start_iter
    # The metrics writer appends (O_APPEND) and has written nothing yet: cut the log in place.
    truncate_metrics(ckpt_dir / "metrics.json", start_iter)
    # Seed after resuming so that a resumed run draws fresh (but reproducible) augmentations.
    seed_all_rng(int(cfg.SEED) + start_iter)
    if start_iter:
        LOG.info("resuming from %s at iteration %d", found[0], start_iter)
    t0 = time.time()
    if start_iter < cfg.SOLVER.MAX_ITER:
        trainer.train()
    elapsed = time.time() - t0

    # Outputs: weights only (no optimizer state), the exact config, the metrics log.
    torch.save({"model": trainer.model.state_dict(), "iteration": int(cfg.SOLVER.MAX_ITER)},
               output_dir / "model_final.pth")
    out_cfg = cfg.clone()
    out_cfg.defrost()
    out_cfg.DATASETS.TRAIN = ()
    out_cfg.OUTPUT_DIR = ""
    (output_dir / "config.yaml").write_text(out_cfg.dump())
    metrics_src = ckpt_dir / "metrics.json"
    if metrics_src.is_file():
        shutil.copyfile(metrics_src, output_dir / "metrics.json")
    else:
        (output_dir / "metrics.json").write_text("")
    summary = {
        "fingerprint": fp,
        "device": cfg.MODEL.DEVICE,
        "max_iter": int(cfg.SOLVER.MAX_ITER),
        "start_iter": int(start_iter),
        "seconds": round(elapsed, 1),
        "seconds_per_iter": round(elapsed / max(1, cfg.SOLVER.MAX_ITER - start_iter), 3),
        "images": n_images,
        "ims_per_batch": int(cfg.SOLVER.IMS_PER_BATCH),
        "crop_size": int(cfg.NANOFORGE.CROP_SIZE),
    }
    return summary


def read_metrics(path: str | Path) -> list[dict]:
    """The JSON-lines metrics log written during training (one dict per logged iteration)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line:
            rows.append(json.loads(line))
    return rows


# ---------------------------------------------------------------------------------------
# inference
# ---------------------------------------------------------------------------------------


@dataclass
class Detections:
    boxes: np.ndarray  # (N, 4) x0, y0, x1, y1 in pixels of the input image
    scores: np.ndarray  # (N,)
    scale: float = 1.0  # the adaptive enlargement used (1.0: none)

    def __len__(self) -> int:
        return len(self.scores)


class ParticleDetector:
    """A trained detector: ``predict(image) -> Detections``."""

    def __init__(self, cfg, weights: str | Path | None = None):
        _d2()
        from detectron2.modeling import build_model

        self.cfg = cfg
        self.model = build_model(cfg)
        self.model.eval()
        if weights is not None:
            weights = Path(weights)
            if not weights.is_file():
                raise DetectorError(f"detector weights not found: {weights}")
            _checkpointer_class()(self.model).load(str(weights))
        self.percentiles = tuple(float(p) for p in cfg.NANOFORGE.NORMALIZE_PERCENTILES)

    @classmethod
    def from_output(cls, model_dir: str | Path, device: str = "auto", overrides: dict | None = None):
        """Load the model that :func:`train_detector` wrote into ``model_dir``."""
        model_dir = Path(model_dir)
        cfg = load_config(model_dir / "config.yaml", overrides, device)
        return cls(cfg, model_dir / "model_final.pth")

    @torch.no_grad()
    def predict(self, image: np.ndarray, scales: Iterable[float] | None = None,
                adaptive: bool = True) -> Detections:
        """Boxes and scores of the particles in ``image`` (2-D gray or RGB, any range), at
        ``scales`` (default NANOFORGE.TEST_SCALES), then, with ``adaptive`` and
        NANOFORGE.ADAPTIVE_SCALE_TARGET set, again at a larger scale if the particles are
        small (see :func:`add_nanoforge_config`)."""
        img = normalize_image(image, self.percentiles)
        scales = tuple(scales) if scales is not None else tuple(self.cfg.NANOFORGE.TEST_SCALES)
        det = self._predict_normalized(img, scales)
        c = self.cfg.NANOFORGE
        if adaptive and c.ADAPTIVE_SCALE_TARGET > 0:
            s = self.adaptive_scale(det)
            if s is not None:
                det = self._predict_normalized(img, (s,))
                det.scale = s
        return det

    def adaptive_scale(self, det: "Detections") -> float | None:
        """The enlargement that brings the median particle to ADAPTIVE_SCALE_TARGET pixels,
        or None when no enlargement is needed (or too few confident detections)."""
        c = self.cfg.NANOFORGE
        return adaptive_enlargement(det.boxes[det.scores >= c.ADAPTIVE_SCALE_MIN_SCORE], c)

    def _predict_normalized(self, img: np.ndarray, scales: tuple) -> "Detections":
        from torchvision.ops import nms

        h, w = img.shape
        all_boxes, all_scores = [], []
        for s in scales:
            if s == 1.0:
                x = img
            else:
                nh, nw = max(8, int(round(h * s))), max(8, int(round(w * s)))
                x = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
            t = torch.as_tensor(x.astype(np.float32)[None], device=self.cfg.MODEL.DEVICE)
            inst = self.model([{"image": t, "height": h, "width": w}])[0]["instances"].to("cpu")
            all_boxes.append(inst.pred_boxes.tensor)
            all_scores.append(inst.scores)
        boxes = torch.cat(all_boxes) if all_boxes else torch.zeros((0, 4))
        scores = torch.cat(all_scores) if all_scores else torch.zeros(0)
        if len(scales) > 1 and len(scores):
            keep = nms(boxes, scores, float(self.cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST))
            keep = keep[: int(self.cfg.TEST.DETECTIONS_PER_IMAGE)]
            boxes, scores = boxes[keep], scores[keep]
        order = torch.argsort(scores, descending=True)
        return Detections(boxes[order].numpy().astype(np.float64), scores[order].numpy().astype(np.float64))

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """``(boxes, scores, scale)`` of :meth:`predict` (the form nanoforge.tem.weak_labels
        takes; ``scale``: the adaptive enlargement used, 1.0 for none)."""
        d = self.predict(image)
        return d.boxes, d.scores, float(d.scale)


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------


def plot_training(metrics_path: str | Path, out_path: str | Path, summary: dict | None = None) -> None:
    """Training losses (total, RPN and box-head terms) against iteration."""
    from nanoforge.plotting import pyplot, save_figure

    plt = pyplot()

    rows = [r for r in read_metrics(metrics_path) if "total_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    if rows:
        it = [r["iteration"] for r in rows]
        for key in ("total_loss", "loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"):
            if key in rows[0]:
                ax.plot(it, [r.get(key, float("nan")) for r in rows], label=key, lw=2 if key == "total_loss" else 1)
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no metrics logged", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    title = "Particle detector (Faster R-CNN, from scratch)"
    if summary:
        title += (f"\n{summary.get('max_iter')} iterations, batch {summary.get('ims_per_batch')}, "
                  f"crop {summary.get('crop_size')} px, {summary.get('device')}, "
                  f"{summary.get('seconds_per_iter')} s/iteration")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, out_path, dpi="figure")
