# Shape stage: descriptors of every particle -> UMAP + HDBSCAN clusters -> cluster names ->
# per-sample labels (size, size spread, dominant shape) merged into the recipe table
# (results/recipes/recipes_labelled.parquet; the synthesis models read it when config
# synthesis.recipes names it).

SHAPES_DIR = "results/shapes"
SHAPE_METHOD = config["shapes"]["method"] or SEG_METHODS[-1]
SHAPE_PARTICLES = f"results/particles/{SHAPE_METHOD}/particles.parquet"
SAMPLE_RECIPES = config["shapes"]["labels"]["sample_recipes"]


rule shape_descriptors:
    input:
        particles=SHAPE_PARTICLES,
        images=f"{TEM}/images.parquet",
    output:
        f"{SHAPES_DIR}/descriptors.parquet",
    log:
        f"{LOGS}/shape_descriptors.log",
    benchmark:
        f"{BENCHMARKS}/shape_descriptors.tsv"
    conda:
        "../../envs/shapes.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        batch_size=config["shapes"]["descriptors"]["batch_size"],
        min_area_px=config["shapes"]["descriptors"]["min_area_px"],
    script:
        "../scripts/shape_descriptors.py"


rule cluster_shapes:
    input:
        descriptors=f"{SHAPES_DIR}/descriptors.parquet",
        images=f"{TEM}/images.parquet",
    output:
        clusters=f"{SHAPES_DIR}/clusters.parquet",
        summary=f"{SHAPES_DIR}/cluster_summary.json",
    log:
        f"{LOGS}/cluster_shapes.log",
    benchmark:
        f"{BENCHMARKS}/cluster_shapes.tsv"
    conda:
        "../../envs/shapes.yaml"
    threads: 1
    resources:
        mem_mb=12000,
        runtime=60,
    params:
        cluster=config["shapes"]["cluster"],
        seed=config["seed"],
    script:
        "../scripts/cluster_shapes.py"


rule name_shape_clusters:
    input:
        clusters=f"{SHAPES_DIR}/clusters.parquet",
        descriptors=f"{SHAPES_DIR}/descriptors.parquet",
    output:
        names=report(
            f"{SHAPES_DIR}/cluster_names.csv",
            caption="../report/shape_cluster_names.rst",
            category="Shapes",
        ),
        shapes=f"{SHAPES_DIR}/particle_shapes.parquet",
    log:
        f"{LOGS}/name_shape_clusters.log",
    benchmark:
        f"{BENCHMARKS}/name_shape_clusters.tsv"
    conda:
        "../../envs/shapes.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        naming=config["shapes"]["naming"],
        overrides=config["shapes"]["cluster_names"],
        seed=config["seed"],
    script:
        "../scripts/name_shape_clusters.py"


rule sample_labels:
    input:
        particles=SHAPE_PARTICLES,
        shapes=f"{SHAPES_DIR}/particle_shapes.parquet",
        images=f"{TEM}/images.parquet",
        recipes=f"{RECIPES}/recipes.parquet",
        sample_recipes=[SAMPLE_RECIPES] if SAMPLE_RECIPES else [],
    output:
        samples=f"{SHAPES_DIR}/sample_labels.parquet",
        recipes=f"{SHAPES_DIR}/recipe_tem_labels.parquet",
    log:
        f"{LOGS}/sample_labels.log",
    benchmark:
        f"{BENCHMARKS}/sample_labels.tsv"
    conda:
        "../../envs/shapes.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        labels=config["shapes"]["labels"],
    script:
        "../scripts/sample_labels.py"


rule label_recipes:
    input:
        recipes=f"{RECIPES}/recipes.parquet",
        tem=f"{SHAPES_DIR}/recipe_tem_labels.parquet",
    output:
        f"{RECIPES}/recipes_labelled.parquet",
    log:
        f"{LOGS}/label_recipes.log",
    benchmark:
        f"{BENCHMARKS}/label_recipes.tsv"
    conda:
        "../../envs/shapes.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        precedence=config["shapes"]["labels"]["precedence"],
    script:
        "../scripts/label_recipes.py"


rule shape_embedding_figure:
    input:
        clusters=f"{SHAPES_DIR}/clusters.parquet",
        names=f"{SHAPES_DIR}/cluster_names.csv",
    output:
        report(
            f"{SHAPES_DIR}/embedding.png",
            caption="../report/shape_embedding.rst",
            category="Shapes",
        ),
    log:
        f"{LOGS}/shape_embedding_figure.log",
    benchmark:
        f"{BENCHMARKS}/shape_embedding_figure.tsv"
    conda:
        "../../envs/shapes.yaml"
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        n_points=config["shapes"]["figures"]["embedding_points"],
        seed=config["seed"],
    script:
        "../scripts/shape_embedding_figure.py"


rule shape_gallery_figure:
    input:
        particles=SHAPE_PARTICLES,
        clusters=f"{SHAPES_DIR}/clusters.parquet",
        names=f"{SHAPES_DIR}/cluster_names.csv",
        images=f"{TEM}/images.parquet",
    output:
        report(
            f"{SHAPES_DIR}/gallery.png",
            caption="../report/shape_gallery.rst",
            category="Shapes",
        ),
    log:
        f"{LOGS}/shape_gallery_figure.log",
    benchmark:
        f"{BENCHMARKS}/shape_gallery_figure.tsv"
    conda:
        "../../envs/shapes.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        per_cluster=config["shapes"]["figures"]["gallery_per_cluster"],
    script:
        "../scripts/shape_gallery_figure.py"


rule shape_shares_figure:
    input:
        samples=f"{SHAPES_DIR}/sample_labels.parquet",
        recipes=f"{RECIPES}/recipes_labelled.parquet",
    output:
        report(
            f"{SHAPES_DIR}/shares.png",
            caption="../report/shape_shares.rst",
            category="Shapes",
        ),
    log:
        f"{LOGS}/shape_shares_figure.log",
    benchmark:
        f"{BENCHMARKS}/shape_shares_figure.tsv"
    conda:
        "../../envs/shapes.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        variable=config["shapes"]["figures"]["recipe_variable"],
    script:
        "../scripts/shape_shares_figure.py"


TARGETS += [
    f"{RECIPES}/recipes_labelled.parquet",
    f"{SHAPES_DIR}/sample_labels.parquet",
    *rules.shape_embedding_figure.output,
    *rules.shape_gallery_figure.output,
    *rules.shape_shares_figure.output,
]
