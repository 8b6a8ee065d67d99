import sys

sys.stderr = open(snakemake.log[0], "w")

import logging  # noqa: E402

import _nanoforge_path  # noqa: E402,F401
from nanoforge.synthesis.stage import evaluate_synthesis  # noqa: E402

logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

evaluate_synthesis(
    snakemake.input.features,
    snakemake.params.synthesis,
    snakemake.wildcards.protocol,
    snakemake.wildcards.run,
    snakemake.params.seed,
    snakemake.threads,
    snakemake.input.folds[0] if snakemake.input.folds else None,
    snakemake.output.predictions,
    snakemake.output.metrics,
)
