import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
from pathlib import Path  # noqa: E402

from nanoforge.tem.segmentation_scores import evaluate_segmentation  # noqa: E402

methods = snakemake.params.methods
sets = snakemake.params.image_sets
masks = iter(snakemake.input.masks)
predictions = {m: {s: next(masks) for s in sets} for m in methods}
out = {k: snakemake.output[k] for k in ("metrics", "per_image", "size_check", "detection_check", "size_figure")}
for path in snakemake.output.overlays:
    out[f"overlay_{Path(path).stem}"] = path
ev = snakemake.params.evaluation
metrics = evaluate_segmentation(
    methods,
    predictions,
    dict(zip(methods, snakemake.input.particles)),
    {d: tuple(v) for d, v in snakemake.params.groundtruth.items()},
    snakemake.input.images,
    snakemake.params.datasets,
    out,
    overlay_images=ev["overlay_images"],
    exclude_border=ev["exclude_border_in_size_check"],
    log=sys.stderr,
)
print(metrics, file=sys.stderr)
