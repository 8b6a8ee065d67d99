import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
from nanoforge import tables  # noqa: E402
from nanoforge.tem.ingest import IMAGES_SCHEMA, REJECTED_IMAGES_SCHEMA, ingest  # noqa: E402

tem = snakemake.params.tem
images, rejected = ingest(
    snakemake.params.datasets,
    snakemake.output.pngs,
    sidecar=tem["sidecar"],
    stack=tem["stack"],
    low_pct=tem["normalise"]["low_pct"],
    high_pct=tem["normalise"]["high_pct"],
    min_size_px=tem["min_size_px"],
    plausible_nm_per_px=tuple(tem["plausible_nm_per_px"]),
    scale_bar=tem["scale_bar"],
)
tables.write_table(images, snakemake.output.images, IMAGES_SCHEMA)
tables.write_table(rejected, snakemake.output.rejected, REJECTED_IMAGES_SCHEMA)
print(f"{images.height} images ingested, {rejected.height} files rejected", file=sys.stderr)
