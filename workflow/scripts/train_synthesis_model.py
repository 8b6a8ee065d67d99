import sys

sys.stderr = open(snakemake.log[0], "w")

import logging  # noqa: E402

import _nanoforge_path  # noqa: E402,F401
from nanoforge.synthesis.final import train_and_save  # noqa: E402

logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

train_and_save(
    snakemake.input.recipes,
    snakemake.input.chemicals,
    snakemake.input.unimol[0] if snakemake.input.unimol else None,
    snakemake.params.synthesis,
    snakemake.wildcards.run,
    snakemake.params.harness,
    snakemake.output[0],
    seed=snakemake.params.seed,
    threads=snakemake.threads,
)
