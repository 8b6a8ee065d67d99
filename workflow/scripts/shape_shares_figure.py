import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
import polars as pl  # noqa: E402

from nanoforge.shapes.figures import plot_shares  # noqa: E402

info = plot_shares(pl.read_parquet(snakemake.input.samples), pl.read_parquet(snakemake.input.recipes),
                   snakemake.output[0], snakemake.params.variable)
print(info, file=sys.stderr)
