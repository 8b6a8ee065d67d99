import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
import polars as pl  # noqa: E402

from nanoforge.tem import coco  # noqa: E402
from nanoforge.tem.classical import segment_images  # noqa: E402

doc = segment_images(pl.read_parquet(snakemake.input.images), snakemake.params.cfg, log=sys.stderr)
doc["info"]["image_set"] = snakemake.wildcards.image_set
coco.write_coco(doc, snakemake.output[0])
