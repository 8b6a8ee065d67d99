# Trained synthesis models a chemist can query (nanoforge.synthesis.final, docs/predict.md):
# each run of synthesis.final fitted on every eligible recipe -> results/models/<run>/ (with
# its model card); predict/<name>.yaml -> results/predictions/<name>.parquet;
# sweeps/<name>.yaml -> results/sweeps/<name>.{parquet,png}.

from nanoforge.synthesis.runs import check_final_runs

MODELS = "results/models"
FINAL_RUNS = check_final_runs(SYN)
FINAL_DIRS = [f"{MODELS}/{r}" for r in FINAL_RUNS]
PREDICT_NAMES = glob_wildcards("predict/{name}.yaml").name
SWEEP_NAMES = glob_wildcards("sweeps/{name}.yaml").name


rule train_synthesis_model:
    input:
        recipes=SYN["recipes"],
        chemicals=SYN_CHEMICALS,
        unimol=lambda wc: (
            [SYN["unimol"]["path"]]
            if "uni" in SYN["feature_sets"][SYN_RUNS[wc.run]["features"]]
            else []
        ),
        harness=lambda wc: [
            f"{SYNTHESIS}/{p}/{wc.run}/{f}"
            for p in SYN_RUNS[wc.run]["protocols"]
            for f in ("metrics.csv", "predictions.parquet")
        ],
    output:
        directory(f"{MODELS}/{{run}}"),
    log:
        f"{LOGS}/train_synthesis_model/{{run}}.log",
    benchmark:
        f"{BENCHMARKS}/train_synthesis_model/{{run}}.tsv"
    wildcard_constraints:
        run=SYN_RUN_RE,
    conda:
        "../../envs/synthesis.yaml"
    threads: SYN["threads"]
    resources:
        mem_mb=6000,
        runtime=60,
    params:
        synthesis=final_params,
        harness=SYNTHESIS,
        seed=config["seed"],
    script:
        "../scripts/train_synthesis_model.py"


rule predict_recipes:
    input:
        recipes="predict/{name}.yaml",
        models=FINAL_DIRS,
        data=SYN["recipes"],
    output:
        f"results/predictions/{{name}}.parquet",
    log:
        f"{LOGS}/predict_recipes/{{name}}.log",
    benchmark:
        f"{BENCHMARKS}/predict_recipes/{{name}}.tsv"
    conda:
        "../../envs/synthesis.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/predict_recipes.py"


rule sweep_recipe:
    input:
        sweep="sweeps/{name}.yaml",
        models=FINAL_DIRS,
        data=SYN["recipes"],
    output:
        table=f"results/sweeps/{{name}}.parquet",
        figure=report(
            f"results/sweeps/{{name}}.png",
            caption="../report/sweep.rst",
            category="Synthesis models",
            subcategory="Trained models",
        ),
    log:
        f"{LOGS}/sweep_recipe/{{name}}.log",
    benchmark:
        f"{BENCHMARKS}/sweep_recipe/{{name}}.tsv"
    conda:
        "../../envs/synthesis.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/sweep_recipe.py"


TARGETS += (
    FINAL_DIRS
    + [f"results/predictions/{n}.parquet" for n in PREDICT_NAMES]
    + [f"results/sweeps/{n}.{ext}" for n in SWEEP_NAMES for ext in ("parquet", "png")]
)


rule design_recipes:
    input:
        request="designs/{name}.yaml",
        models=FINAL_DIRS,
        recipes=SYN["recipes"],
    output:
        f"results/designs/{{name}}.csv",
    log:
        f"{LOGS}/design_recipes/{{name}}.log",
    benchmark:
        f"{BENCHMARKS}/design_recipes/{{name}}.tsv"
    conda:
        "../../envs/synthesis.yaml"
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        size_run=next((r for r in FINAL_RUNS if SYN_RUNS[r]["task"] == "size"), None),
        shape_run=next((r for r in FINAL_RUNS if SYN_RUNS[r]["task"] == "shape"), None),
        seed=config["seed"],
    script:
        "../scripts/design_recipes.py"


DESIGN_NAMES = glob_wildcards("designs/{name}.yaml").name
TARGETS += [f"results/designs/{n}.csv" for n in DESIGN_NAMES]
