import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
from nanoforge.synthesis.stage import fetch_unimol  # noqa: E402

fetch_unimol(snakemake.output[0], snakemake.params.sha256, snakemake.params.mirrors)
