import sys

sys.stderr = open(snakemake.log[0], "w")
sys.stdout = sys.stderr

import _nanoforge_path  # noqa: E402,F401
from pathlib import Path  # noqa: E402

import polars as pl  # noqa: E402
import torch  # noqa: E402

from nanoforge.tem import coco  # noqa: E402
from nanoforge.tem.detector import ParticleDetector  # noqa: E402
from nanoforge.tem.weak_labels import weak_label_images  # noqa: E402

torch.set_num_threads(snakemake.threads)
detector = ParticleDetector.from_output(
    Path(snakemake.input.model).parent,
    device=snakemake.params.device,
    overrides=dict(snakemake.params.detector_overrides) or None,
)
images = pl.read_parquet(snakemake.input.images)
doc = weak_label_images(images.iter_rows(named=True), detector.detect, snakemake.params.cfg, log=sys.stderr,
                        info={"image_set": snakemake.wildcards.image_set})
coco.write_coco(doc, snakemake.output[0])
