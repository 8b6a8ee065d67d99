# Weak labels: a Detectron2 Faster R-CNN particle detector (trained from scratch on synthetic
# images plus the train split of labelled datasets), then morphology inside each detected box.
# The weak labels are a segmentation method like any other: results/segmentation/weak_labels/
# <image set>.json, measured and evaluated by segmentation.smk when `weak_labels` is listed in
# config segmentation.methods. Per-dataset copies (training labels for the next stage) go to
# results/weak_labels/<dataset>/annotations.json.

DETECTOR = "results/detector"
DET_CFG = config["detector"]
DET_LABELLED = DET_CFG["labelled"]
DET_SYNTHETIC = DET_CFG["synthetic_splits"]

for _d in DET_LABELLED:
    if _d not in TEM_GT_DATASETS:
        raise ValueError(
            f"config detector.labelled: {_d!r} is not a TEM dataset with ground_truth "
            f"(those are: {', '.join(TEM_GT_DATASETS) or 'none'})"
        )
for _s in DET_SYNTHETIC:
    if _s not in SIM_SPLITS:
        raise ValueError(
            f"config detector.synthetic_splits: no synthetic split {_s!r} (splits: {SIM_SPLITS})"
        )
    if _s == "holdout":
        raise ValueError(
            "config detector.synthetic_splits: the 'holdout' split is evaluated and must not train the detector"
        )


rule train_detector:
    input:
        config=detector_config_file(),
        synthetic=expand(
            f"{TEM}/synthetic/{{split}}/annotations.json", split=DET_SYNTHETIC
        ),
        labelled=expand(
            f"{TEM}/groundtruth/{{dataset}}_train.json", dataset=DET_LABELLED
        ),
    output:
        model=f"{DETECTOR}/model_final.pth",
        config=f"{DETECTOR}/config.yaml",
        metrics=f"{DETECTOR}/metrics.json",
        summary=f"{DETECTOR}/summary.json",
    log:
        f"{LOGS}/train_detector.log",
    benchmark:
        f"{BENCHMARKS}/train_detector.tsv"
    conda:
        "../../envs/detectron2.yaml"
    threads: DET_CFG["threads"]
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=DET_CFG["gpus"],
    params:
        synthetic_splits=DET_SYNTHETIC,
        labelled=DET_LABELLED,
        labelled_repeat=DET_CFG["labelled_repeat"],
        images_root=f"{TEM}/images",
        overrides=detector_training_overrides(DET_CFG),
        device=DET_CFG["device"],
        seed=config["seed"],
    script:
        "../scripts/train_detector.py"


rule plot_detector_training:
    input:
        metrics=f"{DETECTOR}/metrics.json",
        summary=f"{DETECTOR}/summary.json",
    output:
        report(
            f"{DETECTOR}/training_loss.png",
            caption="../report/detector_training.rst",
            category="TEM",
            subcategory="Detector",
        ),
    log:
        f"{LOGS}/plot_detector_training.log",
    benchmark:
        f"{BENCHMARKS}/plot_detector_training.tsv"
    conda:
        "../../envs/detectron2.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/plot_detector_training.py"


rule weak_labels:
    input:
        images=lambda wc: IMAGE_SET_TABLES[wc.image_set],
        model=f"{DETECTOR}/model_final.pth",
        config=f"{DETECTOR}/config.yaml",
    output:
        segmentation_json("weak_labels", "{image_set}"),
    log:
        f"{LOGS}/weak_labels/{{image_set}}.log",
    benchmark:
        f"{BENCHMARKS}/weak_labels/{{image_set}}.tsv"
    conda:
        "../../envs/detectron2.yaml"
    threads: DET_CFG["threads"]
    resources:
        mem_mb=6000,
        runtime=60,
    params:
        cfg=split_weak_label_config(config["weak_labels"])[0],
        detector_overrides=split_weak_label_config(config["weak_labels"])[1],
        device=DET_CFG["device"],
    script:
        "../scripts/weak_labels.py"


rule weak_labels_dataset:
    input:
        segmentation_json("weak_labels", "tem"),
    output:
        "results/weak_labels/{dataset}/annotations.json",
    log:
        f"{LOGS}/weak_labels_dataset/{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS}/weak_labels_dataset/{{dataset}}.tsv"
    wildcard_constraints:
        dataset="|".join(re.escape(n) for n in TEM_DATASETS) or "^$",
    conda:
        "../../envs/tem.yaml"
    resources:
        mem_mb=2000,
        runtime=5,
    script:
        "../scripts/weak_labels_dataset.py"


TARGETS += [
    f"{DETECTOR}/training_loss.png",
    *expand(
        "results/weak_labels/{dataset}/annotations.json", dataset=list(TEM_DATASETS)
    ),
]
