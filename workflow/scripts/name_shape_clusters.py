import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401

from nanoforge.shapes.naming import name_clusters_from_files  # noqa: E402
from nanoforge.tables import write_csv  # noqa: E402

mapping, shapes = name_clusters_from_files(
    snakemake.input.clusters,
    snakemake.input.descriptors,
    snakemake.params.naming,
    snakemake.params.overrides,
    snakemake.params.seed,
)
write_csv(mapping, snakemake.output.names)
shapes.write_parquet(snakemake.output.shapes)
print(mapping, file=sys.stderr)
