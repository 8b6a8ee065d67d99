import sys

sys.stderr = open(snakemake.log[0], "w")

import json  # noqa: E402

import _nanoforge_path  # noqa: E402,F401
import polars as pl  # noqa: E402

from nanoforge.shapes.descriptors import extract_descriptors  # noqa: E402

# the shape stage covers the ingested TEM images (not e.g. the synthetic hold-out set that
# the same particle table also measures)
image_ids = pl.read_parquet(snakemake.input.images, columns=["image_id"])["image_id"].to_list()
summary = extract_descriptors(
    snakemake.input.particles,
    snakemake.output[0],
    batch_size=snakemake.params.batch_size,
    workers=snakemake.threads,
    min_area_px=snakemake.params.min_area_px,
    image_ids=image_ids,
)
print(json.dumps(summary), file=sys.stderr)
if summary["skipped"]:
    print(f"{summary['skipped']} particles of images not in {snakemake.input.images} are not part of the shape stage",
          file=sys.stderr)
