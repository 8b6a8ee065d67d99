import sys

sys.stderr = open(snakemake.log[0], "w")

import logging  # noqa: E402

import _nanoforge_path  # noqa: E402,F401
from nanoforge.synthesis.stage import compare  # noqa: E402

logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")

compare(list(snakemake.input), snakemake.output.table, snakemake.output.html)
