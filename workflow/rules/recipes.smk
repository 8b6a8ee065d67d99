# Recipe inputs: download the public dataset, ingest recipe tables, summarise data quality.

RECIPES = "results/recipes"


rule download_recipe_dataset:
    output:
        "resources/recipes/{name}",
    log:
        f"{LOGS}/download_recipe_dataset/{{name}}.log",
    benchmark:
        f"{BENCHMARKS}/download_recipe_dataset/{{name}}.tsv"
    wildcard_constraints:
        name="|".join(re.escape(n) for n in config["download"]["files"]) or "^$",
    retries: 1
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=500,
        runtime=30,
    params:
        spec=lambda wc: config["download"]["files"][wc.name],
        mirrors=config["download"]["mirrors"],
        timeout=config["download"]["timeout_s"],
    script:
        "../scripts/download_recipe_dataset.py"


rule ingest_recipes:
    input:
        sources=[s["path"] for s in config["recipes"]["sources"]],
        abbreviations=config["recipes"]["abbreviations"],
        shapes_list=config["recipes"]["shapes_list"],
    output:
        recipes=f"{RECIPES}/recipes.parquet",
        rejected=f"{RECIPES}/rejected.parquet",
    log:
        f"{LOGS}/ingest_recipes.log",
    benchmark:
        f"{BENCHMARKS}/ingest_recipes.tsv"
    conda:
        "../../envs/recipes.yaml"
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        sources=config["recipes"]["sources"],
        bounds=config["recipes"]["bounds"],
    script:
        "../scripts/ingest_recipes.py"


rule recipe_quality:
    input:
        recipes=f"{RECIPES}/recipes.parquet",
        rejected=f"{RECIPES}/rejected.parquet",
    output:
        table=f"{RECIPES}/quality_summary.csv",
        figure=report(
            f"{RECIPES}/quality_summary.png",
            caption="../report/recipe_quality.rst",
            category="Recipes",
        ),
    log:
        f"{LOGS}/recipe_quality.log",
    benchmark:
        f"{BENCHMARKS}/recipe_quality.tsv"
    conda:
        "../../envs/recipes.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/recipe_quality.py"


TARGETS += rules.recipe_quality.output
