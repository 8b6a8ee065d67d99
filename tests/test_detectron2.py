"""Detectron2: the install script (patched pure-Python sdist), the detector config in the
repository, a few training iterations that checkpoint and resume, and inference."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import malicious_checkpoint, malicious_yaml
from nanoforge.tem import coco
from nanoforge.tem.detector import (
    DEFAULT_CONFIG,
    Detections,
    DetectorError,
    ParticleDetector,
    ParticleMapper,
    TrainSet,
    load_config,
    normalize_image,
    read_metrics,
    train_detector,
)

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "workflow" / "setup" / "install_detectron2.sh"
PATCHER = REPO / "workflow" / "setup" / "patch_detectron2.py"


# ---------------------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------------------


def test_detectron2_is_installed_with_the_patches():
    import detectron2
    import detectron2._nanoforge_patch as marker
    from detectron2 import _C, model_zoo

    assert detectron2.__version__ == "0.6"
    level = int(next(line.split("=")[1] for line in PATCHER.read_text().splitlines()
                     if line.startswith("PATCH_LEVEL =")))
    assert marker.PATCH_LEVEL == level
    # the model-zoo configs ship with the package
    assert Path(model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")).is_file()
    # the C extension stand-in fails clearly when an operator that needs it is used
    with pytest.raises(RuntimeError, match="without its C[+][+]/CUDA extension"):
        _C.box_iou_rotated
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated

    with pytest.raises(RuntimeError, match="Rotated boxes"):
        pairwise_iou_rotated(torch.zeros((1, 5)), torch.zeros((1, 5)))


def test_install_script_skips_when_installed():
    proc = subprocess.run(["bash", str(INSTALL), sys.executable], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "already installed" in proc.stderr


def test_install_script_rejects_a_wrong_sdist(tmp_path):
    bad = tmp_path / "pb1-detectron2-0.6.tar.gz"
    bad.write_bytes(b"not the sdist")
    env = dict(os.environ, NANOFORGE_D2_SDIST=str(bad), NANOFORGE_D2_FORCE="1")
    proc = subprocess.run(["bash", str(INSTALL), sys.executable], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode != 0
    assert "expected 5d2e9e51" in proc.stderr


def test_install_script_fails_clearly_without_python():
    proc = subprocess.run(["bash", str(INSTALL), "/nonexistent/python"], capture_output=True, text=True)
    assert proc.returncode != 0 and "not found" in proc.stderr


def test_patcher_refuses_a_foreign_tree(tmp_path):
    (tmp_path / "detectron2").mkdir()
    (tmp_path / "detectron2" / "__init__.py").write_text('__version__ = "0.7"\n')
    (tmp_path / "setup.py").write_text("version_line = 1\n")
    proc = subprocess.run([sys.executable, str(PATCHER), str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 1 and "not detectron2 version 0.6" in proc.stderr


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs tar")
def test_install_from_the_pinned_sdist_into_a_fresh_environment(tmp_path):
    """The real install path: download (or cache), verify, patch, pip install, import check,
    into a new venv that sees the project venv's other packages through a .pth file."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    parent_site = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (site / "parent.pth").write_text(parent_site + "\n")
    py = venv / "bin" / "python"
    env = dict(os.environ, NANOFORGE_D2_FORCE="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(["bash", str(INSTALL), str(py)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    where = subprocess.run([str(py), "-c", "import detectron2; print(detectron2.__file__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(site)), where
    assert not (Path(where).parent / "_C.so").exists()
    assert not any(Path(where).parent.glob("_C*.so"))


# ---------------------------------------------------------------------------------------
# config and model
# ---------------------------------------------------------------------------------------


def test_model_builds_from_the_repo_config_and_runs_on_cpu():
    from detectron2.modeling import build_model

    cfg = load_config(DEFAULT_CONFIG, device="cpu")
    assert cfg.MODEL.RESNETS.NORM in ("BN", "GN", "SyncBN") and cfg.MODEL.WEIGHTS == ""
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 1 and cfg.INPUT.FORMAT == "L"
    model = build_model(cfg).eval()
    assert not any(type(m).__name__ == "FrozenBatchNorm2d" for m in model.modules())
    with torch.no_grad():
        out = model([{"image": torch.rand(1, 96, 128) * 255, "height": 96, "width": 128}])
    inst = out[0]["instances"]
    assert inst.image_size == (96, 128) and inst.pred_boxes.tensor.shape[1] == 4


def test_mask_rcnn_from_the_model_zoo_config_forward_pass_on_cpu():
    """Mask R-CNN (the next stage) works without the C extension: train step and inference."""
    from detectron2 import model_zoo
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model
    from detectron2.structures import BitMasks, Boxes, Instances
    from detectron2.utils.events import EventStorage

    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"),
                        allow_unsafe=False)
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "MODEL.RESNETS.DEPTH", 18,
                         "MODEL.RESNETS.RES2_OUT_CHANNELS", 64, "MODEL.RESNETS.NORM", "BN",
                         "MODEL.BACKBONE.FREEZE_AT", 0, "MODEL.ROI_HEADS.NUM_CLASSES", 1])
    model = build_model(cfg)
    inst = Instances((64, 64))
    inst.gt_boxes = Boxes(torch.tensor([[10.0, 10, 30, 30]]))
    inst.gt_classes = torch.zeros(1, dtype=torch.int64)
    masks = torch.zeros((1, 64, 64), dtype=torch.bool)
    masks[0, 10:30, 10:30] = True
    inst.gt_masks = BitMasks(masks)
    with EventStorage(0):
        losses = model([{"image": torch.rand(3, 64, 64) * 255, "instances": inst}])
    assert {"loss_mask", "loss_cls", "loss_box_reg"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        out = model([{"image": torch.rand(3, 64, 64) * 255}])
    assert out[0]["instances"].has("pred_masks") or len(out[0]["instances"]) == 0


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(DetectorError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(DetectorError, match="SOLVER.NO_SUCH_KEY|NO_SUCH_KEY"):
        load_config(DEFAULT_CONFIG, {"SOLVER.NO_SUCH_KEY": 1})
    with pytest.raises(DetectorError, match="from scratch"):
        load_config(DEFAULT_CONFIG, {"MODEL.WEIGHTS": "detectron2://ImageNetPretrained/MSRA/R-50.pkl"})
    with pytest.raises(DetectorError, match="unknown device"):
        load_config(DEFAULT_CONFIG, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DetectorError, match="no CUDA GPU"):
            load_config(DEFAULT_CONFIG, device="cuda")
    cfg = load_config(DEFAULT_CONFIG, device="auto")
    assert cfg.MODEL.DEVICE == ("cuda" if torch.cuda.is_available() else "cpu")


def test_detector_config_with_a_python_tag_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "MARKER"
    evil = malicious_yaml(tmp_path / "evil.yaml", marker)
    refused = r"evil\.yaml, line 3: refused the YAML tag !!python/object/apply:os\.system"
    with pytest.raises(DetectorError, match=refused):
        load_config(evil, device="cpu")
    child = tmp_path / "child.yaml"  # the same file reached through _BASE_
    child.write_text("_BASE_: evil.yaml\nSOLVER:\n  MAX_ITER: 7\n")
    with pytest.raises(DetectorError, match=r"evil\.yaml, line 3: refused"):
        load_config(child, device="cpu")
    model_dir = tmp_path / "model"  # a trained model copied from elsewhere
    model_dir.mkdir()
    malicious_yaml(model_dir / "config.yaml", marker)
    with pytest.raises(DetectorError, match=r"model/config\.yaml, line 3: refused"):
        ParticleDetector.from_output(model_dir, device="cpu")
    assert not marker.exists()


def test_detector_config_inherits_from_its_base_files(tmp_path):
    shutil.copyfile(DEFAULT_CONFIG, tmp_path / "base.yaml")
    child = tmp_path / "child.yaml"
    child.write_text("_BASE_: base.yaml\nSOLVER:\n  MAX_ITER: 7\nNANOFORGE:\n  SCALE_RANGE: (0.6, 1.5)\n")
    assert load_config(child, device="cpu") == load_config(
        DEFAULT_CONFIG, {"SOLVER.MAX_ITER": 7, "NANOFORGE.SCALE_RANGE": (0.6, 1.5)}, "cpu")
    grandchild = tmp_path / "sub" / "grandchild.yaml"  # a list of bases, relative to the file
    grandchild.parent.mkdir()
    (tmp_path / "batch.yaml").write_text("SOLVER:\n  IMS_PER_BATCH: 2\n  MAX_ITER: 9\n")
    grandchild.write_text(f"_BASE_: [../child.yaml, {tmp_path / 'batch.yaml'}]\n")
    got = load_config(grandchild, device="cpu")
    assert (got.SOLVER.MAX_ITER, got.SOLVER.IMS_PER_BATCH, got.NANOFORGE.SCALE_RANGE) == (9, 2, (0.6, 1.5))


@pytest.mark.parametrize("text, message", [
    ("_BASE_: bad.yaml\n", "includes itself"),
    ("_BASE_: https://example.org/base.yaml\n", "local YAML files"),
    ("_BASE_: nowhere.yaml\n", r"not found: .*nowhere\.yaml \(the _BASE_ of .*bad\.yaml\)"),
    ("VERSION: 1\n", "VERSION 1"),
    ("- a list\n", r"bad\.yaml: a Detectron2 config must be a mapping"),
], ids=["loop", "remote", "missing", "old-version", "not-a-mapping"])
def test_detector_config_file_errors_name_the_file(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(DetectorError, match=message):
        load_config(tmp_path / "bad.yaml")


def test_detector_weights_that_would_run_code_are_refused_and_nothing_runs(tmp_path):
    """Also under a .pkl name, which Detectron2's own checkpointer would unpickle."""
    marker = tmp_path / "MARKER"
    cfg = load_config(DEFAULT_CONFIG, device="cpu")
    for name, legacy in (("evil.pth", False), ("evil.pkl", True)):
        with pytest.raises(DetectorError, match=rf"{name}: refused to load"):
            ParticleDetector(cfg, malicious_checkpoint(tmp_path / name, marker, legacy))
    assert not marker.exists()


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------


def _square_image(tmp_path):
    from PIL import Image

    img = np.full((60, 80), 200, np.uint8)
    img[10:20, 50:70] = 30  # one dark particle, x 50..70, y 10..20
    path = tmp_path / "sq.png"
    Image.fromarray(img).save(path)
    return path


def test_mapper_keeps_boxes_on_their_particle_under_augmentation(tmp_path):
    from detectron2.structures import BoxMode

    path = _square_image(tmp_path)
    cfg = load_config(DEFAULT_CONFIG, {"NANOFORGE.CROP_SIZE": 64, "NANOFORGE.SCALE_RANGE": (0.7, 1.5)}, "cpu")
    mapper = ParticleMapper(cfg, is_train=True)
    d = {"file_name": str(path), "height": 60, "width": 80, "image_id": "t:1",
         "annotations": [{"bbox": [50, 10, 20, 10], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0}]}
    np.random.seed(0)
    checked = 0
    for _ in range(30):
        out = mapper(d)
        img = out["image"][0].numpy()
        boxes = out["instances"].gt_boxes.tensor.numpy()
        assert img.shape == out["instances"].image_size
        assert img.shape[0] <= 64 and img.shape[1] <= 64
        if len(boxes) == 0:
            continue
        x0, y0, x1, y1 = boxes[0]
        dark = img < img.mean()  # contrast jitter keeps the particle the darkest thing
        ys, xs = np.nonzero(dark)
        assert abs(xs.min() - x0) <= 2 and abs(xs.max() + 1 - x1) <= 2, (xs.min(), xs.max(), boxes[0])
        assert abs(ys.min() - y0) <= 2 and abs(ys.max() + 1 - y1) <= 2, (ys.min(), ys.max(), boxes[0])
        checked += 1
    assert checked >= 10


def test_training_enlarges_small_particle_images_as_inference_will():
    small = np.array([[0, 0, 8, 8], [20, 20, 28, 28], [40, 0, 48, 8]], float)  # 8 px: enlarged 2.5x
    large = small * 4  # 32 px: not enlarged at inference
    rng = np.random.default_rng(0)
    cfg = load_config(DEFAULT_CONFIG, {"NANOFORGE.ADAPTIVE_SCALE_TRAIN_PROB": 1.0}, "cpu")
    mapper = ParticleMapper(cfg, is_train=True)
    s = [mapper._train_scale(rng, small) for _ in range(50)]
    assert min(s) >= 2.5 * 0.8 - 1e-9 and max(s) <= 2.5 * 1.25 + 1e-9
    s = [mapper._train_scale(rng, large) for _ in range(50)]
    assert min(s) >= 0.5 - 1e-9 and max(s) <= 2.0 + 1e-9 and max(s) > 1.5  # SCALE_RANGE
    off = ParticleMapper(load_config(DEFAULT_CONFIG, {"NANOFORGE.ADAPTIVE_SCALE_TRAIN_PROB": 0.0}, "cpu"))
    s = [off._train_scale(rng, small) for _ in range(200)]
    assert min(s) >= 0.5 - 1e-9 and max(s) <= 2.0 + 1e-9


def test_normalize_image_stretches_and_handles_rgb_and_constant():
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[..., 0] = np.arange(100).reshape(10, 10)
    out = normalize_image(rgb, (0, 100))
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    assert (normalize_image(np.full((5, 5), 7.0)) == 128).all()
    with pytest.raises(DetectorError, match="2-D"):
        normalize_image(np.zeros((2, 2, 2, 2)))


# ---------------------------------------------------------------------------------------
# training: checkpoints and resume; inference
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from nanoforge.tem.simulate import simulate_split

    out = tmp_path_factory.mktemp("syn")
    doc = simulate_split(out, "train", 3, 0, {"image_size": [96, 96], "size_px": [10, 20]})
    path = coco.write_coco(doc, out / "annotations.json")
    return TrainSet("tiny", path, out / "images")


FAST = {"SOLVER.MAX_ITER": 4, "SOLVER.IMS_PER_BATCH": 2, "SOLVER.CHECKPOINT_PERIOD": 2,
        "NANOFORGE.CROP_SIZE": 64, "SOLVER.WARMUP_ITERS": 2, "MODEL.RPN.POST_NMS_TOPK_TRAIN": 100,
        "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": 32, "TEST.DETECTIONS_PER_IMAGE": 50}


def test_training_writes_checkpoints_and_resumes(tiny_set, tmp_path):
    out = tmp_path / "det"
    s1 = train_detector([tiny_set], out, overrides=FAST, device="cpu", seed=1, threads=1)
    assert s1["start_iter"] == 0 and s1["max_iter"] == 4 and s1["images"] == {"tiny": 3}
    for name in ("model_final.pth", "config.yaml", "metrics.json"):
        assert (out / name).is_file()
    ckdir = out / "checkpoints" / s1["fingerprint"]
    assert (ckdir / "model_0000001.pth").is_file() and (ckdir / "last_checkpoint").is_file()
    iters = [r["iteration"] for r in read_metrics(out / "metrics.json") if "total_loss" in r]
    assert iters and iters[-1] == 3

    # a run killed after its checkpoint at iteration 2: only that checkpoint is left
    for f in ckdir.glob("model_*.pth"):
        if f.name != "model_0000001.pth":
            f.unlink()
    (ckdir / "last_checkpoint").write_text("model_0000001.pth")
    state = torch.load(ckdir / "model_0000001.pth", weights_only=True)
    assert state["iteration"] == 1
    s2 = train_detector([tiny_set], out, overrides=FAST, device="cpu", seed=1, threads=1)
    assert s2["fingerprint"] == s1["fingerprint"]
    assert s2["start_iter"] == 2  # continued, not restarted
    # more iterations continue the same training; fewer than the checkpoint holds start over
    s3 = train_detector([tiny_set], out, overrides={**FAST, "SOLVER.MAX_ITER": 6}, device="cpu", seed=1,
                        threads=1)
    assert s3["fingerprint"] == s1["fingerprint"] and s3["start_iter"] == 4 and s3["max_iter"] == 6
    s4 = train_detector([tiny_set], out, overrides={**FAST, "SOLVER.MAX_ITER": 2}, device="cpu", seed=1,
                        threads=1)
    assert s4["fingerprint"] == s1["fingerprint"] and s4["start_iter"] == 0
    assert not (ckdir / "model_0000005.pth").exists()
    # any other change trains afresh in its own folder
    s5 = train_detector([tiny_set], out, overrides={**FAST, "SOLVER.BASE_LR": 0.01}, device="cpu", seed=1,
                        threads=1)
    assert s5["fingerprint"] != s1["fingerprint"] and s5["start_iter"] == 0

    det = ParticleDetector.from_output(out, device="cpu")
    from PIL import Image

    img = np.asarray(Image.open(next((tiny_set.image_root).glob("*.png"))))
    d = det.predict(img)
    assert d.boxes.shape == (len(d), 4) and np.all(np.diff(d.scores) <= 0)
    assert len(d) <= 50
    if len(d):
        assert d.boxes[:, 0].min() >= 0 and d.boxes[:, 2].max() <= img.shape[1] + 1e-3
    two = det.predict(img, scales=(1.0, 1.5))
    assert two.boxes.shape[1] == 4

    # small particles are detected again on the enlarged image
    adaptive = ParticleDetector.from_output(out, device="cpu", overrides={"NANOFORGE.ADAPTIVE_SCALE_TARGET": 20.0})
    small = Detections(np.array([[0, 0, 8, 8], [10, 10, 18, 18], [20, 20, 28, 28.0]]), np.array([0.9, 0.8, 0.7]))
    assert adaptive.adaptive_scale(small) == pytest.approx(2.5)
    big = Detections(small.boxes * 4, small.scores)
    assert adaptive.adaptive_scale(big) is None  # already large enough
    assert adaptive.adaptive_scale(Detections(small.boxes, np.array([0.9, 0.2, 0.1]))) is None  # too few
    tiny = Detections(small.boxes / 4, small.scores)
    assert adaptive.adaptive_scale(tiny) == 3.0  # capped at ADAPTIVE_SCALE_MAX
    d = adaptive.predict(img)
    assert d.scale == 1.0 or d.scale >= 1.3


@pytest.fixture(scope="module")
def trained_once(tiny_set, tmp_path_factory):
    """A finished 4-iteration training (checkpoints at iterations 1 and 3, and the final one)."""
    out = tmp_path_factory.mktemp("trained") / "det"
    summary = train_detector([tiny_set], out, overrides=FAST, device="cpu", seed=1, threads=1)
    return out, summary["fingerprint"]


def _copy_training(trained_once, tmp_path) -> tuple[Path, Path]:
    out = tmp_path / "det"
    shutil.copytree(trained_once[0], out)
    ckdir = out / "checkpoints" / trained_once[1]
    assert sorted(f.name for f in ckdir.glob("*.pth")) == ["model_0000001.pth", "model_0000003.pth",
                                                           "model_final.pth"]
    return out, ckdir


def _metric_iterations(path: Path) -> list[int]:
    return [r["iteration"] for r in read_metrics(path)]


def test_resume_skips_unreadable_checkpoints(tiny_set, trained_once, tmp_path, caplog):
    """A truncated final checkpoint and a malicious last one: training goes on from the newest
    readable checkpoint, says which files it skipped and why, and runs no code."""
    import logging

    out, ckdir = _copy_training(trained_once, tmp_path)
    final = ckdir / "model_final.pth"
    final.write_bytes(final.read_bytes()[: final.stat().st_size // 3])  # a run killed while writing
    marker = tmp_path / "MARKER"
    malicious_checkpoint(ckdir / "model_0000003.pth", marker)
    caplog.set_level(logging.INFO, logger="nanoforge.detector")
    s = train_detector([tiny_set], out, overrides={**FAST, "SOLVER.MAX_ITER": 6}, device="cpu", seed=1, threads=1)
    assert s["fingerprint"] == trained_once[1] and s["start_iter"] == 2  # from model_0000001.pth
    assert not marker.exists()
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped checkpoint")]
    assert any("model_final.pth" in m and "not a readable PyTorch checkpoint" in m for m in skipped), skipped
    assert any("model_0000003.pth" in m and "refused to load" in m for m in skipped), skipped
    assert (ckdir / "model_final.pth.unreadable").is_file() and (ckdir / "model_0000003.pth.unreadable").is_file()
    assert torch.load(final, weights_only=True)["iteration"] == 5  # written anew
    assert _metric_iterations(out / "metrics.json")[-1] == 5


def test_metrics_stay_increasing_after_a_resume(tiny_set, trained_once, tmp_path):
    """The metrics log is cut where a resumed run starts again."""
    out, ckdir = _copy_training(trained_once, tmp_path)
    # a run killed after its checkpoint at iteration 1, having logged iteration 3
    (ckdir / "model_0000003.pth").unlink()
    (ckdir / "model_final.pth").unlink()
    (ckdir / "last_checkpoint").write_text("model_0000001.pth")
    assert _metric_iterations(ckdir / "metrics.json") == [3]
    with open(ckdir / "metrics.json", "a") as fh:
        fh.write('{"iteration": 3, "total_loss"')  # killed while writing
    s = train_detector([tiny_set], out, overrides=FAST, device="cpu", seed=1, threads=1)
    assert s["start_iter"] == 2
    assert _metric_iterations(out / "metrics.json") == [3]  # logged once, by the resumed run


def test_checkpoints_are_pruned_across_resumes(tiny_set, trained_once, tmp_path):
    """The last CHECKPOINTS_TO_KEEP (2) and the final one remain, whichever run wrote them."""
    out, ckdir = _copy_training(trained_once, tmp_path)
    s = train_detector([tiny_set], out, overrides={**FAST, "SOLVER.MAX_ITER": 8}, device="cpu", seed=1, threads=1)
    assert s["start_iter"] == 4
    assert sorted(f.name for f in ckdir.iterdir() if f.suffix == ".pth") == [
        "model_0000005.pth", "model_0000007.pth", "model_final.pth"]
    assert _metric_iterations(out / "metrics.json") == [3, 7]
    # a folder filled by an older version is pruned when training resumes from it
    for it in (0, 2, 4):
        shutil.copyfile(ckdir / "model_0000005.pth", ckdir / f"model_{it:07d}.pth")
    train_detector([tiny_set], out, overrides={**FAST, "SOLVER.MAX_ITER": 8}, device="cpu", seed=1, threads=1)
    assert sorted(f.name for f in ckdir.glob("*.pth")) == ["model_0000005.pth", "model_0000007.pth", "model_final.pth"]


def test_training_set_errors(tiny_set, tmp_path):
    with pytest.raises(DetectorError, match="no training images"):
        train_detector([], tmp_path / "x")
    bad = TrainSet("bad", tiny_set.annotations, tiny_set.image_root, image_keys=["nope/000"])
    with pytest.raises(DetectorError, match="not in its annotations"):
        train_detector([bad], tmp_path / "x", overrides=FAST, device="cpu")
    missing = TrainSet("missing", tiny_set.annotations, tmp_path / "no_images")
    with pytest.raises(DetectorError, match="image file not found"):
        train_detector([missing], tmp_path / "x", overrides=FAST, device="cpu")


def test_gpu_overlay_extends_the_default_config_with_valid_detectron2_keys():
    """config.gpu.yaml, merged into config.yaml as `snakemake --configfile` does, changes the
    detector's training and the number of synthetic training images only: the hold-out
    images stay the default's, and every Detectron2 override it passes exists (load_config
    rejects an unknown key: test_config_errors_name_the_problem)."""
    import yaml
    from snakemake.utils import update_config

    from nanoforge.config import detector_training_overrides, validate_config

    merged = yaml.safe_load((REPO / "config.yaml").read_text())
    base = validate_config(merged)  # a validated copy: `merged` itself is not changed
    update_config(merged, yaml.safe_load((REPO / "config.gpu.yaml").read_text()))
    gpu = validate_config(merged)
    assert gpu["simulate"]["splits"]["holdout"] == base["simulate"]["splits"]["holdout"]
    assert gpu["simulate"]["splits"]["train"] > base["simulate"]["splits"]["train"]
    changed = {k for k in gpu if gpu[k] != base[k]}
    assert changed == {"simulate", "detector", "synthesis"}
    # the synthesis part touches the transformer models and the threads only
    assert {k for k in gpu["synthesis"] if gpu["synthesis"][k] != base["synthesis"][k]} == {"models", "threads"}
    assert {k for k, m in gpu["synthesis"]["models"].items() if m != base["synthesis"]["models"][k]} == {"tf", "tf_shape"}
    assert gpu["detector"]["device"] == "cuda"
    cfg = load_config(REPO / gpu["detector"]["config"], detector_training_overrides(gpu["detector"]), "cpu", 0)
    assert cfg.SOLVER.IMS_PER_BATCH == 16 and cfg.DATALOADER.NUM_WORKERS == 12
    # small particles are trained at the scale inference enlarges them to (off by default)
    assert cfg.NANOFORGE.ADAPTIVE_SCALE_TRAIN_PROB == 0.5
    assert load_config(REPO / base["detector"]["config"], detector_training_overrides(base["detector"]),
                       "cpu", 0).NANOFORGE.ADAPTIVE_SCALE_TRAIN_PROB == 0.0
