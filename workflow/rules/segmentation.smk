# Instance segmentation methods -> particle tables -> evaluation against ground truth.
#
# Every method writes results/segmentation/<method>/<image set>.json (COCO, RLE masks, a
# score per instance, `seconds` per image) for each image set: `tem` (every ingested image,
# results/tem/images.parquet) and `synthetic_holdout` (results/tem/synthetic/holdout). The
# classical baseline is defined here; other methods (weak labels, Mask R-CNN) add their own
# rules with the same outputs and are listed in config segmentation.methods.

SEG = "results/segmentation"
IMAGE_SET_TABLES = {"tem": f"{TEM}/images.parquet"}
if "holdout" in SIM_SPLITS:
    IMAGE_SET_TABLES["synthetic_holdout"] = f"{TEM}/synthetic/holdout/images.parquet"
IMAGE_SETS = list(IMAGE_SET_TABLES)
SEG_METHODS = config["segmentation"]["methods"]

# ground-truth sets evaluated: the labelled TEM datasets and the synthetic hold-out split
SEG_GT = {d: (f"{TEM}/groundtruth/{d}.json", "tem") for d in TEM_GT_DATASETS}
if "synthetic_holdout" in IMAGE_SET_TABLES:
    SEG_GT["synthetic_holdout"] = (
        f"{TEM}/synthetic/holdout/annotations.json",
        "synthetic_holdout",
    )


wildcard_constraints:
    image_set="|".join(IMAGE_SETS),
    method=r"[A-Za-z0-9_]+",


rule segment_classical:
    input:
        images=lambda wc: IMAGE_SET_TABLES[wc.image_set],
    output:
        segmentation_json("classical", "{image_set}"),
    log:
        f"{LOGS}/segment_classical/{{image_set}}.log",
    benchmark:
        f"{BENCHMARKS}/segment_classical/{{image_set}}.tsv"
    conda:
        "../../envs/tem.yaml"
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        cfg=config["segmentation"]["classical"],
    script:
        "../scripts/segment_classical.py"


rule measure_particles:
    input:
        masks=lambda wc: [segmentation_json(wc.method, s) for s in IMAGE_SETS],
        images=[IMAGE_SET_TABLES[s] for s in IMAGE_SETS],
    output:
        "results/particles/{method}/particles.parquet",
    log:
        f"{LOGS}/measure_particles/{{method}}.log",
    benchmark:
        f"{BENCHMARKS}/measure_particles/{{method}}.tsv"
    conda:
        "../../envs/tem.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/measure_particles.py"


rule evaluate_segmentation:
    input:
        masks=[segmentation_json(m, s) for m in SEG_METHODS for s in IMAGE_SETS],
        particles=expand(
            "results/particles/{method}/particles.parquet", method=SEG_METHODS
        ),
        groundtruth=[gt for gt, _ in SEG_GT.values()],
        images=[IMAGE_SET_TABLES[s] for s in IMAGE_SETS],
        datasets=[tem_dataset_dir(n) for n in TEM_DATASETS],
    output:
        metrics=report(
            f"{SEG}/evaluation/metrics.csv",
            caption="../report/segmentation_metrics.rst",
            category="TEM",
            subcategory="Segmentation",
        ),
        per_image=f"{SEG}/evaluation/per_image.csv",
        size_check=f"{SEG}/evaluation/size_check.csv",
        detection_check=f"{SEG}/evaluation/detection_check.csv",
        size_figure=report(
            f"{SEG}/evaluation/size_check.png",
            caption="../report/size_check.rst",
            category="TEM",
            subcategory="Segmentation",
        ),
        overlays=report(
            expand(f"{SEG}/evaluation/overlays/{{dataset}}.png", dataset=list(SEG_GT)),
            caption="../report/segmentation_overlays.rst",
            category="TEM",
            subcategory="Segmentation",
        ),
    log:
        f"{LOGS}/evaluate_segmentation.log",
    benchmark:
        f"{BENCHMARKS}/evaluate_segmentation.tsv"
    conda:
        "../../envs/tem.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        methods=SEG_METHODS,
        image_sets=IMAGE_SETS,
        groundtruth=SEG_GT,
        datasets=TEM_DATASETS,
        evaluation=config["segmentation"]["evaluation"],
    script:
        "../scripts/evaluate_segmentation.py"


TARGETS += [
    *expand("results/particles/{method}/particles.parquet", method=SEG_METHODS),
    *rules.evaluate_segmentation.output,
]
