import sys

sys.stderr = open(snakemake.log[0], "w")

import json  # noqa: E402

import _nanoforge_path  # noqa: E402,F401

from nanoforge.shapes.cluster import ClusterParams, cluster_shapes  # noqa: E402

cfg = dict(snakemake.params.cluster)
stratify_by = cfg.pop("stratify_by")
params = ClusterParams.from_config(cfg, seed=snakemake.params.seed, threads=snakemake.threads)
summary = cluster_shapes(snakemake.input.descriptors, snakemake.output.clusters, params,
                         images=snakemake.input.images, stratify_by=stratify_by)
print(json.dumps(summary), file=sys.stderr)
with open(snakemake.output.summary, "w") as fh:
    json.dump(summary, fh, indent=1)
