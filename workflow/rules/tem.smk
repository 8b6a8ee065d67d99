# TEM images: dataset folders into resources/, ingestion with calibration, ground truth split
# by image, and synthetic images with exact ground truth.

from nanoforge.job_resources import ingest_tem_mem_mb

TEM = "results/tem"
TEM_DATASETS = config["tem"]["datasets"]
TEM_GT_DATASETS = [n for n, d in TEM_DATASETS.items() if d.get("ground_truth")]
SIM_SPLITS = [s for s, n in config["simulate"]["splits"].items() if n > 0]


rule mirror_tem_dataset:
    output:
        directory("resources/tem/{dataset}"),
    log:
        f"{LOGS}/mirror_tem_dataset/{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS}/mirror_tem_dataset/{{dataset}}.tsv"
    wildcard_constraints:
        dataset="|".join(re.escape(n) for n in TEM_DATASETS) or "^$",
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=500,
        runtime=10,
    params:
        spec=lambda wc: TEM_DATASETS[wc.dataset],
        mirrors=config["download"]["mirrors"],
    script:
        "../scripts/mirror_tem_dataset.py"


rule ingest_tem:
    input:
        datasets=[tem_dataset_dir(n) for n in TEM_DATASETS],
        sidecar=config["tem"]["sidecar"]["files"],
    output:
        images=f"{TEM}/images.parquet",
        rejected=f"{TEM}/rejected_images.parquet",
        pngs=directory(f"{TEM}/images"),
    log:
        f"{LOGS}/ingest_tem.log",
    benchmark:
        f"{BENCHMARKS}/ingest_tem.tsv"
    conda:
        "../../envs/tem.yaml"
    resources:
        # measured: about 31 MB per megapixel of the largest image (nanoforge.job_resources)
        mem_mb=lambda wc, input: ingest_tem_mem_mb(input.datasets),
        runtime=30,
    params:
        datasets=TEM_DATASETS,
        tem=config["tem"],
    script:
        "../scripts/ingest_tem.py"


rule tem_groundtruth:
    input:
        images=f"{TEM}/images.parquet",
        dataset=lambda wc: tem_dataset_dir(wc.dataset),
    output:
        all=f"{TEM}/groundtruth/{{dataset}}.json",
        train=f"{TEM}/groundtruth/{{dataset}}_train.json",
        holdout=f"{TEM}/groundtruth/{{dataset}}_holdout.json",
    log:
        f"{LOGS}/tem_groundtruth/{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS}/tem_groundtruth/{{dataset}}.tsv"
    wildcard_constraints:
        dataset="|".join(re.escape(n) for n in TEM_GT_DATASETS) or "^$",
    conda:
        "../../envs/tem.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        spec=lambda wc: TEM_DATASETS[wc.dataset],
        seed=config["seed"],
        images_root=lambda wc, input: str(Path(input.images).parent / "images"),
    script:
        "../scripts/tem_groundtruth.py"


rule simulate_tem:
    output:
        annotations=f"{TEM}/synthetic/{{split}}/annotations.json",
        images=f"{TEM}/synthetic/{{split}}/images.parquet",
        pngs=directory(f"{TEM}/synthetic/{{split}}/images"),
    log:
        f"{LOGS}/simulate_tem/{{split}}.log",
    benchmark:
        f"{BENCHMARKS}/simulate_tem/{{split}}.tsv"
    wildcard_constraints:
        split="|".join(re.escape(s) for s in SIM_SPLITS) or "^$",
    conda:
        "../../envs/tem.yaml"
    threads: 2
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        n=lambda wc: config["simulate"]["splits"][wc.split],
        simulate=simulation_settings(config["simulate"]),
        seed=config["seed"],
    script:
        "../scripts/simulate_tem.py"


rule simulate_figure:
    input:
        images=f"{TEM}/images.parquet",
    output:
        report(
            f"{TEM}/synthetic/real_vs_synthetic.png",
            caption="../report/real_vs_synthetic.rst",
            category="TEM",
            subcategory="Synthetic images",
        ),
    log:
        f"{LOGS}/simulate_figure.log",
    benchmark:
        f"{BENCHMARKS}/simulate_figure.tsv"
    conda:
        "../../envs/tem.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        real=config["simulate"]["figure_real_images"],
        seed=config["seed"],
    script:
        "../scripts/simulate_figure.py"


rule scalebar_figure:
    input:
        images=f"{TEM}/images.parquet",
    output:
        report(
            f"{TEM}/scale_bars.png",
            caption="../report/scale_bars.rst",
            category="TEM",
            subcategory="Scale bars",
        ),
    log:
        f"{LOGS}/scalebar_figure.log",
    benchmark:
        f"{BENCHMARKS}/scalebar_figure.tsv"
    conda:
        "../../envs/tem.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        scale_bar=config["tem"]["scale_bar"],
        plausible=config["tem"]["plausible_nm_per_px"],
        seed=config["seed"],
    script:
        "../scripts/scalebar_figure.py"


TARGETS += [
    f"{TEM}/images.parquet",
    f"{TEM}/scale_bars.png",
    f"{TEM}/rejected_images.parquet",
    *expand(f"{TEM}/groundtruth/{{dataset}}.json", dataset=TEM_GT_DATASETS),
    *expand(f"{TEM}/synthetic/{{split}}/annotations.json", split=SIM_SPLITS),
    f"{TEM}/synthetic/real_vs_synthetic.png",
]
