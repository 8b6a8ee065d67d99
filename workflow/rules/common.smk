import re

# Shared definitions for every stage. Each stage's .smk file adds its final outputs to
# TARGETS, which `rule all` requests.

TARGETS = []

LOGS = "results/logs"
BENCHMARKS = "results/benchmarks"


wildcard_constraints:
    name=r"[A-Za-z0-9_.\-]+",


# Helpers used by the stage files (they read the stage constants, e.g. TEM_DATASETS, SEG,
# DET_CFG, when called).


def tem_dataset_dir(name):
    return TEM_DATASETS[name].get("path") or f"resources/tem/{name}"


def segmentation_json(method, image_set):
    return f"{SEG}/{method}/{image_set}.json"


def detector_config_file():
    """The Detectron2 config: relative paths are relative to the repository (the Snakefile)."""
    p = Path(DET_CFG["config"])
    return str(p if p.is_absolute() else NANOFORGE_DIR / p)


def final_params(wc):
    """The part of the synthesis config a trained model depends on."""
    return {
        **run_config(SYN, wc.run),
        "final": SYN["final"],
        "sources": SYN["sources"],
        "featurize": SYN["featurize"],
    }
