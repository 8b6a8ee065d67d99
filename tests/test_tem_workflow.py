"""The TEM stage end to end on the tiny config: dataset mirror -> ingest_tem -> ground truth
-> simulate_tem -> segment_classical -> measure_particles -> evaluate_segmentation."""

from __future__ import annotations


import polars as pl
import pytest

from conftest import run_snakemake, tem_workdir, write_config
from nanoforge import tables
from nanoforge.config import ConfigError, validate_config
from nanoforge.tem import coco
from nanoforge.tem.ingest import IMAGES_SCHEMA, REJECTED_IMAGES_SCHEMA
from nanoforge.tem.measure import PARTICLES_SCHEMA

pytestmark = pytest.mark.workflow

COPIED = ["pbse_fig2b", "emps_dev", "yolo_boxes"]  # sophon_example comes through the mirror rule


@pytest.fixture(scope="module")
def tem_run(tmp_path_factory, shared_data):
    wd = tmp_path_factory.mktemp("tem_wf")
    tem_workdir(wd, shared_data, COPIED)
    targets = ["results/segmentation/evaluation/metrics.csv", "results/tem/synthetic/real_vs_synthetic.png",
               "results/tem/synthetic/train/annotations.json", "results/tem/groundtruth/emps_dev_train.json",
               "results/tem/scale_bars.png"]
    proc = run_snakemake(wd, *targets)
    return wd, proc


def test_ingest_and_calibration(tem_run):
    wd, _ = tem_run
    images = pl.read_parquet(wd / "results/tem/images.parquet")
    rejected = pl.read_parquet(wd / "results/tem/rejected_images.parquet")
    assert rejected.height == 0
    assert images.height == 1 + 4 + 1 + 2
    row = {r["image_id"]: r for r in images.iter_rows(named=True)}
    assert row["pbse_fig2b/5-0011"]["nm_per_px"] == 0.260417
    assert row["pbse_fig2b/5-0011"]["calibration_source"] == "sidecar"
    assert row["sophon_example/1-0001_16"]["calibration_source"] == "scale_bar"
    # the sidecar's hand measurement wins; the reader's own reading of the bar is recorded and masked
    assert row["sophon_example/1-0001_16"]["nm_per_px"] == 0.8547
    assert row["sophon_example/1-0001_16"]["scale_bar_label"] == "200 nm"
    assert (wd / row["sophon_example/1-0001_16"]["ignore_mask"]).is_file()
    assert (wd / "results/tem/scale_bars.png").stat().st_size > 10_000
    assert row["emps_dev/4822787326"]["nm_per_px"] is None
    assert (wd / "results/tem/images/emps_dev/4822787326.png").is_file()
    # the mirrored dataset was copied from the mirror folder
    assert (wd / "resources/tem/sophon_example/labels/1-0001_16_instances.png").is_file()


def test_groundtruth_split_and_synthetic_sets(tem_run):
    wd, _ = tem_run
    gt = coco.read_coco(wd / "results/tem/groundtruth/emps_dev.json")
    train = coco.read_coco(wd / "results/tem/groundtruth/emps_dev_train.json")
    hold = coco.read_coco(wd / "results/tem/groundtruth/emps_dev_holdout.json")
    keys = lambda d: {coco.image_key(i) for i in d["images"]}  # noqa: E731
    assert len(keys(train)) == len(keys(hold)) == 2 and keys(train) | keys(hold) == keys(gt)
    assert len(gt["annotations"]) == 21 + 69 + 52 + 7
    syn = coco.read_coco(wd / "results/tem/synthetic/holdout/annotations.json")
    assert len(syn["images"]) == 2 and syn["annotations"]
    assert len(coco.read_coco(wd / "results/tem/synthetic/train/annotations.json")["images"]) == 4


def test_more_training_images_do_not_redraw_the_hold_out(tem_run, tmp_path):
    """An overlay that raises simulate.splits.train (as config.gpu.yaml does) redraws the
    train split only: the hold-out images, and so every evaluation on them, stay as they are."""
    wd, _ = tem_run
    overlay = tmp_path / "more_train.yaml"
    overlay.write_text("simulate:\n  splits: {train: 6}\n")
    targets = ["results/tem/synthetic/train/annotations.json", "results/tem/synthetic/holdout/annotations.json"]
    proc = run_snakemake(wd, *targets, "-n", "--configfile", str(wd / "config.yaml"), str(overlay))
    assert "split=train" in proc.stdout and "split=holdout" not in proc.stdout, proc.stdout[-3000:]


def test_particles_and_metrics(tem_run):
    wd, _ = tem_run
    parts = pl.read_parquet(wd / "results/particles/classical/particles.parquet")
    tables.validate_table(parts, PARTICLES_SCHEMA)
    for name, schema in (("images", IMAGES_SCHEMA), ("rejected_images", REJECTED_IMAGES_SCHEMA)):
        tables.validate_table(pl.read_parquet(wd / f"results/tem/{name}.parquet"), schema)
    assert set(parts["image_id"].str.split("/").list.first()) >= {"pbse_fig2b", "emps_dev", "sophon_example",
                                                                   "synthetic_holdout"}
    # emps_dev carries no pixel size (uncalibrated: keep): its particles are in nm exactly where
    # the image's burned-in scale bar was read (calibration_source scale_bar), else null
    images = pl.read_parquet(wd / "results/tem/images.parquet").select("image_id", "calibration_source")
    emps = parts.filter(pl.col("dataset") == "emps_dev").join(images, on="image_id")
    assert emps.height > 0
    assert (emps["eq_diameter_nm"].is_null() == emps["calibration_source"].is_null()).all()
    assert set(emps["calibration_source"].drop_nulls()) <= {"scale_bar"}
    metrics = pl.read_csv(wd / "results/segmentation/evaluation/metrics.csv")
    assert sorted(metrics["dataset"]) == ["emps_dev", "sophon_example", "synthetic_holdout"]
    assert set(metrics["method"]) == {"classical"}
    m = {r["dataset"]: r for r in metrics.iter_rows(named=True)}
    assert m["emps_dev"]["n_images"] == 2  # held-out images only
    assert m["sophon_example"]["n_gt"] == 323 and m["sophon_example"]["ap50"] > 0.5
    for r in m.values():
        assert 0 <= r["ap75"] <= r["ap50"] <= 1 and r["seconds_per_mpx"] > 0
    size = pl.read_csv(wd / "results/segmentation/evaluation/size_check.csv").row(0, named=True)
    assert size["dataset"] == "pbse_fig2b" and size["ref_n"] == 405 and size["n_particles"] > 300
    assert abs(size["mean_d_nm"] - 7.68) / 7.68 < 0.15
    det = pl.read_csv(wd / "results/segmentation/evaluation/detection_check.csv").row(0, named=True)
    assert det["dataset"] == "yolo_boxes" and det["n_images"] == 2 and det["n_boxes"] > 0
    for name in ("emps_dev", "sophon_example", "synthetic_holdout"):
        assert (wd / f"results/segmentation/evaluation/overlays/{name}.png").stat().st_size > 10_000
    assert (wd / "results/tem/synthetic/real_vs_synthetic.png").stat().st_size > 10_000


def test_dataset_missing_from_every_mirror_stops_with_a_clear_error(tmp_path):
    write_config(tmp_path, {"download": {"mirrors": [str(tmp_path / "empty_mirror")]},
                            "tem": {"datasets": {"lab": {"images": ["*.tif"], "origin": "the lab server"}}}})
    proc = run_snakemake(tmp_path, "resources/tem/lab", check=False)
    assert proc.returncode != 0
    log = (tmp_path / "results/logs/mirror_tem_dataset/lab.log").read_text()
    assert "TEM dataset 'lab': folder 'lab' not found in any of download.mirrors" in log
    assert "the lab server" in log


def test_bad_tem_config_names_the_key():
    with pytest.raises(ConfigError, match=r"tem\.datasets\.x\.uncalibrated"):
        validate_config({"tem": {"datasets": {"x": {"uncalibrated": "maybe"}}}})
    with pytest.raises(ConfigError, match=r"unknown config key 'segmentation\.classical\.thresh'"):
        validate_config({"segmentation": {"classical": {"thresh": "otsu"}}})


def test_benchmark_command_prints_the_table(tem_run, capsys):
    from nanoforge.bench.segmentation import main

    wd, _ = tem_run
    assert main(["--dir", str(wd / "results/segmentation/evaluation")]) == 0
    out = capsys.readouterr().out
    assert "AP50" in out and "s/MP" in out
    for name in ("emps_dev", "sophon_example", "synthetic_holdout", "pbse_fig2b", "yolo_boxes"):
        assert name in out
    assert main(["--dir", str(wd / "nowhere")]) == 2
