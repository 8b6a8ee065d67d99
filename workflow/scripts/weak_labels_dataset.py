import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401

from nanoforge.tem import coco  # noqa: E402
from nanoforge.tem.weak_labels import dataset_subset  # noqa: E402

doc = dataset_subset(coco.read_coco(snakemake.input[0]), snakemake.wildcards.dataset)
print(f"{snakemake.wildcards.dataset}: {len(doc['images'])} images, {len(doc['annotations'])} weak labels",
      file=sys.stderr)
coco.write_coco(doc, snakemake.output[0])
