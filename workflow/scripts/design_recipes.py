import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
from nanoforge.design import run_request  # noqa: E402

run_request(snakemake.input.request, "results/models", snakemake.params.size_run, snakemake.params.shape_run,
            snakemake.input.recipes, snakemake.output[0], seed=snakemake.params.seed)
