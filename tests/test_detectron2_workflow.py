"""The weak-label stage end to end on the tiny config: simulate -> train_detector (a few
iterations) -> weak_labels -> measure_particles -> evaluate_segmentation, then a resumed
training after a simulated kill."""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml

from conftest import run_snakemake, tem_workdir
from nanoforge.tem import coco

pytestmark = pytest.mark.workflow

COPIED = ["pbse_fig2b", "emps_dev", "sophon_example"]


@pytest.fixture(scope="module")
def weak_run(tmp_path_factory, shared_data):
    wd = tmp_path_factory.mktemp("weak_wf")
    tem_workdir(wd, shared_data, COPIED, {
        "segmentation": {"methods": ["weak_labels"]},  # the classical baseline has its own test
        "detector": {"opts": {"TEST.DETECTIONS_PER_IMAGE": 100, "MODEL.RPN.POST_NMS_TOPK_TRAIN": 200,
                              "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": 64}},
    })
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    del cfg["tem"]["datasets"]["yolo_boxes"]  # a detection check only: not needed here
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    targets = ["results/segmentation/evaluation/metrics.csv", "results/detector/training_loss.png",
               "results/weak_labels/emps_dev/annotations.json", "results/weak_labels/sophon_example/annotations.json"]
    proc = run_snakemake(wd, *targets)
    return wd, proc


def test_detector_trained_on_synthetic_and_the_labelled_train_split(weak_run):
    wd, _ = weak_run
    summary = json.loads((wd / "results/detector/summary.json").read_text())
    assert summary["max_iter"] == 4 and summary["device"] in ("cpu", "cuda")
    train_keys = {coco.image_key(i) for i in coco.read_coco(wd / "results/tem/groundtruth/emps_dev_train.json")["images"]}
    hold_keys = {coco.image_key(i) for i in coco.read_coco(wd / "results/tem/groundtruth/emps_dev_holdout.json")["images"]}
    assert summary["images"] == {"synthetic_train": 4, "emps_dev": len(train_keys)}
    assert train_keys and not (train_keys & hold_keys)
    assert (wd / "results/detector/model_final.pth").is_file()
    assert (wd / "results/detector/training_loss.png").stat().st_size > 1000
    assert "iteration" in (wd / "results/detector/metrics.json").read_text()


def test_weak_labels_are_measured_and_evaluated(weak_run):
    wd, _ = weak_run
    images = pl.read_parquet(wd / "results/tem/images.parquet")
    for image_set, n in (("tem", images.height), ("synthetic_holdout", 2)):
        doc = coco.read_coco(wd / f"results/segmentation/weak_labels/{image_set}.json")
        assert len(doc["images"]) == n  # every image has an entry, even with no labels
        assert set(doc["info"]["dropped"]) >= {"low_score", "low_contrast", "duplicate"}
        # the trained detector's enlargement of each image is recorded (1.0: none, at most 3x)
        assert all(1.0 <= i["detector_scale"] <= 3.0 for i in doc["images"])
        for a in doc["annotations"][:50]:
            assert "ignore_segmentation" in a and 0 <= a["score"] <= 1
    sub = coco.read_coco(wd / "results/weak_labels/emps_dev/annotations.json")
    assert {coco.image_key(i).split("/")[0] for i in sub["images"]} == {"emps_dev"}
    parts = pl.read_parquet(wd / "results/particles/weak_labels/particles.parquet")
    assert set(parts["method"].unique()) <= {"weak_labels"}
    metrics = pl.read_csv(wd / "results/segmentation/evaluation/metrics.csv")
    assert set(metrics["method"]) == {"weak_labels"}
    m = metrics.filter(pl.col("method") == "weak_labels")
    assert sorted(m["dataset"]) == ["emps_dev", "sophon_example", "synthetic_holdout"]
    assert m.filter(pl.col("dataset") == "emps_dev")["n_images"].item() == 2  # held-out images only
    for r in m.iter_rows(named=True):
        assert 0 <= r["ap75"] <= r["ap50"] <= 1 and r["seconds_per_mpx"] > 0


def test_killed_training_resumes_from_its_checkpoint(weak_run):
    wd, _ = weak_run
    ckdir = next((wd / "results/detector/checkpoints").iterdir())
    for f in ckdir.glob("model_*.pth"):
        if f.name != "model_0000001.pth":
            f.unlink()
    (ckdir / "last_checkpoint").write_text("model_0000001.pth")
    (wd / "results/detector/model_final.pth").unlink()  # as after a kill
    run_snakemake(wd, "results/detector/model_final.pth", "--rerun-incomplete")
    summary = json.loads((wd / "results/detector/summary.json").read_text())
    assert summary["start_iter"] == 2
    log = (wd / "results/logs/train_detector.log").read_text()
    assert "resuming" in log.lower()


def test_segmentation_benchmark_prints_the_table(weak_run):
    import os
    import subprocess
    import sys

    from conftest import REPO

    wd, _ = weak_run
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow"))
    proc = subprocess.run(
        [sys.executable, "-m", "nanoforge.bench", "segmentation", "--run", "--workdir", str(wd), "--max-images", "1",
         "--datasets", "sophon_example,synthetic_holdout,pbse_fig2b", "--threads", "1"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("method"))
    for col in ("AP50", "AP75", "mIoU", "med size err", "s/MPx"):
        assert col in header
    rows = [line.split() for line in lines if line.split()[:1] in (["classical"], ["weak_labels"])]
    table = {(r[0], r[1]) for r in rows}
    for m in ("classical", "weak_labels"):
        assert (m, "sophon_example") in table and (m, "synthetic_holdout") in table
        assert (m, "pbse_fig2b") in table  # the size-distribution check
    sophon = next(r for r in rows if r[:2] == ["classical", "sophon_example"])
    assert int(sophon[3]) == 323 and 0 < float(sophon[4]) <= 1 and float(sophon[-1]) > 0
