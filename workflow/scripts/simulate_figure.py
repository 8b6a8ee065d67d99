import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from PIL import Image  # noqa: E402

from nanoforge.tem.simulate import real_vs_synthetic_figure  # noqa: E402

images = pl.read_parquet(snakemake.input.images)
paths = dict(zip(images["image_id"], images["path"]))
real = []
for key in snakemake.params.real:
    if key not in paths:
        print(f"figure: image {key!r} was not ingested; skipped", file=sys.stderr)
        continue
    real.append((key, np.asarray(Image.open(paths[key]).convert("L"))))
used = real_vs_synthetic_figure(snakemake.output[0], real, snakemake.params.seed)
print(f"presets: {used}", file=sys.stderr)
