import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
from pathlib import Path  # noqa: E402

from nanoforge import tables  # noqa: E402
from nanoforge.tem import coco  # noqa: E402
from nanoforge.tem.ingest import IMAGES_SCHEMA, images_table_for_coco  # noqa: E402
from nanoforge.tem.simulate import simulate_split  # noqa: E402

split = snakemake.wildcards.split
doc = simulate_split(
    Path(snakemake.output.pngs).parent,
    split,
    snakemake.params.n,
    snakemake.params.seed,
    snakemake.params.simulate,
    workers=snakemake.threads,
    log=sys.stderr,
)
coco.write_coco(doc, snakemake.output.annotations)
images = images_table_for_coco(doc, snakemake.output.pngs, f"synthetic_{split}")
tables.write_table(images, snakemake.output.images, IMAGES_SCHEMA)
