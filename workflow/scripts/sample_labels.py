import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
import polars as pl  # noqa: E402

from nanoforge.shapes.labels import build_labels, write_labels  # noqa: E402

cfg = snakemake.params.labels
samples, per_recipe = build_labels(
    snakemake.input.particles,
    snakemake.input.shapes,
    snakemake.input.images,
    snakemake.input.recipes,
    snakemake.input.sample_recipes[0] if snakemake.input.sample_recipes else None,
    min_score=cfg["min_score"],
    min_particles=cfg["min_particles"],
)
write_labels(samples, per_recipe, snakemake.output.samples, snakemake.output.recipes)
with pl.Config(tbl_cols=12, tbl_rows=50):
    print(samples.select("sample_id", "recipe_id", "recipe_match", "n_particles", "size_nm", "size_spread_pct",
                         "shape", "shape_share", "usable", "reason"), file=sys.stderr)
