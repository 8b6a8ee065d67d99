# Synthesis models: recipes -> feature table -> baseline models evaluated under protocols
# P (paper folds), G (recipe families held out) and U (one product held out) -> predictions,
# metrics, figures and one comparison table (docs/architecture.md, "Evaluation protocols").

from nanoforge.synthesis.runs import run_config

SYN = config["synthesis"]
FEATURES = "results/features"
SYNTHESIS = "results/synthesis"
SYN_RUNS = {r["name"]: r for r in SYN["runs"]}
SYN_SIZE_RUNS = [r for r, spec in SYN_RUNS.items() if spec["task"] == "size"]
SYN_SHAPE_RUNS = [r for r, spec in SYN_RUNS.items() if spec["task"] == "shape"]
SYN_PAIRS = [(p, r) for r, spec in SYN_RUNS.items() for p in spec["protocols"]]
SYN_UNIMOL = "uni" in SYN["featurize"]["blocks"]
# The chemicals table is committed with the workflow: a relative path is relative to the
# workflow's folder, so that it is found from any working directory (-d).
SYN_CHEMICALS = str(NANOFORGE_DIR / SYN["chemicals"])
# wildcard patterns: the configured run names (all, size runs, shape runs)
SYN_RUN_RE = "|".join(re.escape(n) for n in SYN_RUNS) or "^$"
SYN_SIZE_RE = "|".join(re.escape(n) for n in SYN_SIZE_RUNS) or "^$"
SYN_SHAPE_RE = "|".join(re.escape(n) for n in SYN_SHAPE_RUNS) or "^$"


rule unimol_descriptors:
    output:
        SYN["unimol"]["path"],
    log:
        f"{LOGS}/unimol_descriptors.log",
    benchmark:
        f"{BENCHMARKS}/unimol_descriptors.tsv"
    conda:
        "../../envs/synthesis.yaml"
    resources:
        mem_mb=500,
        runtime=10,
    params:
        sha256=SYN["unimol"]["sha256"],
        mirrors=config["download"]["mirrors"],
    script:
        "../scripts/fetch_unimol_vectors.py"


rule featurize_recipes:
    input:
        recipes=SYN["recipes"],
        chemicals=SYN_CHEMICALS,
        unimol=[SYN["unimol"]["path"]] if SYN_UNIMOL else [],
    output:
        features=f"{FEATURES}/recipe_features.parquet",
        columns=f"{FEATURES}/feature_columns.csv",
        coverage=report(
            f"{FEATURES}/chemicals_coverage.csv",
            caption="../report/chemicals_coverage.rst",
            category="Synthesis models",
        ),
    log:
        f"{LOGS}/featurize_recipes.log",
    benchmark:
        f"{BENCHMARKS}/featurize_recipes.tsv"
    conda:
        "../../envs/synthesis.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        sources=SYN["sources"],
        featurize=SYN["featurize"],
    script:
        "../scripts/featurize_recipes.py"


rule evaluate_synthesis:
    input:
        features=f"{FEATURES}/recipe_features.parquet",
        folds=[SYN["folds"]] if SYN["folds"] else [],
        # the transformer reads the Uni-Mol table (its intermediates, uni tokens)
        unimol=[SYN["unimol"]["path"]] if SYN_UNIMOL else [],
    output:
        predictions=f"{SYNTHESIS}/{{protocol}}/{{run}}/predictions.parquet",
        metrics=f"{SYNTHESIS}/{{protocol}}/{{run}}/metrics.csv",
    log:
        f"{LOGS}/evaluate_synthesis/{{protocol}}/{{run}}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate_synthesis/{{protocol}}/{{run}}.tsv"
    wildcard_constraints:
        protocol="P|G|U",
        run=SYN_RUN_RE,
    conda:
        "../../envs/synthesis.yaml"
    threads: SYN["threads"]
    resources:
        mem_mb=6000,
        runtime=120,
    params:
        synthesis=lambda wc: run_config(SYN, wc.run),
        seed=config["seed"],
    script:
        "../scripts/evaluate_synthesis.py"


rule synthesis_parity_plot:
    input:
        predictions=f"{SYNTHESIS}/{{protocol}}/{{run}}/predictions.parquet",
    output:
        report(
            f"{SYNTHESIS}/{{protocol}}/{{run}}/parity.png",
            caption="../report/synthesis_parity.rst",
            category="Synthesis models",
            subcategory="{protocol}",
        ),
    log:
        f"{LOGS}/synthesis_parity_plot/{{protocol}}/{{run}}.log",
    benchmark:
        f"{BENCHMARKS}/synthesis_parity_plot/{{protocol}}/{{run}}.tsv"
    wildcard_constraints:
        protocol="P|G|U",
        run=SYN_SIZE_RE,
    conda:
        "../../envs/synthesis.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/synthesis_figure.py"


rule synthesis_confusion_matrix:
    input:
        predictions=f"{SYNTHESIS}/{{protocol}}/{{run}}/predictions.parquet",
        shapes_list=config["recipes"]["shapes_list"],
    output:
        report(
            f"{SYNTHESIS}/{{protocol}}/{{run}}/confusion.png",
            caption="../report/synthesis_confusion.rst",
            category="Synthesis models",
            subcategory="{protocol}",
        ),
    log:
        f"{LOGS}/synthesis_confusion_matrix/{{protocol}}/{{run}}.log",
    benchmark:
        f"{BENCHMARKS}/synthesis_confusion_matrix/{{protocol}}/{{run}}.tsv"
    wildcard_constraints:
        protocol="P|G|U",
        run=SYN_SHAPE_RE,
    conda:
        "../../envs/synthesis.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/synthesis_figure.py"


rule synthesis_comparison:
    input:
        [f"{SYNTHESIS}/{p}/{r}/metrics.csv" for p, r in SYN_PAIRS],
    output:
        table=f"{SYNTHESIS}/comparison.csv",
        html=report(
            f"{SYNTHESIS}/comparison.html",
            caption="../report/synthesis_comparison.rst",
            category="Synthesis models",
        ),
    log:
        f"{LOGS}/synthesis_comparison.log",
    benchmark:
        f"{BENCHMARKS}/synthesis_comparison.tsv"
    conda:
        "../../envs/synthesis.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/synthesis_comparison.py"


TARGETS += [
    f"{SYNTHESIS}/comparison.csv",
    f"{SYNTHESIS}/comparison.html",
    f"{FEATURES}/chemicals_coverage.csv",
] + [
    f"{SYNTHESIS}/{p}/{r}/{'parity' if SYN_RUNS[r]['task'] == 'size' else 'confusion'}.png"
    for p, r in SYN_PAIRS
]
