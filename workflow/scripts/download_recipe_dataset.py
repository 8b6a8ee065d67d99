import sys

sys.stderr = open(snakemake.log[0], "w")

import _nanoforge_path  # noqa: E402,F401
from nanoforge.download import fetch  # noqa: E402

spec = snakemake.params.spec
fetch(
    snakemake.wildcards.name,
    spec["url"],
    spec["sha256"],
    snakemake.output[0],
    mirrors=snakemake.params.mirrors,
    timeout=snakemake.params.timeout,
)
