import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
import polars as pl  # noqa: E402
from nanoforge.tem import coco  # noqa: E402
from nanoforge.tem.groundtruth import groundtruth_document, split_document  # noqa: E402

doc = groundtruth_document(
    snakemake.wildcards.dataset,
    snakemake.params.spec,
    pl.read_parquet(snakemake.input.images),
    snakemake.params.seed,
    snakemake.params.images_root,
)
coco.write_coco(doc, snakemake.output.all)
coco.write_coco(split_document(doc, "train"), snakemake.output.train)
coco.write_coco(split_document(doc, "holdout"), snakemake.output.holdout)
