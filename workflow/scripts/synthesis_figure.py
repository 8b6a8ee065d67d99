import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
from nanoforge.synthesis.stage import figure  # noqa: E402

figure(snakemake.input.predictions, snakemake.output[0], snakemake.input.get("shapes_list"))
