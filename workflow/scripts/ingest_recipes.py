import sys

sys.stderr = open(snakemake.log[0], "w")

import logging  # noqa: E402

import _nanoforge_path  # noqa: E402,F401
from nanoforge.recipes import ingest  # noqa: E402

logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

result = ingest(
    snakemake.params.sources,
    snakemake.input.abbreviations,
    snakemake.input.shapes_list,
    snakemake.params.bounds,
)
result.write(snakemake.output.recipes, snakemake.output.rejected)
for row in result.counts.iter_rows(named=True):
    print(f"{row['source']}: {row['read']} rows read = {row['accepted']} accepted + {row['rejected']} rejected",
          file=sys.stderr)
