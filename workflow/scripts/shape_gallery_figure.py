import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
import polars as pl  # noqa: E402

from nanoforge.shapes.figures import plot_gallery  # noqa: E402

clusters = pl.read_parquet(snakemake.input.clusters)
particles = pl.scan_parquet(snakemake.input.particles)  # only the chosen particles' masks are read
rows = plot_gallery(particles, clusters, pl.read_csv(snakemake.input.names),
                    pl.read_parquet(snakemake.input.images, columns=["image_id", "path"]),
                    snakemake.output[0], snakemake.params.per_cluster)
print(f"{rows} clusters drawn", file=sys.stderr)
