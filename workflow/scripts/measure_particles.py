import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
import polars as pl  # noqa: E402

from nanoforge import tables  # noqa: E402
from nanoforge.tem import coco  # noqa: E402
from nanoforge.tem.measure import PARTICLES_SCHEMA, measure_document  # noqa: E402

images = pl.concat([pl.read_parquet(p) for p in snakemake.input.images], how="vertical_relaxed")
method = snakemake.wildcards.method
parts = []
for path in snakemake.input.masks:
    t = measure_document(coco.read_coco(path), images, method)
    print(f"{path}: {t.height} particles", file=sys.stderr)
    parts.append(t)
particles = pl.concat(parts, how="vertical")
tables.write_table(particles, snakemake.output[0], PARTICLES_SCHEMA)
