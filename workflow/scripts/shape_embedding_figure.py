import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
import polars as pl  # noqa: E402

from nanoforge.shapes.figures import plot_embedding  # noqa: E402

n = plot_embedding(pl.read_parquet(snakemake.input.clusters), pl.read_csv(snakemake.input.names),
                   snakemake.output[0], snakemake.params.n_points, snakemake.params.seed)
print(f"{n} points drawn", file=sys.stderr)
