import sys

sys.stderr = open(snakemake.log[0], "w")

import logging  # noqa: E402

import _nanoforge_path  # noqa: E402,F401
from nanoforge.synthesis.stage import featurize  # noqa: E402

logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

featurize(
    snakemake.input.recipes,
    snakemake.input.chemicals,
    snakemake.input.unimol[0] if snakemake.input.unimol else None,
    snakemake.params.sources,
    snakemake.params.featurize,
    snakemake.output.features,
    snakemake.output.columns,
    snakemake.output.coverage,
)
